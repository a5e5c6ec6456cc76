//! The edge node's `bdSeq`, kept in `<site.data_dir>/sparkplug/{group}/{edge}/bdseq` (decimal
//! text) through mw-storage: written to `bdseq.tmp`, synced, renamed over the old file, so a
//! crash leaves the old or the new number, never a torn one. The file holds the bdSeq of the
//! *next* session (the edge state machine persists it before each connection), so a restart
//! never reuses one a host has seen.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mw_storage::Storage;

/// The bdSeq file of one edge node.
#[derive(Clone)]
pub struct BdSeqFile {
    storage: Arc<dyn Storage>,
    path: PathBuf,
}

impl BdSeqFile {
    /// The file of `group`/`edge` under `data_dir` (ids checked by the config: no separators).
    pub fn new(storage: Arc<dyn Storage>, data_dir: &Path, group: &str, edge: &str) -> BdSeqFile {
        BdSeqFile {
            storage,
            path: data_dir
                .join("sparkplug")
                .join(group)
                .join(edge)
                .join("bdseq"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored bdSeq: `Ok(None)` if there is no file yet, `Err` (with what it holds) if it is
    /// unreadable or not a number 0–255.
    pub fn load(&self) -> Result<Option<u8>, String> {
        match self.storage.read(&self.path) {
            Ok(b) => {
                let text = String::from_utf8_lossy(&b);
                text.trim().parse::<u8>().map(Some).map_err(|_| {
                    format!(
                        "{} holds {:?}, not a bdSeq (0-255)",
                        self.path.display(),
                        text.chars().take(20).collect::<String>()
                    )
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", self.path.display())),
        }
    }

    /// Stores `bd_seq` durably (atomic replace).
    pub fn save(&self, bd_seq: u8) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        self.storage.create_dir_all(dir)?;
        let tmp = self.path.with_extension("tmp");
        let _ = self.storage.remove(&tmp);
        let mut f = self.storage.open_append(&tmp)?;
        f.append(format!("{bd_seq}\n").as_bytes())?;
        f.sync()?;
        drop(f);
        self.storage.rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mw_storage::MemStorage;

    #[test]
    fn a_crash_leaves_the_old_or_the_new_bdseq() {
        let mem = MemStorage::new();
        let f = BdSeqFile::new(Arc::new(mem.clone()), Path::new("/d"), "G", "E");
        assert_eq!(f.load(), Ok(None));
        f.save(7).unwrap();
        assert_eq!(f.load(), Ok(Some(7)));
        f.save(8).unwrap();
        mem.crash();
        assert_eq!(f.load(), Ok(Some(8)));
        assert_eq!(f.path(), Path::new("/d/sparkplug/G/E/bdseq"));
        let mut raw = mem.open_append(f.path()).unwrap();
        raw.append(b"x").unwrap();
        raw.sync().unwrap();
        assert!(f.load().unwrap_err().contains("not a bdSeq"));
    }
}
