//! Millwright's embedded MQTT broker: MQTT 3.1.1 and 5.0 on rumqttc's public packet codecs
//! (`rumqttc::mqttbytes::v4`, `rumqttc::v5::mqttbytes::v5`), with the broker itself written here.
//!
//! - [`wire`]: packets decoded into one version-neutral shape, checked beyond what the codecs
//!   check (never panics on any input), and encoded for the client's version.
//! - [`topic`]: filters, matching, `$share/{group}/…`, ACL patterns.
//! - [`auth`]: per-user topic ACL (`%u`, `%c`); passwords are checked by Millwright's user store.
//! - [`broker`]: sessions, subscriptions, retained messages, wills, routing into bounded
//!   per-session queues; [`Broker::tap`] subscribes the process itself, [`Broker::publish`]
//!   publishes as the process.
//! - [`conn`]: one connection's protocol loop; [`listen`] accepts connections (plain TCP or TLS).
//! - [`persist`]: persistent sessions and retained messages saved as one snapshot.
//! - [`component`]: `[mqtt.broker]`, the listener as a bus source, the UNS publisher sink.
//! - [`ingest`]: `[[mqtt.broker.ingest]]`, what clients publish to the broker as a bus source.
//! - [`client`]: `[[mqtt.client]]`, connections to external brokers (rumqttc) as a bus source
//!   (subscriptions → samples) and sink (samples → UNS JSON publishes).

pub mod auth;
pub mod broker;
pub mod client;
pub mod component;
pub mod conn;
pub mod ingest;
pub mod persist;
pub mod topic;
pub mod wire;

pub use auth::{Access, Acl, AclRule};
pub use broker::{Broker, BrokerConfig, Delivery, Message, Stats, Tap};
pub use client::MqttClientComponent;
pub use component::{MqttBrokerComponent, MqttBrokerConfig};

use std::sync::Arc;

/// Accepts connections on `listener` until the broker shuts down; each is served on a task of
/// its own, through TLS when `tls` is given.
pub async fn listen(
    broker: Broker,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    broker.start_sweeper();
    let mut shutdown = broker.inner.shutdown.subscribe();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning
                tracing::warn!(error = %e, "mqtt: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let b = broker.clone();
        match &acceptor {
            None => {
                tokio::spawn(async move { conn::serve(b, stream, peer).await });
            }
            Some(acc) => {
                let acc = acc.clone();
                tokio::spawn(async move {
                    let timeout = b.config().connect_timeout;
                    match tokio::time::timeout(timeout, acc.accept(stream)).await {
                        Ok(Ok(tls)) => conn::serve(b, tls, peer).await,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "mqtt: TLS handshake failed")
                        }
                        Err(_) => tracing::info!(%peer, "mqtt: TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// Saves the broker's state to `file` every [`persist::SAVE_EVERY`] while it changed, and once
/// more when the broker shuts down, after its connections have handed back what they had in
/// flight (waiting at most 5 s for them). Returns after that last save.
pub async fn keep_saved(broker: Broker, file: Arc<persist::StateFile>) {
    let mut shutdown = broker.inner.shutdown.subscribe();
    let mut saved_at = broker.changes();
    let save = |b: &Broker, f: &Arc<persist::StateFile>| {
        let snap = b.snapshot();
        let f = f.clone();
        async move {
            match tokio::task::spawn_blocking(move || {
                f.save(&snap).map_err(|e| (f.path().to_owned(), e))
            })
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err((path, e))) => {
                    metrics::counter!("mw_mqtt_state_save_errors_total", "component" => "mqtt-broker", "instance" => "broker").increment(1);
                    tracing::error!(path = %path.display(), error = %e, "mqtt: cannot save the broker state");
                }
                Err(e) => tracing::error!(error = %e, "mqtt: state save task failed"),
            }
        }
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(persist::SAVE_EVERY) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
        let now = broker.changes();
        if now != saved_at {
            saved_at = now;
            save(&broker, &file).await;
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while broker
        .stats()
        .connections
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    save(&broker, &file).await;
    tracing::info!(
        sessions = broker.session_count(),
        retained = broker.retained_count(),
        "mqtt: broker state saved"
    );
}
