//! Users: name, role, argon2id password hash, disabled flag, in `SECURITY_DIR/users.json`
//! (mode 0600, replaced atomically on every change). There are no default users.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::{AuthError, Role, StoreError, crypto, fsutil};

/// Shortest password accepted (characters).
pub const PASSWORD_MIN_CHARS: usize = 12;
/// Longest password accepted (bytes); bounds the work an attacker can ask for.
pub const PASSWORD_MAX_BYTES: usize = 1024;
const NAME_MAX: usize = 32;
pub(crate) const FILE: &str = "users.json";
const FORMAT: u32 = 1;

/// Argon2id cost parameters (docs/security.md explains the choice and its measured cost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over the memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl HashParams {
    /// What new hashes use: 64 MiB, 2 passes, 1 lane — about 110 ms per check on the 2-core
    /// reference machine, 3.4 times the memory-time of OWASP's minimum (19 MiB, 2 passes);
    /// docs/security.md has the measurements.
    pub const DEFAULT: HashParams = HashParams {
        m_kib: 64 * 1024,
        t: 2,
        p: 1,
    };

    fn argon2(self) -> Result<Argon2<'static>, StoreError> {
        let params = Params::new(self.m_kib, self.t, self.p, None)
            .map_err(|e| StoreError::Hash(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) for `password`, with a fresh
    /// 128-bit salt.
    pub fn hash(self, password: &str) -> Result<String, StoreError> {
        let salt = crypto::random::<16>()?;
        let argon2 = self.argon2()?;
        let h = in_slot(|| argon2.hash_password_with_salt(password.as_bytes(), &salt))
            .map_err(|e| StoreError::Hash(e.to_string()))?;
        Ok(h.to_string())
    }
}

/// Password hashes computed at once, at most: each holds `m_kib` of memory, so a burst of
/// logins costs at most this many times that (others wait for a slot).
pub const MAX_CONCURRENT_HASHES: usize = 2;

static SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Runs `f` in one of the [`MAX_CONCURRENT_HASHES`] slots (blocking until one is free).
fn in_slot<T>(f: impl FnOnce() -> T) -> T {
    struct Slot;
    impl Drop for Slot {
        fn drop(&mut self) {
            let mut n = SLOTS.0.lock().unwrap_or_else(|e| e.into_inner());
            *n -= 1;
            SLOTS.1.notify_one();
        }
    }
    {
        let mut n = SLOTS.0.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_CONCURRENT_HASHES {
            n = SLOTS.1.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }
    let _slot = Slot;
    f()
}

/// Whether `password` matches the PHC string `phc` (with the parameters stored in it).
fn verify_phc(phc: &str, password: &str) -> bool {
    in_slot(|| {
        Argon2::default()
            .verify_password(password.as_bytes(), phc)
            .is_ok()
    })
}

/// What an unknown user's password is checked against with the default parameters: the hash of
/// a random password that was thrown away (so it matches nothing). Made once, so even the first
/// unknown name costs one check, not two.
const DUMMY_HASH: &str = "$argon2id$v=19$m=65536,t=2,p=1$XeYMOBi2DZCMxcKn7ZcLmA$c1UFuPPEJYCXP5AKpDizUJYDOTiGUaRQeiu9zdXFndU";

/// A user as others see it: never the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// When it was created (ns since the Unix epoch).
    pub created_ns: i64,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    name: String,
    role: Role,
    password_hash: String,
    #[serde(default)]
    disabled: bool,
    created_ns: i64,
}

impl Record {
    fn user(&self) -> User {
        User {
            name: self.name.clone(),
            role: self.role,
            disabled: self.disabled,
            created_ns: self.created_ns,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    users: Vec<Record>,
}

/// Checks a user name: 1–32 characters of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() || name.len() > NAME_MAX || !first_ok || !name.chars().all(ok_char) {
        return Err(StoreError::Invalid(format!(
            "invalid user name {name:?}: use 1 to {NAME_MAX} characters of a-z, 0-9, '.', '_', '-', \
             starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Checks a new password: at least 12 characters, at most 1024 bytes, not the user name.
/// (No composition rules: length is what counts, NIST SP 800-63B.)
pub fn validate_password(name: &str, password: &str) -> Result<(), StoreError> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(StoreError::Invalid(format!(
            "the password is too short: at least {PASSWORD_MIN_CHARS} characters"
        )));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(StoreError::Invalid(format!(
            "the password is too long: at most {PASSWORD_MAX_BYTES} bytes"
        )));
    }
    if password.eq_ignore_ascii_case(name) {
        return Err(StoreError::Invalid(
            "the password must not be the user name".to_owned(),
        ));
    }
    Ok(())
}

/// The users file, loaded. Changes are written back before the method returns.
pub struct UserStore {
    path: PathBuf,
    records: Vec<Record>,
    params: HashParams,
    /// A hash of a random password, verified against for unknown users so they cost as much.
    dummy: OnceLock<Option<String>>,
}

impl UserStore {
    /// Loads `SECURITY_DIR/users.json`; a missing file is an empty store.
    pub fn open(security_dir: &Path) -> Result<UserStore, StoreError> {
        let path = security_dir.join(FILE);
        let records = crate::fsutil::read_versioned::<FileFormat>(&path, FORMAT, |f| f.version)?
            .map_or_else(Vec::new, |f| f.users);
        Ok(UserStore {
            path,
            records,
            params: HashParams::DEFAULT,
            dummy: OnceLock::new(),
        })
    }

    /// Uses `params` for hashes made from now on (tests use cheap ones).
    pub fn with_params(mut self, params: HashParams) -> UserStore {
        self.params = params;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every user, sorted by name.
    pub fn list(&self) -> Vec<User> {
        let mut v: Vec<User> = self.records.iter().map(Record::user).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn get(&self, name: &str) -> Option<User> {
        self.find(name).map(Record::user)
    }

    fn find(&self, name: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.name == name)
    }

    fn find_mut(&mut self, name: &str) -> Result<&mut Record, StoreError> {
        self.records
            .iter_mut()
            .find(|r| r.name == name)
            .ok_or_else(|| StoreError::NoSuchUser(name.to_owned()))
    }

    /// Adds a user (name and password checked) and saves.
    pub fn add(&mut self, name: &str, role: Role, password: &str) -> Result<User, StoreError> {
        validate_name(name)?;
        if self.find(name).is_some() {
            return Err(StoreError::UserExists(name.to_owned()));
        }
        validate_password(name, password)?;
        let rec = Record {
            name: name.to_owned(),
            role,
            password_hash: self.params.hash(password)?,
            disabled: false,
            created_ns: mw_model::now_ns(),
        };
        let user = rec.user();
        self.records.push(rec);
        self.save()?;
        Ok(user)
    }

    /// Sets a new password (checked) and saves.
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), StoreError> {
        validate_password(name, password)?;
        let hash = self.params.hash(password)?;
        self.find_mut(name)?.password_hash = hash;
        self.save()
    }

    pub fn set_role(&mut self, name: &str, role: Role) -> Result<(), StoreError> {
        self.find_mut(name)?.role = role;
        self.save()
    }

    /// Disables (or enables again) a user and saves. A disabled user cannot log in.
    pub fn set_disabled(&mut self, name: &str, disabled: bool) -> Result<(), StoreError> {
        self.find_mut(name)?.disabled = disabled;
        self.save()
    }

    /// Deletes a user and saves.
    pub fn remove(&mut self, name: &str) -> Result<(), StoreError> {
        let before = self.records.len();
        self.records.retain(|r| r.name != name);
        if self.records.len() == before {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        self.save()
    }

    /// Checks a name and password. Unknown names (and invalid ones) verify against a dummy
    /// hash with the store's parameters, so they take about as long as a wrong password; the
    /// error is the same [`AuthError::Denied`]. A disabled user is refused after the password
    /// was checked (so the answer does not reveal the account state to a guesser).
    pub fn verify_password(&self, name: &str, password: &str) -> Result<User, AuthError> {
        if password.len() > PASSWORD_MAX_BYTES {
            return Err(AuthError::Denied);
        }
        let Some(rec) = self.find(name) else {
            let dummy = if self.params == HashParams::DEFAULT {
                Some(DUMMY_HASH)
            } else {
                self.dummy
                    .get_or_init(|| {
                        let pw = crypto::b64url(&crypto::random::<32>().ok()?);
                        self.params.hash(&pw).ok()
                    })
                    .as_deref()
            };
            if let Some(d) = dummy {
                let _ = verify_phc(d, password);
            }
            return Err(AuthError::Denied);
        };
        if !verify_phc(&rec.password_hash, password) {
            return Err(AuthError::Denied);
        }
        if rec.disabled {
            return Err(AuthError::Disabled(rec.name.clone()));
        }
        Ok(rec.user())
    }

    fn save(&self) -> Result<(), StoreError> {
        let f = FileFormat {
            version: FORMAT,
            users: self.records.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&f)
            .map_err(|e| StoreError::Invalid(format!("cannot serialize users: {e}")))?;
        bytes.push(b'\n');
        fsutil::write_atomic(&self.path, &bytes, 0o600)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Cheap parameters so tests do not spend seconds hashing.
    pub(crate) const FAST: HashParams = HashParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "mw-security-{name}-{}-{}",
            std::process::id(),
            mw_model::now_ns()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const PW: &str = "correct horse battery";

    #[test]
    fn hash_verify_wrong_disabled_unknown() {
        let dir = temp_dir("users");
        let mut s = UserStore::open(&dir).unwrap().with_params(FAST);
        assert!(s.list().is_empty(), "no default users");
        s.add("alice", Role::Operator, PW).unwrap();
        let u = s.verify_password("alice", PW).unwrap();
        assert_eq!((u.name.as_str(), u.role), ("alice", Role::Operator));
        assert!(matches!(
            s.verify_password("alice", "correct horse batterY"),
            Err(AuthError::Denied)
        ));
        assert!(matches!(
            s.verify_password("bob", PW),
            Err(AuthError::Denied)
        ));
        assert!(matches!(s.verify_password("", PW), Err(AuthError::Denied)));
        s.set_disabled("alice", true).unwrap();
        assert!(matches!(
            s.verify_password("alice", PW),
            Err(AuthError::Disabled(n)) if n == "alice"
        ));
        // A reopened store reads what was written, and the hash is argon2id, not the password.
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(text.contains("$argon2id$v=19$m=64,t=1,p=1$"), "{text}");
        assert!(!text.contains(PW));
        let mode = std::fs::metadata(dir.join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut s = UserStore::open(&dir).unwrap().with_params(FAST);
        assert!(s.get("alice").unwrap().disabled);
        s.set_disabled("alice", false).unwrap();
        s.set_password("alice", "another long passphrase").unwrap();
        assert!(s.verify_password("alice", PW).is_err());
        assert!(
            s.verify_password("alice", "another long passphrase")
                .is_ok()
        );
        s.remove("alice").unwrap();
        assert!(matches!(s.remove("alice"), Err(StoreError::NoSuchUser(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unknown_user_costs_about_as_much_as_a_wrong_password() {
        use std::time::Instant;
        let dir = temp_dir("timing");
        let mut s = UserStore::open(&dir).unwrap();
        s.add("alice", Role::Viewer, PW).unwrap();
        let time = |name: &str| {
            let t0 = Instant::now();
            for _ in 0..3 {
                assert!(s.verify_password(name, "wrong password!").is_err());
            }
            t0.elapsed().as_secs_f64()
        };
        let (known, unknown) = (time("alice"), time("mallory"));
        let ratio = unknown / known;
        // Wide bounds: the machine is shared; without the dummy hash the ratio is ~0.001.
        assert!(
            (0.33..3.0).contains(&ratio),
            "known {known:.3}s, unknown {unknown:.3}s"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_dummy_hash_has_the_default_parameters() {
        let d = format!(
            "$argon2id$v=19$m={},t={},p={}$",
            HashParams::DEFAULT.m_kib,
            HashParams::DEFAULT.t,
            HashParams::DEFAULT.p
        );
        assert!(
            DUMMY_HASH.starts_with(&d),
            "update DUMMY_HASH with the parameters"
        );
        assert!(!verify_phc(DUMMY_HASH, ""));
    }

    #[test]
    fn default_params_produce_argon2id_with_them() {
        let h = HashParams::DEFAULT.hash(PW).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=65536,t=2,p=1$"), "{h}");
        assert!(verify_phc(&h, PW));
        assert!(!verify_phc(&h, "wrong"));
        assert_ne!(h, HashParams::DEFAULT.hash(PW).unwrap(), "salted");
    }

    #[test]
    fn name_and_password_rules() {
        for ok in ["alice", "a", "op-1", "j.smith", "x_9", &"a".repeat(32)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Alice", "-x", ".x", "a b", "ä", "a/b", &"a".repeat(33)] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains("a-z, 0-9"), "{bad}: {e}");
        }
        assert!(validate_password("alice", "short").is_err());
        assert!(validate_password("alicealice12", "ALICEALICE12").is_err());
        assert!(validate_password("alice", &"x".repeat(1025)).is_err());
        assert!(validate_password("alice", "twelve chars").is_ok());
        let dir = temp_dir("dupe");
        let mut s = UserStore::open(&dir).unwrap().with_params(FAST);
        s.add("alice", Role::Viewer, PW).unwrap();
        assert!(matches!(
            s.add("alice", Role::Admin, PW),
            Err(StoreError::UserExists(_))
        ));
        // The error for a too-short password does not echo it.
        let e = s
            .add("bob", Role::Viewer, "hunter2")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn at_most_two_hashes_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NOW: AtomicUsize = AtomicUsize::new(0);
        static MAX: AtomicUsize = AtomicUsize::new(0);
        let threads: Vec<_> = (0..6)
            .map(|_| {
                std::thread::spawn(|| {
                    in_slot(|| {
                        let n = NOW.fetch_add(1, Ordering::SeqCst) + 1;
                        MAX.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(30));
                        NOW.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Other tests hash at the same time (the slots are per process), so the test sees at
        // most two, not exactly two; without the limit all six would overlap.
        let max = MAX.load(Ordering::SeqCst);
        assert!((1..=MAX_CONCURRENT_HASHES).contains(&max), "{max} at once");
    }

    #[test]
    fn a_corrupt_file_is_reported_with_its_path() {
        let dir = temp_dir("corrupt");
        std::fs::write(dir.join(FILE), "{\"version\":1,\"users\":[{]}").unwrap();
        let e = UserStore::open(&dir).err().expect("corrupt").to_string();
        assert!(
            e.contains("users.json") && e.contains("not a valid file"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
