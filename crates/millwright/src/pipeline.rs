//! Wires a validated configuration into a running pipeline:
//! Modbus pollers → bus (deadband processor) → live store; HTTP server over the live store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mw_bus::{BusBuilder, BusConfig, DeadbandProcessor, Overload, SourceRegistry};
use mw_config::{Config, OverloadPolicy};
use mw_live::LiveStore;
use tokio::sync::watch;

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
/// HTTP listener if the caller bound it already (else `cfg.http.address` is bound first).
pub async fn run(
    cfg: Config,
    sim: Option<SimRunning>,
    listener: Option<tokio::net::TcpListener>,
) -> Result<()> {
    let listener = match listener {
        Some(l) => l,
        None => bind_http(cfg.http.address).await?,
    };
    let metrics = install_metrics()?;
    metrics::gauge!("mw_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let tree = Arc::new(cfg.asset_tree());
    let live = LiveStore::new(cfg.pipeline.live_window);
    let sources = SourceRegistry::new();

    let mut bus = BusBuilder::new(BusConfig {
        capacity: cfg.pipeline.bus_capacity,
        sink_capacity: cfg.pipeline.sink_capacity,
        overload: match cfg.pipeline.overload {
            OverloadPolicy::Block => Overload::Block,
            OverloadPolicy::DropNewest => Overload::DropNewest,
        },
    });
    let analytics = crate::analytics::LiveAnalytics::new(&cfg.detectors, &cfg.rul);
    let detector_control = analytics
        .control()
        .map(|c| c as std::sync::Arc<dyn mw_web::DetectorControl>);
    if !analytics.is_empty() {
        bus.processor(Box::new(analytics));
    }
    let mut deadband = DeadbandProcessor::default();
    for t in tree.tags() {
        if let Some(th) = t.deadband_threshold() {
            deadband.set_threshold(t.path.clone(), th);
        }
    }
    if !deadband.is_empty() {
        bus.processor(Box::new(deadband));
    }
    let live_sub = bus.subscribe("live");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut pollers = Vec::new();
    for dev in cfg.devices.iter().cloned() {
        let status = sources.register("modbus", &dev.name);
        pollers.push(tokio::spawn(mw_modbus::run_device(
            dev,
            bus.publisher(),
            status,
            stop_rx.clone(),
        )));
    }
    let bus_task = bus.start();
    let live_task = tokio::spawn(live.clone().run_sink(live_sub));

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
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(mw_web::serve(listener, state, async move {
        let _ = http_stop.wait_for(|v| *v).await;
    }));
    println!(
        "Millwright {} serving {} tag(s) from {} device(s): web UI at http://{}/",
        env!("CARGO_PKG_VERSION"),
        tree.tag_count(),
        cfg.devices.len(),
        http_addr
    );
    tracing::info!(%http_addr, devices = cfg.devices.len(), tags = tree.tag_count(), "started");

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
    let _ = stop_tx.send(true);
    let orderly = async {
        for p in pollers {
            let _ = p.await;
        }
        let _ = bus_task.await;
        let _ = live_task.await;
        if let Some(sim) = sim {
            sim.stop().await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, orderly).await.is_err() {
        tracing::warn!(
            "shutdown took longer than {:?}; exiting anyway",
            SHUTDOWN_GRACE
        );
    }
    tracing::info!("stopped");
    Ok(())
}
