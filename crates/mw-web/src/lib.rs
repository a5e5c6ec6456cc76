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

/// Builds the router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
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
        .fallback(api::not_found)
        .with_state(state)
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
