//! API tokens: `mw_<id>_<secret>`, where `id` is 64 random bits (16 hex digits, the lookup key,
//! safe to show and log) and `secret` 256 random bits (43 base64url characters, shown once).
//! Only SHA-256 of the secret is stored (`SECURITY_DIR/tokens.json`, mode 0600): a 256-bit
//! random secret cannot be guessed, so a slow password hash would add cost and nothing else.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{AuthError, Principal, Role, StoreError, Via, crypto, fsutil, validate_name};

pub(crate) const FILE: &str = "tokens.json";
const FORMAT: u32 = 1;
const PREFIX: &str = "mw_";
const ID_HEX: usize = 16;
const SECRET_B64: usize = 43;
/// The longest lifetime a token may be given.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 86_400);

/// A token just created: the only time its full text exists. `Debug` hides the secret.
pub struct IssuedToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub expires_ns: i64,
    /// `mw_<id>_<secret>`: give it to the client; it cannot be shown again.
    pub token: String,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("expires_ns", &self.expires_ns)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// A stored token as listed (never its secret nor its hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_ns: i64,
    pub expires_ns: i64,
    pub revoked: bool,
    pub created_by: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    id: String,
    name: String,
    role: Role,
    created_ns: i64,
    expires_ns: i64,
    #[serde(default)]
    revoked: bool,
    created_by: String,
    /// SHA-256 (hex) of the secret part.
    secret_sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    tokens: Vec<Record>,
}

/// `30d`, `12h`, `90m`, `3600s`, `2w`: a lifetime between one minute and 366 days.
pub fn parse_expiry(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit_s: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{s:?} is not a lifetime: a number and a unit, s, m, h, d or w (e.g. 30d)"
            ));
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a lifetime: a number and a unit (e.g. 30d)"))?;
    let d = Duration::from_secs(n.saturating_mul(unit_s));
    if d < Duration::from_secs(60) || d > MAX_LIFETIME {
        return Err(format!(
            "a token lifetime must be between 1 minute and 366 days (got {s})"
        ));
    }
    Ok(d)
}

/// Splits `mw_<id>_<secret>` after checking its shape; never panics.
fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    if rest.len() != ID_HEX + 1 + SECRET_B64 || !rest.is_ascii() {
        return None;
    }
    let (id, secret) = rest.split_at(ID_HEX);
    let secret = secret.strip_prefix('_')?;
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    let b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    (id.bytes().all(hex) && secret.bytes().all(b64)).then_some((id, secret))
}

/// The id part of a well-formed token (safe to log and audit), `None` if it is malformed.
pub fn token_id(token: &str) -> Option<&str> {
    split_token(token).map(|(id, _)| id)
}

/// The tokens file, loaded, indexed by id.
pub struct TokenStore {
    path: PathBuf,
    records: Vec<Record>,
    by_id: HashMap<String, usize>,
}

impl TokenStore {
    /// Loads `SECURITY_DIR/tokens.json`; a missing file is an empty store.
    pub fn open(security_dir: &Path) -> Result<TokenStore, StoreError> {
        let path = security_dir.join(FILE);
        let records = crate::fsutil::read_versioned::<FileFormat>(&path, FORMAT, |f| f.version)?
            .map_or_else(Vec::new, |f| f.tokens);
        let mut s = TokenStore {
            path,
            records,
            by_id: HashMap::new(),
        };
        s.index();
        Ok(s)
    }

    fn index(&mut self) {
        self.by_id = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
    }

    /// Creates a token for `role` that expires after `lifetime`, saves, and returns its text
    /// (the only time it is available).
    pub fn create(
        &mut self,
        name: &str,
        role: Role,
        lifetime: Duration,
        created_by: &str,
    ) -> Result<IssuedToken, StoreError> {
        validate_name(name).map_err(|_| {
            StoreError::Invalid(format!(
                "invalid token name {name:?}: use 1 to 32 characters of a-z, 0-9, '.', '_', '-'"
            ))
        })?;
        if lifetime > MAX_LIFETIME || lifetime.is_zero() {
            return Err(StoreError::Invalid(
                "a token lifetime must be between 1 minute and 366 days".to_owned(),
            ));
        }
        let id = loop {
            let id = crypto::hex(&crypto::random::<8>()?);
            if !self.by_id.contains_key(&id) {
                break id;
            }
        };
        let secret = crypto::b64url(&crypto::random::<32>()?);
        let now = mw_model::now_ns();
        let expires_ns = now.saturating_add(i64::try_from(lifetime.as_nanos()).unwrap_or(i64::MAX));
        self.records.push(Record {
            id: id.clone(),
            name: name.to_owned(),
            role,
            created_ns: now,
            expires_ns,
            revoked: false,
            created_by: created_by.to_owned(),
            secret_sha256: crypto::sha256_hex(secret.as_bytes()),
        });
        self.index();
        self.save()?;
        Ok(IssuedToken {
            token: format!("{PREFIX}{id}_{secret}"),
            id,
            name: name.to_owned(),
            role,
            expires_ns,
        })
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Vec<TokenInfo> {
        self.records
            .iter()
            .map(|r| TokenInfo {
                id: r.id.clone(),
                name: r.name.clone(),
                role: r.role,
                created_ns: r.created_ns,
                expires_ns: r.expires_ns,
                revoked: r.revoked,
                created_by: r.created_by.clone(),
            })
            .collect()
    }

    /// Revokes a token by id and saves. Revoking twice is not an error.
    pub fn revoke(&mut self, id: &str) -> Result<TokenInfo, StoreError> {
        let i = *self
            .by_id
            .get(id)
            .ok_or_else(|| StoreError::NoSuchToken(id.to_owned()))?;
        self.records[i].revoked = true;
        self.save()?;
        Ok(self.list().swap_remove(i))
    }

    /// Checks a presented token now.
    pub fn authenticate_token(&self, token: &str) -> Result<Principal, AuthError> {
        self.authenticate_token_at(token, mw_model::now_ns())
    }

    /// Checks a presented token at `now_ns`: shape, id lookup (O(1)), secret hash compared in
    /// constant time, then revocation and expiry. Errors name the token's id at most.
    pub fn authenticate_token_at(&self, token: &str, now_ns: i64) -> Result<Principal, AuthError> {
        let (id, secret) = split_token(token).ok_or(AuthError::MalformedToken)?;
        let hash = crypto::sha256_hex(secret.as_bytes());
        let Some(r) = self.by_id.get(id).map(|&i| &self.records[i]) else {
            return Err(AuthError::UnknownToken);
        };
        if !crypto::ct_eq(hash.as_bytes(), r.secret_sha256.as_bytes()) {
            return Err(AuthError::UnknownToken);
        }
        if r.revoked {
            return Err(AuthError::RevokedToken(r.id.clone()));
        }
        if now_ns >= r.expires_ns {
            return Err(AuthError::ExpiredToken(r.id.clone()));
        }
        Ok(Principal {
            name: r.name.clone(),
            role: r.role,
            via: Via::Token,
        })
    }

    /// Whether the token with `id` still holds at `now_ns` (not revoked, not expired, still in
    /// the file): what a session started with that token is checked against on every use.
    pub fn check_id_at(&self, id: &str, now_ns: i64) -> Result<Principal, AuthError> {
        let Some(r) = self.by_id.get(id).map(|&i| &self.records[i]) else {
            return Err(AuthError::UnknownToken);
        };
        if r.revoked {
            return Err(AuthError::RevokedToken(r.id.clone()));
        }
        if now_ns >= r.expires_ns {
            return Err(AuthError::ExpiredToken(r.id.clone()));
        }
        Ok(Principal {
            name: r.name.clone(),
            role: r.role,
            via: Via::Token,
        })
    }

    fn save(&self) -> Result<(), StoreError> {
        let f = FileFormat {
            version: FORMAT,
            tokens: self.records.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&f)
            .map_err(|e| StoreError::Invalid(format!("cannot serialize tokens: {e}")))?;
        bytes.push(b'\n');
        fsutil::write_atomic(&self.path, &bytes, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::tests::temp_dir;
    use proptest::prelude::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn create_authenticate_expire_revoke() {
        let dir = temp_dir("tokens");
        let mut s = TokenStore::open(&dir).unwrap();
        let t = s.create("scada", Role::Operator, 30 * DAY, "root").unwrap();
        assert!(
            !format!("{t:?}").contains(&t.token[20..]),
            "Debug hides the secret"
        );
        let p = s.authenticate_token(&t.token).unwrap();
        assert_eq!(
            (p.name.as_str(), p.role, p.via),
            ("scada", Role::Operator, Via::Token)
        );
        // Stored as a hash only.
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(!text.contains(&t.token[20..]), "{text}");
        // Reloaded from the file, it still works.
        let s2 = TokenStore::open(&dir).unwrap();
        assert!(s2.authenticate_token(&t.token).is_ok());
        // Expiry: a nanosecond before is fine, at expiry it is refused.
        assert!(s.authenticate_token_at(&t.token, t.expires_ns - 1).is_ok());
        let e = s.authenticate_token_at(&t.token, t.expires_ns).unwrap_err();
        assert!(
            matches!(&e, AuthError::ExpiredToken(id) if *id == t.id),
            "{e}"
        );
        // A changed secret with the right id is unknown, not accepted.
        let mut wrong = t.token.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(
            s.authenticate_token(&wrong),
            Err(AuthError::UnknownToken)
        ));
        // Revocation sticks across a reload.
        s.revoke(&t.id).unwrap();
        assert!(matches!(
            s.authenticate_token(&t.token),
            Err(AuthError::RevokedToken(_))
        ));
        let s3 = TokenStore::open(&dir).unwrap();
        assert!(matches!(
            s3.authenticate_token(&t.token),
            Err(AuthError::RevokedToken(_))
        ));
        assert!(s3.list()[0].revoked);
        assert!(matches!(
            s.revoke("0000000000000000"),
            Err(StoreError::NoSuchToken(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_and_unknown_tokens_are_refused_without_echo() {
        let dir = temp_dir("tokens-bad");
        let mut s = TokenStore::open(&dir).unwrap();
        let t = s.create("x", Role::Viewer, DAY, "root").unwrap();
        let secret = &t.token[20..];
        for bad in [
            "",
            "mw_",
            "Bearer x",
            &t.token[..t.token.len() - 1],
            &format!("{}A", t.token),
            &t.token.replace("mw_", "MW_"),
            &format!("mw_{}-{}", t.id, secret),
            &format!("mw_{}_{}", t.id.to_uppercase(), secret),
            &format!("mw_{}_{}é", t.id, &secret[..41]),
        ] {
            let e = s.authenticate_token(bad).unwrap_err();
            assert!(matches!(e, AuthError::MalformedToken), "{bad:?}: {e:?}");
            assert!(!e.to_string().contains(secret));
        }
        assert_eq!(token_id(&t.token), Some(t.id.as_str()));
        assert_eq!(token_id("mw_0123"), None);
        let unknown = format!("mw_0123456789abcdef_{secret}");
        let e = s.authenticate_token(&unknown).unwrap_err();
        assert!(matches!(e, AuthError::UnknownToken), "{e:?}");
        assert!(!e.to_string().contains(secret) && !format!("{e:?}").contains(secret));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn expiry_strings() {
        assert_eq!(parse_expiry("30d"), Ok(30 * DAY));
        assert_eq!(parse_expiry("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_expiry("2w"), Ok(14 * DAY));
        assert_eq!(parse_expiry("60s"), Ok(Duration::from_secs(60)));
        for bad in [
            "",
            "30",
            "d",
            "30x",
            "59s",
            "367d",
            "-1d",
            "99999999999999999999d",
            "1.5d",
        ] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_string_is_refused_without_panic(s in ".{0,80}") {
            let dir = std::env::temp_dir().join("mw-security-never-exists");
            let store = TokenStore { path: dir, records: Vec::new(), by_id: HashMap::new() };
            prop_assert!(store.authenticate_token(&s).is_err());
        }
    }
}
