//! Identification, authentication, use control and integrity for Millwright (in the spirit of
//! IEC 62443-4-2): who may do what ([`Role`], [`Permission`]), who someone is ([`UserStore`]
//! with argon2id passwords, [`TokenStore`] API tokens, [`SessionStore`] UI sessions, client
//! certificates), how guessing is slowed ([`LoginThrottle`]), and a tamper-evident record of
//! what was done ([`audit`]).
//!
//! Other crates authenticate through the [`Authenticator`] trait and get a [`Principal`]; they
//! decide with [`Role::allows`]. This crate knows no HTTP and no MQTT: the web layer and the
//! broker call it.
//!
//! Secrets (passwords, token secrets, session ids) never appear in an error, a `Debug` output,
//! a log line or an audit record made here.

pub mod audit;
pub mod certs;
mod crypto;
mod fsutil;
mod role;
mod session;
mod throttle;
mod tokens;
mod users;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Instant;

use mw_model::{Event, EventKind};

pub use role::{Permission, Role, UnknownRole};
pub use session::{SessionBasis, SessionConfig, SessionStore};
pub use throttle::{LoginThrottle, ThrottleConfig};
pub use tokens::{IssuedToken, TokenInfo, TokenStore, parse_expiry, token_id};
pub use users::{
    HashParams, MAX_CONCURRENT_HASHES, PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS, User, UserStore,
    validate_name, validate_password,
};

/// A fresh random secret: 256 bits, base64url (for an ephemeral login token).
pub fn random_secret() -> Result<String, StoreError> {
    Ok(crypto::b64url(&crypto::random::<32>()?))
}

/// A value bound to a session id without revealing it (SHA-256 of a fixed label and the id): a
/// page carries it and state-changing requests echo it (CSRF protection), while the id itself
/// stays in an HttpOnly cookie.
pub fn session_binding(session_id: &str) -> String {
    crypto::sha256_hex(format!("mw-session-binding\0{session_id}").as_bytes())
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    crypto::ct_eq(a, b)
}

/// Replaces `path` with `bytes` atomically (temporary file, fsync, rename, fsync of the
/// directory), mode 0600, creating its directory with mode 0700: a reader sees the old file
/// or the new one, also after a crash.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    fsutil::write_atomic(path, bytes, 0o600)
}

/// The directory under a data directory that holds users, tokens and certificates.
pub fn security_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("security")
}

/// How a principal proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    Password,
    Token,
    Session,
    ClientCertificate,
}

impl Via {
    pub const fn as_str(self) -> &'static str {
        match self {
            Via::Password => "password",
            Via::Token => "token",
            Via::Session => "session",
            Via::ClientCertificate => "client_certificate",
        }
    }
}

/// Someone authenticated: a user name (or a token's name), its role, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub via: Via,
}

impl Principal {
    pub fn allows(&self, p: Permission) -> bool {
        self.role.allows(p)
    }
}

/// Why authentication failed. The messages never contain the secret that was offered, and
/// [`AuthError::Denied`] is deliberately the same for an unknown user and a wrong password.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong password (not told apart on purpose).
    #[error("invalid user name or password")]
    Denied,
    #[error("user {0:?} is disabled")]
    Disabled(String),
    /// The token is not of the form `mw_<id>_<secret>`.
    #[error("malformed token (expected mw_<16 hex digits>_<43 base64url characters>)")]
    MalformedToken,
    #[error("unknown or invalid token")]
    UnknownToken,
    #[error("token {0} has expired")]
    ExpiredToken(String),
    #[error("token {0} was revoked")]
    RevokedToken(String),
    #[error("unknown or expired session")]
    NoSession,
    /// Too many failures: try again after this long.
    #[error("too many failed attempts; try again in {} s", .0.as_secs().max(1))]
    Throttled(std::time::Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A problem reading or writing a security file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid file of this kind: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("no token with id {0:?}")]
    NoSuchToken(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the system random number generator failed")]
    Random,
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// What other crates (the web layer, the MQTT broker) authenticate with.
pub trait Authenticator: Send + Sync {
    /// A user name and password. Unknown users take about as long as known ones.
    fn password(&self, user: &str, password: &str) -> Result<Principal, AuthError>;
    /// An API token as presented (`mw_<id>_<secret>`).
    fn token(&self, token: &str) -> Result<Principal, AuthError>;
    /// The user a verified client certificate names (its subject CN, see
    /// [`certs::client_cert_user`]): known and not disabled. Default: nobody.
    fn certificate(&self, user: &str) -> Result<Principal, AuthError> {
        let _ = user;
        Err(AuthError::Denied)
    }
    /// Whether the session of `session` (as the session store gave it, started with `basis`)
    /// still holds: for a user, that it exists and is not disabled (with its current role);
    /// for a token, that it is neither revoked nor expired. Called on every use of a session,
    /// so a `user disable|del` or `token revoke` ends the sessions at their next request.
    /// Default: only the process's own sessions hold.
    fn session(&self, session: &Principal, basis: &SessionBasis) -> Result<Principal, AuthError> {
        match basis {
            SessionBasis::Process => Ok(session.clone()),
            SessionBasis::User | SessionBasis::Token(_) => Err(AuthError::NoSession),
        }
    }
}

/// The [`Authenticator`] over the files in `DATA_DIR/security/`. The CLI (`millwright user …`,
/// `token …`) changes the files while a server runs, so every check first compares each file's
/// identity (inode, modification time, length: one `stat`) with the one it last read and reads
/// the file again when it changed. A disabled user or a revoked token is refused from the next
/// request on. A file that changed but cannot be read is reported and the previous contents are
/// kept until it reads again.
pub struct LocalAuthenticator {
    dir: PathBuf,
    users: RwLock<Loaded<UserStore>>,
    tokens: RwLock<Loaded<TokenStore>>,
}

struct Loaded<T> {
    store: T,
    stamp: Option<Stamp>,
}

/// What tells a rewritten file apart (the stores write by rename, so the inode changes too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    modified: Option<std::time::SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some(Stamp {
        ino,
        modified: m.modified().ok(),
        len: m.len(),
    })
}

/// Reads `lock`'s store again if its file's stamp changed since it was read.
fn refresh<T>(lock: &RwLock<Loaded<T>>, path: &Path, open: impl FnOnce() -> Result<T, StoreError>) {
    let now = stamp(path);
    if lock.read().unwrap_or_else(|e| e.into_inner()).stamp == now {
        return;
    }
    match open() {
        Ok(store) => {
            *lock.write().unwrap_or_else(|e| e.into_inner()) = Loaded { store, stamp: now };
        }
        Err(e) => tracing::warn!("{e}; keeping what was read before"),
    }
}

impl LocalAuthenticator {
    /// Opens the stores under `security_dir` (missing files mean no users, no tokens).
    pub fn open(security_dir: &Path) -> Result<LocalAuthenticator, StoreError> {
        let a = LocalAuthenticator {
            dir: security_dir.to_owned(),
            users: RwLock::new(Loaded {
                store: UserStore::open(security_dir)?,
                stamp: None,
            }),
            tokens: RwLock::new(Loaded {
                store: TokenStore::open(security_dir)?,
                stamp: None,
            }),
        };
        a.reload()?;
        Ok(a)
    }

    /// Reads the files again (whether they changed or not).
    pub fn reload(&self) -> Result<(), StoreError> {
        let (us, ts) = (
            stamp(&self.dir.join(users::FILE)),
            stamp(&self.dir.join(tokens::FILE)),
        );
        let users = UserStore::open(&self.dir)?;
        let tokens = TokenStore::open(&self.dir)?;
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = Loaded {
            store: users,
            stamp: us,
        };
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = Loaded {
            store: tokens,
            stamp: ts,
        };
        Ok(())
    }

    fn users(&self) -> std::sync::RwLockReadGuard<'_, Loaded<UserStore>> {
        refresh(&self.users, &self.dir.join(users::FILE), || {
            UserStore::open(&self.dir)
        });
        self.users.read().unwrap_or_else(|e| e.into_inner())
    }

    fn tokens(&self) -> std::sync::RwLockReadGuard<'_, Loaded<TokenStore>> {
        refresh(&self.tokens, &self.dir.join(tokens::FILE), || {
            TokenStore::open(&self.dir)
        });
        self.tokens.read().unwrap_or_else(|e| e.into_inner())
    }

    fn enabled_user(&self, user: &str, via: Via) -> Result<Principal, AuthError> {
        let u = self.users().store.get(user).ok_or(AuthError::Denied)?;
        if u.disabled {
            return Err(AuthError::Disabled(u.name));
        }
        Ok(Principal {
            name: u.name,
            role: u.role,
            via,
        })
    }
}

impl Authenticator for LocalAuthenticator {
    fn password(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
        let u = self.users().store.verify_password(user, password)?;
        Ok(Principal {
            name: u.name,
            role: u.role,
            via: Via::Password,
        })
    }

    fn token(&self, token: &str) -> Result<Principal, AuthError> {
        self.tokens().store.authenticate_token(token)
    }

    fn certificate(&self, user: &str) -> Result<Principal, AuthError> {
        self.enabled_user(user, Via::ClientCertificate)
    }

    fn session(&self, session: &Principal, basis: &SessionBasis) -> Result<Principal, AuthError> {
        match basis {
            SessionBasis::Process => Ok(session.clone()),
            SessionBasis::User => self.enabled_user(&session.name, Via::Session),
            SessionBasis::Token(id) => {
                self.tokens()
                    .store
                    .check_id_at(id, mw_model::now_ns())
                    .map(|p| Principal {
                        via: Via::Session,
                        ..p
                    })
            }
        }
    }
}

/// A password login as a listener does it: refused while `throttle` holds the user or the
/// address back, then checked by `auth`; a wrong password or a disabled user counts as a
/// failure, a success clears the counts. Run it off the async executor (`spawn_blocking`): a
/// check takes tens of milliseconds on purpose.
pub fn login(
    auth: &dyn Authenticator,
    throttle: &LoginThrottle,
    user: &str,
    password: &str,
    addr: Option<IpAddr>,
    now: Instant,
) -> Result<Principal, AuthError> {
    throttle.check(user, addr, now)?;
    match auth.password(user, password) {
        Ok(p) => {
            throttle.success(user, addr);
            Ok(p)
        }
        Err(e @ (AuthError::Denied | AuthError::Disabled(_))) => {
            throttle.failure(user, addr, now);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The audit event of an authentication attempt, to publish on the bus (the audit sink records
/// it). `who` is the user name offered, or for a token its id ([`token_id`]); the secret is
/// never an argument, so it cannot end up in the record, and a `who` that is not a valid name
/// (a password typed into the name field) is replaced by `(invalid name)`.
pub fn auth_event(
    source: &str,
    who: &str,
    via: Via,
    addr: Option<IpAddr>,
    result: &Result<Principal, AuthError>,
) -> Event {
    let outcome = match result {
        Ok(_) => "ok",
        Err(AuthError::Throttled(_)) => "throttled",
        Err(AuthError::Store(_)) => "error",
        Err(_) => "denied",
    };
    let mut detail = format!("via={}", via.as_str());
    if let Some(a) = addr {
        detail.push_str(&format!(" from={a}"));
    }
    match result {
        Ok(p) => detail.push_str(&format!(" role={}", p.role)),
        Err(e) => detail.push_str(&format!(" reason={e}")),
    }
    Event::new(
        mw_model::now_ns(),
        source,
        EventKind::Audit {
            // A name that breaks the name rules is not written down: it is often a password
            // typed into the wrong field.
            actor: if validate_name(who).is_ok() {
                who.to_owned()
            } else {
                "(invalid name)".to_owned()
            },
            action: "login".to_owned(),
            outcome: outcome.to_owned(),
            detail,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::tests::{FAST, temp_dir};

    #[test]
    fn login_throttles_after_failures_and_audit_events_hold_no_secret() {
        let dir = temp_dir("login");
        let mut users = UserStore::open(&dir).unwrap().with_params(FAST);
        users
            .add("alice", Role::Operator, "the right passphrase")
            .unwrap();
        let auth = LocalAuthenticator::open(&dir).unwrap();
        let throttle = LoginThrottle::new(ThrottleConfig::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        let guess = "guess-n0-1234";
        for _ in 0..3 {
            let r = login(&auth, &throttle, "alice", guess, Some(ip), t0);
            assert!(matches!(r, Err(AuthError::Denied)));
            let ev = auth_event("http/api", "alice", Via::Password, Some(ip), &r);
            let text = serde_json::to_string(&ev).unwrap();
            assert!(
                text.contains("\"outcome\":\"denied\"") && !text.contains(guess),
                "{text}"
            );
        }
        let r = login(&auth, &throttle, "alice", guess, Some(ip), t0);
        assert!(matches!(r, Err(AuthError::Throttled(_))), "{r:?}");
        // Held back even with the right password until the delay has passed.
        let r = login(
            &auth,
            &throttle,
            "alice",
            "the right passphrase",
            Some(ip),
            t0,
        );
        assert!(matches!(r, Err(AuthError::Throttled(_))));
        let ok = login(
            &auth,
            &throttle,
            "alice",
            "the right passphrase",
            Some(ip),
            t0 + std::time::Duration::from_secs(2),
        );
        assert_eq!(ok.as_ref().unwrap().role, Role::Operator);
        let ev = auth_event("http/api", "alice", Via::Password, Some(ip), &ok);
        let e = audit::AuditEntry::from_event(&ev).unwrap();
        assert_eq!((e.outcome.as_str(), e.action.as_str()), ("ok", "login"));
        assert!(e.detail.contains("from=192.0.2.1") && e.detail.contains("role=operator"));
        assert!(
            throttle.check("alice", Some(ip), t0).is_ok(),
            "success cleared the counts"
        );
        // A password typed as the user name does not reach the audit trail.
        let r = login(&auth, &throttle, "Tr0ub4dor&3", "", Some(ip), t0);
        let ev = auth_event("http/api", "Tr0ub4dor&3", Via::Password, Some(ip), &r);
        assert!(!serde_json::to_string(&ev).unwrap().contains("Tr0ub4dor"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_local_authenticator_checks_passwords_and_tokens_and_follows_the_files() {
        let dir = temp_dir("authn");
        let mut users = UserStore::open(&dir).unwrap().with_params(FAST);
        users
            .add("alice", Role::Engineer, "a long enough secret")
            .unwrap();
        let a = LocalAuthenticator::open(&dir).unwrap();
        let p = a.password("alice", "a long enough secret").unwrap();
        assert_eq!(
            p,
            Principal {
                name: "alice".into(),
                role: Role::Engineer,
                via: Via::Password
            }
        );
        assert!(p.allows(Permission::ChangeDetectors) && !p.allows(Permission::ManageUsers));
        assert!(matches!(
            a.password("alice", "wrong"),
            Err(AuthError::Denied)
        ));
        assert!(matches!(a.token("mw_nope"), Err(AuthError::MalformedToken)));
        // A token made after the authenticator was opened (by another process: another store
        // over the same file) is seen at the next check, without a reload.
        let mut tokens = TokenStore::open(&dir).unwrap();
        let t = tokens
            .create(
                "ci",
                Role::Viewer,
                std::time::Duration::from_secs(3600),
                "alice",
            )
            .unwrap();
        assert_eq!(a.token(&t.token).unwrap().via, Via::Token);
        // Sessions rest on what they were started with, as the files say now.
        let session = |name: &str, role| Principal {
            name: name.into(),
            role,
            via: Via::Session,
        };
        let by_token = SessionBasis::Token(t.id.clone());
        assert_eq!(
            a.session(&session("ci", Role::Viewer), &by_token).unwrap(),
            session("ci", Role::Viewer)
        );
        assert_eq!(
            a.session(&session("alice", Role::Engineer), &SessionBasis::User)
                .unwrap(),
            session("alice", Role::Engineer)
        );
        users.set_disabled("alice", true).unwrap();
        assert!(matches!(
            a.password("alice", "a long enough secret"),
            Err(AuthError::Disabled(_))
        ));
        assert!(matches!(
            a.session(&session("alice", Role::Engineer), &SessionBasis::User),
            Err(AuthError::Disabled(_))
        ));
        users.remove("alice").unwrap();
        assert!(matches!(
            a.session(&session("alice", Role::Engineer), &SessionBasis::User),
            Err(AuthError::Denied)
        ));
        tokens.revoke(&t.id).unwrap();
        assert!(matches!(a.token(&t.token), Err(AuthError::RevokedToken(_))));
        assert!(matches!(
            a.session(&session("ci", Role::Viewer), &by_token),
            Err(AuthError::RevokedToken(_))
        ));
        // The process's own sessions need no file.
        assert!(
            a.session(&session("demo", Role::Admin), &SessionBasis::Process)
                .is_ok()
        );
        a.reload().unwrap();
        // The authenticator is usable as a trait object by other crates.
        let dynamic: &dyn Authenticator = &a;
        assert!(matches!(
            dynamic.token(&t.token),
            Err(AuthError::RevokedToken(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn error_messages_never_contain_the_secret_offered() {
        let dir = temp_dir("no-echo");
        let mut users = UserStore::open(&dir).unwrap().with_params(FAST);
        users
            .add("alice", Role::Viewer, "the real passphrase")
            .unwrap();
        let a = LocalAuthenticator::open(&dir).unwrap();
        let secret = "s3cr3t-Guess-4711";
        for e in [
            a.password("alice", secret).unwrap_err(),
            a.password("nobody", secret).unwrap_err(),
            a.token(secret).unwrap_err(),
            a.token(&format!("mw_0123456789abcdef_{secret}"))
                .unwrap_err(),
        ] {
            assert!(
                !e.to_string().contains(secret) && !format!("{e:?}").contains(secret),
                "{e:?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
