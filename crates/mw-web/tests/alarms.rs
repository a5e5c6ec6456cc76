//! The alarm routes over a fake `AlarmApi` (the seam under test): list and its filters, history,
//! KPIs, the actions and their refusals, the SSE stream (changes, lagging, the stream cap), the
//! console page and the overview's banner.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use mw_model::{AssetTree, Sample, TagPath};
use mw_security::{Principal, Role, Via};
use mw_web::{
    AlarmAction, AlarmActionError, AlarmApi, AlarmChange, AlarmFeed, AlarmFeedItem, AlarmKpis,
    AlarmPriority, AlarmRecordView, AlarmState, AlarmView, AppState, TagStore,
};
use serde_json::{Value as J, json};
use tower::ServiceExt;

const TOKEN: &str = "op-token";
const GAS_HIHI: &str = "acme/p1/north/gd1/gas:hihi";
const GAS_HI: &str = "acme/p1/north/gd1/gas:hi";
const PUMP_HI: &str = "acme/p1/south/pump1/temp:hi";

struct NoTags;

impl TagStore for NoTags {
    fn latest(&self, _: &TagPath) -> Option<Sample> {
        None
    }
    fn latest_all(&self) -> Vec<Sample> {
        Vec::new()
    }
    fn recent(&self, _: &TagPath, _: usize) -> Option<Vec<Sample>> {
        None
    }
    fn window(&self) -> usize {
        10
    }
}

/// A few alarms with a tiny lifecycle (acknowledge, shelve, out of service) and what it was asked.
struct Fake {
    alarms: Mutex<Vec<AlarmView>>,
    records: Mutex<Vec<AlarmRecordView>>,
    feed: tokio::sync::broadcast::Sender<AlarmChange>,
    seq: Mutex<u64>,
}

fn view(id: &str, priority: AlarmPriority, state: AlarmState, raised: i64) -> AlarmView {
    let (tag, kind) = id.split_once(':').unwrap();
    AlarmView {
        id: id.into(),
        tag: tag.into(),
        asset: tag.rsplit_once('/').unwrap().0.into(),
        area: tag.rsplitn(3, '/').nth(2).unwrap().into(),
        kind: kind.into(),
        priority,
        state,
        condition: state != AlarmState::Normal,
        value: Some(42.5),
        message: format!("{id} <in alarm>"),
        // `raised` in ms (the API's RFC 3339 times are millisecond-precise)
        raised_at_ns: (state != AlarmState::Normal).then_some(raised * 1_000_000),
        shelved_until_ns: None,
    }
}

impl Fake {
    fn new(capacity: usize) -> Arc<Fake> {
        Arc::new(Fake {
            alarms: Mutex::new(vec![
                view(PUMP_HI, AlarmPriority::High, AlarmState::UnackActive, 1_000),
                view(GAS_HI, AlarmPriority::High, AlarmState::AckActive, 500),
                view(
                    GAS_HIHI,
                    AlarmPriority::Critical,
                    AlarmState::UnackActive,
                    2_000,
                ),
                view(
                    "acme/p1/south/pump1/flow:lo",
                    AlarmPriority::Low,
                    AlarmState::Normal,
                    0,
                ),
            ]),
            records: Mutex::new(Vec::new()),
            feed: tokio::sync::broadcast::channel(capacity).0,
            seq: Mutex::new(0),
        })
    }

    fn change(&self, a: &AlarmView, to: AlarmState, action: &str, user: &str) -> AlarmChange {
        let mut seq = self.seq.lock().unwrap();
        *seq += 1;
        AlarmChange {
            seq: *seq,
            alarm: a.id.clone(),
            ts_ns: 1_764_000_000_000_000_000 + *seq as i64,
            from: a.state,
            to,
            value: a.value,
            message: a.message.clone(),
            priority: a.priority,
            tag: a.tag.clone(),
            asset: a.asset.clone(),
            area: a.area.clone(),
            kind: a.kind.clone(),
            action: action.into(),
            user: user.into(),
            comment: String::new(),
        }
    }

    /// A process change, as the engine would announce it.
    fn announce(&self, id: &str, to: AlarmState) -> usize {
        let c = {
            let alarms = self.alarms.lock().unwrap();
            let a = alarms.iter().find(|a| a.id == id).unwrap();
            self.change(a, to, "", "")
        };
        self.feed.send(c).unwrap_or(0)
    }
}

impl AlarmApi for Fake {
    fn active(&self) -> Vec<AlarmView> {
        let mut v: Vec<AlarmView> = self
            .alarms
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.state != AlarmState::Normal)
            .cloned()
            .collect();
        v.reverse(); // the route must sort, not rely on the order it gets
        v
    }

    fn all(&self) -> Vec<AlarmView> {
        self.alarms.lock().unwrap().clone()
    }

    fn history(
        &self,
        limit: usize,
        since_ns: Option<i64>,
        alarm: Option<&str>,
    ) -> Vec<AlarmRecordView> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|r| since_ns.is_none_or(|s| r.ts_ns >= s))
            .filter(|r| alarm.is_none_or(|a| a == r.alarm))
            .take(limit)
            .cloned()
            .collect()
    }

    fn act(
        &self,
        id: &str,
        action: AlarmAction,
        user: &str,
        comment: &str,
    ) -> Result<AlarmChange, AlarmActionError> {
        let mut alarms = self.alarms.lock().unwrap();
        let Some(a) = alarms.iter_mut().find(|a| a.id == id) else {
            return Err(AlarmActionError::UnknownAlarm(format!(
                "unknown alarm {id:?}"
            )));
        };
        let to = match (action, a.state) {
            (AlarmAction::Acknowledge, AlarmState::UnackActive) => AlarmState::AckActive,
            (AlarmAction::Acknowledge, s) => {
                return Err(AlarmActionError::Refused(format!(
                    "alarm {id:?}: cannot acknowledge an alarm in state {}: it is already acknowledged",
                    s.as_str()
                )));
            }
            (AlarmAction::Shelve(_), _) if comment.trim().is_empty() => {
                return Err(AlarmActionError::Invalid(
                    "a reason is required to shelve an alarm".into(),
                ));
            }
            (AlarmAction::Shelve(_), _) => AlarmState::Shelved,
            (AlarmAction::OutOfService, _) => AlarmState::OutOfService,
            _ => {
                return Err(AlarmActionError::Refused(format!(
                    "cannot {} this alarm",
                    action.as_str()
                )));
            }
        };
        let mut c = self.change(a, to, action.as_str(), user);
        c.comment = comment.into();
        a.state = to;
        self.records.lock().unwrap().push(AlarmRecordView {
            ts_ns: c.ts_ns,
            alarm: c.alarm.clone(),
            area: c.area.clone(),
            priority: c.priority.as_str().into(),
            from: c.from,
            to: c.to,
            value: c.value,
            action: c.action.clone(),
            user: c.user.clone(),
            comment: c.comment.clone(),
        });
        let _ = self.feed.send(c.clone());
        Ok(c)
    }

    fn kpis(&self, window_ns: i64) -> AlarmKpis {
        AlarmKpis {
            per_area_per_10min: vec![("acme/p1/north".into(), window_ns as f64 / 1e12)],
            peak_per_10min: vec![("acme/p1/north".into(), 12)],
            flood_percent: vec![("acme/p1/north".into(), 25.0)],
            standing: self.active().len(),
            stale: vec![(PUMP_HI.into(), 1_000_000_000)],
            shelved: vec![(GAS_HI.into(), Some(2_000_000_000))],
            chattering: vec![GAS_HI.into()],
            fleeting: vec![PUMP_HI.into()],
            top10: vec![(GAS_HI.into(), 3)],
            records: self.records.lock().unwrap().len(),
        }
    }

    fn subscribe(&self) -> AlarmFeed {
        let rx = self.feed.subscribe();
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            use tokio::sync::broadcast::error::RecvError;
            match rx.recv().await {
                Ok(c) => Some((AlarmFeedItem::Change(Box::new(c)), rx)),
                Err(RecvError::Lagged(n)) => Some((AlarmFeedItem::Lagged(n), rx)),
                Err(RecvError::Closed) => None,
            }
        }))
    }
}

fn state(fake: Option<Arc<Fake>>) -> AppState {
    AppState::new(
        "Test",
        Arc::new(NoTags),
        Arc::new(mw_web::Auth::token_only(
            TOKEN.into(),
            Principal {
                name: "olga".into(),
                role: Role::Operator,
                via: Via::Token,
            },
        )),
    )
    .with_alarms(fake.map(|f| f as Arc<dyn AlarmApi>))
}

async fn call(st: &AppState, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let resp = mw_web::router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get_json(st: &AppState, uri: &str) -> (StatusCode, J) {
    let (s, b) = call(st, "GET", uri, None).await;
    (
        s,
        serde_json::from_str(&b).unwrap_or_else(|e| panic!("{uri}: {e}: {b}")),
    )
}

fn ids(j: &J) -> Vec<&str> {
    j["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn list_is_most_urgent_first_with_the_documented_fields() {
    let st = state(Some(Fake::new(16)));
    let (s, j) = get_json(&st, "/api/v1/alarms").await;
    assert_eq!(s, StatusCode::OK, "{j}");
    // critical first, then high by time raised; the normal one is not listed
    assert_eq!(ids(&j), vec![GAS_HIHI, GAS_HI, PUMP_HI]);
    let a = &j["alarms"][0];
    for k in [
        "id",
        "tag",
        "asset",
        "kind",
        "priority",
        "state",
        "message",
        "value",
        "raised_at",
    ] {
        assert!(a.get(k).is_some(), "no {k} in {a}");
    }
    assert_eq!(a["tag"], "acme/p1/north/gd1/gas");
    assert_eq!(a["asset"], "acme/p1/north/gd1");
    assert_eq!(
        (a["kind"].as_str(), a["priority"].as_str()),
        (Some("hihi"), Some("critical"))
    );
    assert_eq!(
        (a["state"].as_str(), a["value"].as_f64()),
        (Some("unack_active"), Some(42.5))
    );
    assert_eq!(a["raised_at"], "1970-01-01T00:00:02.000Z");
    assert_eq!(a["raised_at_ns"], 2_000_000_000i64);
}

#[tokio::test]
async fn list_filters_and_bad_filters_name_the_value() {
    let st = state(Some(Fake::new(16)));
    let q = |u: &'static str| {
        let st = st.clone();
        async move { get_json(&st, u).await }
    };
    assert_eq!(
        ids(&q("/api/v1/alarms?priority=critical").await.1),
        vec![GAS_HIHI]
    );
    assert_eq!(
        ids(
            &q("/api/v1/alarms?priority=critical,high&area=acme/p1/south")
                .await
                .1
        ),
        vec![PUMP_HI]
    );
    // an area holds the areas below it
    assert_eq!(ids(&q("/api/v1/alarms?area=acme/p1").await.1).len(), 3);
    assert_eq!(
        ids(&q("/api/v1/alarms?state=unack_active,rtn_unack").await.1),
        vec![GAS_HIHI, PUMP_HI]
    );
    // with a state filter every configured alarm counts, so normal ones can be listed
    assert_eq!(
        ids(&q("/api/v1/alarms?state=normal").await.1),
        vec!["acme/p1/south/pump1/flow:lo"]
    );
    for (uri, needle) in [
        (
            "/api/v1/alarms?priority=urgent",
            "invalid priority filter \"urgent\" (expected one of: critical, high, medium, low)",
        ),
        (
            "/api/v1/alarms?state=acked",
            "invalid state filter \"acked\"",
        ),
        (
            "/api/v1/alarms?area=acme/p9",
            "invalid area filter \"acme/p9\": no alarm is in that area (areas: acme/p1/north, acme/p1/south)",
        ),
        ("/api/v1/alarms?prio=high", "unknown field `prio`"),
    ] {
        let (s, j) = q(uri).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {j}");
        let e = j["error"].as_str().unwrap();
        assert!(e.contains(needle), "{uri}: {e}");
    }
}

#[tokio::test]
async fn actions_answer_what_changed_and_refuse_with_the_right_status() {
    let fake = Fake::new(16);
    let st = state(Some(fake.clone()));
    let ack = format!("/api/v1/alarms/{GAS_HIHI}/ack");
    let (s, b) = call(&st, "POST", &ack, Some(r#"{"comment":"on my way"}"#)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t: J = serde_json::from_str(&b).unwrap();
    assert_eq!(t["transition"]["from"], "unack_active");
    assert_eq!(t["transition"]["to"], "ack_active");
    assert_eq!(
        t["transition"]["user"], "olga",
        "the principal does the action"
    );
    assert_eq!(t["transition"]["comment"], "on my way");
    // double acknowledge: 409 with the reason, nothing recorded a second time
    let (s, b) = call(&st, "POST", &ack, Some("{}")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(b.contains("already acknowledged"), "{b}");
    assert_eq!(fake.records.lock().unwrap().len(), 1);
    // an empty body is no comment; percent-encoded ids are decoded
    let (s, b) = call(
        &st,
        "POST",
        "/api/v1/alarms/acme/p1/south/pump1/temp%3Ahi/ack",
        Some(""),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // unknown id 404, unknown action 404
    let (s, b) = call(&st, "POST", "/api/v1/alarms/acme/nope:hi/ack", Some("{}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(b.contains("unknown alarm \\\"acme/nope:hi\\\""), "{b}");
    let (s, b) = call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{GAS_HI}/silence"),
        Some("{}"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(
        b.contains("unknown alarm action \\\"silence\\\" (expected one of: ack, shelve"),
        "{b}"
    );
    // malformed bodies and bad arguments: 400 with a clear message, nothing done
    let shelve = format!("/api/v1/alarms/{GAS_HI}/shelve");
    for (body, needle) in [
        ("{", "invalid shelve request"),
        (
            r#"{"duration_s":-5,"reason":"x"}"#,
            "\\\"duration_s\\\" must be more than 0 and at most 2592000 (30 days), got -5",
        ),
        (r#"{"duration_s":1e12,"reason":"x"}"#, "at most 2592000"),
        (r#"{"duration_s":0,"reason":"x"}"#, "got 0"),
        (r#"{"duration_s":60}"#, "missing field `reason`"),
        (r#"{"duration_s":"1h","reason":"x"}"#, "invalid type"),
        (
            r#"{"duration_s":60,"reason":"x","extra":1}"#,
            "unknown field `extra`",
        ),
        (r#"{"duration_s":60,"reason":" "}"#, "a reason is required"),
    ] {
        let (s, b) = call(&st, "POST", &shelve, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(b.contains(needle), "{body}: {b}");
    }
    let long = json!({ "comment": "x".repeat(mw_web::MAX_COMMENT + 1) }).to_string();
    let (s, b) = call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{GAS_HI}/reset"),
        Some(&long),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{GAS_HI}/oos"),
        Some("{}"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.contains("missing field `reason`"), "{b}");
    // not JSON at all: 415 (the hardening rule of every route)
    let req = Request::post(&shelve)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "text/plain")
        .body(Body::from("shelve it"))
        .unwrap();
    let resp = mw_web::router(st.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        fake.records.lock().unwrap().len(),
        2,
        "only the two acks were done"
    );
    // a good shelve and out of service
    let (s, b) = call(
        &st,
        "POST",
        &shelve,
        Some(r#"{"duration_s":3600,"reason":"calibration"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{PUMP_HI}/oos"),
        Some(r#"{"reason":"pump swap"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.contains("\"to\":\"out_of_service\""), "{b}");
}

#[tokio::test]
async fn history_and_kpis() {
    let fake = Fake::new(16);
    let st = state(Some(fake.clone()));
    call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{GAS_HIHI}/ack"),
        Some(r#"{"comment":"a"}"#),
    )
    .await;
    call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{PUMP_HI}/ack"),
        Some(r#"{"comment":"b"}"#),
    )
    .await;
    let (s, j) = get_json(&st, "/api/v1/alarms/history").await;
    assert_eq!(s, StatusCode::OK, "{j}");
    let recs = j["records"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["comment"], "b", "newest first: {j}");
    assert_eq!(recs[1]["action"], "acknowledge");
    assert_eq!(recs[1]["from"], "unack_active");
    let (_, j) = get_json(&st, "/api/v1/alarms/history?limit=1").await;
    assert_eq!(j["records"].as_array().unwrap().len(), 1);
    let (_, j) = get_json(&st, &format!("/api/v1/alarms/history?alarm={GAS_HIHI}")).await;
    assert_eq!(j["records"][0]["alarm"], GAS_HIHI);
    let (_, j) = get_json(&st, "/api/v1/alarms/history?since=2030-01-01T00:00:00Z").await;
    assert_eq!(j["records"], json!([]));
    for uri in [
        "/api/v1/alarms/history?limit=0",
        "/api/v1/alarms/history?limit=10001",
        "/api/v1/alarms/history?limit=ten",
        "/api/v1/alarms/history?since=yesterday",
    ] {
        let (s, j) = get_json(&st, uri).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {j}");
    }
    let (s, j) = get_json(&st, "/api/v1/alarms/kpi?window_s=600").await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert_eq!(j["window_s"], 600);
    assert_eq!(j["activations_per_10min_by_area"]["acme/p1/north"], 0.6);
    assert_eq!(j["standing"], 3);
    assert_eq!(j["chattering"], json!([GAS_HI]));
    assert_eq!(j["fleeting"], json!([PUMP_HI]));
    assert_eq!(j["peak_per_10min_by_area"]["acme/p1/north"], 12);
    assert_eq!(j["flood_percent_by_area"]["acme/p1/north"], 25.0);
    assert_eq!(j["flood_threshold_per_10min"], 10);
    assert_eq!(j["stale"][0]["alarm"], PUMP_HI);
    assert_eq!(j["stale"][0]["raised_at"], "1970-01-01T00:00:01.000Z");
    assert_eq!(j["shelved"][0]["alarm"], GAS_HI);
    assert_eq!(j["shelved"][0]["shelved_until"], "1970-01-01T00:00:02.000Z");
    assert_eq!(j["top10"], json!([{"alarm": GAS_HI, "activations": 3}]));
    assert_eq!(j["records"], 2);
    let (s, j) = get_json(&st, "/api/v1/alarms/kpi?window_s=-1").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
}

/// Reads SSE frames until one contains `needle` (bounded in time); returns the text read.
async fn read_until(body: &mut Body, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(needle) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} on the stream within 5 s; got {seen:?}"))
            .expect("the stream ended")
            .expect("a body error");
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    seen
}

async fn open_stream(st: &AppState) -> axum::response::Response {
    open_stream_on(mw_web::router(st.clone())).await
}

/// The stream cap belongs to a router (the process builds one), so the cap test reuses one.
async fn open_stream_on(app: axum::Router) -> axum::response::Response {
    let req = Request::get("/api/v1/alarms/stream")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    app.oneshot(req).await.unwrap()
}

#[tokio::test]
async fn the_stream_sends_each_change_as_json_and_tells_a_slow_client_it_lagged() {
    let fake = Fake::new(4);
    let st = state(Some(fake.clone()));
    let resp = open_stream(&st).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut body = resp.into_body();
    // subscribed before the head was answered: a change right now arrives
    assert_eq!(
        fake.announce(GAS_HI, AlarmState::Normal),
        1,
        "one subscriber"
    );
    let text = read_until(&mut body, "\n\n").await;
    assert!(text.starts_with("event: transition\n"), "{text}");
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no data in {text:?}"));
    let j: J = serde_json::from_str(data).unwrap();
    assert_eq!(
        (j["alarm"].as_str(), j["to"].as_str()),
        (Some(GAS_HI), Some("normal"))
    );
    assert_eq!(j["priority"], "high");
    assert!(j["ts_ns"].as_i64().is_some(), "{j}");
    assert!(text.contains(&format!("id: {}\n", j["seq"])), "{text}");
    // an action over HTTP shows on the stream too
    let (s, _) = call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{GAS_HIHI}/ack"),
        Some("{}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let text = read_until(&mut body, "\"action\":\"acknowledge\"").await;
    assert!(text.contains("\"user\":\"olga\""), "{text}");
    // ten changes while the client reads nothing: the feed holds 4, the client is told it lagged
    for _ in 0..10 {
        fake.announce(PUMP_HI, AlarmState::RtnUnack);
    }
    let text = read_until(&mut body, "event: lagged").await;
    assert!(text.contains("\"missed\":6"), "{text}");
    read_until(&mut body, "event: transition").await;
}

#[tokio::test]
async fn streams_are_capped() {
    let app = mw_web::router(state(Some(Fake::new(4))));
    let mut open = Vec::new();
    for _ in 0..mw_web::MAX_ALARM_STREAMS {
        let r = open_stream_on(app.clone()).await;
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r);
    }
    let r = open_stream_on(app.clone()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers().get("retry-after").unwrap(), "5");
    drop(open.pop());
    assert_eq!(
        open_stream_on(app.clone()).await.status(),
        StatusCode::OK,
        "a closed stream frees its place"
    );
}

#[tokio::test]
async fn without_alarms_every_alarm_route_says_so() {
    let st = state(None);
    for (m, uri) in [
        ("GET", "/api/v1/alarms"),
        ("GET", "/api/v1/alarms/history"),
        ("GET", "/api/v1/alarms/kpi"),
        ("GET", "/api/v1/alarms/stream"),
        ("POST", "/api/v1/alarms/a/b:hi/ack"),
    ] {
        let (s, b) = call(&st, m, uri, (m == "POST").then_some("{}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
        assert!(b.contains("no alarms are configured"), "{uri}: {b}");
    }
    let (_, page) = call(&st, "GET", "/", None).await;
    assert!(!page.contains("alarmbanner"), "no banner without alarms");
}

#[tokio::test]
async fn the_console_lists_by_priority_and_the_overview_shows_unacked_criticals() {
    let fake = Fake::new(4);
    let st = state(Some(fake.clone()));
    let (s, page) = call(&st, "GET", "/alarms", None).await;
    assert_eq!(s, StatusCode::OK);
    let at = |id: &str| {
        page.find(&format!("data-id='{id}'"))
            .unwrap_or_else(|| panic!("no row for {id}"))
    };
    assert!(
        at(GAS_HIHI) < at(GAS_HI) && at(GAS_HI) < at(PUMP_HI),
        "sorted by priority then time"
    );
    assert!(page.contains("&lt;in alarm&gt;"), "messages are escaped");
    for act in ["ack", "shelve", "oos"] {
        assert!(
            page.contains(&format!("data-act={act}>")),
            "no {act} button"
        );
    }
    assert!(page.contains("class=comment"), "a comment field");
    assert!(page.contains("<script src='/assets/alarms.js'>"));
    assert!(
        !page.contains("onclick") && !page.contains("<script>"),
        "no inline script"
    );
    let (s, js) = call(&st, "GET", "/assets/alarms.js", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(js.contains("/api/v1/alarms/stream"), "{js}");

    let (_, overview) = call(&st, "GET", "/", None).await;
    assert!(
        overview.contains("<a id=alarmbanner href='/alarms' class='banner'>1 unacknowledged critical alarm: acme/p1/north/gd1/gas:hihi &lt;in alarm&gt;</a>"),
        "{overview}"
    );
    let (_, js) = call(&st, "GET", "/assets/app.js", None).await;
    assert!(
        js.contains("EventSource('/api/v1/alarms/stream')"),
        "the banner follows the stream"
    );
    // once acknowledged, the banner is hidden
    call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{GAS_HIHI}/ack"),
        Some("{}"),
    )
    .await;
    let (_, overview) = call(&st, "GET", "/", None).await;
    assert!(overview.contains("class='banner hidden'"), "{overview}");
}

/// The latest sample of each tag, as the overview reads them.
struct Latest(Vec<Sample>);

impl TagStore for Latest {
    fn latest(&self, tag: &TagPath) -> Option<Sample> {
        self.0.iter().find(|s| &s.tag == tag).cloned()
    }
    fn latest_all(&self) -> Vec<Sample> {
        self.0.clone()
    }
    fn recent(&self, tag: &TagPath, _: usize) -> Option<Vec<Sample>> {
        self.latest(tag).map(|s| vec![s])
    }
    fn window(&self) -> usize {
        10
    }
}

/// The overview with a tree of four assets: gd1 and pump1 have alarms, pump2 and pump3 have
/// none; pump1's vibration input is bad, pump2's anomaly score is uncertain (warming up),
/// pump3's flow is bad and its speed never came.
fn state_with_tree(fake: Arc<Fake>) -> AppState {
    use mw_model::{AssetKind, DataType, Quality, TagDef, Value};
    let mut tree = AssetTree::new();
    let mut latest = Vec::new();
    for (asset, kind, tags) in [
        (
            "acme/p1/north/gd1",
            AssetKind::parse("gas-detector"),
            &[("gas", Some(Quality::Good))][..],
        ),
        (
            "acme/p1/south/pump1",
            AssetKind::Pump,
            &[
                ("temp", Some(Quality::Good)),
                (
                    "vibration",
                    Some(Quality::Bad("timeout after 1000 ms".into())),
                ),
            ][..],
        ),
        (
            "acme/p1/south/pump2",
            AssetKind::Pump,
            &[
                ("flow", Some(Quality::Good)),
                (
                    "anomaly_score",
                    Some(Quality::Uncertain("warming up".into())),
                ),
            ][..],
        ),
        (
            "acme/p1/south/pump3",
            AssetKind::Pump,
            &[
                ("flow", Some(Quality::Bad("modbus exception 2".into()))),
                ("speed", None),
            ][..],
        ),
    ] {
        tree.add_asset(asset, kind, "").unwrap();
        for (tag, quality) in tags {
            let path = TagPath::new(&format!("{asset}/{tag}")).unwrap();
            tree.add_tag(TagDef::new(path.clone(), DataType::F64))
                .unwrap();
            if let Some(q) = quality {
                let mut s = Sample::good(path, Value::F64(1.0), 1_764_000_000_000_000_000);
                s.quality = q.clone();
                latest.push(s);
            }
        }
    }
    let mut st = state(Some(fake));
    st.tree = Arc::new(tree);
    st.tags = Arc::new(Latest(latest));
    st
}

/// The class of the overview section of `asset`, and the text of its status badge.
fn section_status(page: &str, asset: &str) -> (String, String) {
    let at = page
        .find(&format!("data-asset='{asset}'>"))
        .unwrap_or_else(|| panic!("no section for {asset} in {page}"));
    let open = page[..at].rfind("<section class='").expect("section") + "<section class='".len();
    let class = page[open..at].trim_end_matches("' ").to_owned();
    let badge = &page[at..];
    let badge = &badge[badge.find("<span class='astat").expect("badge")..];
    let text = &badge[badge.find('>').unwrap() + 1..badge.find("</span>").unwrap()];
    (class, text.to_owned())
}

fn status(class: &str, badge: &str) -> (String, String) {
    (class.to_owned(), badge.to_owned())
}

#[tokio::test]
async fn the_overview_colours_each_asset_by_its_most_urgent_alarm_and_marks_unknown_inputs() {
    let fake = Fake::new(4);
    let st = state_with_tree(fake.clone());
    let (s, page) = call(&st, "GET", "/", None).await;
    assert_eq!(s, StatusCode::OK);
    // gd1: critical hihi (unacked) beats the acked high hi
    assert_eq!(
        section_status(&page, "acme/p1/north/gd1"),
        status("asset critical unack", "critical alarm, unacknowledged")
    );
    // pump1: high, unacked, and its bad vibration input is not hidden by the alarm
    assert_eq!(
        section_status(&page, "acme/p1/south/pump1"),
        status(
            "asset high unack unknown",
            "high alarm, unacknowledged · 1 input bad or without a value"
        )
    );
    // pump2: no alarm, every input good or uncertain (a value, like the engine holds it)
    assert_eq!(
        section_status(&page, "acme/p1/south/pump2"),
        status("asset ok", "")
    );
    // pump3: no alarm, but a bad input and one without a value never look normal
    assert_eq!(
        section_status(&page, "acme/p1/south/pump3"),
        status("asset unknown", "2 inputs bad or without a value")
    );
    assert!(
        page.contains(
            "<span class='uncertain nodata' title='no data received yet'>uncertain</span>"
        ),
        "the script tells a missing value from an uncertain one: {page}"
    );
    // acknowledged: still coloured, no longer marked unacknowledged
    let (s, b) = call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{PUMP_HI}/ack"),
        Some("{}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // out of service: set aside, so gd1 falls back to its (acknowledged) high alarm
    let (s, b) = call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{GAS_HIHI}/oos"),
        Some(r#"{"reason":"sensor swap"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, page) = call(&st, "GET", "/", None).await;
    assert_eq!(
        section_status(&page, "acme/p1/south/pump1"),
        status(
            "asset high unknown",
            "high alarm · 1 input bad or without a value"
        )
    );
    assert_eq!(
        section_status(&page, "acme/p1/north/gd1"),
        status("asset high", "high alarm")
    );
    // shelved: shown as shelved, not as nothing (and not as ok)
    let (s, b) = call(
        &st,
        "POST",
        &format!("/api/v1/alarms/{GAS_HI}/shelve"),
        Some(r#"{"duration_s":600,"reason":"bump test"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, page) = call(&st, "GET", "/", None).await;
    assert_eq!(
        section_status(&page, "acme/p1/north/gd1"),
        status("asset shelved", "1 alarm shelved")
    );
    // the script keeps them current from the stream and the rows' quality, and marks every
    // asset unknown while it has lost the server or the stream
    let (_, js) = call(&st, "GET", "/assets/app.js", None).await;
    assert!(js.contains("section[data-asset]"), "{js}");
    assert!(js.contains("' bad or without a value'"), "{js}");
    assert!(js.contains("' shelved'"), "{js}");
    assert!(js.contains("'connection lost: status unknown'"), "{js}");
    assert!(js.contains("es.addEventListener('error'"), "{js}");
    // without alarms the page judges no asset
    let mut bare = state_with_tree(Fake::new(4));
    bare.alarms = None;
    let (_, page) = call(&bare, "GET", "/", None).await;
    for asset in ["acme/p1/south/pump2", "acme/p1/south/pump3"] {
        assert_eq!(section_status(&page, asset), status("asset", ""));
    }
}
