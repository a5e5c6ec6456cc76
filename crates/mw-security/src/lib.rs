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

use std::path::{Path, PathBuf};
use std::sync::RwLock;

pub use role::{Permission, Role, UnknownRole};
pub use session::{SessionConfig, SessionStore};
pub use throttle::{LoginThrottle, ThrottleConfig};
pub use tokens::{IssuedToken, TokenInfo, TokenStore, parse_expiry};
pub use users::{
    HashParams, MAX_CONCURRENT_HASHES, PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS, User, UserStore,
    validate_name, validate_password,
};

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
}

/// The [`Authenticator`] over the files in `DATA_DIR/security/`: users and tokens are read
/// once and again on [`LocalAuthenticator::reload`] (the CLI changes the files; a long-running
/// process reloads on a signal or a timer).
pub struct LocalAuthenticator {
    dir: PathBuf,
    users: RwLock<UserStore>,
    tokens: RwLock<TokenStore>,
}

impl LocalAuthenticator {
    /// Opens the stores under `security_dir` (missing files mean no users, no tokens).
    pub fn open(security_dir: &Path) -> Result<LocalAuthenticator, StoreError> {
        Ok(LocalAuthenticator {
            dir: security_dir.to_owned(),
            users: RwLock::new(UserStore::open(security_dir)?),
            tokens: RwLock::new(TokenStore::open(security_dir)?),
        })
    }

    /// Reads the files again.
    pub fn reload(&self) -> Result<(), StoreError> {
        let users = UserStore::open(&self.dir)?;
        let tokens = TokenStore::open(&self.dir)?;
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = users;
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = tokens;
        Ok(())
    }
}

impl Authenticator for LocalAuthenticator {
    fn password(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
        let u = self
            .users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .verify_password(user, password)?;
        Ok(Principal {
            name: u.name,
            role: u.role,
            via: Via::Password,
        })
    }

    fn token(&self, token: &str) -> Result<Principal, AuthError> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .authenticate_token(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::tests::{FAST, temp_dir};

    #[test]
    fn the_local_authenticator_checks_passwords_and_tokens_and_reloads() {
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
        // A token made after the authenticator was opened is seen after a reload.
        let t = TokenStore::open(&dir)
            .unwrap()
            .create(
                "ci",
                Role::Viewer,
                std::time::Duration::from_secs(3600),
                "alice",
            )
            .unwrap();
        assert!(matches!(a.token(&t.token), Err(AuthError::UnknownToken)));
        a.reload().unwrap();
        assert_eq!(a.token(&t.token).unwrap().via, Via::Token);
        // The authenticator is usable as a trait object by other crates.
        let dynamic: &dyn Authenticator = &a;
        assert_eq!(dynamic.token(&t.token).unwrap().role, Role::Viewer);
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
