//! The broker's state on disk: persistent sessions (subscriptions, queued deliveries, unreleased
//! QoS 2 ids, unacknowledged publishes) and retained messages, as one JSON snapshot written
//! through mw-storage's `Storage` (new file synced, then atomically renamed over the old one).
//!
//! When: on a clean stop, after every connection has handed its in-flight publishes back, and
//! every [`SAVE_EVERY`] while something changed. A crash loses at most what changed since the
//! last snapshot (and the in-flight windows of connected clients); a damaged or unreadable file
//! is reported and set aside (`.damaged`), and the broker starts empty rather than not at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use mw_storage::Storage;

/// How often a changed state is saved while the broker runs.
pub const SAVE_EVERY: Duration = Duration::from_secs(2);

const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub retained: Vec<SavedMessage>,
    pub sessions: Vec<SavedSession>,
}

impl Snapshot {
    pub fn new(retained: Vec<SavedMessage>, sessions: Vec<SavedSession>) -> Snapshot {
        Snapshot {
            format: FORMAT,
            retained,
            sessions,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedMessage {
    pub topic: String,
    /// base64
    pub payload: String,
    pub qos: u8,
    pub retain: bool,
    /// Milliseconds of message expiry left when saved.
    pub expires_in_ms: Option<u64>,
    pub payload_format_indicator: Option<u8>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    /// base64
    pub correlation_data: Option<String>,
    pub user_properties: Vec<(String, String)>,
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedDelivery {
    pub msg: SavedMessage,
    pub qos: u8,
    pub retain: bool,
    pub sub_ids: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSub {
    pub raw: String,
    pub group: Option<String>,
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub id: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SavedPending {
    Publish(Box<SavedDelivery>),
    Release,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSession {
    pub client_id: String,
    pub expiry: Option<u32>,
    /// Milliseconds it had been disconnected when saved (0 if it was online).
    pub disconnected_ms: u64,
    pub subs: Vec<SavedSub>,
    pub queue: Vec<SavedDelivery>,
    pub inbound_qos2: Vec<u16>,
    pub unacked: Vec<(u16, SavedPending)>,
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn unb64(s: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("{what}: not base64 ({e})"))
}

/// Where the broker keeps its state, and the storage it writes through.
pub struct StateFile {
    storage: Box<dyn Storage>,
    path: PathBuf,
}

impl StateFile {
    pub fn new(storage: Box<dyn Storage>, dir: &Path) -> StateFile {
        StateFile {
            storage,
            path: dir.join("broker-state.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state; `Ok(None)` when there is none. A file that cannot be read back is
    /// renamed to `….damaged` and reported as the error.
    pub fn load(&self) -> Result<Option<Snapshot>, String> {
        let bytes = match self.storage.read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        let parsed: Result<Snapshot, String> = serde_json::from_slice(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|s: Snapshot| {
                if s.format == FORMAT {
                    Ok(s)
                } else {
                    Err(format!("unknown format {}", s.format))
                }
            });
        match parsed {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                let aside = self.path.with_extension("json.damaged");
                let _ = self.storage.rename(&self.path, &aside);
                Err(format!(
                    "{} is damaged ({e}); set aside as {} — the broker starts without saved sessions",
                    self.path.display(),
                    aside.display()
                ))
            }
        }
    }

    /// Writes `s` durably: a new file, synced, renamed over the old one.
    pub fn save(&self, s: &Snapshot) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        self.storage.create_dir_all(dir)?;
        let tmp = self.path.with_extension("json.tmp");
        let _ = self.storage.remove(&tmp);
        let bytes = serde_json::to_vec(s).map_err(std::io::Error::other)?;
        let mut f = self.storage.open_append(&tmp)?;
        f.append(&bytes)?;
        f.sync()?;
        drop(f);
        self.storage.rename(&tmp, &self.path)
    }
}
