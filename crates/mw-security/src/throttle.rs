//! Login throttling: after a few failures for a user name or a client address, each further
//! attempt must wait, the wait doubling with every failure up to a cap. Memory is bounded: at
//! most `max_entries` keys are tracked, and the least recently failed ones are forgotten first.
//! Times are passed in (`Instant`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::AuthError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Attempts that may fail without any delay (at least 1); after that many failures the next
    /// attempt waits `base_delay`, and each further failure doubles the wait.
    pub free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Keys tracked at most (users and addresses together).
    pub max_entries: usize,
    /// A key with no failure for this long is forgotten.
    pub forget_after: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> ThrottleConfig {
        ThrottleConfig {
            free_failures: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            max_entries: 10_000,
            forget_after: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Key {
    User(String),
    Addr(IpAddr),
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
}

/// Tracks failed logins per user name and per client address.
pub struct LoginThrottle {
    config: ThrottleConfig,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            config: ThrottleConfig {
                max_entries: config.max_entries.max(2),
                ..config
            },
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn delay(&self, e: &Entry) -> Duration {
        if e.failures < self.config.free_failures.max(1) {
            return Duration::ZERO;
        }
        let over = e.failures - self.config.free_failures.max(1);
        let factor = 1u32.checked_shl(over).unwrap_or(u32::MAX);
        self.config
            .base_delay
            .saturating_mul(factor)
            .min(self.config.max_delay)
    }

    /// `Ok` if an attempt for `user` from `addr` may be made now; otherwise
    /// [`AuthError::Throttled`] with how long to wait (the longer of the two keys' waits).
    /// Call it before checking the password.
    pub fn check(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), AuthError> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        for k in keys(user, addr) {
            if let Some(e) = map.get(&k) {
                let until = e.last_failure + self.delay(e);
                wait = wait.max(until.saturating_duration_since(now));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(AuthError::Throttled(wait))
        }
    }

    /// Records a failed attempt.
    pub fn failure(&self, user: &str, addr: Option<IpAddr>, now: Instant) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let forget = self.config.forget_after;
        for k in keys(user, addr) {
            if !map.contains_key(&k) && map.len() >= self.config.max_entries {
                map.retain(|_, e| now.saturating_duration_since(e.last_failure) < forget);
                while map.len() >= self.config.max_entries {
                    let oldest = map
                        .iter()
                        .min_by_key(|(_, e)| e.last_failure)
                        .map(|(k, _)| k.clone());
                    match oldest {
                        Some(o) => map.remove(&o),
                        None => break,
                    };
                }
            }
            let e = map.entry(k).or_insert(Entry {
                failures: 0,
                last_failure: now,
            });
            if now.saturating_duration_since(e.last_failure) >= forget {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last_failure = now;
        }
    }

    /// Records a successful login: the user's count is cleared (the address's too).
    pub fn success(&self, user: &str, addr: Option<IpAddr>) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys(user, addr) {
            map.remove(&k);
        }
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn keys(user: &str, addr: Option<IpAddr>) -> impl Iterator<Item = Key> {
    // The user key is bounded in size: a name longer than any valid one is cut.
    let user: String = user.chars().take(64).collect();
    std::iter::once(Key::User(user)).chain(addr.map(Key::Addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn wait(t: &LoginThrottle, user: &str, addr: Option<IpAddr>, now: Instant) -> Duration {
        match t.check(user, addr, now) {
            Ok(()) => Duration::ZERO,
            Err(AuthError::Throttled(d)) => d,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn backoff_doubles_after_the_free_failures_and_is_capped() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_delay: 8 * S,
            ..ThrottleConfig::default()
        });
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        let mut expected = vec![];
        let mut got = vec![];
        for i in 0..7 {
            t.failure("alice", Some(ip), t0);
            got.push(wait(&t, "alice", Some(ip), t0));
            // Three attempts may fail freely; the fourth waits 1 s, then 2, 4, 8 (the cap).
            expected.push(match i {
                0..=1 => Duration::ZERO,
                2 => S,
                3 => 2 * S,
                4 => 4 * S,
                _ => 8 * S,
            });
        }
        assert_eq!(got, expected);
        // After the wait, an attempt is allowed again.
        assert_eq!(wait(&t, "alice", Some(ip), t0 + 8 * S), Duration::ZERO);
        // Another user from the same address is held back too (the address key)…
        assert_eq!(wait(&t, "bob", Some(ip), t0), 8 * S);
        // …but not from another address.
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(wait(&t, "bob", Some(other), t0), Duration::ZERO);
        // The user key holds from any address.
        assert_eq!(wait(&t, "alice", Some(other), t0), 8 * S);
        t.success("alice", Some(ip));
        assert_eq!(wait(&t, "alice", Some(ip), t0), Duration::ZERO);
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_forgotten() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_entries: 100,
            free_failures: 1,
            ..ThrottleConfig::default()
        });
        let t0 = Instant::now();
        for i in 0..1000u32 {
            t.failure(
                &format!("u{i}"),
                None,
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(t.len() <= 100, "{}", t.len());
        assert!(
            t.check("u999", None, t0 + Duration::from_millis(999))
                .is_err()
        );
        assert!(
            t.check("u0", None, t0 + Duration::from_millis(999)).is_ok(),
            "forgotten"
        );
    }
}
