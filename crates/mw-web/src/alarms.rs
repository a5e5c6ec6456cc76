//! The alarm routes, over the [`AlarmApi`] seam (the binary implements it over `mw-alarms`):
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/alarms[?priority=P&area=A&state=S]` | alarms not in `normal`, most urgent first; each filter takes one value or a comma list; with `state`, every configured alarm in that state (so `state=normal` works) |
//! | `GET /api/v1/alarms/history[?limit=N&since=T&alarm=ID]` | journal records, newest first (limit 1..=10 000, default 100; T = RFC 3339 or ns) |
//! | `GET /api/v1/alarms/kpi[?window_s=N]` | ISA-18.2 KPIs over the last N s (default 3600) |
//! | `GET /api/v1/alarms/stream` | Server-Sent Events: `transition` per change (JSON), `lagged` when this client fell behind, keep-alive comments every 15 s |
//! | `POST /api/v1/alarms/{id}/ack\|shelve\|unshelve\|oos\|return\|reset` | operator actions; JSON body `{"comment"}`, shelve `{"duration_s", "reason"}`, oos `{"reason"}` |
//! | `GET /alarms`, `GET /assets/alarms.js` | the alarm console page and its script |
//!
//! Alarm ids contain slashes (`TAG:KIND`), so the action routes match `/api/v1/alarms/{*rest}`
//! and split the action off the end. Answers: unknown id 404, an action the state refuses (a
//! second acknowledge) 409 with the reason, a bad body or argument 400, the journal failing 503.
//! Every action that reached the engine is audited (`alarm_ACTION`, ok or refused) like fault
//! injection. At most [`MAX_ALARM_STREAMS`] streams are open at once per router (the process
//! builds one; 503 with `Retry-After` beyond); each reads a
//! bounded feed, so a slow client loses changes (and is told), never slows the engine.

use std::convert::Infallible;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::StreamExt;
use mw_model::format_rfc3339_ns;
use serde::Deserialize;
use serde_json::{Value as J, json};

use crate::api::error;
use crate::page::esc;
use crate::{
    AlarmAction, AlarmActionError, AlarmApi, AlarmChange, AlarmFeedItem, AlarmPriority,
    AlarmRecordView, AlarmState, AlarmView, AppState,
};

/// Alarm streams open at once; more are refused with 503.
pub const MAX_ALARM_STREAMS: usize = 64;
/// Most records one history request returns.
pub const MAX_HISTORY: usize = 10_000;
/// Longest shelve, in seconds (30 days).
pub const MAX_SHELVE_S: f64 = 30.0 * 86_400.0;
/// Longest comment or reason, in characters.
pub const MAX_COMMENT: usize = 1000;
/// Comment lines on an idle stream, so proxies and our own idle timeout keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

const NO_ALARMS: &str = "no alarms are configured in this process (add [[alarms]] to the config)";

/// The permits of open alarm streams (a router extension).
#[derive(Clone)]
pub(crate) struct AlarmStreams(pub(crate) Arc<tokio::sync::Semaphore>);

impl AlarmStreams {
    pub(crate) fn new() -> AlarmStreams {
        AlarmStreams(Arc::new(tokio::sync::Semaphore::new(MAX_ALARM_STREAMS)))
    }
}

#[allow(clippy::result_large_err)]
fn api(st: &AppState) -> Result<&Arc<dyn AlarmApi>, Response> {
    st.alarms
        .as_ref()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, NO_ALARMS))
}

fn ts_json(ns: Option<i64>) -> J {
    ns.map_or(J::Null, |t| J::from(format_rfc3339_ns(t)))
}

fn num_json(v: Option<f64>) -> J {
    v.filter(|x| x.is_finite()).map_or(J::Null, J::from)
}

pub(crate) fn alarm_json(a: &AlarmView) -> J {
    json!({
        "id": a.id,
        "tag": a.tag,
        "asset": a.asset,
        "area": a.area,
        "kind": a.kind,
        "priority": a.priority.as_str(),
        "state": a.state.as_str(),
        "condition": a.condition,
        "message": a.message,
        "value": num_json(a.value),
        "raised_at": ts_json(a.raised_at_ns),
        "raised_at_ns": a.raised_at_ns,
        "shelved_until": ts_json(a.shelved_until_ns),
    })
}

pub(crate) fn change_json(c: &AlarmChange) -> J {
    json!({
        "seq": c.seq,
        "alarm": c.alarm,
        "ts": format_rfc3339_ns(c.ts_ns),
        "ts_ns": c.ts_ns,
        "from": c.from.as_str(),
        "to": c.to.as_str(),
        "value": num_json(c.value),
        "message": c.message,
        "priority": c.priority.as_str(),
        "tag": c.tag,
        "asset": c.asset,
        "area": c.area,
        "kind": c.kind,
        "action": c.action,
        "user": c.user,
        "comment": c.comment,
    })
}

fn record_json(r: &AlarmRecordView) -> J {
    json!({
        "ts": format_rfc3339_ns(r.ts_ns),
        "ts_ns": r.ts_ns,
        "alarm": r.alarm,
        "area": r.area,
        "priority": r.priority,
        "from": r.from.as_str(),
        "to": r.to.as_str(),
        "value": num_json(r.value),
        "action": r.action,
        "user": r.user,
        "comment": r.comment,
    })
}

// ---- list --------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    priority: Option<String>,
    area: Option<String>,
    state: Option<String>,
}

/// The filters of a list request, checked.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Filter {
    priorities: Vec<AlarmPriority>,
    areas: Vec<String>,
    states: Vec<AlarmState>,
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    all.iter().map(|x| name(*x)).collect::<Vec<_>>().join(", ")
}

fn list_of(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim)
}

/// Whether `area` is `filter` or lies below it (`acme/plant1` holds `acme/plant1/utilities`).
fn in_area(area: &str, filter: &str) -> bool {
    area == filter
        || area
            .strip_prefix(filter)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Checks the filters against the known values; `areas` are those of the configured alarms.
pub(crate) fn parse_filter(q: &ListQuery, areas: &[String]) -> Result<Filter, String> {
    let mut f = Filter::default();
    if let Some(v) = &q.priority {
        for p in list_of(v) {
            f.priorities
                .push(AlarmPriority::from_name(p).ok_or_else(|| {
                    format!(
                        "invalid priority filter {p:?} (expected one of: {})",
                        names(&AlarmPriority::ALL, AlarmPriority::as_str)
                    )
                })?);
        }
    }
    if let Some(v) = &q.state {
        for s in list_of(v) {
            f.states.push(AlarmState::from_name(s).ok_or_else(|| {
                format!(
                    "invalid state filter {s:?} (expected one of: {})",
                    names(&AlarmState::ALL, AlarmState::as_str)
                )
            })?);
        }
    }
    if let Some(v) = &q.area {
        for a in list_of(v) {
            let a = a.trim_matches('/');
            if !areas.iter().any(|known| in_area(known, a)) {
                let mut known: Vec<&str> = areas.iter().map(String::as_str).collect();
                known.sort_unstable();
                known.dedup();
                return Err(format!(
                    "invalid area filter {a:?}: no alarm is in that area (areas: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            f.areas.push(a.to_owned());
        }
    }
    Ok(f)
}

impl Filter {
    fn keeps(&self, a: &AlarmView) -> bool {
        (self.priorities.is_empty() || self.priorities.contains(&a.priority))
            && (self.states.is_empty() || self.states.contains(&a.state))
            && (self.areas.is_empty() || self.areas.iter().any(|f| in_area(&a.area, f)))
    }
}

/// The alarms a list request asks for, most urgent first.
fn listed(api: &dyn AlarmApi, q: &ListQuery) -> Result<Vec<AlarmView>, String> {
    let all = api.all();
    let areas: Vec<String> = all.iter().map(|a| a.area.clone()).collect();
    let f = parse_filter(q, &areas)?;
    let mut out: Vec<AlarmView> = if f.states.is_empty() {
        api.active()
    } else {
        all
    };
    out.retain(|a| f.keeps(a));
    sort(&mut out);
    Ok(out)
}

/// Priority, then oldest raised, then id (what the console shows first).
fn sort(v: &mut [AlarmView]) {
    v.sort_by(|a, b| {
        (a.priority, a.raised_at_ns.unwrap_or(i64::MAX), &a.id).cmp(&(
            b.priority,
            b.raised_at_ns.unwrap_or(i64::MAX),
            &b.id,
        ))
    });
}

/// `GET /api/v1/alarms`.
pub(crate) async fn list(State(st): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let api = match api(&st) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match listed(api.as_ref(), &q) {
        Ok(v) => {
            Json(json!({ "alarms": v.iter().map(alarm_json).collect::<Vec<_>>() })).into_response()
        }
        Err(m) => error(StatusCode::BAD_REQUEST, m),
    }
}

// ---- history and KPIs ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryQuery {
    limit: Option<String>,
    since: Option<String>,
    alarm: Option<String>,
}

/// The `limit` (default 100) and `since` of a history request, checked.
pub(crate) fn history_args(q: &HistoryQuery) -> Result<(usize, Option<i64>), String> {
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_HISTORY).contains(&n) => n,
        Some(_) => {
            return Err(format!(
                "\"limit\" is {:?}: give a whole number from 1 to {MAX_HISTORY}",
                q.limit.as_deref().unwrap_or_default()
            ));
        }
    };
    let since = q
        .since
        .as_deref()
        .map(|v| crate::history::query_time("since", v))
        .transpose()?;
    Ok((limit, since))
}

/// `GET /api/v1/alarms/history`.
pub(crate) async fn history(State(st): State<AppState>, Query(q): Query<HistoryQuery>) -> Response {
    let api = match api(&st) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (limit, since) = match history_args(&q) {
        Ok(a) => a,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let records = api.history(limit, since, q.alarm.as_deref());
    Json(json!({ "records": records.iter().map(record_json).collect::<Vec<_>>() })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KpiQuery {
    window_s: Option<String>,
}

/// The `window_s` of a KPI request (default 3600), checked: 1 s to 30 days.
pub(crate) fn kpi_window(q: &KpiQuery) -> Result<u64, String> {
    match q.window_s.as_deref().map(str::parse::<u64>) {
        None => Ok(3600),
        Some(Ok(n)) if (1..=30 * 86_400).contains(&n) => Ok(n),
        Some(_) => Err(format!(
            "\"window_s\" is {:?}: give whole seconds from 1 to 2592000 (30 days)",
            q.window_s.as_deref().unwrap_or_default()
        )),
    }
}

/// `GET /api/v1/alarms/kpi`.
pub(crate) async fn kpi(State(st): State<AppState>, Query(q): Query<KpiQuery>) -> Response {
    let api = match api(&st) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let window_s = match kpi_window(&q) {
        Ok(w) => w,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let k = api.kpis(window_s as i64 * 1_000_000_000);
    let per_area: serde_json::Map<String, J> = k
        .per_area_per_10min
        .iter()
        .map(|(a, r)| (a.clone(), J::from(*r)))
        .collect();
    let by_area = |v: &[(String, J)]| -> serde_json::Map<String, J> { v.iter().cloned().collect() };
    let peak: Vec<(String, J)> = k
        .peak_per_10min
        .iter()
        .map(|(a, n)| (a.clone(), J::from(*n)))
        .collect();
    let flood: Vec<(String, J)> = k
        .flood_percent
        .iter()
        .map(|(a, p)| (a.clone(), J::from(*p)))
        .collect();
    Json(json!({
        "window_s": window_s,
        "activations_per_10min_by_area": per_area,
        "peak_per_10min_by_area": by_area(&peak),
        "flood_percent_by_area": by_area(&flood),
        "flood_threshold_per_10min": 10,
        "standing": k.standing,
        "stale": k.stale.iter().map(|(a, t)| json!({"alarm": a, "raised_at": ts_json(Some(*t))})).collect::<Vec<_>>(),
        "shelved": k.shelved.iter().map(|(a, t)| json!({"alarm": a, "shelved_until": ts_json(*t)})).collect::<Vec<_>>(),
        "chattering": k.chattering,
        "fleeting": k.fleeting,
        "top10": k.top10.iter().map(|(a, n)| json!({"alarm": a, "activations": n})).collect::<Vec<_>>(),
        "records": k.records,
    }))
    .into_response()
}

// ---- the stream ----------------------------------------------------------------------------

fn sse_event(item: AlarmFeedItem) -> Event {
    match item {
        AlarmFeedItem::Change(c) => Event::default()
            .event("transition")
            .id(c.seq.to_string())
            .data(change_json(&c).to_string()),
        AlarmFeedItem::Lagged(n) => Event::default().event("lagged").data(
            json!({
                "missed": n,
                "hint": "this client fell behind and missed changes; read GET /api/v1/alarms again",
            })
            .to_string(),
        ),
    }
}

/// `GET /api/v1/alarms/stream`: Server-Sent Events. Subscribed before the answer's head is sent,
/// so a client that has the head sees every change after it.
pub(crate) async fn stream(
    State(st): State<AppState>,
    axum::Extension(streams): axum::Extension<AlarmStreams>,
) -> Response {
    let api = match api(&st) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(permit) = streams.0.clone().try_acquire_owned() else {
        metrics::counter!("mw_errors_total", "component" => "http", "instance" => "api",
            "stage" => "sending", "error_type" => "alarm_streams_full")
        .increment(1);
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_ALARM_STREAMS} alarm streams are open already; close one or retry later"),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return r;
    };
    let events = api.subscribe().map(move |item| {
        // the permit is held as long as the stream lives
        let _open = &permit;
        Ok::<Event, Infallible>(sse_event(item))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response()
}

// ---- actions -------------------------------------------------------------------------------

const VERBS: &str = "ack, shelve, unshelve, oos, return, reset";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShelveBody {
    duration_s: f64,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

fn body_of<T: serde::de::DeserializeOwned>(
    body: &[u8],
    verb: &str,
    expected: &str,
) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|e| format!("invalid {verb} request: {e}; expected {expected}"))
}

/// The action and its comment from the route's verb and the JSON body (an empty body is no
/// comment where a comment is optional).
pub(crate) fn parse_action(verb: &str, body: &[u8]) -> Result<(AlarmAction, String), String> {
    let comment = |b: &[u8]| -> Result<String, String> {
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(String::new());
        }
        body_of::<CommentBody>(b, verb, r#"{"comment": TEXT} or an empty body"#).map(|c| c.comment)
    };
    let (action, text) = match verb {
        "ack" => (AlarmAction::Acknowledge, comment(body)?),
        "unshelve" => (AlarmAction::Unshelve, comment(body)?),
        "return" => (AlarmAction::ReturnToService, comment(body)?),
        "reset" => (AlarmAction::ResetLatched, comment(body)?),
        "shelve" => {
            let b: ShelveBody = body_of(body, verb, r#"{"duration_s": SECONDS, "reason": TEXT}"#)?;
            if !(b.duration_s.is_finite() && b.duration_s > 0.0 && b.duration_s <= MAX_SHELVE_S) {
                return Err(format!(
                    "invalid shelve request: \"duration_s\" must be more than 0 and at most {MAX_SHELVE_S} (30 days), got {}",
                    b.duration_s
                ));
            }
            (
                AlarmAction::Shelve(Duration::from_secs_f64(b.duration_s)),
                b.reason,
            )
        }
        "oos" => {
            let b: ReasonBody = body_of(body, verb, r#"{"reason": TEXT}"#)?;
            (AlarmAction::OutOfService, b.reason)
        }
        other => {
            return Err(format!(
                "unknown alarm action {other:?} (expected one of: {VERBS})"
            ));
        }
    };
    if text.chars().count() > MAX_COMMENT {
        return Err(format!(
            "invalid {verb} request: the comment or reason is longer than {MAX_COMMENT} characters"
        ));
    }
    Ok((action, text))
}

pub(crate) fn action_status(e: &AlarmActionError) -> StatusCode {
    match e {
        AlarmActionError::UnknownAlarm(_) => StatusCode::NOT_FOUND,
        AlarmActionError::Refused(_) => StatusCode::CONFLICT,
        AlarmActionError::Invalid(_) => StatusCode::BAD_REQUEST,
        AlarmActionError::Failed(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// `POST /api/v1/alarms/{id}/{verb}`.
pub(crate) async fn act(
    State(st): State<AppState>,
    who: Option<axum::Extension<mw_security::Principal>>,
    Path(rest): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let api = match api(&st) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some((id, verb)) = rest.rsplit_once('/').filter(|(id, _)| !id.is_empty()) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no such route: POST /api/v1/alarms/ALARM_ID/ACTION with ACTION one of {VERBS}"
            ),
        );
    };
    if !VERBS.split(", ").any(|v| v == verb) {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown alarm action {verb:?} (expected one of: {VERBS})"),
        );
    }
    let (action, comment) = match parse_action(verb, &body) {
        Ok(a) => a,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let Some(axum::Extension(p)) = who else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
    let result = api.act(id, action, &p.name, &comment);
    let (outcome, detail) = match &result {
        Ok(c) => (
            "ok",
            format!(
                "from={} to={} comment={:?}",
                c.from.as_str(),
                c.to.as_str(),
                comment
            ),
        ),
        Err(e) => ("refused", format!("reason={e}")),
    };
    st.auth
        .audit(crate::auth::action_event(
            &p,
            &format!("alarm_{}", action.as_str()),
            id,
            outcome,
            detail,
        ))
        .await;
    match result {
        Ok(c) => Json(json!({ "transition": change_json(&c) })).into_response(),
        Err(e) => error(action_status(&e), e.to_string()),
    }
}

// ---- the console ---------------------------------------------------------------------------

/// The console's script, `GET /assets/alarms.js`.
const CONSOLE_SCRIPT: &str = include_str!("../assets/alarms.js");

pub(crate) async fn console_script() -> Response {
    crate::page::asset("text/javascript; charset=utf-8", CONSOLE_SCRIPT)
}

fn value_text(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "unknown".to_owned(), |x| format!("{x:.2}"))
}

/// One console row (the script renders the same markup when the list changes).
fn console_row(h: &mut String, a: &AlarmView) {
    let raised = a
        .raised_at_ns
        .map(format_rfc3339_ns)
        .and_then(|t| t.get(11..19).map(str::to_owned))
        .unwrap_or_default();
    let _ = write!(
        h,
        "<tr class='{pri}' data-id='{id}'><td><span class='pri {pri}'>{pri}</span></td>\
         <td><span class='st {st}'>{st}</span></td><td>{msg}<br><small>{id}</small></td>\
         <td>{asset}</td><td class=v>{value}</td><td class=ts>{raised}</td>\
         <td class=act><input class=comment placeholder='comment / reason' maxlength={MAX_COMMENT}>\
         <button data-act=ack>ack</button>\
         <select class=dur><option value=900>15 min</option><option value=3600 selected>1 h</option>\
         <option value=28800>8 h</option><option value=86400>24 h</option></select>\
         <button data-act=shelve>shelve</button><button data-act=unshelve>unshelve</button>\
         <button data-act=oos>out of service</button><button data-act=return>return</button></td></tr>",
        pri = a.priority.as_str(),
        st = a.state.as_str(),
        id = esc(&a.id),
        msg = esc(&a.message),
        asset = esc(a.asset.rsplit('/').next().unwrap_or(&a.asset)),
        value = esc(&value_text(a.value)),
    );
}

/// `GET /alarms`: the alarm console, server-rendered (readable without JavaScript); the script
/// re-renders the rows from `/api/v1/alarms` on every change the stream announces.
pub(crate) async fn console(
    State(st): State<AppState>,
    csrf: Option<axum::Extension<crate::auth::CsrfToken>>,
) -> Html<String> {
    let mut h = String::with_capacity(8 * 1024);
    let csrf = csrf.map_or(String::new(), |c| esc(&c.0.0));
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>\
         <meta name=csrf-token content='{csrf}'>\
         <title>Alarms — {name}</title><link rel=icon href='data:,'><link rel=stylesheet href='/assets/app.css'></head><body>\
         <header><h1>Alarms — {name}</h1><span><a href='/'>overview</a> · <a href='/api/v1/alarms'>API</a> · \
         <a href='/api/v1/alarms/history'>history</a> · <a href='/api/v1/alarms/kpi'>KPIs</a></span>\
         <span id=status>live</span></header><main class=console>",
        name = esc(&st.site_name),
    );
    match &st.alarms {
        None => {
            let _ = write!(h, "<section><p>{}</p></section>", esc(NO_ALARMS));
        }
        Some(api) => {
            let mut active = api.active();
            sort(&mut active);
            h.push_str(
                "<section><h2>Active alarms <small>most urgent first: priority, then time raised</small></h2>\
                 <table class=alarms><colgroup><col class=a1><col class=a2><col class=a3><col class=a4>\
                 <col class=a5><col class=a6><col class=a7></colgroup>\
                 <thead><tr><th>priority</th><th>state</th><th>alarm</th><th>asset</th><th>value</th>\
                 <th>raised</th><th>action</th></tr></thead><tbody id=alarmrows>",
            );
            if active.is_empty() {
                h.push_str("<tr><td colspan=7>no active alarms</td></tr>");
            }
            for a in &active {
                console_row(&mut h, a);
            }
            h.push_str("</tbody></table></section>");
        }
    }
    h.push_str("</main><script src='/assets/alarms.js'></script></body></html>");
    Html(h)
}

/// Whether an alarm in `state` colours its asset: annunciated ones (active, or returned but not
/// yet acknowledged); shelved, suppressed and out-of-service alarms are set aside on purpose.
fn colours(state: AlarmState) -> bool {
    matches!(
        state,
        AlarmState::UnackActive | AlarmState::AckActive | AlarmState::RtnUnack
    )
}

/// The alarm part of one asset's overview status.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct AssetAlarms {
    /// The most urgent priority of its annunciated alarms and whether any of them waits for an
    /// acknowledgement.
    pub top: Option<(AlarmPriority, bool)>,
    /// How many of its alarms are shelved (set aside by an operator: shown, not hidden).
    pub shelved: usize,
}

/// Per asset (full path) its [`AssetAlarms`]. Assets with neither are absent.
pub(crate) fn asset_alarms(st: &AppState) -> std::collections::HashMap<String, AssetAlarms> {
    let mut out: std::collections::HashMap<String, AssetAlarms> = std::collections::HashMap::new();
    let Some(api) = &st.alarms else {
        return out;
    };
    for a in api.active() {
        if a.state == AlarmState::Shelved {
            out.entry(a.asset.clone()).or_default().shelved += 1;
            continue;
        }
        if !colours(a.state) {
            continue;
        }
        let e = out.entry(a.asset.clone()).or_default();
        let t = e.top.get_or_insert((a.priority, false));
        t.0 = t.0.min(a.priority);
        t.1 |= a.state.is_unacknowledged();
    }
    out
}

/// Whether an input's latest sample leaves its value unknown: bad quality, or no value yet. An
/// `uncertain` one (an analytics output warming up) is a value, held the way the alarm engine
/// holds it, and raises nothing.
pub(crate) fn input_unknown(latest: Option<&mw_model::Sample>) -> bool {
    latest.is_none_or(|s| matches!(s.quality, mw_model::Quality::Bad(_)))
}

/// The overview's status of one asset, as the class suffix of its section and the text of its
/// badge: the alarm part from [`asset_alarms`] (the most urgent annunciated alarm, then
/// ` shelved` while any of its alarms is shelved), then ` unknown` when `unknown` of its inputs are
/// [`input_unknown`] (a failed input must never read as normal, even while its quality alarm is
/// shelved or the tag has none), and ` ok` only when neither applies. (`assets/app.js` builds
/// the same from `/api/v1/alarms` on every stream change and from the rows' quality on every
/// refresh.)
pub(crate) fn asset_status(alarms: AssetAlarms, unknown: usize) -> (String, String) {
    let mut class = String::new();
    let mut label = Vec::new();
    if let Some((p, unack)) = alarms.top {
        class = format!(" {}{}", p.as_str(), if unack { " unack" } else { "" });
        label.push(format!(
            "{} alarm{}",
            p.as_str(),
            if unack { ", unacknowledged" } else { "" }
        ));
    }
    if alarms.shelved > 0 {
        class.push_str(" shelved");
        label.push(format!(
            "{} alarm{} shelved",
            alarms.shelved,
            if alarms.shelved == 1 { "" } else { "s" }
        ));
    }
    if unknown > 0 {
        class.push_str(" unknown");
        label.push(format!(
            "{unknown} input{} bad or without a value",
            if unknown == 1 { "" } else { "s" }
        ));
    }
    if class.is_empty() {
        class.push_str(" ok");
    }
    (class, label.join(" · "))
}

/// The overview's banner of unacknowledged critical alarms (kept up to date by the page script
/// from the stream); empty when the process has no alarms.
pub(crate) fn banner(st: &AppState) -> String {
    let Some(api) = &st.alarms else {
        return String::new();
    };
    let critical: Vec<AlarmView> = api
        .active()
        .into_iter()
        .filter(|a| a.priority == AlarmPriority::Critical && a.state.is_unacknowledged())
        .collect();
    let text = match critical.as_slice() {
        [] => String::new(),
        [one] => format!("1 unacknowledged critical alarm: {}", one.message),
        [first, ..] => format!(
            "{} unacknowledged critical alarms, first: {}",
            critical.len(),
            first.message
        ),
    };
    format!(
        "<a id=alarmbanner href='/alarms' class='banner{}'>{}</a>",
        if critical.is_empty() { " hidden" } else { "" },
        esc(&text)
    )
}
