//! Files that hold secrets: written atomically (temp file, fsync, rename, fsync of the
//! directory) with mode 0600, in a directory of mode 0700.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::StoreError;

/// Creates `dir` (and parents) if needed; a directory this creates gets mode 0700.
pub(crate) fn private_dir(dir: &Path) -> Result<(), StoreError> {
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::io(dir, e))?;
    }
    Ok(())
}

/// Replaces `path` with `bytes` atomically: a reader sees the old file or the new one, never
/// a mix, also after a crash.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    private_dir(dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` only applies when the file is created; a stale temp file is fixed here.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| StoreError::io(path, e))
}

/// Writes a new file that must not exist yet (`create_new`), with `mode`, and fsyncs it.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Reads a versioned JSON store file: `Ok(None)` when it does not exist, an error naming the
/// file when it does not parse or has another `version` than `expected`.
pub(crate) fn read_versioned<F: serde::de::DeserializeOwned>(
    path: &Path,
    expected: u32,
    version: impl Fn(&F) -> u32,
) -> Result<Option<F>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let f: F = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let v = version(&f);
    if v != expected {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            message: format!("format version {v} (this build reads {expected})"),
        });
    }
    Ok(Some(f))
}
