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
//! - [`component`]: `[mqtt.broker]`, the listener as a bus source, the UNS publisher sink.

pub mod auth;
pub mod broker;
pub mod component;
pub mod conn;
pub mod topic;
pub mod wire;

pub use auth::{Access, Acl, AclRule};
pub use broker::{Broker, BrokerConfig, Delivery, Message, Stats, Tap};
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
