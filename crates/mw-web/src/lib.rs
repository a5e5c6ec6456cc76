//! HTTP API and web UI (axum).
//!
//! This is the only crate that knows HTTP and the JSON shapes of the API; domain crates expose
//! plain Rust types and this layer converts them. It reads and controls the rest of the process
//! only through the traits it defines ([`TagStore`], [`FaultControl`], [`DetectorControl`],
//! [`AlarmApi`]),
//! which the binary implements. Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | liveness: 200 while the process serves HTTP |
//! | `GET /ready` | 200 once every source has completed a poll cycle, else 503 with what it waits for |
//! | `GET /api/v1/tags[?history=N]` | every configured tag with its latest value, quality, unit, timestamp |
//! | `GET /api/v1/tags/{path}/recent[?limit=N]` | the tag's recent window (oldest first) |
//! | `GET /api/v1/query?tag=PATH[&from=T&to=T&agg=A&step=S]` | stored history of a tag: raw points `[ts, value, quality]`, or per step `[start, value, "good", count]` with `agg` = min, max, avg, sum, count, first, last, twa; T = RFC 3339 or ns (default: the last hour); a glob (`plant/*/flow`, `line1/**`) answers `{"series": [...]}`; 501 without a historian |
//! | `GET /api/v1/latest[?tag=PATH\|GLOB]` | the latest sample of every tag with data (live, else stored) |
//! | `POST /api/v1/write[?precision=P]`, `POST /write[?precision=P]` (InfluxDB 1.x), `POST /api/v2/write[?precision=P]` (InfluxDB 2.x) | line protocol (`text/plain`, optionally gzip), one tag per field `measurement/<tag values by key>/field`; 204 once durable, 400 naming line and column; 501 without a historian |
//! | `GET /api/v1/assets` | the asset tree with each asset's tags |
//! | `GET /api/v1/sources` | status of each source (device) |
//! | `POST /api/v1/sim/faults`, `GET /api/v1/sim/faults` | inject / list simulator faults (demo only) |
//! | `GET /api/v1/detectors`, `POST /api/v1/detectors/relearn` | list the live detectors / ask an asset's to learn again |
//! | `GET /api/v1/alarms[?priority=&area=&state=]`, `GET /api/v1/alarms/history`, `GET /api/v1/alarms/kpi`, `GET /api/v1/alarms/stream` (SSE), `POST /api/v1/alarms/{id}/ack\|shelve\|unshelve\|oos\|return\|reset` | alarms over [`AlarmApi`] (see the `alarms` module) |
//! | `GET /alarms`, `GET /assets/alarms.js` | the alarm console and its script |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /` | server-rendered overview of assets and live values, auto-updating |
//! | `GET /assets/app.js`, `GET /assets/app.css` | the page's script and style sheet (embedded) |
//!
//! Serving ([`serve_with`], [`ServeOptions`]): our own accept loop with connection caps, header
//! and idle timeouts, `Host`/`Origin` checks and optional (mutual) TLS — see the `serve` module.
//! Every route: JSON bodies only (`Content-Type: application/json`, 415 otherwise), explicit body
//! limits (413), JSON error bodies, `nosniff` and, on HTML, a strict CSP — see `hardening`.

mod alarms;
mod api;
pub mod auth;
mod hardening;
mod history;
mod page;
mod seams;
mod serve;
mod writes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use mw_bus::SourceRegistry;
use mw_model::AssetTree;

pub use alarms::{MAX_ALARM_STREAMS, MAX_COMMENT, MAX_SHELVE_S};
pub use auth::{Access, Auth, access};
pub use hardening::{CONTENT_SECURITY_POLICY, CONTROL_BODY_LIMIT};
pub use history::WRITE_BODY_LIMIT;
pub use seams::{
    Aggregate, AggregatePoint, AlarmAction, AlarmActionError, AlarmApi, AlarmChange, AlarmFeed,
    AlarmFeedItem, AlarmKpis, AlarmPriority, AlarmRecordView, AlarmState, AlarmView, AuditLog,
    DetectorControl, DetectorInfo, DetectorState, FaultControl, FaultInfo, FaultSpec, Ingest,
    IngestError, IngestFuture, IngestReceipt, QueryError, TagStore,
};
pub use serve::{ClientCert, ServeOptions, TlsConfigError, serve_with, server_tls_config};

/// Renders the Prometheus exposition text (provided by the binary's metrics recorder).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the HTTP layer reads. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub site_name: Arc<str>,
    /// Latest values and recent windows of the tags.
    pub tags: Arc<dyn TagStore>,
    pub tree: Arc<AssetTree>,
    pub sources: SourceRegistry,
    pub metrics: MetricsRender,
    /// The in-process simulator's faults, when running `millwright demo`.
    pub faults: Option<Arc<dyn FaultControl>>,
    /// The live anomaly detectors, when any are configured.
    pub detectors: Option<Arc<dyn DetectorControl>>,
    /// The alarm engine, when alarms are configured (else the alarm routes answer 404).
    pub alarms: Option<Arc<dyn AlarmApi>>,
    /// Where line-protocol writes go, when the process stores history (else the write routes
    /// answer 501).
    pub ingest: Option<Arc<dyn Ingest>>,
    /// Where tag writes go (`POST /api/v1/tags/{path}/write`), when the process has a write
    /// registry (else that route answers 501).
    pub writes: Option<mw_bus::WriteRegistry>,
    /// Who may do what (see [`auth`]).
    pub auth: Arc<Auth>,
    /// The audit trail (admins read it), when the process keeps one.
    pub audit: Option<Arc<dyn AuditLog>>,
    /// Things an operator must know about how this process is exposed (an insecure listener),
    /// shown on `/health`.
    pub warnings: Vec<String>,
}

impl AppState {
    /// The state with what every process has — its site's name, its tags, who may do what —
    /// and every optional capability off: no asset tree, no sources, an empty `/metrics`,
    /// and the routes of faults, detectors, alarms, writes, ingest and the audit trail
    /// answering as documented when their capability is absent. A capability is added with
    /// its `with_*` setter, so adding one is a change here and at the one place that has it.
    pub fn new(site_name: impl Into<Arc<str>>, tags: Arc<dyn TagStore>, auth: Arc<Auth>) -> Self {
        Self {
            site_name: site_name.into(),
            tags,
            tree: Arc::new(AssetTree::default()),
            sources: SourceRegistry::new(),
            metrics: Arc::new(String::new),
            faults: None,
            detectors: None,
            alarms: None,
            ingest: None,
            writes: None,
            auth,
            audit: None,
            warnings: Vec::new(),
        }
    }

    pub fn with_tree(mut self, tree: Arc<AssetTree>) -> Self {
        self.tree = tree;
        self
    }

    pub fn with_sources(mut self, sources: SourceRegistry) -> Self {
        self.sources = sources;
        self
    }

    pub fn with_metrics(mut self, metrics: MetricsRender) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn with_faults(mut self, faults: Option<Arc<dyn FaultControl>>) -> Self {
        self.faults = faults;
        self
    }

    pub fn with_detectors(mut self, detectors: Option<Arc<dyn DetectorControl>>) -> Self {
        self.detectors = detectors;
        self
    }

    pub fn with_alarms(mut self, alarms: Option<Arc<dyn AlarmApi>>) -> Self {
        self.alarms = alarms;
        self
    }

    pub fn with_ingest(mut self, ingest: Option<Arc<dyn Ingest>>) -> Self {
        self.ingest = ingest;
        self
    }

    pub fn with_writes(mut self, writes: Option<mw_bus::WriteRegistry>) -> Self {
        self.writes = writes;
        self
    }

    pub fn with_audit(mut self, audit: Option<Arc<dyn AuditLog>>) -> Self {
        self.audit = audit;
        self
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }
}

/// Requests handled at once; beyond this, requests are refused with 503 (load shedding) and
/// counted in `mw_errors_total{component="http",error_type="overloaded"}` rather than queued.
pub const MAX_IN_FLIGHT: usize = 256;
/// A request that takes longer than this is answered 504.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn overloaded(err: tower::BoxError) -> axum::response::Response {
    use axum::response::IntoResponse;
    if err.is::<tower::timeout::error::Elapsed>() {
        metrics::counter!("mw_errors_total", "component" => "http", "instance" => "api", "stage" => "processing",
            "error_type" => "timeout")
        .increment(1);
        return api::error(axum::http::StatusCode::GATEWAY_TIMEOUT, "request timed out");
    }
    metrics::counter!("mw_errors_total", "component" => "http", "instance" => "api", "stage" => "receiving",
        "error_type" => "overloaded")
    .increment(1);
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        axum::Json(serde_json::json!({ "error": "overloaded: too many requests in flight, retry shortly" })),
    )
        .into_response()
}

/// Puts a router behind one process-wide in-flight limit (excess requests are shed with 503, not
/// queued) and a request timeout (504).
fn guard<S: Clone + Send + Sync + 'static>(router: Router<S>, max_in_flight: usize) -> Router<S> {
    router.layer(
        tower::ServiceBuilder::new()
            .layer(axum::error_handling::HandleErrorLayer::new(overloaded))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                max_in_flight,
            ))
            .timeout(REQUEST_TIMEOUT),
    )
}

/// Builds the router with every route, behind a bounded in-flight limit and a request timeout,
/// with the request and response rules of `hardening` around everything.
///
/// Layers, outermost first: security headers → JSON errors → in-flight limit and timeout →
/// (an authentication layer belongs here, so that refused requests are still shed, timed and
/// answered in JSON) → `Content-Type` check → routes with their body limits.
pub fn router(state: AppState) -> Router {
    let control = DefaultBodyLimit::max(CONTROL_BODY_LIMIT);
    // the write handler reads its body itself, bounded by WRITE_BODY_LIMIT
    let write_limit = DefaultBodyLimit::disable();
    let write_permits = axum::Extension(history::WritePermits(Arc::new(
        tokio::sync::Semaphore::new(history::MAX_WRITES_IN_FLIGHT),
    )));
    let routes = Router::new()
        .route("/", get(page::index))
        .route("/assets/app.js", get(page::script))
        .route("/assets/app.css", get(page::style))
        .route("/assets/login.js", get(page::login_script))
        .route("/login", get(auth::login_page))
        .route("/api/v1/login", post(auth::login).layer(control))
        .route("/api/v1/logout", post(auth::logout).layer(control))
        .route("/api/v1/whoami", get(auth::whoami))
        .route("/api/v1/audit", get(api::audit))
        .route("/health", get(api::health))
        .route("/ready", get(api::ready))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/tags", get(api::tags))
        .route("/api/v1/query", get(history::query))
        .route("/api/v1/latest", get(history::latest))
        .route("/api/v1/write", post(history::write).layer(write_limit))
        .route("/write", post(history::write).layer(write_limit))
        .route("/api/v2/write", post(history::write).layer(write_limit))
        .layer(write_permits)
        .route(
            "/api/v1/tags/{*rest}",
            get(api::tag_sub).post(api::tag_post).layer(control),
        )
        .route("/api/v1/assets", get(api::assets))
        .route("/api/v1/sources", get(api::sources))
        .route(
            "/api/v1/sim/faults",
            post(api::inject_fault).layer(control).get(api::list_faults),
        )
        .route("/api/v1/detectors", get(api::list_detectors))
        .route(
            "/api/v1/detectors/relearn",
            post(api::relearn_detector).layer(control),
        )
        .route("/alarms", get(alarms::console))
        .route("/assets/alarms.js", get(alarms::console_script))
        .route("/api/v1/alarms", get(alarms::list))
        .route("/api/v1/alarms/history", get(alarms::history))
        .route("/api/v1/alarms/kpi", get(alarms::kpi))
        .route("/api/v1/alarms/stream", get(alarms::stream))
        .route("/api/v1/alarms/{*rest}", post(alarms::act).layer(control))
        .layer(axum::Extension(alarms::AlarmStreams::new()))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(hardening::require_json))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ));
    guard(routes, MAX_IN_FLIGHT)
        .layer(axum::middleware::from_fn(hardening::json_errors))
        .layer(axum::middleware::from_fn(hardening::security_headers))
        .with_state(state)
}

/// Serves [`router`]`(state)` with the default [`ServeOptions`] until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router(state), ServeOptions::default(), shutdown).await
}

#[cfg(test)]
mod tests;

/// The parsers of untrusted request input, on raw bytes, for the fuzz target
/// `fuzz/fuzz_targets/http_input.rs` (not an API for anything else).
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::{HeaderMap, HeaderValue, header};

    /// Every JSON request body the API reads (login, fault injection, detector re-learn, tag
    /// write), parsed from `body`: whether each accepted it.
    pub fn json_bodies(body: &[u8]) -> [bool; 4] {
        [
            crate::auth::parse_login_body(body).is_ok(),
            crate::api::parse_fault_body(body).is_ok(),
            crate::api::parse_relearn_body(body).is_ok(),
            crate::writes::parse_write_body(body).is_ok(),
        ]
    }

    /// A line-protocol write body, as the write routes parse it: the number of samples, or the
    /// message of the 400. Every sample has a (line, column) to name in a refusal.
    pub fn write_body(body: &[u8]) -> Result<usize, String> {
        let (samples, at) = crate::history::parse_write(body, None, 0)?;
        assert_eq!(samples.len(), at.len(), "a sample without its position");
        Ok(samples.len())
    }

    /// The API token an `Authorization` header value presents (`Bearer`, `Token`, `Basic`).
    pub fn authorization(value: &[u8]) -> Option<String> {
        crate::auth::presented_token(std::str::from_utf8(value).ok()?)
    }

    /// The session cookie's value from `Cookie` headers (one per line of `headers`; lines that
    /// are not valid header values are dropped, as hyper would refuse them).
    pub fn session_cookie(headers: &[u8]) -> Option<String> {
        let mut h = HeaderMap::new();
        for line in headers.split(|&b| b == b'\n') {
            if let Ok(v) = HeaderValue::from_bytes(line) {
                h.append(header::COOKIE, v);
            }
        }
        crate::auth::cookie(&h, crate::auth::SESSION_COOKIE)
    }

    /// The areas [`query_strings`] checks `/api/v1/alarms?area=` against (a handler takes them
    /// from the configured alarms).
    pub const ALARM_AREAS: [&str; 2] = ["acme/plant1/utilities", "acme/plant1/utilities/water"];

    /// Every query string an API route reads, parsed from `query` (the request target's part
    /// after `?`) as the route's handler parses it: axum's `Query` extractor into the route's
    /// query type, then the handler's own checks. `None` when `/?QUERY` is no valid request target
    /// (hyper refuses that request line before any route). Otherwise, per route, `Ok` or the
    /// message of its 400. Panics when an accepted value is outside what the handler relies on.
    pub fn query_strings(query: &[u8]) -> Option<Vec<(&'static str, Result<(), String>)>> {
        use axum::extract::Query;
        let mut target = b"/?".to_vec();
        target.extend_from_slice(query);
        let uri = axum::http::Uri::try_from(target).ok()?;
        fn extract<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, String> {
            Query::<T>::try_from_uri(uri)
                .map(|q| q.0)
                .map_err(|e| e.body_text())
        }
        // `?tag=` of /api/v1/query and /api/v1/latest: a glob, or else one tag path.
        fn tag_selector(t: &str) -> Result<(), String> {
            if mw_model::TagPattern::is_glob(t) {
                mw_model::TagPattern::new(t)
                    .map(drop)
                    .map_err(|e| e.to_string())
            } else {
                mw_model::TagPath::new(t)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
        let history = extract::<crate::history::HistoryQuery>(&uri).and_then(|q| {
            if let Some(t) = q.tag.as_deref() {
                tag_selector(t)?;
            }
            let a = crate::history::check_query(&q)?;
            assert!(a.from < a.to, "accepted a query range that is empty");
            if let Some((_, step)) = a.agg {
                assert!(step > 0, "accepted a step of {step} ns");
                // exact, in i128: `to - from` may not fit in an i64
                let buckets = (i128::from(a.to) - i128::from(a.from)) / i128::from(step) + 1;
                assert!(
                    buckets <= crate::history::MAX_QUERY_POINTS as i128,
                    "accepted {buckets} buckets"
                );
            }
            Ok(())
        });
        let latest = extract::<crate::history::LatestQuery>(&uri)
            .and_then(|q| q.tag.as_deref().map_or(Ok(()), tag_selector));
        let write = extract::<crate::history::WriteQuery>(&uri)
            .and_then(|q| crate::history::parse_write(b"", q.precision.as_deref(), 0).map(drop));
        let areas: Vec<String> = ALARM_AREAS.iter().map(|a| a.to_string()).collect();
        let alarms = extract::<crate::alarms::ListQuery>(&uri)
            .and_then(|q| crate::alarms::parse_filter(&q, &areas).map(drop));
        let alarm_history = extract::<crate::alarms::HistoryQuery>(&uri).and_then(|q| {
            let (limit, _) = crate::alarms::history_args(&q)?;
            assert!((1..=crate::alarms::MAX_HISTORY).contains(&limit));
            Ok(())
        });
        let kpi = extract::<crate::alarms::KpiQuery>(&uri).and_then(|q| {
            let w = crate::alarms::kpi_window(&q)?;
            assert!((1..=30 * 86_400).contains(&w), "accepted window_s={w}");
            Ok(())
        });
        Some(vec![
            ("/api/v1/query", history),
            ("/api/v1/latest", latest),
            ("/api/v1/write", write),
            ("/api/v1/alarms", alarms),
            ("/api/v1/alarms/history", alarm_history),
            ("/api/v1/alarms/kpi", kpi),
            (
                "/api/v1/tags",
                extract::<crate::api::TagsQuery>(&uri).map(drop),
            ),
            (
                "/api/v1/tags/{path}/recent",
                extract::<crate::api::RecentQuery>(&uri).map(drop),
            ),
            (
                "/api/v1/audit",
                extract::<crate::api::AuditQuery>(&uri).map(drop),
            ),
            ("/login", extract::<crate::auth::LoginQuery>(&uri).map(drop)),
        ])
    }
}
