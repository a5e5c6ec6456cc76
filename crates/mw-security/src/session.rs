//! UI sessions, in memory: a random 256-bit id (base64url) per login, an idle timeout and an
//! absolute lifetime, bounded in number (the oldest is evicted). Times are passed in
//! (`Instant`), so the logic is testable without sleeping; a restart logs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{AuthError, Principal, Role, StoreError, Via, crypto};

/// Session limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// A session unused for this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    pub absolute_lifetime: Duration,
    /// At most this many sessions; creating one more evicts the oldest.
    pub max_sessions: usize,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            idle_timeout: Duration::from_secs(15 * 60),
            absolute_lifetime: Duration::from_secs(8 * 3600),
            max_sessions: 10_000,
        }
    }
}

/// What a session was started with, so that each use can check it still holds: a user whom
/// `millwright user disable|del` can take away, an API token that can be revoked or expire, or
/// this process's own login token (valid until the process ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionBasis {
    /// A password login (or a client certificate): the user must still exist and be enabled.
    User,
    /// A login with the API token of this id: it must still be valid.
    Token(String),
    /// The process's own login token (the demo's): nothing to re-check.
    Process,
}

struct Session {
    user: String,
    role: Role,
    basis: SessionBasis,
    created: Instant,
    last_used: Instant,
    /// Creation order, for eviction.
    serial: u64,
}

struct Inner {
    sessions: HashMap<String, Session>,
    next_serial: u64,
}

/// The live sessions. Thread-safe; every operation is O(1) except eviction (O(n), bounded).
pub struct SessionStore {
    config: SessionConfig,
    inner: Mutex<Inner>,
}

impl SessionStore {
    pub fn new(config: SessionConfig) -> SessionStore {
        SessionStore {
            config: SessionConfig {
                max_sessions: config.max_sessions.max(1),
                ..config
            },
            inner: Mutex::new(Inner {
                sessions: HashMap::new(),
                next_serial: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session for `user` with `role` and returns its id (43 base64url characters;
    /// a secret: put it in a `Secure; HttpOnly; SameSite=Strict` cookie, never in a log).
    pub fn create(&self, user: &str, role: Role, now: Instant) -> Result<String, StoreError> {
        self.create_with(user, role, SessionBasis::User, now)
    }

    /// [`SessionStore::create`] for a session started with `basis`.
    pub fn create_with(
        &self,
        user: &str,
        role: Role,
        basis: SessionBasis,
        now: Instant,
    ) -> Result<String, StoreError> {
        let id = crypto::b64url(&crypto::random::<32>()?);
        let mut g = self.lock();
        g.sessions.retain(|_, s| !expired(&self.config, s, now));
        while g.sessions.len() >= self.config.max_sessions {
            let oldest = g
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.serial)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => g.sessions.remove(&k),
                None => break,
            };
        }
        let serial = g.next_serial;
        g.next_serial += 1;
        g.sessions.insert(
            id.clone(),
            Session {
                user: user.to_owned(),
                role,
                basis,
                created: now,
                last_used: now,
                serial,
            },
        );
        Ok(id)
    }

    /// The session's principal, if it exists and has neither idled out nor outlived its
    /// lifetime; using it resets the idle timer. An expired session is removed.
    pub fn lookup(&self, id: &str, now: Instant) -> Result<Principal, AuthError> {
        self.lookup_with_basis(id, now).map(|(p, _)| p)
    }

    /// [`SessionStore::lookup`], with what the session was started with (for the caller to
    /// check it still holds, and [`SessionStore::revoke`] it if not).
    pub fn lookup_with_basis(
        &self,
        id: &str,
        now: Instant,
    ) -> Result<(Principal, SessionBasis), AuthError> {
        let mut g = self.lock();
        let Some(s) = g.sessions.get_mut(id) else {
            return Err(AuthError::NoSession);
        };
        if expired(&self.config, s, now) {
            g.sessions.remove(id);
            return Err(AuthError::NoSession);
        }
        s.last_used = s.last_used.max(now);
        Ok((
            Principal {
                name: s.user.clone(),
                role: s.role,
                via: Via::Session,
            },
            s.basis.clone(),
        ))
    }

    /// Ends a session (logout). True if it existed.
    pub fn revoke(&self, id: &str) -> bool {
        self.lock().sessions.remove(id).is_some()
    }

    /// Ends every session of `user` (after a password change, a disable or a delete).
    pub fn revoke_user(&self, user: &str) -> usize {
        let mut g = self.lock();
        let before = g.sessions.len();
        g.sessions.retain(|_, s| s.user != user);
        before - g.sessions.len()
    }

    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn expired(c: &SessionConfig, s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.last_used) >= c.idle_timeout
        || now.saturating_duration_since(s.created) >= c.absolute_lifetime
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn store(max: usize) -> SessionStore {
        SessionStore::new(SessionConfig {
            idle_timeout: 15 * MIN,
            absolute_lifetime: 60 * MIN,
            max_sessions: max,
        })
    }

    #[test]
    fn idle_timeout_and_use_keeps_it_alive() {
        let s = store(10);
        let t0 = Instant::now();
        let id = s.create("alice", Role::Operator, t0).unwrap();
        assert_eq!(id.len(), 43);
        let p = s.lookup(&id, t0 + 14 * MIN).unwrap();
        assert_eq!(
            (p.name.as_str(), p.role, p.via),
            ("alice", Role::Operator, Via::Session)
        );
        // Used at 14 min, so still alive at 28 min…
        assert!(s.lookup(&id, t0 + 28 * MIN).is_ok());
        // …and idle from 28 to 43 min: gone, and removed.
        assert!(matches!(
            s.lookup(&id, t0 + 43 * MIN),
            Err(AuthError::NoSession)
        ));
        assert!(s.is_empty());
    }

    #[test]
    fn absolute_lifetime_ends_a_busy_session() {
        let s = store(10);
        let t0 = Instant::now();
        let id = s.create("alice", Role::Viewer, t0).unwrap();
        for m in (10..60).step_by(10) {
            assert!(s.lookup(&id, t0 + m * MIN).is_ok(), "at {m} min");
        }
        assert!(s.lookup(&id, t0 + 60 * MIN).is_err());
    }

    #[test]
    fn revoke_unknown_and_bounded_eviction_of_the_oldest() {
        let s = store(3);
        let t0 = Instant::now();
        let ids: Vec<String> = (0..4u32)
            .map(|i| {
                s.create(&format!("u{i}"), Role::Viewer, t0 + i * MIN)
                    .unwrap()
            })
            .collect();
        assert_eq!(s.len(), 3);
        assert!(s.lookup(&ids[0], t0 + 4 * MIN).is_err(), "oldest evicted");
        for id in &ids[1..] {
            assert!(s.lookup(id, t0 + 4 * MIN).is_ok());
        }
        assert!(s.revoke(&ids[1]));
        assert!(!s.revoke(&ids[1]));
        assert!(s.lookup(&ids[1], t0 + 4 * MIN).is_err());
        assert!(s.lookup("not-a-session", t0).is_err());
        s.create("u3", Role::Viewer, t0 + 5 * MIN).unwrap();
        assert_eq!(s.revoke_user("u3"), 2);
        assert_eq!(s.len(), 1);
        assert_ne!(ids[2], ids[3], "random ids");
    }
}
