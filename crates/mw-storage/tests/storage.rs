//! `Storage::rename`: an atomic, durable replace on both storages, and the crash semantics of
//! the in-memory one (a renamed file keeps only what of it was synced).

use std::path::Path;

use mw_storage::storage::{FsStorage, MemStorage, Storage};

fn write(s: &dyn Storage, path: &Path, bytes: &[u8], sync: bool) {
    let mut f = s.open_append(path).expect("open");
    f.append(bytes).expect("append");
    if sync {
        f.sync().expect("sync");
    }
}

#[test]
fn mem_rename_replaces_the_target_and_survives_a_crash_when_synced_first() {
    let disk = MemStorage::new();
    let (tmp, target) = (Path::new("/d/ledger.tmp"), Path::new("/d/ledger"));
    write(&disk, target, b"old", true);
    write(&disk, tmp, b"new", true);
    disk.rename(tmp, target).expect("rename");
    assert_eq!(disk.content(target).as_deref(), Some(&b"new"[..]));
    assert_eq!(disk.content(tmp), None);
    disk.crash();
    assert_eq!(disk.content(target).as_deref(), Some(&b"new"[..]));
    assert_eq!(
        disk.list(Path::new("/d")).unwrap(),
        vec![target.to_path_buf()]
    );
}

#[test]
fn mem_rename_of_an_unsynced_file_loses_its_bytes_in_a_crash() {
    let disk = MemStorage::new();
    let (tmp, target) = (Path::new("/d/ledger.tmp"), Path::new("/d/ledger"));
    write(&disk, target, b"old", true);
    write(&disk, tmp, b"new", false);
    disk.rename(tmp, target).expect("rename");
    disk.crash();
    // the old content is gone (replaced), the new one was never durable: this is why an atomic
    // replace syncs before renaming
    assert_eq!(disk.content(target).as_deref(), Some(&b""[..]));
}

#[test]
fn mem_rename_of_a_missing_file_fails_and_changes_nothing() {
    let disk = MemStorage::new();
    write(&disk, Path::new("/d/a"), b"a", true);
    let err = disk
        .rename(Path::new("/d/missing"), Path::new("/d/a"))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(disk.content(Path::new("/d/a")).as_deref(), Some(&b"a"[..]));
}

#[test]
fn fs_rename_replaces_the_target() {
    let dir = std::env::temp_dir().join(format!("mw-hist-rename-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = FsStorage;
    s.create_dir_all(&dir).unwrap();
    let (tmp, target) = (dir.join("ledger.tmp"), dir.join("ledger"));
    write(&s, &target, b"old", true);
    write(&s, &tmp, b"new", true);
    s.rename(&tmp, &target).expect("rename");
    assert_eq!(s.read(&target).unwrap(), b"new");
    assert!(!tmp.exists());
    assert_eq!(s.list(&dir).unwrap(), vec![target.clone()]);
    assert_eq!(
        s.rename(&tmp, &target).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
