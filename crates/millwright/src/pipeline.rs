//! Wires a validated configuration into a running pipeline: every shipped component
//! ([`millwright::components`]) builds its sources, processors and sinks from the config; the
//! binary starts the bus with them and serves HTTP over the live store (a handle the live
//! component provides) until a signal arrives.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mw_bus::{BusBuilder, BusConfig, Parts, SourceRegistry};
use mw_config::Config;
use mw_live::LiveStore;
use mw_model::{Event, EventKind};

use crate::simrun::SimRunning;

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn install_metrics() -> Result<mw_web::MetricsRender> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("seconds".into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let upkeep = handle.clone();
    Ok(Arc::new(move || {
        upkeep.run_upkeep();
        upkeep.render()
    }))
}

/// Binds the HTTP listener (before anything else starts, so a busy port fails fast).
pub async fn bind_http(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen for HTTP on {addr} (is another program using it? use --http ADDR or [http] address)")
    })
}

/// Runs until Ctrl-C / SIGTERM, then shuts down within [`SHUTDOWN_GRACE`]. `listener` is the
/// HTTP listener if the caller bound it already (else `cfg.http.listener.address` is bound
/// first); `http_options` are its limits (docs/security.md).
pub async fn run(
    cfg: Config,
    sim: Option<SimRunning>,
    listener: Option<tokio::net::TcpListener>,
    http_options: mw_web::ServeOptions,
) -> Result<()> {
    match mw_config::listener_policy("HTTP", &cfg.http.listener, true)? {
        mw_config::Exposure::Insecure => tracing::warn!(
            address = %cfg.http.listener.address,
            "HTTP listens beyond loopback without TLS (insecure = true)"
        ),
        mw_config::Exposure::Tls => anyhow::bail!(
            "[http] tls is set, but this build cannot serve HTTPS yet; remove tls to serve plain HTTP on loopback"
        ),
        mw_config::Exposure::Loopback => {}
    }
    let listener = match listener {
        Some(l) => l,
        None => bind_http(cfg.http.listener.address).await?,
    };
    let metrics = install_metrics()?;
    metrics::gauge!("mw_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let tree = Arc::new(cfg.asset_tree());
    let sources = SourceRegistry::new();

    let mut parts = Parts::new();
    for c in millwright::components() {
        c.build(&cfg, &mut parts)
            .with_context(|| format!("cannot start the {} component", c.name()))?;
    }
    let live = parts
        .take::<LiveStore>()
        .context("no live store among the components")?;
    let detector_control = parts.take::<Arc<mw_analytics_live::Control>>().map(|c| {
        Arc::new(crate::web_adapters::DetectorsApi(c)) as Arc<dyn mw_web::DetectorControl>
    });
    let source_count = parts.source_count();
    let mut bus = BusBuilder::new(BusConfig::from_config(&cfg.pipeline));
    bus.parts(parts);
    let startup = bus.publisher();
    let running = bus.start(&sources);
    let summary = format!(
        "{} tag(s), {} source(s), sections: {}",
        tree.tag_count(),
        source_count,
        cfg.section_keys().collect::<Vec<_>>().join(", ")
    );
    let _ = startup
        .publish_events(vec![Event::new(
            mw_model::now_ns(),
            "millwright/config",
            EventKind::ConfigChange { summary },
        )])
        .await;
    drop(startup);

    let http_addr = listener.local_addr()?;
    let state = mw_web::AppState {
        site_name: cfg.site.name.as_str().into(),
        tags: Arc::new(crate::web_adapters::LiveTags(live.clone())),
        tree: tree.clone(),
        sources: sources.clone(),
        metrics,
        faults: sim.as_ref().map(|s| {
            Arc::new(crate::web_adapters::SimFaults {
                plant: s.plant.clone(),
                wall_start_ns: s.wall_start_ns,
                speed: s.speed,
            }) as Arc<dyn mw_web::FaultControl>
        }),
        detectors: detector_control,
    };
    let mut http_stop = running.shutdown_signal();
    // The router is where an authentication layer will be added; the options carry the limits.
    let http = tokio::spawn(mw_web::serve_with(
        listener,
        mw_web::router(state),
        http_options,
        async move {
            http_stop.wait().await;
        },
    ));
    println!(
        "Millwright {} serving {} tag(s) from {} device(s): web UI at http://{}/",
        env!("CARGO_PKG_VERSION"),
        tree.tag_count(),
        source_count,
        http_addr
    );
    tracing::info!(%http_addr, sources = source_count, tags = tree.tag_count(), "started");

    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutdown requested"),
        r = http => {
            match r {
                Ok(Ok(())) => tracing::warn!("HTTP server stopped"),
                Ok(Err(e)) => tracing::error!(error = %e, "HTTP server failed"),
                Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
            }
        }
    }
    let orderly = async {
        let stopped = running.stop(SHUTDOWN_GRACE).await;
        if let Some(sim) = sim {
            sim.stop().await;
        }
        stopped
    };
    if !tokio::time::timeout(SHUTDOWN_GRACE, orderly)
        .await
        .unwrap_or(false)
    {
        tracing::warn!(
            "shutdown took longer than {:?}; exiting anyway",
            SHUTDOWN_GRACE
        );
    }
    tracing::info!("stopped");
    Ok(())
}
