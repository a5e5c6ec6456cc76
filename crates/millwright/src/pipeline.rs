//! Wires a validated configuration into a running pipeline: every shipped component
//! ([`millwright::components`]) builds its sources, processors and sinks from the config; the
//! binary starts the bus with them and serves HTTP over the live store and, when configured, the
//! historian (handles those components provide; HTTP writes go onto the bus) until a signal
//! arrives.

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

pub(crate) fn install_metrics() -> Result<mw_web::MetricsRender> {
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

/// Where a run stands with its config watch (`[remote_config]`: mw_bus::config_watch).
#[derive(Default)]
pub struct RemoteState {
    /// Revisions up to this one have been seen (applied or rejected).
    pub after: u64,
    /// The outcome of the last revision, reported once this run has started.
    pub pending: Option<(u64, mw_bus::ConfigOutcome)>,
    /// Written once this run has started: the file that keeps an applied revision across
    /// restarts, and its contents.
    pub save: Option<(std::path::PathBuf, String)>,
}

/// Why a run ended.
pub enum Ended {
    /// A signal, or the HTTP server stopped.
    Shutdown,
    /// A new revision from the `[remote_config]` bucket passed `millwright check`'s checks.
    Reload(mw_bus::ConfigRevision),
}

/// Runs until Ctrl-C / SIGTERM, then shuts down within [`SHUTDOWN_GRACE`]. `listener` is the
/// HTTP listener if the caller bound it already (else `cfg.http.listener.address` is bound
/// first); `http_options` are its limits (docs/security.md). With `demo_login`, a login token
/// valid for this run only is made for an admin and printed as a `Login:` line. With a
/// `[remote_config]` section it also watches that bucket and ends with [`Ended::Reload`] when a
/// new revision passes the checks (the caller starts again with it).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    cfg: Config,
    sim: Option<SimRunning>,
    listener: Option<tokio::net::TcpListener>,
    mut http_options: mw_web::ServeOptions,
    demo_login: bool,
    config_source: String,
    metrics: mw_web::MetricsRender,
    remote: RemoteState,
) -> Result<Ended> {
    let mut warnings = Vec::new();
    match mw_config::listener_policy("HTTP", &cfg.http.listener, true)? {
        mw_config::Exposure::Insecure => {
            let w = format!(
                "HTTP listens on {} beyond loopback without TLS (insecure = true)",
                cfg.http.listener.address
            );
            tracing::warn!("{w}");
            warnings.push(w);
        }
        mw_config::Exposure::Tls | mw_config::Exposure::Loopback => {}
    }
    if let Some(tls) = &cfg.http.listener.tls {
        let server =
            mw_security::certs::server_config_files(&tls.cert, &tls.key, tls.client_ca.as_deref())
                .context("cannot load the HTTP listener's TLS certificate ([http] tls)")?;
        http_options.tls = Some(Arc::new(server));
    }
    let security_dir = mw_security::security_dir(&cfg.site.data_dir);
    let authenticator = mw_security::LocalAuthenticator::open(&security_dir)
        .context("cannot read the users and tokens")?;
    let listener = match listener {
        Some(l) => l,
        None => bind_http(cfg.http.listener.address).await?,
    };
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
    let historian = parts.take::<mw_historian::engine::Historian>();
    let detector_control = parts.take::<Arc<mw_analytics_live::Control>>().map(|c| {
        Arc::new(crate::web_adapters::DetectorsApi(c)) as Arc<dyn mw_web::DetectorControl>
    });
    let alarm_control = parts
        .take::<mw_alarms::AlarmControl>()
        .map(|c| Arc::new(crate::web_adapters::AlarmsApi(c)) as Arc<dyn mw_web::AlarmApi>);
    let source_count = parts.source_count();
    let writes = parts.writes();
    let mut bus = BusBuilder::new(BusConfig::from_config(&cfg.pipeline));
    bus.parts(parts);
    let startup = bus.publisher();
    let mut auth = mw_web::Auth::new(Arc::new(authenticator))
        .secure_cookies(http_options.tls.is_some())
        .audit_to(bus.publisher());
    let mut login_token = None;
    if demo_login {
        let secret = mw_security::random_secret().context("cannot make the demo's login token")?;
        auth = auth.with_ephemeral_token(
            secret.clone(),
            mw_security::Principal {
                name: "demo-admin".to_owned(),
                role: mw_security::Role::Admin,
                via: mw_security::Via::Token,
            },
        );
        login_token = Some(secret);
    }
    let ingest = historian.as_ref().map(|h| {
        Arc::new(crate::web_adapters::BusIngest {
            publisher: bus.publisher(),
            kinds: millwright::ingest::TagKinds::new(
                &tree,
                cfg.section::<mw_historian::component::HistorianConfig>()
                    .is_none_or(|c| c.create_tags),
            ),
            historian: h.clone(),
        }) as Arc<dyn mw_web::Ingest>
    });
    let running = bus.start(&sources);
    let summary = format!(
        "{config_source}: {} tag(s), {} source(s), sections: {}",
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
    if let Some((path, text)) = &remote.save {
        match mw_security::write_private_file(path, text.as_bytes()) {
            Ok(()) => tracing::info!(file = %path.display(), "remote config kept for restarts"),
            Err(e) => tracing::warn!(file = %path.display(), error = %e,
                "cannot keep the remote config for restarts; a restart runs the local file until the bucket is reachable"),
        }
    }
    let remote_watch = {
        let watch = millwright::config_watch(&cfg);
        let RemoteState { after, pending, .. } = remote;
        async move {
            match watch {
                Some(w) => {
                    let validate: mw_bus::config_watch::Validate = Arc::new(|text, name| {
                        millwright::config_registry()
                            .parse(text, name)
                            .map(|_| ())
                            .map_err(|d| d.to_string())
                    });
                    w.next_revision(after, pending, validate).await
                }
                None => std::future::pending().await,
            }
        }
    };

    let http_addr = listener.local_addr()?;
    let tags: Arc<dyn mw_web::TagStore> = match &historian {
        Some(h) => Arc::new(crate::web_adapters::HistoryTags {
            live: live.clone(),
            historian: h.clone(),
        }),
        None => Arc::new(crate::web_adapters::LiveTags(live.clone())),
    };
    let state = mw_web::AppState::new(cfg.site.name.as_str(), tags, Arc::new(auth))
        .with_tree(tree.clone())
        .with_sources(sources.clone())
        .with_metrics(metrics)
        .with_faults(sim.as_ref().map(|s| {
            Arc::new(crate::web_adapters::SimFaults {
                plant: s.plant.clone(),
                wall_start_ns: s.wall_start_ns,
                speed: s.speed,
            }) as Arc<dyn mw_web::FaultControl>
        }))
        .with_detectors(detector_control)
        .with_alarms(alarm_control)
        .with_ingest(ingest)
        .with_writes(Some(writes))
        .with_audit(Some(Arc::new(crate::web_adapters::AuditFile(
            cfg.site.data_dir.clone(),
        ))))
        .with_warnings(warnings);
    let mut http_stop = running.shutdown_signal();
    let scheme = if http_options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut http = tokio::spawn(mw_web::serve_with(
        listener,
        mw_web::router(state),
        http_options,
        async move {
            http_stop.wait().await;
        },
    ));
    println!(
        "Millwright {} serving {} tag(s) from {} device(s): web UI at {scheme}://{}/",
        env!("CARGO_PKG_VERSION"),
        tree.tag_count(),
        source_count,
        http_addr
    );
    match &login_token {
        // one line, so scripts and tests can pick it up; valid for this run only
        Some(t) => println!("Login: {scheme}://{http_addr}/login?token={t}"),
        None => println!(
            "Sign in at {scheme}://{http_addr}/login (users: `millwright user add NAME --role admin --data-dir {}`)",
            cfg.site.data_dir.display()
        ),
    }
    tracing::info!(%http_addr, sources = source_count, tags = tree.tag_count(), "started");

    let mut http_done = false;
    let ended = tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutdown requested");
            Ended::Shutdown
        }
        r = &mut http => {
            http_done = true;
            match r {
                Ok(Ok(())) => tracing::warn!("HTTP server stopped"),
                Ok(Err(e)) => tracing::error!(error = %e, "HTTP server failed"),
                Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
            }
            Ended::Shutdown
        }
        rev = remote_watch => {
            tracing::info!(revision = rev.revision, "restarting with the new configuration");
            Ended::Reload(rev)
        }
    };
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
    if !http_done && matches!(ended, Ended::Reload(_)) {
        // the listener is released when the server ends: the next run binds the address again
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, http).await;
    }
    tracing::info!("stopped");
    Ok(ended)
}
