//! The query-string parsing of the API routes, through `mw_web::fuzzing::query_strings` (what the
//! `http_query` fuzz target runs): a table of query strings, each with the routes that must accept
//! it and, for the others, a piece of their 400 message.

use mw_web::fuzzing::query_strings;

/// `(route, Ok(()) | Err(message))` of `query` for `route`.
fn outcome(query: &str, route: &str) -> Result<(), String> {
    let all = query_strings(query.as_bytes()).unwrap_or_else(|| panic!("{query:?} is no target"));
    all.into_iter()
        .find(|(r, _)| *r == route)
        .unwrap_or_else(|| panic!("no route {route}"))
        .1
}

#[track_caller]
fn accepts(query: &str, route: &str) {
    if let Err(m) = outcome(query, route) {
        panic!("{route} refused {query:?}: {m}");
    }
}

#[track_caller]
fn refuses(query: &str, route: &str, message: &str) {
    match outcome(query, route) {
        Ok(()) => panic!("{route} accepted {query:?}"),
        Err(m) => assert!(
            m.contains(message),
            "{route} on {query:?}: {m:?} lacks {message:?}"
        ),
    }
}

#[test]
fn the_routes_accept_their_documented_query_strings() {
    for q in [
        "",
        "tag=acme/plant1/utilities/water/pump1/flow",
        "tag=acme/*/utilities/**&from=2026-12-03T10:00:00Z&to=2026-12-03T11:00:00Z",
        "tag=a/b&from=1764756000000000000&to=1764759600000000000&agg=avg&step=10s",
        "tag=a/b&agg=max",
    ] {
        accepts(q, "/api/v1/query");
    }
    accepts("tag=acme/**/flow", "/api/v1/latest");
    accepts("precision=ms", "/api/v1/write");
    accepts(
        "priority=critical,high&state=unack_active&area=acme/plant1/utilities",
        "/api/v1/alarms",
    );
    accepts(
        "limit=10000&since=2026-12-03T10:00:00%2B01:00",
        "/api/v1/alarms/history",
    );
    accepts("window_s=2592000", "/api/v1/alarms/kpi");
    accepts("history=120", "/api/v1/tags");
    accepts("limit=5", "/api/v1/tags/{path}/recent");
    accepts("limit=5", "/api/v1/audit");
    accepts("token=mw_x", "/login");
}

#[test]
fn bad_query_strings_are_refused_with_a_message_naming_the_parameter() {
    refuses(
        "tag=a/b&from=yesterday",
        "/api/v1/query",
        "\"from\" is \"yesterday\"",
    );
    refuses(
        "tag=a/b&from=10&to=5",
        "/api/v1/query",
        "must be before \"to\"",
    );
    refuses(
        "tag=a/b&step=10s",
        "/api/v1/query",
        "\"step\" needs \"agg\"",
    );
    refuses(
        "tag=a/b&agg=median",
        "/api/v1/query",
        "\"agg\" is \"median\"",
    );
    refuses(
        "tag=a/b&agg=avg&step=0s",
        "/api/v1/query",
        "\"step\" is \"0s\"",
    );
    refuses(
        "tag=a/b&agg=avg&step=99999999999d",
        "/api/v1/query",
        "\"step\"",
    );
    refuses("tag=a//b", "/api/v1/query", "");
    refuses(
        "tag=a/b&from=0&to=1000000000000&agg=avg&step=1ms",
        "/api/v1/query",
        "buckets",
    );
    refuses("precision=fortnight", "/api/v1/write", "");
    refuses(
        "priority=urgent",
        "/api/v1/alarms",
        "invalid priority filter \"urgent\"",
    );
    refuses("state=on", "/api/v1/alarms", "invalid state filter \"on\"");
    refuses(
        "area=acme/plant2",
        "/api/v1/alarms",
        "no alarm is in that area",
    );
    refuses("colour=red", "/api/v1/alarms", "unknown field");
    refuses("limit=0", "/api/v1/alarms/history", "\"limit\" is \"0\"");
    refuses("limit=10001", "/api/v1/alarms/history", "from 1 to 10000");
    refuses(
        "since=noon",
        "/api/v1/alarms/history",
        "\"since\" is \"noon\"",
    );
    refuses(
        "window_s=-1",
        "/api/v1/alarms/kpi",
        "\"window_s\" is \"-1\"",
    );
    refuses("history=many", "/api/v1/tags", "history");
    refuses("limit=abc", "/api/v1/tags/{path}/recent", "limit");
    refuses("limit=-3", "/api/v1/audit", "limit");
}

/// The bucket count of an aggregate query was computed on `to - from` saturated to i64, so a range
/// wider than i64::MAX ns passed the 100 000-bucket limit with up to twice as many buckets.
#[test]
fn query_bucket_limit_holds_for_a_range_wider_than_i64() {
    refuses(
        "from=-9223372036854775808&to=9223372036854775807&agg=max&step=184467440737095",
        "/api/v1/query",
        "buckets",
    );
}

#[test]
fn a_query_that_is_no_request_target_is_not_parsed() {
    assert!(query_strings(b"a b").is_none());
    assert!(query_strings(b"tag=\xff").is_none());
}
