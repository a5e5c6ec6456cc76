//! Topic access control: per-user rules with `%u` / `%c` patterns.
//!
//! Authentication itself is Millwright's user store (`mw_security::Authenticator`, argon2id
//! passwords, the login throttle); this module decides what an authenticated (or, where
//! allowed, anonymous) client may publish and subscribe to.

use crate::topic;

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Subscribe (and so receive).
    Read,
    /// Publish.
    Write,
    ReadWrite,
}

impl std::str::FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Access, String> {
        match s {
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            "readwrite" => Ok(Access::ReadWrite),
            other => Err(format!(
                "unknown access {other:?} (expected \"read\", \"write\" or \"readwrite\")"
            )),
        }
    }
}

/// One rule: `user` (`None`: every client, anonymous ones included) may `access` the topics
/// `pattern` covers, after `%u` → username and `%c` → client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    pub user: Option<String>,
    pub pattern: String,
    pub access: Access,
}

/// The rules of one broker. No rules: every client may publish and subscribe to everything
/// (what an authenticated-only broker usually wants); with rules, what no rule allows is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<AclRule>,
}

impl Acl {
    /// Everything allowed.
    pub fn allow_all() -> Acl {
        Acl::default()
    }

    /// Checks each rule's pattern (a valid filter once `%u`/`%c` are replaced).
    pub fn new(rules: Vec<AclRule>) -> Result<Acl, String> {
        for (i, r) in rules.iter().enumerate() {
            let probe = r.pattern.replace("%u", "u").replace("%c", "c");
            topic::valid_filter(&probe).map_err(|e| format!("acl rule {}: {e}", i + 1))?;
        }
        Ok(Acl { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn allows(&self, user: Option<&str>, client_id: &str, topic: &str, write: bool) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.rules.iter().any(|r| {
            let access_ok = match r.access {
                Access::ReadWrite => true,
                Access::Read => !write,
                Access::Write => write,
            };
            let user_ok = match &r.user {
                None => true,
                Some(u) => user == Some(u.as_str()),
            };
            access_ok && user_ok && topic::acl_matches(&r.pattern, topic, user, client_id)
        })
    }

    /// Whether the client may publish to `topic`.
    pub fn may_publish(&self, user: Option<&str>, client_id: &str, topic: &str) -> bool {
        self.allows(user, client_id, topic, true)
    }

    /// Whether the client may subscribe to `filter` (every topic it can match must be allowed).
    pub fn may_subscribe(&self, user: Option<&str>, client_id: &str, filter: &str) -> bool {
        self.allows(user, client_id, filter, false)
    }
}
