//! The PostgreSQL sink: migrations at start, one idempotent multi-row insert per batch.

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

/// Connects with `config` (already holding the password, if any); the connection task is
/// spawned and ends when the client is dropped or the connection breaks.
pub async fn connect(config: &tokio_postgres::Config) -> Result<Client, PgError> {
    let (client, conn) = config.connect(NoTls).await.map_err(PgError::Connect)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
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
