//! The history routes' HTTP rules over a small in-memory store and a recording ingest: query
//! parameters and their errors, glob queries, `latest`, and the three line-protocol write routes
//! (precision, gzip, content types, InfluxDB credentials, line and column of every refusal, 204
//! only after the ingest resolved). The real historian behind them is tested end to end in
//! `crates/millwright/tests/history_http.rs`.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use mw_model::{Quality, Sample, TagPath, Value};
use mw_web::{
    Aggregate, AggregatePoint, AppState, Ingest, IngestError, IngestFuture, IngestReceipt,
    QueryError, TagStore,
};
use serde_json::Value as J;
use tower::ServiceExt;

const TOKEN: &str = "t0ken";

/// Samples kept in a vector; range and aggregate computed naively.
#[derive(Default)]
struct MemTags(Mutex<Vec<Sample>>);

impl TagStore for MemTags {
    fn latest(&self, tag: &TagPath) -> Option<Sample> {
        let v = self.0.lock().unwrap();
        v.iter()
            .filter(|s| &s.tag == tag)
            .max_by_key(|s| s.source_ts)
            .cloned()
    }
    fn latest_all(&self) -> Vec<Sample> {
        let mut tags: Vec<TagPath> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.tag.clone())
            .collect();
        tags.sort();
        tags.dedup();
        tags.iter().filter_map(|t| self.latest(t)).collect()
    }
    fn recent(&self, _: &TagPath, _: usize) -> Option<Vec<Sample>> {
        None
    }
    fn window(&self) -> usize {
        10
    }
    fn range(
        &self,
        tag: &TagPath,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<Sample>, QueryError> {
        let mut v: Vec<Sample> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| &s.tag == tag && s.source_ts >= from_ns && s.source_ts < to_ns)
            .cloned()
            .collect();
        v.sort_by_key(|s| s.source_ts);
        v.truncate(limit);
        Ok(v)
    }
    fn aggregate(
        &self,
        tag: &TagPath,
        from_ns: i64,
        to_ns: i64,
        step_ns: i64,
        aggregate: Aggregate,
    ) -> Result<Vec<AggregatePoint>, QueryError> {
        assert_eq!(aggregate, Aggregate::Sum, "the test asks for sums");
        let pts = self.range(tag, from_ns, to_ns, usize::MAX)?;
        let mut out: Vec<AggregatePoint> = Vec::new();
        for s in pts {
            let start = from_ns + (s.source_ts - from_ns) / step_ns * step_ns;
            let Value::F64(v) = s.value else { continue };
            match out.last_mut() {
                Some(b) if b.start_ns == start => {
                    b.value += v;
                    b.count += 1;
                }
                _ => out.push(AggregatePoint {
                    start_ns: start,
                    value: v,
                    count: 1,
                }),
            }
        }
        Ok(out)
    }
}

/// Records what it is given; refuses tags ending in `/forbidden` at their index; with `gate`,
/// resolves only once the test lets it.
struct Recorder {
    got: Mutex<Vec<Vec<Sample>>>,
    gate: Option<tokio::sync::Semaphore>,
}

impl Ingest for Recorder {
    fn write(&self, samples: Vec<Sample>) -> IngestFuture<'_> {
        Box::pin(async move {
            if let Some(i) = samples
                .iter()
                .position(|s| s.tag.as_str().ends_with("/forbidden"))
            {
                return Err(IngestError::Rejected {
                    index: i,
                    message: "no such luck".into(),
                });
            }
            if let Some(g) = &self.gate {
                let _ = g.acquire().await.unwrap();
            }
            let n = samples.len();
            self.got.lock().unwrap().push(samples);
            Ok(IngestReceipt {
                samples: n,
                created_tags: 0,
            })
        })
    }
}

fn state(tags: Arc<MemTags>, ingest: Option<Arc<Recorder>>) -> AppState {
    AppState::new(
        "t",
        tags,
        Arc::new(mw_web::Auth::token_only(
            TOKEN.into(),
            mw_security::Principal {
                name: "tester".into(),
                role: mw_security::Role::Admin,
                via: mw_security::Via::Token,
            },
        )),
    )
    .with_ingest(ingest.map(|i| i as Arc<dyn Ingest>))
}

fn recorder() -> Arc<Recorder> {
    Arc::new(Recorder {
        got: Mutex::new(Vec::new()),
        gate: None,
    })
}

async fn send(st: &AppState, req: Request<Body>) -> (StatusCode, J) {
    let resp = mw_web::router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        J::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| J::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap()
}

fn post(uri: &str, auth: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header("authorization", auth)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body.into())
        .unwrap()
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn sample(tag: &str, ts: i64, v: f64) -> Sample {
    Sample::good(TagPath::new(tag).unwrap(), Value::F64(v), ts)
}

#[tokio::test]
async fn query_raw_aggregate_glob_and_errors() {
    let tags = Arc::new(MemTags::default());
    {
        let mut v = tags.0.lock().unwrap();
        for i in 0..10 {
            v.push(sample("truck/t1/speed", 1_000_000_000 * i, i as f64));
            v.push(sample("truck/t2/speed", 1_000_000_000 * i, 10.0 * i as f64));
        }
        v.push(Sample {
            quality: Quality::Bad("timeout".into()),
            ..sample("truck/t1/fuel", 0, f64::NAN)
        });
    }
    let st = state(tags, None);

    let (s, b) = send(
        &st,
        get("/api/v1/query?tag=truck/t1/speed&from=0&to=5000000000"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["tag"], "truck/t1/speed");
    let pts = b["points"].as_array().unwrap();
    assert_eq!(pts.len(), 5, "to is exclusive: {b}");
    assert_eq!(
        pts[0],
        serde_json::json!(["1970-01-01T00:00:00.000Z", 0.0, "good"])
    );
    assert_eq!(pts[4][0], "1970-01-01T00:00:04.000Z");

    // RFC 3339 times, an aggregate with a step: [start, value, "good", count]
    let (s, b) = send(
        &st,
        get("/api/v1/query?tag=truck/t1/speed&from=1970-01-01T00:00:00Z&to=1970-01-01T00:00:10Z&agg=sum&step=5s"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["points"],
        serde_json::json!([
            ["1970-01-01T00:00:00.000Z", 10.0, "good", 5],
            ["1970-01-01T00:00:05.000Z", 35.0, "good", 5]
        ])
    );

    // a glob answers one series per matching tag, sorted
    let (s, b) = send(
        &st,
        get("/api/v1/query?tag=truck/*/speed&from=0&to=2000000000"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let series = b["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{b}");
    assert_eq!(series[1]["tag"], "truck/t2/speed");
    assert_eq!(series[1]["points"][1][1], 10.0);

    // bad values are null with their quality
    let (_, b) = send(&st, get("/api/v1/query?tag=truck/t1/fuel&from=0&to=1")).await;
    assert_eq!(
        b["points"],
        serde_json::json!([["1970-01-01T00:00:00.000Z", null, "bad"]])
    );

    for (q, needle) in [
        ("", "\"tag\" is required"),
        ("tag=truck&from=0&to=1", "invalid tag path"),
        (
            "tag=truck/t1/speed&from=yesterday&to=1",
            "\"from\" is \"yesterday\"",
        ),
        ("tag=truck/t1/speed&from=5&to=5", "must be before"),
        (
            "tag=truck/t1/speed&from=0&to=10&agg=median",
            "one of min, max, avg, sum, count, first, last, twa",
        ),
        (
            "tag=truck/t1/speed&from=0&to=10&step=1s",
            "\"step\" needs \"agg\"",
        ),
        (
            "tag=truck/t1/speed&from=0&to=10&agg=avg&step=5parsecs",
            "\"step\" is \"5parsecs\"",
        ),
        (
            "tag=truck/t1/speed&from=0&to=86400000000000&agg=avg&step=1ms",
            "buckets",
        ),
        ("tag=truck//speed*", "empty segment"),
    ] {
        let (s, b) = send(&st, get(&format!("/api/v1/query?{q}"))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {b}");
        let msg = b["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{q}: {msg}");
    }
}

#[tokio::test]
async fn latest_of_all_of_a_glob_and_of_one() {
    let tags = Arc::new(MemTags::default());
    {
        let mut v = tags.0.lock().unwrap();
        v.push(sample("truck/t1/speed", 1, 1.0));
        v.push(sample("truck/t1/speed", 2, 2.0));
        v.push(sample("truck/t2/speed", 1, 5.0));
        v.push(sample("plant/p1/flow", 1, 7.0));
    }
    let st = state(tags, None);
    let (s, b) = send(&st, get("/api/v1/latest")).await;
    assert_eq!(s, StatusCode::OK);
    let tags: Vec<&str> = b["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["plant/p1/flow", "truck/t1/speed", "truck/t2/speed"]);
    let (_, b) = send(&st, get("/api/v1/latest?tag=truck/**")).await;
    assert_eq!(b["points"].as_array().unwrap().len(), 2);
    assert_eq!(b["points"][0]["value"], 2.0);
    let (_, b) = send(&st, get("/api/v1/latest?tag=plant/p1/flow")).await;
    assert_eq!(b["points"][0]["value"], 7.0);
}

#[tokio::test]
async fn the_three_write_routes_take_line_protocol() {
    let rec = recorder();
    let st = state(Arc::new(MemTags::default()), Some(rec.clone()));
    let body = "truck,fleet=North,name=t1 velocity=3,fuel=2i 1700000000\n";
    let token_v2 = format!("Token {TOKEN}");
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("telegraf:{TOKEN}"))
    );
    for (uri, auth) in [
        ("/api/v1/write?precision=s", bearer()),
        ("/write?db=plant&precision=s", basic.clone()),
        ("/api/v2/write?org=o&bucket=b&precision=s", token_v2.clone()),
    ] {
        let (s, b) = send(&st, post(uri, &auth, body)).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{uri}: {b}");
    }
    let got = rec.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    for batch in &got {
        let tags: Vec<&str> = batch.iter().map(|s| s.tag.as_str()).collect();
        assert_eq!(tags, ["truck/North/t1/velocity", "truck/North/t1/fuel"]);
        assert_eq!(batch[0].source_ts, 1_700_000_000_000_000_000);
        assert_eq!(batch[0].value, Value::F64(3.0));
        assert_eq!(batch[1].value, Value::I64(2));
    }

    // gzip, as Telegraf's influxdb_v2 output sends by default
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"m,a=x f=1.5 5\n").unwrap();
    let req = Request::post("/api/v2/write?precision=ns")
        .header("authorization", &token_v2)
        .header("content-encoding", "gzip")
        .body(Body::from(gz.finish().unwrap()))
        .unwrap();
    let (s, b) = send(&st, req).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(rec.got.lock().unwrap().last().unwrap()[0].source_ts, 5);

    // a wrong token in either Influx form is refused
    let (s, _) = send(&st, post("/write", "Basic dXNlcjpwdw==", body)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = send(&st, post("/api/v2/write", "Token nope", body)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(rec.got.lock().unwrap().len(), 4, "nothing more was written");
}

#[tokio::test]
async fn a_bad_batch_is_refused_whole_naming_line_and_column() {
    let rec = recorder();
    let st = state(Arc::new(MemTags::default()), Some(rec.clone()));
    let cases = [
        // malformed line protocol: the parser's line and column
        ("m f=1 1\nm f= 2\n", "line 2, column"),
        // a tag value that is not a path segment
        ("m,a=x/y f=1 1\n", "line 1, column 5"),
        // refused by the ingest: the line and column of that field
        (
            "m,a=x f=1 1\nm,a=x ok=1,forbidden=2 2\n",
            "line 2, column 12: no such luck",
        ),
        // unknown precision
        ("m f=1 1\n", "unknown precision"),
        ("m f=1 1\n\u{0}\u{ff}", "line 2"),
    ];
    for (i, (body, needle)) in cases.iter().enumerate() {
        let uri = if i == 3 {
            "/api/v1/write?precision=fortnights"
        } else {
            "/api/v1/write"
        };
        let (s, b) = send(&st, post(uri, &bearer(), body.to_string())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body:?}: {b}");
        let msg = b["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{body:?}: {msg}");
        assert_eq!(b["code"], "invalid", "Influx clients read code and message");
        assert_eq!(b["message"], b["error"]);
    }
    // invalid UTF-8: the raw bytes
    let req = Request::post("/api/v1/write")
        .header("authorization", bearer())
        .body(Body::from(vec![b'm', b' ', b'f', b'=', 0xff]))
        .unwrap();
    let (s, b) = send(&st, req).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("line 1, column 5: the body is not UTF-8"),
        "{b}"
    );
    assert!(
        rec.got.lock().unwrap().is_empty(),
        "nothing of a refused batch reached the ingest"
    );
}

#[tokio::test]
async fn content_types_encodings_and_a_missing_historian() {
    let st = state(Arc::new(MemTags::default()), Some(recorder()));
    let form = Request::post("/api/v1/write")
        .header("authorization", bearer())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("m f=1"))
        .unwrap();
    let (s, b) = send(&st, form).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{b}");
    let br = Request::post("/api/v1/write")
        .header("authorization", bearer())
        .header("content-encoding", "br")
        .body(Body::from("m f=1"))
        .unwrap();
    let (s, b) = send(&st, br).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{b}");
    let (s, b) = send(&st, post("/api/v1/write", &bearer(), "m f=1 1")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    // other POST routes still insist on JSON
    let req = Request::post("/api/v1/detectors/relearn")
        .header("authorization", bearer())
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(&st, req).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let none = state(Arc::new(MemTags::default()), None);
    let (s, b) = send(&none, post("/api/v1/write", &bearer(), "m f=1 1")).await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED);
    assert!(b["error"].as_str().unwrap().contains("[historian]"), "{b}");
}

#[tokio::test]
async fn the_answer_waits_for_the_ingest() {
    let rec = Arc::new(Recorder {
        got: Mutex::new(Vec::new()),
        gate: Some(tokio::sync::Semaphore::new(0)),
    });
    let st = state(Arc::new(MemTags::default()), Some(rec.clone()));
    let app = mw_web::router(st);
    let pending = tokio::spawn(app.oneshot(post("/api/v1/write", &bearer(), "m f=1 1")));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !pending.is_finished(),
        "answered before the ingest resolved"
    );
    rec.gate.as_ref().unwrap().add_permits(1);
    let resp = pending.await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(rec.got.lock().unwrap().len(), 1);
}
