//! `[remote_config]`: an edge watches its configuration in a NATS JetStream key-value bucket
//! (issue 13, item 5). docs/uplink.md "Configuration from NATS KV" is the operator's guide.
//!
//! ```toml
//! [remote_config]
//! url = "nats://10.0.0.5:4222"   # required; several: "nats://a:4222,nats://b:4222"
//! bucket = "millwright-config"   # default; created (file storage, 16 revisions) if missing
//! key = "plant1-gw1"             # default: the site token of [site] name
//! user = "edge1"                 # with password_file; or token_file; tls = { ca = … } — as [[uplink]]
//! password_file = "/etc/millwright/nats-password"
//! ```
//!
//! The protocol, all in the one bucket: an operator puts the whole TOML text of the edge's
//! configuration under `KEY`. The edge checks each revision newer than the one it runs with
//! the checks of `millwright check` ([`watch`]'s `validate`); a valid one is applied by the
//! binary (the pipeline stops and starts again with it), an invalid one is rejected and the
//! running configuration kept. Either way the edge puts a JSON [`Status`] under `KEY.status`:
//! `{"revision":7,"outcome":"rejected","error":"…line 12…","edge":"KEY","at_ns":…}`. A
//! deleted or purged key changes nothing. What this module does not do: decide what "applied"
//! means — the binary reports `applied` only once the new pipeline has started, and
//! `rejected` with the start error (having gone back to the previous configuration) if not.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use mw_config::{Cx, Section, SectionValue, Table};
use serde::{Deserialize, Serialize};

use crate::config::{Auth, TlsFiles, auth, check_token, site_token, tls, urls};
use crate::forward::with_auth;

/// The default bucket.
pub const DEFAULT_BUCKET: &str = "millwright-config";

/// The checked `[remote_config]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteConfig {
    pub urls: Vec<String>,
    pub bucket: String,
    /// `None`: [`site_token`] of `[site] name`.
    pub key: Option<String>,
    pub auth: Auth,
    pub tls: Option<TlsFiles>,
}

impl RemoteConfig {
    /// The key watched, for a site named `site_name`.
    pub fn key_for(&self, site_name: &str) -> String {
        self.key.clone().unwrap_or_else(|| site_token(site_name))
    }
}

/// The `[remote_config]` section's value: `None` when the table is absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemoteConfigSection(pub Option<RemoteConfig>);

pub(crate) struct RemoteChecker;

const KEYS: &[&str] = &[
    "url",
    "bucket",
    "key",
    "user",
    "password_file",
    "token_file",
    "tls",
];

impl Section for RemoteChecker {
    fn key(&self) -> &'static str {
        "remote_config"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let Some(f) = cx.table(root, "remote_config", false, "[remote_config]") else {
            return Box::new(RemoteConfigSection(None));
        };
        let t = f.v;
        cx.unknown_keys(t, KEYS);
        cx.require(t, &["url"]);
        let mut rc = RemoteConfig {
            urls: Vec::new(),
            bucket: DEFAULT_BUCKET.to_owned(),
            key: None,
            auth: Auth::None,
            tls: None,
        };
        urls(t, cx, &mut rc.urls);
        if let Some(b) = cx.string(t, "bucket", false) {
            match check_token(b.v, 64) {
                Ok(()) => rc.bucket = b.v.to_owned(),
                Err(why) => cx.err(
                    b.span.start,
                    format!("invalid \"bucket\" {:?} in [remote_config]: {why}", b.v),
                ),
            }
        }
        if let Some(k) = cx.string(t, "key", false) {
            match check_token(k.v, 200) {
                Ok(()) => rc.key = Some(k.v.to_owned()),
                Err(why) => cx.err(
                    k.span.start,
                    format!("invalid \"key\" {:?} in [remote_config]: {why}", k.v),
                ),
            }
        }
        rc.auth = auth(t, cx);
        rc.tls = tls(t, cx, "[remote_config]");
        Box::new(RemoteConfigSection(Some(rc)))
    }
}

/// What became of a revision (the config-watch seam's type).
pub use mw_bus::ConfigOutcome as Outcome;

/// The JSON the edge puts under `KEY.status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub revision: u64,
    /// `applied` or `rejected`.
    pub outcome: String,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The key (the edge's name in the bucket).
    pub edge: String,
    /// When the edge decided, ns since the epoch.
    pub at_ns: i64,
}

/// A revision of the configuration text that passed `validate` (the config-watch seam's type).
pub use mw_bus::ConfigRevision as Revision;

/// The bucket of a `[remote_config]` section as the process's [`mw_bus::ConfigWatch`]
/// (returned by the uplink component's `config_watch`).
pub struct KvWatch {
    pub rc: RemoteConfig,
    pub site_name: String,
}

impl mw_bus::ConfigWatch for KvWatch {
    fn next_revision(
        &self,
        after: u64,
        pending: Option<(u64, Outcome)>,
        validate: mw_bus::config_watch::Validate,
    ) -> mw_bus::BoxFuture<Revision> {
        let rc = self.rc.clone();
        let site = self.site_name.clone();
        Box::pin(async move { watch(&rc, &site, after, pending, |t, n| validate(t, n)).await })
    }
}

/// A connection to the bucket.
struct Client {
    kv: kv::Store,
    key: String,
}

async fn connect(rc: &RemoteConfig, key: &str) -> Result<Client, String> {
    let credentials = crate::component::credentials(&rc.auth, "[remote_config]")?;
    let opts = async_nats::ConnectOptions::new()
        .name(format!("millwright remote config {key}"))
        .connection_timeout(Duration::from_secs(5));
    let tls = rc.tls.as_ref().map(|t| (t.ca.clone(), t.client.clone()));
    let opts = with_auth(opts, &credentials, &tls);
    let client = async_nats::connect_with_options(rc.urls.clone(), opts)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", rc.urls.join(",")))?;
    let kv = open_bucket(&jetstream::new(client), &rc.bucket).await?;
    Ok(Client {
        kv,
        key: key.to_owned(),
    })
}

/// Opens the bucket, creating it (file storage, 16 revisions per key) when it is missing.
/// The stream is created as async-nats' `create_key_value` would, but without its account
/// query, whose reply nats-server 2.9 (Debian 12's) does not give in the form it expects.
pub async fn open_bucket(js: &jetstream::Context, bucket: &str) -> Result<kv::Store, String> {
    if let Ok(kv) = js.get_key_value(bucket).await {
        return Ok(kv);
    }
    use jetstream::stream;
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 16,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot create the bucket {bucket:?}: {e}"))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| format!("cannot open the bucket {bucket:?}: {e}"))
}

impl Client {
    async fn report(&self, revision: u64, outcome: &Outcome) -> Result<(), String> {
        let status = Status {
            revision,
            outcome: match outcome {
                Outcome::Applied => "applied",
                Outcome::Rejected(_) => "rejected",
            }
            .to_owned(),
            error: match outcome {
                Outcome::Applied => None,
                Outcome::Rejected(e) => Some(e.clone()),
            },
            edge: self.key.clone(),
            at_ns: mw_model::now_ns(),
        };
        let body = serde_json::to_vec(&status).map_err(|e| e.to_string())?;
        self.kv
            .put(format!("{}.status", self.key), body.into())
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot put {}.status: {e}", self.key))
    }
}

/// Watches `KEY` until a revision newer than `after` passes `validate` (given the text and a
/// name for messages), and returns it; every revision that fails is reported `rejected` under
/// `KEY.status` with `validate`'s error. `pending` (the outcome of the revision the caller
/// last returned from here) is reported first. Reconnects (100 ms doubling to 5 s, each
/// failure logged) until it succeeds: the caller races this against its own shutdown.
pub async fn watch(
    rc: &RemoteConfig,
    site_name: &str,
    after: u64,
    mut pending: Option<(u64, Outcome)>,
    validate: impl Fn(&str, &str) -> Result<(), String>,
) -> Revision {
    let key = rc.key_for(site_name);
    let mut after = after;
    let mut failures = 0u32;
    loop {
        match watch_once(rc, &key, &mut after, &mut pending, &validate).await {
            Ok(r) => return r,
            Err(e) => {
                failures += 1;
                tracing::warn!(bucket = %rc.bucket, %key, error = %e,
                    "remote config: cannot watch the bucket; the running configuration stays");
            }
        }
        tokio::time::sleep(Duration::from_millis((100u64 << failures.min(6)).min(5000))).await;
    }
}

async fn watch_once(
    rc: &RemoteConfig,
    key: &str,
    after: &mut u64,
    pending: &mut Option<(u64, Outcome)>,
    validate: &impl Fn(&str, &str) -> Result<(), String>,
) -> Result<Revision, String> {
    let client = connect(rc, key).await?;
    if let Some((rev, outcome)) = pending.take() {
        if let Err(e) = client.report(rev, &outcome).await {
            *pending = Some((rev, outcome));
            return Err(e);
        }
        tracing::info!(bucket = %rc.bucket, %key, revision = rev, ?outcome, "remote config status reported");
    }
    let mut entries = client
        .kv
        .watch_with_history(key)
        .await
        .map_err(|e| format!("cannot watch {key:?}: {e}"))?;
    tracing::info!(bucket = %rc.bucket, %key, after = *after, "remote config: watching");
    while let Some(entry) = entries.next().await {
        let entry = entry.map_err(|e| format!("watch of {key:?} failed: {e}"))?;
        if entry.revision <= *after {
            continue;
        }
        *after = entry.revision;
        if entry.operation != kv::Operation::Put {
            tracing::warn!(bucket = %rc.bucket, %key, revision = entry.revision,
                "remote config deleted or purged in the bucket; the running configuration stays");
            continue;
        }
        let name = format!(
            "remote config {}/{key} revision {}",
            rc.bucket, entry.revision
        );
        let checked = match std::str::from_utf8(&entry.value) {
            Ok(text) => validate(text, &name).map(|()| text.to_owned()),
            Err(e) => Err(format!("{name} is not UTF-8 text: {e}")),
        };
        match checked {
            Ok(text) => {
                tracing::info!(bucket = %rc.bucket, %key, revision = entry.revision,
                    "remote config: new revision passed the checks; applying");
                return Ok(Revision {
                    revision: entry.revision,
                    text,
                });
            }
            Err(why) => {
                tracing::warn!(bucket = %rc.bucket, %key, revision = entry.revision, error = %why,
                    "remote config rejected; the running configuration stays");
                let outcome = Outcome::Rejected(why);
                if let Err(e) = client.report(entry.revision, &outcome).await {
                    *pending = Some((entry.revision, outcome));
                    return Err(e);
                }
            }
        }
    }
    Err(format!("the watch of {key:?} ended"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mw_config::Registry;

    fn parse(src: &str) -> Result<Option<RemoteConfig>, String> {
        Registry::new()
            .with(Box::new(RemoteChecker))
            .parse(src, "t.toml")
            .map(|c| c.section::<RemoteConfigSection>().cloned().unwrap().0)
            .map_err(|d| d.to_string())
    }

    #[test]
    fn absent_means_no_watch_and_defaults_fill_the_rest() {
        assert_eq!(parse("").unwrap(), None);
        let rc = parse("[remote_config]\nurl = \"nats://h:4222\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(rc.urls, ["nats://h:4222"]);
        assert_eq!(rc.bucket, DEFAULT_BUCKET);
        assert_eq!(rc.key_for("Acme Plant 1"), "acme-plant-1");
        assert_eq!(rc.auth, Auth::None);
        let rc = parse(
            "[remote_config]\nurl = \"tls://h:4222\"\nbucket = \"cfg\"\nkey = \"gw1\"\n\
             token_file = \"/t\"\ntls = { ca = \"ca.pem\" }\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((rc.bucket.as_str(), rc.key_for("x")), ("cfg", "gw1".into()));
        assert!(matches!(rc.auth, Auth::Token { .. }));
        assert_eq!(rc.tls.unwrap().ca, std::path::PathBuf::from("ca.pem"));
    }

    #[test]
    fn every_problem_is_named_at_its_line() {
        let e = parse("[remote_config]\nbucket = \"a b\"\nkey = \"\"\ncolour = 1\n").unwrap_err();
        assert!(e.contains("missing required key \"url\""), "{e}");
        assert!(
            e.contains("t.toml:2:") && e.contains("invalid \"bucket\""),
            "{e}"
        );
        assert!(
            e.contains("t.toml:3:") && e.contains("invalid \"key\""),
            "{e}"
        );
        assert!(e.contains("t.toml:4:") && e.contains("colour"), "{e}");
        let e = parse("[remote_config]\nurl = \"http://h:1\"\n").unwrap_err();
        assert!(e.contains("invalid \"url\""), "{e}");
    }
}
