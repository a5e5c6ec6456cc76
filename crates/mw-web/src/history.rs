//! The history routes: `GET /api/v1/query` (raw points or aggregates of one tag or of every tag a
//! glob matches), `GET /api/v1/latest`, and the line-protocol writes `POST /api/v1/write`,
//! `POST /write` (InfluxDB 1.x) and `POST /api/v2/write` (InfluxDB 2.x), so Telegraf and the
//! Influx client libraries write to Millwright unchanged.
//!
//! A write is parsed whole before anything is sent (a malformed batch is refused with 400
//! naming its line and column), handed to [`Ingest`](crate::Ingest) and answered 204 only once
//! every durable sink committed it.

use std::io::Read;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mw_model::{Sample, TagPath, TagPattern, format_rfc3339_ns};
use serde::Deserialize;
use serde_json::{Value as J, json};

use crate::api::{error, value_json};
use crate::{Aggregate, AppState, IngestError, QueryError};

/// Most points one `/api/v1/query` answers in all (more: `"truncated": true`).
pub(crate) const MAX_QUERY_POINTS: usize = 100_000;
/// Most tags one glob query or `/api/v1/latest` answers.
pub(crate) const MAX_QUERY_TAGS: usize = 10_000;
/// Largest write body, after decompression (413 beyond).
pub const WRITE_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Writes whose bodies are read and parsed at once; more wait (bounds the memory bodies take).
pub(crate) const MAX_WRITES_IN_FLIGHT: usize = 4;

/// The semaphore of [`MAX_WRITES_IN_FLIGHT`], shared by the write routes.
#[derive(Clone)]
pub(crate) struct WritePermits(pub std::sync::Arc<tokio::sync::Semaphore>);

/// The write routes (their bodies are line protocol, not JSON).
pub(crate) const WRITE_PATHS: [&str; 3] = ["/api/v1/write", "/write", "/api/v2/write"];

#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    pub(crate) tag: Option<String>,
    from: Option<String>,
    to: Option<String>,
    agg: Option<String>,
    step: Option<String>,
}

/// A query time: ns since the epoch, or RFC 3339.
pub(crate) fn query_time(key: &str, v: &str) -> Result<i64, String> {
    if let Ok(ns) = v.parse::<i64>() {
        return Ok(ns);
    }
    mw_model::parse_rfc3339_ns(v).ok_or_else(|| {
        format!("\"{key}\" is {v:?}: give RFC 3339 (2026-12-03T10:00:00Z) or ns since the epoch")
    })
}

/// A step: `500ms`, `10s`, `5m`, `1h`, `1d`, or ns.
pub(crate) fn parse_step(v: &str) -> Result<i64, String> {
    let bad = || format!("\"step\" is {v:?}: give e.g. 10s, 5m, 1h, 1d, 500ms or ns");
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let scale: i64 = match unit {
        "" | "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return Err(bad()),
    };
    match n.checked_mul(scale) {
        Some(s) if s > 0 => Ok(s),
        _ => Err(bad()),
    }
}

fn agg_names() -> String {
    Aggregate::ALL
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a query asks for, checked: `from < to`; an aggregate's step is positive and cuts the
/// range into at most [`MAX_QUERY_POINTS`] buckets.
pub(crate) struct Asked {
    pub(crate) from: i64,
    pub(crate) to: i64,
    pub(crate) agg: Option<(Aggregate, i64)>,
}

pub(crate) fn check_query(q: &HistoryQuery) -> Result<Asked, String> {
    let to = match q.to.as_deref() {
        Some(v) => query_time("to", v)?,
        None => mw_model::now_ns(),
    };
    let from = match q.from.as_deref() {
        Some(v) => query_time("from", v)?,
        None => to.saturating_sub(3_600_000_000_000),
    };
    if from >= to {
        return Err(format!(
            "\"from\" ({}) must be before \"to\" ({})",
            format_rfc3339_ns(from),
            format_rfc3339_ns(to)
        ));
    }
    let agg = match (q.agg.as_deref(), q.step.as_deref()) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(format!("\"step\" needs \"agg\" ({})", agg_names()));
        }
        (Some(a), step) => {
            let agg = Aggregate::from_name(a)
                .ok_or_else(|| format!("\"agg\" is {a:?}: one of {}", agg_names()))?;
            let step = match step {
                Some(s) => parse_step(s)?,
                None => to.saturating_sub(from).max(1),
            };
            // in i128: `to - from` may exceed i64::MAX, and a saturated span would undercount
            let buckets = (i128::from(to) - i128::from(from)) / i128::from(step) + 1;
            if buckets > MAX_QUERY_POINTS as i128 {
                return Err(format!(
                    "{buckets} buckets of \"step\" in the range; at most {MAX_QUERY_POINTS}: ask a larger step or a shorter range"
                ));
            }
            Some((agg, step))
        }
    };
    Ok(Asked { from, to, agg })
}

/// The points of one tag, and whether `budget` cut them short.
fn series(
    st: &AppState,
    tag: &TagPath,
    asked: &Asked,
    budget: usize,
) -> Result<(Vec<J>, bool), QueryError> {
    match asked.agg {
        None => {
            let s = st.tags.range(tag, asked.from, asked.to, budget + 1)?;
            let truncated = s.len() > budget;
            let points = s
                .iter()
                .take(budget)
                .map(|s| {
                    json!([
                        format_rfc3339_ns(s.source_ts),
                        value_json(&s.value),
                        s.quality.status()
                    ])
                })
                .collect();
            Ok((points, truncated))
        }
        Some((agg, step)) => {
            let b = st.tags.aggregate(tag, asked.from, asked.to, step, agg)?;
            let truncated = b.len() > budget;
            let points = b
                .iter()
                .take(budget)
                .map(|p| {
                    let v = if p.value.is_finite() {
                        json!(p.value)
                    } else {
                        J::Null
                    };
                    json!([format_rfc3339_ns(p.start_ns), v, "good", p.count])
                })
                .collect();
            Ok((points, truncated))
        }
    }
}

fn query_error(e: QueryError) -> Response {
    match e {
        e @ QueryError::Unsupported { .. } => error(StatusCode::NOT_IMPLEMENTED, e.to_string()),
        e @ (QueryError::InvalidRange { .. } | QueryError::InvalidStep { .. }) => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        e @ QueryError::UnknownTag(_) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

/// The tags a glob matches, sorted; an error names the pattern.
fn matching(st: &AppState, pattern: &str) -> Result<Vec<TagPath>, Box<Response>> {
    let pat =
        TagPattern::new(pattern).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let mut tags: Vec<TagPath> = st
        .tags
        .paths()
        .into_iter()
        .filter(|t| pat.matches(t))
        .collect();
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_QUERY_TAGS {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!(
                "{pattern:?} matches {} tags; at most {MAX_QUERY_TAGS} per query: narrow the pattern",
                tags.len()
            ),
        )));
    }
    Ok(tags)
}

/// `GET /api/v1/query?tag=PATH|GLOB&from=T&to=T[&agg=…&step=…]`: stored history.
pub(crate) async fn query(State(st): State<AppState>, Query(q): Query<HistoryQuery>) -> Response {
    let Some(tag) = q.tag.as_deref() else {
        return error(
            StatusCode::BAD_REQUEST,
            "\"tag\" is required: ?tag=PATH (or a glob such as plant/*/temperature)&from=T&to=T",
        );
    };
    let asked = match check_query(&q) {
        Ok(a) => a,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let started = std::time::Instant::now();
    let answer = if TagPattern::is_glob(tag) {
        let tags = match matching(&st, tag) {
            Ok(t) => t,
            Err(r) => return *r,
        };
        let mut budget = MAX_QUERY_POINTS;
        let mut truncated = false;
        let mut out = Vec::with_capacity(tags.len());
        for t in &tags {
            if budget == 0 {
                truncated = true;
                break;
            }
            let (points, cut) = match series(&st, t, &asked, budget) {
                Ok(x) => x,
                Err(e) => return query_error(e),
            };
            truncated |= cut;
            budget -= points.len();
            let unit = st.tree.tag(t).and_then(|d| d.unit.clone());
            out.push(json!({ "tag": t.as_str(), "unit": unit, "points": points }));
        }
        let mut body = json!({ "pattern": tag, "series": out });
        if truncated {
            body["truncated"] = J::Bool(true);
        }
        body
    } else {
        let tag = match TagPath::new(tag) {
            Ok(t) => t,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid tag path {tag:?}: {e}"),
                );
            }
        };
        let (points, truncated) = match series(&st, &tag, &asked, MAX_QUERY_POINTS) {
            Ok(x) => x,
            Err(e) => return query_error(e),
        };
        let unit = st.tree.tag(&tag).and_then(|d| d.unit.clone());
        let mut body = json!({ "tag": tag.as_str(), "unit": unit, "points": points });
        if truncated {
            body["truncated"] = J::Bool(true);
        }
        body
    };
    metrics::histogram!("mw_http_query_seconds").record(started.elapsed().as_secs_f64());
    Json(answer).into_response()
}

#[derive(Deserialize)]
pub(crate) struct LatestQuery {
    pub(crate) tag: Option<String>,
}

/// `GET /api/v1/latest[?tag=GLOB]`: the latest sample of every tag (or of those a glob matches).
pub(crate) async fn latest(State(st): State<AppState>, Query(q): Query<LatestQuery>) -> Response {
    let samples: Vec<Sample> = match q.tag.as_deref() {
        None => st.tags.latest_all(),
        Some(p) if TagPattern::is_glob(p) => match matching(&st, p) {
            Ok(tags) => tags.iter().filter_map(|t| st.tags.latest(t)).collect(),
            Err(r) => return *r,
        },
        Some(p) => match TagPath::new(p) {
            Ok(t) => st.tags.latest(&t).into_iter().collect(),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid tag path {p:?}: {e}"),
                );
            }
        },
    };
    let truncated = samples.len() > MAX_QUERY_TAGS;
    let points: Vec<J> = samples
        .iter()
        .take(MAX_QUERY_TAGS)
        .map(|s| {
            let mut m = serde_json::Map::new();
            m.insert("tag".into(), J::from(s.tag.as_str()));
            m.insert(
                "unit".into(),
                st.tree
                    .tag(&s.tag)
                    .and_then(|d| d.unit.clone())
                    .map_or(J::Null, J::from),
            );
            m.insert("ts".into(), J::from(format_rfc3339_ns(s.source_ts)));
            m.insert("value".into(), value_json(&s.value));
            m.insert("quality".into(), J::from(s.quality.status()));
            if let Some(r) = s.quality.reason() {
                m.insert("reason".into(), J::from(r));
            }
            J::Object(m)
        })
        .collect();
    let mut body = json!({ "points": points });
    if truncated {
        body["truncated"] = J::Bool(true);
    }
    Json(body).into_response()
}

// ---- writes -----------------------------------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct WriteQuery {
    pub(crate) precision: Option<String>,
}

/// An error as InfluxDB clients read it (`code`, `message`) and as our other routes answer it
/// (`error`).
fn write_error(status: StatusCode, msg: impl Into<String>) -> Response {
    let msg = msg.into();
    let code = match status {
        StatusCode::BAD_REQUEST => "invalid",
        StatusCode::PAYLOAD_TOO_LARGE => "request too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported media type",
        StatusCode::NOT_IMPLEMENTED => "not implemented",
        _ => "unavailable",
    };
    (
        status,
        Json(json!({ "error": msg, "code": code, "message": msg })),
    )
        .into_response()
}

/// The body, decompressed if it says `Content-Encoding: gzip`, at most [`WRITE_BODY_LIMIT`].
fn decode_body(headers: &HeaderMap, body: Bytes) -> Result<Vec<u8>, Box<Response>> {
    let too_large = || {
        Box::new(write_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "write body larger than {WRITE_BODY_LIMIT} bytes (after decompression): send smaller batches"
            ),
        ))
    };
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") => Ok(body.to_vec()),
        Some("gzip") => {
            let mut out = Vec::new();
            let mut dec = flate2::read::GzDecoder::new(&body[..]).take(WRITE_BODY_LIMIT as u64 + 1);
            dec.read_to_end(&mut out).map_err(|e| {
                Box::new(write_error(
                    StatusCode::BAD_REQUEST,
                    format!("the gzip body cannot be decompressed: {e}"),
                ))
            })?;
            if out.len() > WRITE_BODY_LIMIT {
                return Err(too_large());
            }
            Ok(out)
        }
        Some(other) => Err(Box::new(write_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {other:?} is not supported: send identity or gzip"),
        ))),
    }
}

/// Samples parsed from a write body, with each one's (line, column) for later refusals.
pub(crate) type Parsed = (Vec<Sample>, Vec<(usize, usize)>);

/// Parses a write body into samples, with each sample's (line, column) for later refusals.
pub(crate) fn parse_write(
    body: &[u8],
    precision: Option<&str>,
    now_ns: i64,
) -> Result<Parsed, String> {
    let precision = match precision {
        None | Some("") => mw_lineproto::Precision::Nanoseconds,
        Some(p) => mw_lineproto::Precision::from_query(p).map_err(|e| e.to_string())?,
    };
    let text = std::str::from_utf8(body).map_err(|e| {
        let upto = &body[..e.valid_up_to()];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = upto.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        format!("line {line}, column {col}: the body is not UTF-8")
    })?;
    let points = mw_lineproto::parse(text, precision, now_ns).map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(points.iter().map(|p| p.fields.len()).sum());
    let mut at = Vec::with_capacity(samples.capacity());
    for p in &points {
        let before = samples.len();
        mw_lineproto::point_samples(p, now_ns, &mut samples).map_err(|e| e.to_string())?;
        // one sample per field, in field order
        let made = samples.len() - before;
        at.extend((0..made).map(|i| (p.line, p.fields.get(i).map_or(p.column, |f| f.column))));
    }
    Ok((samples, at))
}

/// `POST /api/v1/write`, `POST /write`, `POST /api/v2/write`: line protocol into the pipeline.
pub(crate) async fn write(
    State(st): State<AppState>,
    axum::Extension(permits): axum::Extension<WritePermits>,
    Query(q): Query<WriteQuery>,
    req: Request,
) -> Response {
    let Some(ingest) = st.ingest.clone() else {
        return write_error(
            StatusCode::NOT_IMPLEMENTED,
            "writes need the historian: add a [historian] section to the config",
        );
    };
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let m = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        if m.eq_ignore_ascii_case("application/x-www-form-urlencoded")
            || m.eq_ignore_ascii_case("multipart/form-data")
        {
            return write_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("a write body is line protocol (Content-Type: text/plain), not {m}"),
            );
        }
    }
    // bound the memory of bodies being read and parsed; a client beyond the bound waits
    let Ok(_permit) = permits.0.acquire().await else {
        return write_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, WRITE_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return write_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("write body larger than {WRITE_BODY_LIMIT} bytes: send smaller batches"),
            );
        }
    };
    let body = match decode_body(&parts.headers, body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let now = mw_model::now_ns();
    let (samples, at) = match parse_write(&body, q.precision.as_deref(), now) {
        Ok(x) => x,
        Err(m) => {
            metrics::counter!("mw_http_write_rejected_total", "reason" => "parse").increment(1);
            return write_error(StatusCode::BAD_REQUEST, m);
        }
    };
    drop(body);
    if samples.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let n = samples.len();
    match ingest.write(samples).await {
        Ok(r) => {
            metrics::counter!("mw_http_write_samples_total").increment(r.samples as u64);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(IngestError::Rejected { index, message }) => {
            metrics::counter!("mw_http_write_rejected_total", "reason" => "refused").increment(1);
            let (line, column) = at.get(index).copied().unwrap_or((0, 0));
            write_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "line {line}, column {column}: {message}; nothing of the batch was written"
                ),
            )
        }
        Err(e @ (IngestError::NotDurable(_) | IngestError::Closed)) => {
            metrics::counter!("mw_http_write_rejected_total", "reason" => "not_durable")
                .increment(1);
            tracing::warn!(samples = n, error = %e, "HTTP write not stored");
            let mut r = write_error(StatusCode::SERVICE_UNAVAILABLE, format!("{e}; retry"));
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
    }
}
