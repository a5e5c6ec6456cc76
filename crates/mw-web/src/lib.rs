//! HTTP API and web UI (axum).
//!
//! This is the only crate that knows HTTP and the JSON shapes of the API; domain crates expose
//! plain Rust types and this layer converts them. Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | liveness: 200 while the process serves HTTP |
//! | `GET /ready` | 200 once every source has completed a poll cycle, else 503 with what it waits for |
//! | `GET /api/v1/tags[?history=N]` | every configured tag with its latest value, quality, unit, timestamp |
//! | `GET /api/v1/tags/{path}/recent[?limit=N]` | the tag's recent window (oldest first) |
//! | `GET /api/v1/assets` | the asset tree with each asset's tags |
//! | `GET /api/v1/sources` | status of each source (device) |
//! | `POST /api/v1/sim/faults`, `GET /api/v1/sim/faults` | inject / list simulator faults (demo only) |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /` | server-rendered overview of assets and live values, auto-updating |

mod api;
mod page;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::{get, post};
use mw_bus::SourceRegistry;
use mw_live::LiveStore;
use mw_model::AssetTree;

/// Renders the Prometheus exposition text (provided by the binary's metrics recorder).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the HTTP layer reads. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub site_name: Arc<str>,
    pub live: LiveStore,
    pub tree: Arc<AssetTree>,
    pub sources: SourceRegistry,
    pub metrics: MetricsRender,
    /// The in-process simulator, when running `millwright demo`.
    pub sim: Option<SimHandle>,
    /// The live anomaly detectors, when any are configured.
    pub detectors: Option<Arc<dyn DetectorControl>>,
}

/// One live anomaly detector, as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorInfo {
    pub asset: String,
    pub kind: String,
    /// Full paths of the input tags.
    pub inputs: Vec<String>,
    pub score_tag: String,
    pub flag_tag: String,
}

/// The live anomaly detectors (implemented by the binary's analytics processor).
pub trait DetectorControl: Send + Sync {
    fn list(&self) -> Vec<DetectorInfo>;
    /// Asks every detector of `asset` (full path) to forget what it learnt and warm up again on
    /// the data from now on — after a repair or a deliberate change of operating point. Takes
    /// effect with the next batch of inputs. Returns how many detectors were asked.
    fn relearn(&self, asset: &str) -> usize;
}

/// The in-process simulator and its clock. The simulator runs `speed` times faster than the wall
/// clock from `wall_start_ns` on (its own clock starts at the same instant), so a simulator time
/// `sim_s` happened at wall time `wall_start_ns + sim_s / speed` — the time base of the tags.
#[derive(Clone)]
pub struct SimHandle {
    pub plant: Arc<Mutex<mw_sim::Plant>>,
    pub wall_start_ns: i64,
    pub speed: f64,
}

impl SimHandle {
    /// Wall-clock ns of a simulator time.
    pub fn wall_ns(&self, sim_s: f64) -> i64 {
        self.wall_start_ns + (sim_s / self.speed * 1e9) as i64
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

/// Builds the router with every route, behind a bounded in-flight limit and a request timeout.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/", get(page::index))
        .route("/health", get(api::health))
        .route("/ready", get(api::ready))
        .route("/metrics", get(api::metrics))
        .route("/api/v1/tags", get(api::tags))
        .route("/api/v1/tags/{*rest}", get(api::tag_sub))
        .route("/api/v1/assets", get(api::assets))
        .route("/api/v1/sources", get(api::sources))
        .route(
            "/api/v1/sim/faults",
            post(api::inject_fault).get(api::list_faults),
        )
        .route("/api/v1/detectors", get(api::list_detectors))
        .route("/api/v1/detectors/relearn", post(api::relearn_detector))
        .fallback(api::not_found);
    guard(routes, MAX_IN_FLIGHT).with_state(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests;
