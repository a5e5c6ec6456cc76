use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use mw_live::LiveStore;
use mw_model::{AssetKind, AssetTree, DataType, Quality, Sample, TagDef, TagPath, Value};
use tower::ServiceExt;

use crate::{AppState, FaultControl, FaultInfo, FaultSpec, TagStore, router};

/// A state over a real live store (returned too, to feed it) and, with `with_sim`, a real simulator.
fn fixture(with_sim: bool) -> (AppState, LiveStore) {
    let mut tree = AssetTree::new();
    tree.add_asset("acme/p1/water/pump1", AssetKind::Pump, "Feed pump <P-101>")
        .unwrap();
    let mut flow = TagDef::new(
        TagPath::new("acme/p1/water/pump1/flow").unwrap(),
        DataType::F32,
    );
    flow.unit = Some("m3/h".into());
    tree.add_tag(flow).unwrap();
    let mut temp = TagDef::new(
        TagPath::new("acme/p1/water/pump1/temp").unwrap(),
        DataType::I16,
    );
    temp.unit = Some("Cel".into());
    tree.add_tag(temp).unwrap();
    let faults = with_sim.then(|| {
        Arc::new(Sim {
            plant: Mutex::new(mw_sim::Plant::new(mw_sim::SimConfig::default())),
            wall_start_ns: 1_000_000_000_000,
            speed: 10.0,
        }) as Arc<dyn FaultControl>
    });
    let live = LiveStore::new(10);
    let st = AppState::new(
        "Test <site>",
        Arc::new(live.clone()),
        Arc::new(crate::Auth::token_only(TOKEN.into(), admin())),
    )
    .with_tree(Arc::new(tree))
    .with_metrics(Arc::new(|| "mw_test_total 1\n".to_owned()))
    .with_faults(faults);
    (st, live)
}

/// The token every test request carries (an admin's, for this test process only).
const TOKEN: &str = "test-token";

fn admin() -> mw_security::Principal {
    mw_security::Principal {
        name: "tester".into(),
        role: mw_security::Role::Admin,
        via: mw_security::Via::Token,
    }
}

fn state(with_sim: bool) -> AppState {
    fixture(with_sim).0
}

/// The live store answers what it holds; history queries are left to the default (unsupported).
impl TagStore for LiveStore {
    fn latest(&self, tag: &TagPath) -> Option<Sample> {
        LiveStore::latest(self, tag)
    }
    fn latest_all(&self) -> Vec<Sample> {
        LiveStore::latest_all(self)
    }
    fn recent(&self, tag: &TagPath, limit: usize) -> Option<Vec<Sample>> {
        LiveStore::recent(self, tag, limit)
    }
    fn window(&self) -> usize {
        LiveStore::window(self)
    }
}

/// The simulator behind the fault routes, on a wall clock `speed` times slower than its own.
struct Sim {
    plant: Mutex<mw_sim::Plant>,
    wall_start_ns: i64,
    speed: f64,
}

impl Sim {
    fn info(&self, f: mw_sim::FaultRecord) -> FaultInfo {
        let wall = |s: f64| self.wall_start_ns + (s / self.speed * 1e9) as i64;
        FaultInfo {
            id: f.id.0,
            kind: f.kind.to_string(),
            asset: f.asset,
            point: f.point,
            origin: f.origin.as_str().to_owned(),
            active: f.active,
            start_ns: f.start_ns,
            end_ns: f.end_ns,
            start_s: f.start_s,
            end_s: f.end_s,
            wall_start_ns: wall(f.start_s),
            wall_end_ns: wall(f.end_s),
        }
    }
}

impl FaultControl for Sim {
    fn inject(&self, spec: FaultSpec) -> Result<FaultInfo, String> {
        let kind: mw_sim::FaultKind = spec.kind.parse().map_err(|e| format!("{e}"))?;
        let mut plant = self.plant.lock().unwrap();
        let id = plant
            .inject(mw_sim::FaultRequest {
                asset: spec.asset,
                kind,
                duration_s: spec.duration_s,
                point: spec.point,
            })
            .map_err(|e| e.to_string())?;
        let rec = plant.faults().into_iter().find(|f| f.id == id).unwrap();
        Ok(self.info(rec))
    }
    fn list(&self) -> Vec<FaultInfo> {
        let faults = self.plant.lock().unwrap().faults();
        faults.into_iter().map(|f| self.info(f)).collect()
    }
}

/// Records relearn requests; one detector on the pump.
#[derive(Default)]
struct Detectors {
    asked: Mutex<Vec<String>>,
}

impl crate::DetectorControl for Detectors {
    fn list(&self) -> Vec<crate::DetectorInfo> {
        vec![crate::DetectorInfo {
            asset: "acme/p1/water/pump1".into(),
            kind: "auto".into(),
            inputs: vec!["acme/p1/water/pump1/flow".into()],
            score_tag: "acme/p1/water/pump1/anomaly_score".into(),
            flag_tag: "acme/p1/water/pump1/anomalous".into(),
            contributors_tag: "acme/p1/water/pump1/anomaly_contributors".into(),
            state: crate::DetectorState {
                warming_up: true,
                warmup_rows: 400,
                warmup_rows_left: 130,
                warmup_seconds_left: Some(130.0),
                ..crate::DetectorState::default()
            },
        }]
    }
    fn relearn(&self, asset: &str) -> usize {
        self.asked.lock().unwrap().push(asset.to_owned());
        usize::from(asset == "acme/p1/water/pump1")
    }
}

/// One detector on the pump in a given state.
struct FixedDetector(crate::DetectorState);

impl crate::DetectorControl for FixedDetector {
    fn list(&self) -> Vec<crate::DetectorInfo> {
        vec![crate::DetectorInfo {
            asset: "acme/p1/water/pump1".into(),
            kind: "auto".into(),
            inputs: vec![
                "acme/p1/water/pump1/flow".into(),
                "acme/p1/water/pump1/temp".into(),
            ],
            score_tag: "acme/p1/water/pump1/anomaly_score".into(),
            flag_tag: "acme/p1/water/pump1/anomalous".into(),
            contributors_tag: "acme/p1/water/pump1/anomaly_contributors".into(),
            state: self.0.clone(),
        }]
    }
    fn relearn(&self, _asset: &str) -> usize {
        0
    }
}

/// The fixture with the pump detector's score and flag in the tree (and latest samples of
/// them, `uncertain` "warming up" as the processor publishes them) and the detector in `state`.
fn with_detector(state: crate::DetectorState) -> AppState {
    let (mut st, live) = fixture(false);
    let mut tree = (*st.tree).clone();
    for (name, ty) in [
        ("anomaly_score", DataType::F64),
        ("anomalous", DataType::Bool),
    ] {
        tree.add_tag(TagDef::new(
            TagPath::new(&format!("acme/p1/water/pump1/{name}")).unwrap(),
            ty,
        ))
        .unwrap();
    }
    st.tree = Arc::new(tree);
    let q = if state.warming_up {
        Quality::Uncertain("warming up".into())
    } else {
        mw_model::Quality::Good
    };
    let mut score = sample("acme/p1/water/pump1/anomaly_score", 0.7, 5);
    score.quality = q.clone();
    let mut flag = Sample::good(
        TagPath::new("acme/p1/water/pump1/anomalous").unwrap(),
        Value::Bool(state.anomalous),
        5,
    );
    flag.quality = q;
    live.apply(&[score, flag]);
    st.detectors = Some(Arc::new(FixedDetector(state)));
    st
}

fn page_row<'a>(page: &'a str, path: &str) -> &'a str {
    page.split(&format!("<tr id='t:{path}'"))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("no row {path} in {page}"))
}

#[tokio::test]
async fn warm_up_is_a_countdown_and_onsets_name_their_contributors() {
    let st = with_detector(crate::DetectorState {
        warming_up: true,
        warmup_rows: 400,
        warmup_rows_left: 130,
        warmup_seconds_left: Some(129.2),
        ..crate::DetectorState::default()
    });
    let (s, j) = get_json(&st, "/api/v1/detectors").await;
    assert_eq!(s, StatusCode::OK);
    let d = &j["detectors"][0];
    assert_eq!(d["warming_up"], true);
    assert_eq!(
        d["warmup"],
        serde_json::json!({"rows": 400, "rows_left": 130, "seconds_left": 129.2, "unstable": null})
    );
    let (_, page) = call(&st, "GET", "/", "").await;
    for tag in ["anomaly_score", "anomalous"] {
        let row = page_row(&page, &format!("acme/p1/water/pump1/{tag}"));
        assert!(
            row.contains("<span class='warmup' title='learning normal behaviour: 130 more rows of 400'>warm-up 2 min 10 s</span>"),
            "{row}"
        );
        assert!(!row.contains(">uncertain<"), "not a quality problem: {row}");
    }
    // waiting for stable data: said so
    let st = with_detector(crate::DetectorState {
        warming_up: true,
        warmup_rows: 400,
        warmup_rows_left: 250,
        unstable: Some("data unstable: flow changed level by 40 σ".into()),
        ..crate::DetectorState::default()
    });
    let (_, page) = call(&st, "GET", "/", "").await;
    let row = page_row(&page, "acme/p1/water/pump1/anomalous");
    assert!(
        row.contains("title='data unstable: flow changed level by 40 σ (at least 250 more rows)'>warm-up waiting<"),
        "{row}"
    );
    // an onset: the contributors next to the flag, in the API with the onset's time
    let st = with_detector(crate::DetectorState {
        anomalous: true,
        score: Some(0.7),
        last_onset_ns: Some(1_700_000_000_000_000_000),
        contributors: vec![
            ("acme/p1/water/pump1/flow".into(), 0.62),
            ("acme/p1/water/pump1/temp".into(), 0.21),
        ],
        ..crate::DetectorState::default()
    });
    let (_, j) = get_json(&st, "/api/v1/detectors").await;
    let d = &j["detectors"][0];
    assert_eq!(d["contributors"][0]["tag"], "acme/p1/water/pump1/flow");
    assert_eq!(d["contributors"][1]["share"], 0.21);
    assert_eq!(d["last_onset"], "2023-11-14T22:13:20.000Z");
    assert_eq!(
        d["contributors_tag"],
        "acme/p1/water/pump1/anomaly_contributors"
    );
    let (_, page) = call(&st, "GET", "/", "").await;
    let row = page_row(&page, "acme/p1/water/pump1/anomalous");
    assert!(
        row.contains(">anomalous<small class=contrib data-flag='acme/p1/water/pump1/anomalous'>flow 62 % · temp 21 %</small>"),
        "{row}"
    );
    assert!(row.contains("<span class='good'"), "{row}");
}

#[tokio::test]
async fn detectors_are_listed_and_relearn_on_request() {
    let (s, j) = get_json(&state(false), "/api/v1/detectors").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["detectors"], serde_json::json!([]));

    let det = Arc::new(Detectors::default());
    let mut st = state(false);
    st.detectors = Some(det.clone());
    let (s, j) = get_json(&st, "/api/v1/detectors").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        j["detectors"][0]["score_tag"],
        "acme/p1/water/pump1/anomaly_score"
    );
    assert_eq!(j["detectors"][0]["inputs"][0], "acme/p1/water/pump1/flow");

    let (s, b) = call(
        &st,
        "POST",
        "/api/v1/detectors/relearn",
        r#"{"asset":"/acme/p1/water/pump1"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert!(b.contains("\"detectors\":1"), "{b}");
    let (s, b) = call(
        &st,
        "POST",
        "/api/v1/detectors/relearn",
        r#"{"asset":"acme/p1/water/tank9"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        b.contains("tank9") && b.contains("acme/p1/water/pump1"),
        "{b}"
    );
    let (s, b) = call(
        &st,
        "POST",
        "/api/v1/detectors/relearn",
        r#"{"assets":"x"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("invalid relearn request"), "{b}");
    assert_eq!(
        *det.asked.lock().unwrap(),
        vec![
            "acme/p1/water/pump1".to_owned(),
            "acme/p1/water/tank9".to_owned()
        ]
    );
    // The page offers a re-learn button on the assets that have a detector.
    let (s, page) = call(&st, "GET", "/", "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("<button class=relearn data-asset='acme/p1/water/pump1' "),
        "{page}"
    );
    assert!(!page.contains("onclick"), "handlers live in /assets/app.js");
    let (_, page) = call(&state(false), "GET", "/", "").await;
    assert!(!page.contains("<button class=relearn"));
    // Without detectors the answer says so.
    let (s, b) = call(
        &state(false),
        "POST",
        "/api/v1/detectors/relearn",
        r#"{"asset":"a/b"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.contains("none configured"), "{b}");
}

async fn call(st: &AppState, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .header("authorization", "Bearer test-token")
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    let resp = router(st.clone())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn get_json(st: &AppState, uri: &str) -> (StatusCode, serde_json::Value) {
    let (s, b) = call(st, "GET", uri, "").await;
    (
        s,
        serde_json::from_str(&b).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {b}")),
    )
}

fn sample(path: &str, v: f64, ts: i64) -> Sample {
    Sample::good(TagPath::new(path).unwrap(), Value::F64(v), ts)
}

#[tokio::test]
async fn tags_lists_configured_tags_with_units_and_rfc3339() {
    let (st, live) = fixture(false);
    live.apply(&[sample(
        "acme/p1/water/pump1/flow",
        42.5,
        1_795_971_500_123_000_000,
    )]);
    let (s, j) = get_json(&st, "/api/v1/tags").await;
    assert_eq!(s, StatusCode::OK);
    let tags = j["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(tags[0]["path"], "acme/p1/water/pump1/flow");
    assert_eq!(tags[0]["value"], 42.5);
    assert_eq!(tags[0]["quality"], "good");
    assert_eq!(tags[0]["unit"], "m3/h");
    assert_eq!(tags[0]["ts"], "2026-11-29T16:58:20.123Z");
    assert_eq!(tags[1]["value"], serde_json::Value::Null);
    assert_eq!(tags[1]["quality"], "uncertain");
    assert_eq!(tags[1]["unit"], "Cel");
}

#[tokio::test]
async fn bad_quality_and_nan_are_explicit() {
    let (st, live) = fixture(false);
    let mut s = sample("acme/p1/water/pump1/flow", f64::NAN, 1);
    s.quality = Quality::Bad("timeout after 1000 ms".into());
    live.apply(&[s]);
    let (_, j) = get_json(&st, "/api/v1/tags").await;
    assert_eq!(j["tags"][0]["value"], serde_json::Value::Null);
    assert_eq!(j["tags"][0]["quality"], "bad");
    assert_eq!(j["tags"][0]["reason"], "timeout after 1000 ms");
}

#[tokio::test]
async fn recent_window_with_slashed_path() {
    let (st, live) = fixture(false);
    for i in 0..5 {
        live.apply(&[sample(
            "acme/p1/water/pump1/flow",
            i as f64,
            i * 1_000_000_000,
        )]);
    }
    let (s, j) = get_json(&st, "/api/v1/tags/acme/p1/water/pump1/flow/recent?limit=3").await;
    assert_eq!(s, StatusCode::OK);
    let vals: Vec<f64> = j["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["value"].as_f64().unwrap())
        .collect();
    assert_eq!(vals, vec![2.0, 3.0, 4.0]);
    assert_eq!(j["unit"], "m3/h");
    let (s, j) = get_json(&st, "/api/v1/tags/acme/p1/water/pump1/flow").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(j["value"], 4.0);
    let (s, j) = get_json(&st, "/api/v1/tags/acme/p1/nope/recent").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("unknown tag acme/p1/nope")
    );
    let (s, _) = get_json(&st, "/api/v1/tags/a%20b/c/recent").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, j) = get_json(&st, "/api/v1/tags/acme/p1/water/pump1/temp/recent").await;
    assert_eq!(
        s,
        StatusCode::OK,
        "configured tag without data: empty window"
    );
    assert_eq!(j["samples"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn ready_waits_for_every_source() {
    let st = state(false);
    let (s, _) = get_json(&st, "/ready").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let h = st.sources.register("modbus", "plc1");
    let (s, j) = get_json(&st, "/ready").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(j["waiting_for"][0], "modbus/plc1");
    h.cycle_done(0.01);
    let (s, _) = get_json(&st, "/ready").await;
    assert_eq!(s, StatusCode::OK);
    let (s, j) = get_json(&st, "/health").await;
    assert_eq!((s, j["status"].as_str()), (StatusCode::OK, Some("ok")));
}

#[tokio::test]
async fn metrics_and_page() {
    let (st, live) = fixture(false);
    live.apply(&[sample("acme/p1/water/pump1/flow", 12.0, 1)]);
    let (s, body) = call(&st, "GET", "/metrics", "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("mw_test_total 1"));
    let (s, html) = call(&st, "GET", "/", "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Test &lt;site&gt;"), "site name escaped");
    assert!(
        html.contains("Feed pump &lt;P-101&gt;"),
        "description escaped"
    );
    assert!(html.contains("id='t:acme/p1/water/pump1/flow'"));
    assert!(html.contains("12.00"));
    assert!(html.contains("m³/h"));
    assert!(!html.contains("<P-101>"));
}

#[tokio::test]
async fn sim_faults_inject_and_list() {
    let st = state(true);
    let (s, body) = call(
        &st,
        "POST",
        "/api/v1/sim/faults",
        r#"{"asset":"acme/plant1/utilities/compressor_house/gd1","kind":"gas_release","duration_s":60}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = j["id"].as_u64().unwrap();
    assert_eq!(j["kind"], "gas_release");
    let (s, j) = get_json(&st, "/api/v1/sim/faults").await;
    assert_eq!(s, StatusCode::OK);
    let f = &j["faults"][0];
    assert_eq!(f["id"].as_u64(), Some(id));
    assert_eq!(f["active"], true);
    assert!(f["end_ns"].as_i64().unwrap() - f["start_ns"].as_i64().unwrap() == 60_000_000_000);
    // at speed 10, a 60 s sim window lasts 6 s of wall time
    assert_eq!(
        f["wall_end_ns"].as_i64().unwrap() - f["wall_start_ns"].as_i64().unwrap(),
        6_000_000_000
    );
    assert!(f["wall_start"].as_str().unwrap().ends_with('Z'));

    let (s, j) = call(
        &st,
        "POST",
        "/api/v1/sim/faults",
        r#"{"asset":"gd1","kind":"meteor","duration_s":60}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        j.contains("unknown fault kind") && j.contains("gas_release"),
        "{j}"
    );
    let (s, j) = call(
        &st,
        "POST",
        "/api/v1/sim/faults",
        r#"{"asset":"nowhere","kind":"leak","duration_s":60}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(j.contains("unknown asset"), "{j}");
    let (s, _) = call(&st, "POST", "/api/v1/sim/faults", "{not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = call(
        &st,
        "POST",
        "/api/v1/sim/faults",
        r#"{"asset":"gd1","kind":"leak","duration_s":-1}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sim_routes_without_sim_are_404() {
    let st = state(false);
    let (s, j) = get_json(&st, "/api/v1/sim/faults").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(j["error"].as_str().unwrap().contains("demo"));
    let (s, _) = get_json(&st, "/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn page_marks_only_alarm_like_booleans_and_shows_sim_faults() {
    let (mut st, live) = fixture(true);
    let mut tree = (*st.tree).clone();
    for name in ["running", "alarm"] {
        let path = TagPath::new(&format!("acme/p1/water/pump1/{name}")).unwrap();
        tree.add_tag(TagDef::new(path, DataType::Bool)).unwrap();
    }
    st.tree = Arc::new(tree);
    for name in ["running", "alarm"] {
        live.apply(&[Sample::good(
            TagPath::new(&format!("acme/p1/water/pump1/{name}")).unwrap(),
            Value::Bool(true),
            1,
        )]);
    }
    let (_, html) = call(&st, "GET", "/", "").await;
    let row = |name: &str| {
        let start = html
            .find(&format!("id='t:acme/p1/water/pump1/{name}'"))
            .unwrap();
        html[start..start + html[start..].find("</tr>").unwrap()].to_owned()
    };
    assert!(row("alarm").contains("class='v on'"), "{}", row("alarm"));
    assert!(
        !row("running").contains("class='v on'"),
        "{}",
        row("running")
    );
    assert!(
        html.contains("id=faults"),
        "simulator fault panel shown in the demo"
    );
    let (_, plain) = call(&state(false), "GET", "/", "").await;
    assert!(
        !plain.contains("id=faults"),
        "no fault panel without a simulator"
    );
}

#[tokio::test]
async fn overload_is_shed_with_503_not_queued() {
    use axum::routing::get;
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let slow = axum::Router::new().route(
        "/slow",
        get(move || {
            let mut rx = release_rx.clone();
            async move {
                let _ = rx.wait_for(|v| *v).await;
                "done"
            }
        }),
    );
    let app = crate::guard(slow, 1);
    let first = tokio::spawn(
        app.clone().oneshot(
            Request::get("/slow")
                .header("authorization", "Bearer test-token")
                .body(Body::empty())
                .unwrap(),
        ),
    );
    tokio::task::yield_now().await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let second = app
        .clone()
        .oneshot(
            Request::get("/slow")
                .header("authorization", "Bearer test-token")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        second.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the second request is shed"
    );
    assert_eq!(second.headers().get("retry-after").unwrap(), "1");
    release_tx.send(true).unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(
        first.status(),
        StatusCode::OK,
        "the admitted request completes"
    );
    let third = app
        .oneshot(
            Request::get("/slow")
                .header("authorization", "Bearer test-token")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        third.status(),
        StatusCode::OK,
        "capacity is back after the first finished"
    );
}

#[test]
fn history_queries_default_to_unsupported() {
    let live = LiveStore::new(10);
    live.apply(&[sample("a/x", 1.0, 5)]);
    let store: &dyn TagStore = &live;
    let tag = TagPath::new("a/x").unwrap();
    assert_eq!(store.latest(&tag).map(|s| s.source_ts), Some(5));
    assert_eq!(
        store.range(&tag, 0, 10, 100),
        Err(crate::QueryError::Unsupported { query: "range" })
    );
    let err = store
        .aggregate(&tag, 0, 10, 1, crate::Aggregate::Avg)
        .unwrap_err();
    assert_eq!(err, crate::QueryError::Unsupported { query: "aggregate" });
    assert!(
        err.to_string()
            .starts_with("aggregate queries are not supported by this tag store"),
        "{err}"
    );
}

async fn send(
    st: &AppState,
    req: axum::http::request::Builder,
    body: &str,
) -> axum::response::Response {
    router(st.clone())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap()
}

async fn body_json(resp: axum::response::Response) -> serde_json::Value {
    assert_eq!(
        resp.headers()["content-type"],
        "application/json",
        "{:?}",
        resp.headers()
    );
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

#[tokio::test]
async fn posts_without_json_content_type_are_refused_with_415() {
    let det = Arc::new(Detectors::default());
    let mut st = state(true);
    st.detectors = Some(det.clone());
    for (uri, body) in [
        (
            "/api/v1/detectors/relearn",
            r#"{"asset":"acme/p1/water/pump1"}"#,
        ),
        (
            "/api/v1/sim/faults",
            r#"{"asset":"acme/plant1/utilities/water/pump1","kind":"cavitation","duration_s":5}"#,
        ),
    ] {
        for ct in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
            None,
        ] {
            let mut req = Request::builder()
                .header("authorization", "Bearer test-token")
                .method("POST")
                .uri(uri);
            if let Some(ct) = ct {
                req = req.header("content-type", ct);
            }
            let resp = send(&st, req, body).await;
            assert_eq!(
                resp.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{uri} {ct:?}"
            );
            let j = body_json(resp).await;
            assert!(
                j["error"].as_str().unwrap().contains("application/json"),
                "{j}"
            );
        }
    }
    assert!(det.asked.lock().unwrap().is_empty(), "no handler ran");
    assert!(
        st.faults.as_ref().unwrap().list().is_empty(),
        "no fault injected"
    );
    // with a charset parameter it is still JSON
    let req = Request::builder()
        .header("authorization", "Bearer test-token")
        .method("POST")
        .uri("/api/v1/detectors/relearn")
        .header("content-type", "Application/JSON; charset=utf-8");
    let resp = send(&st, req, r#"{"asset":"acme/p1/water/pump1"}"#).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn control_bodies_are_limited_with_413_json() {
    let st = state(true);
    let big = format!(
        r#"{{"asset":"acme/plant1/utilities/water/pump1","kind":"cavitation","duration_s":5,"point":"{}"}}"#,
        "x".repeat(crate::CONTROL_BODY_LIMIT)
    );
    let req = Request::builder()
        .header("authorization", "Bearer test-token")
        .method("POST")
        .uri("/api/v1/sim/faults")
        .header("content-type", "application/json");
    let resp = send(&st, req, &big).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let j = body_json(resp).await;
    assert!(j["error"].as_str().unwrap().contains("length limit"), "{j}");
    assert!(st.faults.as_ref().unwrap().list().is_empty());
}

#[tokio::test]
async fn axum_rejections_and_405_answer_json() {
    let st = state(false);
    let resp = send(
        &st,
        Request::builder()
            .header("authorization", "Bearer test-token")
            .uri("/api/v1/tags/acme/p1/water/pump1/flow/recent?limit=abc"),
        "",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let j = body_json(resp).await;
    assert!(j["error"].as_str().unwrap().contains("limit"), "{j}");
    let resp = send(
        &st,
        Request::builder()
            .header("authorization", "Bearer test-token")
            .uri("/api/v1/tags?history=-1"),
        "",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    body_json(resp).await;

    let resp = send(
        &st,
        Request::builder()
            .header("authorization", "Bearer test-token")
            .method("DELETE")
            .uri("/api/v1/tags"),
        "",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "GET,HEAD");
    let j = body_json(resp).await;
    assert_eq!(
        j["error"],
        "method DELETE is not allowed on /api/v1/tags (the Allow header lists those that are)"
    );
    let req = Request::builder()
        .header("authorization", "Bearer test-token")
        .method("POST")
        .uri("/health")
        .header("content-type", "application/json");
    let resp = send(&st, req, "{}").await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    body_json(resp).await;
}

#[tokio::test]
async fn page_has_a_strict_csp_and_no_inline_code() {
    let mut st = state(true);
    st.detectors = Some(Arc::new(Detectors::default()));
    let resp = send(
        &st,
        Request::builder()
            .header("authorization", "Bearer test-token")
            .uri("/"),
        "",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert_eq!(h["content-security-policy"], crate::CONTENT_SECURITY_POLICY);
    assert!(crate::CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let html = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains("<script src='/assets/app.js'></script>"));
    assert!(html.contains("<link rel=stylesheet href='/assets/app.css'>"));
    for inline in ["<script>", "<style", "style=", "onclick", " on"] {
        assert!(
            !html.replace(" one", "").contains(inline),
            "inline code {inline:?} in the page"
        );
    }
    for (uri, ct, needle) in [
        (
            "/assets/app.js",
            "text/javascript; charset=utf-8",
            "addEventListener('click'",
        ),
        ("/assets/app.css", "text/css; charset=utf-8", "svg.spark"),
    ] {
        let resp = send(
            &st,
            Request::builder()
                .header("authorization", "Bearer test-token")
                .uri(uri),
            "",
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], ct);
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&b).contains(needle), "{uri}");
    }
    // every response, JSON ones included, says nosniff; only HTML carries the CSP
    let resp = send(
        &st,
        Request::builder()
            .header("authorization", "Bearer test-token")
            .uri("/api/v1/tags"),
        "",
    )
    .await;
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert!(!resp.headers().contains_key("content-security-policy"));
    let resp = send(
        &st,
        Request::builder()
            .header("authorization", "Bearer test-token")
            .uri("/nope"),
        "",
    )
    .await;
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
}
