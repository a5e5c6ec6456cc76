//! The PostgreSQL sink: migrations at start, one idempotent multi-row insert per batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls};

use crate::wire::EventRow;

/// The schema, in order: `(version, name, SQL)`. A version is never edited once released; a
/// change is a new file.
pub const MIGRATIONS: &[(i32, &str, &str)] =
    &[(1, "events", include_str!("../migrations/0001_events.sql"))];

/// An arbitrary constant: the advisory lock that serializes replicas migrating at once.
const MIGRATION_LOCK: i64 = 0x6d77_6365_6e74;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(tokio_postgres::Error),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i32,
        name: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
}

/// Connects with `config` (already holding the password, if any), over TLS when `tls` is
/// given; the connection task is spawned and ends when the client is dropped or the connection
/// breaks.
pub async fn connect(
    config: &tokio_postgres::Config,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Client, PgError> {
    fn spawn<T>(conn: tokio_postgres::Connection<tokio_postgres::Socket, T>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended");
            }
        });
    }
    match tls {
        None => {
            let (client, conn) = config.connect(NoTls).await.map_err(PgError::Connect)?;
            spawn(conn);
            Ok(client)
        }
        Some(tls) => {
            let mut config = config.clone();
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let (client, conn) = config
                .connect(Rustls(tls.clone()))
                .await
                .map_err(PgError::Connect)?;
            spawn(conn);
            Ok(client)
        }
    }
}

/// TLS for tokio-postgres on the workspace's rustls (ring): the server's certificate is
/// verified against the configured CA and the host name connected to. No channel binding
/// (SCRAM works without it).
#[derive(Clone)]
struct Rustls(Arc<rustls::ClientConfig>);

struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> MakeTlsConnect<S> for Rustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.0.clone(),
            name: rustls::pki_types::ServerName::try_from(domain.to_owned())?,
        })
    }
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(RustlsStream)
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// Applies the migrations not yet in `schema_migrations`, each in the one transaction that
/// holds the advisory lock; answers the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS {
        if done.contains(&version) {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|source| PgError::Migration {
                version,
                name,
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&version, &name],
        )
        .await?;
        applied.push(version);
    }
    tx.commit().await?;
    Ok(applied)
}

/// Inserts `rows` in one statement (committed when it returns); a row whose `msg_id` is
/// already stored is skipped. Answers how many rows were new.
pub async fn insert_events(client: &Client, rows: &[EventRow]) -> Result<u64, PgError> {
    let col = |f: fn(&EventRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let msg_id = col(|r| &r.msg_id);
    let stream = col(|r| &r.stream);
    let site = col(|r| &r.site);
    let source = col(|r| &r.source);
    let kind = col(|r| &r.kind);
    let body = col(|r| &r.body);
    let seq: Vec<i64> = rows.iter().map(|r| r.stream_seq).collect();
    let ts: Vec<i64> = rows.iter().map(|r| r.ts_ns).collect();
    let asset: Vec<Option<&str>> = rows.iter().map(|r| r.asset.as_deref()).collect();
    let historical: Vec<bool> = rows.iter().map(|r| r.historical).collect();
    let n = client
        .execute(
            "INSERT INTO events (msg_id, stream, stream_seq, site, ts, ts_ns, source, asset, kind, body, historical)
             SELECT m, st, sq, si, to_timestamp(t::float8 / 1e9), t, so, a, k, b::jsonb, h
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[],
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::bool[])
                  AS u(m, st, sq, si, t, so, a, k, b, h)
             ON CONFLICT (msg_id) DO NOTHING",
            &[
                &msg_id,
                &stream,
                &seq,
                &site,
                &ts,
                &source,
                &asset,
                &kind,
                &body,
                &historical,
            ],
        )
        .await?;
    Ok(n)
}
