use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mw_model::{Sample, TagDef, TagPath, Value, format_rfc3339_ns, unit_info};
use serde::Deserialize;
use serde_json::{Value as J, json};

use crate::AppState;

/// Most samples one `recent` request returns.
const MAX_RECENT: usize = 10_000;
/// Most history points per tag in `/api/v1/tags?history=N`.
const MAX_HISTORY: usize = 600;

pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

/// A JSON request body, or the message of the 400 that names the request (`what`) and the
/// `expected` shape.
fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
    expected: &str,
) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|e| format!("invalid {what} request: {e}; expected {expected}"))
}

pub(crate) async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such route; see /api/v1/tags, /api/v1/assets, /metrics, /health, /ready",
    )
}

pub(crate) async fn health(State(st): State<AppState>) -> Json<J> {
    if st.warnings.is_empty() {
        Json(json!({ "status": "ok" }))
    } else {
        Json(json!({ "status": "ok", "warnings": st.warnings }))
    }
}

pub(crate) async fn ready(State(st): State<AppState>) -> Response {
    if st.sources.all_polling() {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        let waiting: Vec<String> = st
            .sources
            .snapshot()
            .into_iter()
            .filter(|s| s.cycles == 0)
            .map(|s| format!("{}/{}", s.component, s.instance))
            .collect();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "starting", "waiting_for": waiting })),
        )
            .into_response()
    }
}

pub(crate) async fn metrics(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        (st.metrics)(),
    )
        .into_response()
}

pub(crate) fn value_json(v: &Value) -> J {
    match v {
        Value::F64(f) if !f.is_finite() => J::Null,
        Value::F32(f) if !f.is_finite() => J::Null,
        other => serde_json::to_value(other).unwrap_or(J::Null),
    }
}

fn sample_fields(s: &Sample) -> serde_json::Map<String, J> {
    let mut m = serde_json::Map::new();
    m.insert("value".into(), value_json(&s.value));
    m.insert("quality".into(), J::from(s.quality.status()));
    if let Some(r) = s.quality.reason() {
        m.insert("reason".into(), J::from(r));
    }
    m.insert("ts".into(), J::from(format_rfc3339_ns(s.source_ts)));
    m
}

pub(crate) fn tag_json(def: &TagDef, latest: Option<&Sample>) -> J {
    let mut m = serde_json::Map::new();
    m.insert("path".into(), J::from(def.path.as_str()));
    m.insert("asset".into(), J::from(def.path.asset()));
    match latest {
        Some(s) => m.extend(sample_fields(s)),
        None => {
            m.insert("value".into(), J::Null);
            m.insert("quality".into(), J::from("uncertain"));
            m.insert("reason".into(), J::from("no data received yet"));
            m.insert("ts".into(), J::Null);
        }
    }
    m.insert(
        "unit".into(),
        def.unit.as_deref().map(J::from).unwrap_or(J::Null),
    );
    let symbol = def.unit.as_deref().and_then(unit_info).map(|u| u.symbol);
    m.insert("unit_symbol".into(), symbol.map(J::from).unwrap_or(J::Null));
    m.insert("type".into(), J::from(def.data_type.name()));
    m.insert("description".into(), J::from(def.description.as_str()));
    J::Object(m)
}

#[derive(Deserialize)]
pub(crate) struct TagsQuery {
    history: Option<usize>,
}

/// Every configured tag (and any extra tag seen on the bus), sorted by path.
pub(crate) async fn tags(State(st): State<AppState>, Query(q): Query<TagsQuery>) -> Json<J> {
    let latest: HashMap<TagPath, Sample> = st
        .tags
        .latest_all()
        .into_iter()
        .map(|s| (s.tag.clone(), s))
        .collect();
    let history = q.history.unwrap_or(0).min(MAX_HISTORY);
    let mut out: Vec<(String, J)> = Vec::new();
    for def in st.tree.tags() {
        let mut j = tag_json(def, latest.get(&def.path));
        if history > 0 {
            let h: Vec<J> = st
                .tags
                .recent(&def.path, history)
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    if s.quality.is_good() {
                        value_json(&s.value)
                    } else {
                        J::Null
                    }
                })
                .collect();
            j["history"] = J::Array(h);
        }
        out.push((def.path.to_string(), j));
    }
    for (path, s) in &latest {
        if st.tree.tag(path).is_none() {
            let def = TagDef::new(path.clone(), mw_model::DataType::F64);
            out.push((path.to_string(), tag_json(&def, Some(s))));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Json(json!({ "tags": out.into_iter().map(|(_, j)| j).collect::<Vec<_>>() }))
}

#[derive(Deserialize)]
pub(crate) struct RecentQuery {
    limit: Option<usize>,
}

/// `/api/v1/tags/{path}/recent`: the path itself contains slashes, so it is matched as a
/// wildcard and the suffix is split off here.
/// `POST /api/v1/tags/{path}/write` (see [`crate::writes`]); any other POST under a tag is 404.
pub(crate) async fn tag_post(
    State(st): State<AppState>,
    who: Option<axum::Extension<mw_security::Principal>>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    match rest.strip_suffix("/write") {
        Some(path) => crate::writes::write(&st, who.map(|w| w.0), path, &body).await,
        None => error(
            StatusCode::NOT_FOUND,
            "no such route: POST /api/v1/tags/TAG_PATH/write is the only POST under a tag",
        ),
    }
}

pub(crate) async fn tag_sub(
    State(st): State<AppState>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    Query(q): Query<RecentQuery>,
) -> Response {
    let Some(path_str) = rest.strip_suffix("/recent") else {
        return match TagPath::new(&rest) {
            Ok(path) => match st.tree.tag(&path) {
                Some(def) => Json(tag_json(def, st.tags.latest(&path).as_ref())).into_response(),
                None => error(StatusCode::NOT_FOUND, format!("unknown tag {path}")),
            },
            Err(e) => error(
                StatusCode::BAD_REQUEST,
                format!("invalid tag path {rest:?}: {e}"),
            ),
        };
    };
    let path = match TagPath::new(path_str) {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid tag path {path_str:?}: {e}"),
            );
        }
    };
    let limit = q.limit.unwrap_or(st.tags.window()).clamp(1, MAX_RECENT);
    let def = st.tree.tag(&path);
    match st.tags.recent(&path, limit) {
        Some(samples) => {
            let items: Vec<J> = samples
                .iter()
                .map(|s| J::Object(sample_fields(s)))
                .collect();
            Json(json!({
                "path": path.as_str(),
                "unit": def.and_then(|d| d.unit.clone()),
                "samples": items,
            }))
            .into_response()
        }
        None if def.is_some() => Json(json!({
            "path": path.as_str(),
            "unit": def.and_then(|d| d.unit.clone()),
            "samples": [],
        }))
        .into_response(),
        None => error(StatusCode::NOT_FOUND, format!("unknown tag {path}")),
    }
}

pub(crate) async fn assets(State(st): State<AppState>) -> Json<J> {
    let list: Vec<J> = st
        .tree
        .assets()
        .map(|a| {
            json!({
                "path": a.path,
                "kind": a.kind.as_str(),
                "description": a.description,
                "tags": a.tags.iter().map(|t| t.path.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "assets": list }))
}

pub(crate) async fn sources(State(st): State<AppState>) -> Json<J> {
    let list: Vec<J> = st
        .sources
        .snapshot()
        .into_iter()
        .map(|s| {
            let (state, reason) = match &s.state {
                mw_bus::SourceState::Starting => ("starting", None),
                mw_bus::SourceState::Up => ("up", None),
                mw_bus::SourceState::Down(r) => ("down", Some(r.clone())),
            };
            json!({
                "component": s.component, "instance": s.instance, "state": state, "reason": reason,
                "cycles": s.cycles, "last_latency_s": s.last_latency_s,
            })
        })
        .collect();
    Json(json!({ "sources": list }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultBody {
    asset: String,
    kind: String,
    duration_s: f64,
    #[serde(default)]
    point: Option<String>,
}

pub(crate) fn parse_fault_body(body: &[u8]) -> Result<FaultBody, String> {
    json_body(body, "fault", "")
}

pub(crate) fn parse_relearn_body(body: &[u8]) -> Result<RelearnBody, String> {
    json_body(body, "relearn", "")
}

fn fault_json(f: &crate::FaultInfo) -> J {
    json!({
        "wall_start": format_rfc3339_ns(f.wall_start_ns),
        "wall_end": format_rfc3339_ns(f.wall_end_ns),
        "wall_start_ns": f.wall_start_ns,
        "wall_end_ns": f.wall_end_ns,
        "id": f.id,
        "kind": f.kind,
        "asset": f.asset,
        "point": f.point,
        "origin": f.origin,
        "active": f.active,
        "start": format_rfc3339_ns(f.start_ns),
        "end": format_rfc3339_ns(f.end_ns),
        "start_ns": f.start_ns,
        "end_ns": f.end_ns,
        "start_s": f.start_s,
        "end_s": f.end_s,
    })
}

const NO_SIMULATOR: &str =
    "no simulator runs in this process (faults exist only in `millwright demo`)";

pub(crate) async fn inject_fault(
    State(st): State<AppState>,
    who: Option<axum::Extension<mw_security::Principal>>,
    body: axum::body::Bytes,
) -> Response {
    let Some(faults) = &st.faults else {
        return error(StatusCode::NOT_FOUND, NO_SIMULATOR);
    };
    let body: FaultBody = match json_body(
        &body,
        "fault",
        r#"{"asset": PATH, "kind": KIND, "duration_s": N}"#,
    ) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let spec = crate::FaultSpec {
        asset: body.asset,
        kind: body.kind,
        duration_s: body.duration_s,
        point: body.point,
    };
    let target = format!("{}/{}", spec.asset, spec.kind);
    let result = faults.inject(spec);
    if let Some(p) = &who {
        let (outcome, detail) = match &result {
            Ok(info) => (
                "ok",
                format!("fault={} duration_s={}", info.id, info.end_s - info.start_s),
            ),
            Err(e) => ("refused", format!("reason={e}")),
        };
        st.auth
            .audit(crate::auth::action_event(
                p,
                "inject_fault",
                &target,
                outcome,
                detail,
            ))
            .await;
    }
    match result {
        Ok(info) => {
            let j = fault_json(&info);
            tracing::info!(fault = %j, "fault injected");
            (StatusCode::CREATED, Json(j)).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// One detector in `GET /api/v1/detectors`: its configuration, its warm-up (a countdown in
/// rows and seconds, and why it does not finish while the data is unstable) and its latest
/// alarm onset with the inputs behind it.
pub(crate) fn detector_json(d: &crate::DetectorInfo) -> J {
    let s = &d.state;
    json!({
        "asset": d.asset,
        "kind": d.kind,
        "inputs": d.inputs,
        "score_tag": d.score_tag,
        "flag_tag": d.flag_tag,
        "contributors_tag": d.contributors_tag,
        "warming_up": s.warming_up,
        "warmup": {
            "rows": s.warmup_rows,
            "rows_left": s.warmup_rows_left,
            "seconds_left": s.warmup_seconds_left.filter(|x| x.is_finite()),
            "unstable": s.unstable,
        },
        "score": s.score.filter(|x| x.is_finite()),
        "anomalous": s.anomalous,
        "last_onset": s.last_onset_ns.map(mw_model::format_rfc3339_ns),
        "contributors": s.contributors.iter().map(|(t, share)| json!({"tag": t, "share": share})).collect::<Vec<_>>(),
        "missing": s.missing,
    })
}

pub(crate) async fn list_detectors(State(st): State<AppState>) -> Response {
    let list = st.detectors.as_ref().map(|d| d.list()).unwrap_or_default();
    let items: Vec<J> = list.iter().map(detector_json).collect();
    Json(json!({ "detectors": items })).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RelearnBody {
    asset: String,
}

pub(crate) async fn relearn_detector(
    State(st): State<AppState>,
    who: Option<axum::Extension<mw_security::Principal>>,
    body: axum::body::Bytes,
) -> Response {
    let body: RelearnBody = match json_body(&body, "relearn", r#"{"asset": PATH}"#) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let asset = body.asset.trim().trim_matches('/');
    let n = st.detectors.as_ref().map_or(0, |d| d.relearn(asset));
    if let Some(p) = &who {
        let outcome = if n > 0 { "ok" } else { "refused" };
        st.auth
            .audit(crate::auth::action_event(
                p,
                "relearn_detectors",
                asset,
                outcome,
                format!("detectors={n}"),
            ))
            .await;
    }
    if n == 0 {
        let known: Vec<String> = st
            .detectors
            .as_ref()
            .map(|d| d.list().into_iter().map(|i| i.asset).collect())
            .unwrap_or_default();
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no anomaly detector on asset {asset:?} (detectors on: {})",
                if known.is_empty() {
                    "none configured".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        );
    }
    tracing::info!(asset, detectors = n, "detector re-learning requested");
    (
        StatusCode::ACCEPTED,
        Json(json!({ "asset": asset, "detectors": n, "state": "warming up from the next sample" })),
    )
        .into_response()
}

pub(crate) async fn list_faults(State(st): State<AppState>) -> Response {
    let Some(faults) = &st.faults else {
        return error(StatusCode::NOT_FOUND, NO_SIMULATOR);
    };
    let list: Vec<J> = faults.list().iter().map(fault_json).collect();
    Json(json!({ "faults": list })).into_response()
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/audit[?limit=N]` (admins): the newest records of the audit trail, oldest first.
pub(crate) async fn audit(State(st): State<AppState>, Query(q): Query<AuditQuery>) -> Response {
    let Some(log) = &st.audit else {
        return error(StatusCode::NOT_FOUND, "this process keeps no audit trail");
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    match log.recent(limit) {
        Ok(records) => {
            let items: Vec<J> = records
                .iter()
                .map(|r| {
                    json!({ "seq": r.seq, "ts": r.ts, "actor": r.actor, "action": r.action,
                        "target": r.target, "outcome": r.outcome, "detail": r.detail })
                })
                .collect();
            Json(json!({ "records": items })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
