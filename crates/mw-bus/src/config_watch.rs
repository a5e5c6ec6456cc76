//! The config-distribution seam: a component whose config asks for it (mw-uplink's
//! `[remote_config]`, a NATS KV bucket) returns a [`ConfigWatch`] from
//! [`Component::config_watch`](crate::Component::config_watch); the binary runs its pipeline
//! until the watch yields a new [`ConfigRevision`], then starts again with it, and reports what
//! became of it ([`ConfigOutcome`]) to the next watch. The binary knows no transport; the
//! component knows nothing of how a revision is applied.

use std::sync::Arc;

use crate::BoxFuture;

/// A revision of the whole configuration text that passed the watch's `validate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigRevision {
    /// Increasing: revisions up to the one a watch was started `after` are not returned again.
    pub revision: u64,
    pub text: String,
}

/// What became of a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOutcome {
    Applied,
    /// Why, in the words `millwright check` or the failed start used.
    Rejected(String),
}

/// Checks a revision's text (`text`, `name` for messages) as `millwright check` would.
pub type Validate = Arc<dyn Fn(&str, &str) -> Result<(), String> + Send + Sync>;

/// Where new configuration revisions come from.
pub trait ConfigWatch: Send + Sync {
    /// Resolves with the first revision newer than `after` that passes `validate`; a revision
    /// that fails it is reported rejected by the watch itself and skipped. `pending` — the
    /// outcome of the revision the caller tried last — is reported first. Retries its transport
    /// on its own (the running configuration stays meanwhile): it never resolves with an error.
    fn next_revision(
        &self,
        after: u64,
        pending: Option<(u64, ConfigOutcome)>,
        validate: Validate,
    ) -> BoxFuture<ConfigRevision>;
}
