//! `millwright central` (issue 13, item 4): stateless consumers of the edges' JetStream
//! streams. Every replica binds to the same durable pull consumer, so any number of them share
//! the work; each fetches a batch, writes its samples to VictoriaMetrics (`/api/v1/import`)
//! and its events to PostgreSQL (`ON CONFLICT DO NOTHING` on the message id), and acknowledges
//! a message only after the write that holds it succeeded. docs/central.md is the operator's
//! guide; the wire format is the uplink's (docs/uplink.md).
//!
//! What it must not do: keep state of its own (everything is in JetStream, VictoriaMetrics and
//! PostgreSQL), or acknowledge a message before its sink answered.

pub mod config;
pub mod consumer;
pub mod metrics;
pub mod pg;
pub use mw_uplink::vm;
pub mod wire;

mod serve;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use config::{CentralConfig, CentralSection};

/// The registry of a `millwright central` config file: the shared sections and `[central]`.
pub fn config_registry() -> mw_config::Registry {
    mw_config::Registry::new().with(Box::new(config::Checker))
}

/// Renders the process's metrics in the Prometheus text format.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("cannot load postgres_tls of [central]: {0}")]
    PostgresTls(String),
    #[error("cannot read the secret file {path}: {why}")]
    Secret { path: String, why: String },
    #[error("cannot connect to NATS at {urls}: {why}")]
    Nats { urls: String, why: String },
    #[error(transparent)]
    Postgres(#[from] pg::PgError),
    #[error("cannot listen for /metrics on {addr}: {why}")]
    Metrics { addr: String, why: String },
}

fn secret(path: &Path) -> Result<String, CentralError> {
    let s = std::fs::read_to_string(path).map_err(|e| CentralError::Secret {
        path: path.display().to_string(),
        why: e.kind().to_string(),
    })?;
    let s = s.trim_end_matches(['\r', '\n']);
    if s.is_empty() {
        return Err(CentralError::Secret {
            path: path.display().to_string(),
            why: "it is empty".into(),
        });
    }
    Ok(s.to_owned())
}

/// Runs central until `shutdown` completes: migrates PostgreSQL (if configured), connects to
/// NATS, consumes every stream; on shutdown finishes the batches in hand and flushes the acks.
pub async fn run(
    cfg: CentralConfig,
    render: Option<Render>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), CentralError> {
    let cfg = Arc::new(cfg);
    if let (Some(addr), Some(render)) = (cfg.metrics_address, render) {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| CentralError::Metrics {
                addr: addr.to_string(),
                why: e.to_string(),
            })?;
        tracing::info!(address = %addr, "central /metrics listening");
        tokio::spawn(serve::metrics(l, render));
    }
    let pg = match &cfg.postgres {
        Some(conn) => {
            // checked by the config section; a parse failure here cannot happen
            let mut pc: tokio_postgres::Config = conn
                .parse()
                .map_err(|e| CentralError::Postgres(pg::PgError::Connect(e)))?;
            if let Some(p) = &cfg.postgres_password_file {
                pc.password(secret(p)?);
            }
            let tls = match &cfg.postgres_tls {
                None => None,
                Some(t) => Some(Arc::new(
                    mw_security::certs::client_config_files(
                        &t.ca,
                        t.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
                    )
                    .map_err(|e| CentralError::PostgresTls(e.to_string()))?,
                )),
            };
            let ready = async {
                let mut client = pg::connect(&pc, tls.as_ref()).await?;
                let applied = pg::migrate(&mut client).await?;
                tracing::info!(applied = ?applied, "central PostgreSQL schema up to date");
                Ok::<_, pg::PgError>(client)
            };
            let client = match ready.await {
                Ok(c) => Some(c),
                // a schema that cannot be applied will not fix itself
                Err(e @ pg::PgError::Migration { .. }) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "central: PostgreSQL is not reachable at start; \
                        samples flow, events wait in JetStream until it answers (retried with each batch)");
                    None
                }
            };
            Some(Arc::new(consumer::Pg {
                config: pc,
                tls,
                migrated: std::sync::atomic::AtomicBool::new(client.is_some()),
                client: tokio::sync::Mutex::new(client),
            }))
        }
        None => {
            tracing::warn!("central has no [central] postgres: events are terminated, not stored");
            None
        }
    };
    let mut opts = async_nats::ConnectOptions::new()
        .name("millwright central")
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|n| Duration::from_millis((100u64 << n.min(6)).min(5000)))
        .event_callback(|ev| async move {
            match ev {
                async_nats::Event::Connected => tracing::info!("central connected to NATS"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("central disconnected from NATS; reconnecting")
                }
                // e.g. "server error: authorization violation"; never carries a secret
                e @ (async_nats::Event::ServerError(_) | async_nats::Event::ClientError(_)) => {
                    tracing::warn!(error = %e, "central: NATS connection error")
                }
                other => tracing::debug!(event = %other, "central: NATS client event"),
            }
        });
    opts = match &cfg.auth {
        config::Auth::None => opts,
        config::Auth::UserPassword {
            user,
            password_file,
        } => opts.user_and_password(user.clone(), secret(password_file)?),
        config::Auth::Token { token_file } => opts.token(secret(token_file)?),
    };
    if let Some(t) = &cfg.tls {
        opts = opts.require_tls(true).add_root_certificates(t.ca.clone());
        if let Some((c, k)) = &t.client {
            opts = opts.add_client_certificate(c.clone(), k.clone());
        }
    }
    let client = async_nats::connect_with_options(cfg.urls.clone(), opts)
        .await
        .map_err(|e| CentralError::Nats {
            urls: cfg.urls.join(","),
            why: e.to_string(),
        })?;
    let js = async_nats::jetstream::new(client.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let m = Arc::new(metrics::Metrics);
    let mut tasks = tokio::task::JoinSet::new();
    for s in &cfg.streams {
        tasks.spawn(consumer::run_stream(
            js.clone(),
            cfg.clone(),
            s.clone(),
            pg.clone(),
            m.clone(),
            stop_rx.clone(),
        ));
    }
    shutdown.await;
    tracing::info!("central stopping: finishing the batches in hand");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
    Ok(())
}
