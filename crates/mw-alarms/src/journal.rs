//! The alarm journal: every transition and every operator action, one JSON record per
//! mw-historian WAL record (CRC32C-framed, torn tails cut at open). A write returns only once
//! synced ([`Journal::append`] = append + fsync of the whole group), so a transition or an
//! action that was answered survives a crash. [`restore`] rebuilds each alarm's lifecycle
//! position from the records.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use mw_historian::{Storage, Wal, WalError, WalOptions};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{Machine, State};

/// One journal record. `action` is empty for a transition the process caused; `user` is empty
/// then too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Ns since the epoch.
    pub ts: i64,
    pub alarm: String,
    pub area: String,
    pub priority: String,
    pub from: State,
    pub to: State,
    /// The process condition after the step (for restore).
    pub condition: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shelved_until: Option<i64>,
    /// The input's value at the time, if it had a usable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The operator's comment or reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the alarm journal in {}: {source}", dir.display())]
    Open {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the alarm journal: {0}")]
    Write(#[from] WalError),
}

/// The journal, opened for appending.
pub struct Journal {
    wal: Wal,
}

/// What opening found besides the records.
#[derive(Debug, Default)]
pub struct Opened {
    pub records: Vec<Record>,
    /// Records that could not be read (damage, unknown format), as messages to log once.
    pub problems: Vec<String>,
}

impl Journal {
    /// Opens (creating) the journal in `dir` and reads every record.
    pub fn open(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
    ) -> Result<(Journal, Opened), JournalError> {
        let (wal, replay) =
            Wal::open(storage, WalOptions::new(&dir)).map_err(|source| JournalError::Open {
                dir: dir.clone(),
                source,
            })?;
        let mut opened = Opened::default();
        if let Some(t) = &replay.truncated {
            opened.problems.push(format!(
                "cut a torn tail of {} bytes at {}:{} ({})",
                t.dropped_bytes,
                t.segment.display(),
                t.at,
                t.reason
            ));
        }
        for c in &replay.corrupt {
            opened.problems.push(format!(
                "skipped {} damaged bytes at {}:{} ({})",
                c.skipped_bytes,
                c.segment.display(),
                c.at,
                c.reason
            ));
        }
        for (i, r) in replay.records.iter().enumerate() {
            match serde_json::from_slice::<Record>(r) {
                Ok(rec) => opened.records.push(rec),
                Err(e) => opened.problems.push(format!(
                    "record #{} of {} is unreadable: {e}",
                    i + 1,
                    dir.display()
                )),
            }
        }
        Ok((Journal { wal }, opened))
    }

    /// Appends `records` and syncs them (one fsync for the group). On error none is durable.
    pub fn append(&mut self, records: &[Record]) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        let bufs: Vec<Vec<u8>> = records
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap_or_default())
            .collect();
        let refs: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
        self.wal.append(&refs)?;
        self.wal.sync()?;
        Ok(())
    }
}

/// Each alarm's last lifecycle position in `records` (latching comes from the definition, so
/// the caller sets it).
pub fn restore(records: &[Record]) -> HashMap<String, Machine> {
    let mut out = HashMap::new();
    for r in records {
        out.insert(
            r.alarm.clone(),
            Machine {
                state: r.to,
                condition: r.condition,
                shelved_until: r.shelved_until,
                latching: false,
            },
        );
    }
    out
}
