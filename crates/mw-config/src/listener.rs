//! The one listener policy. Every listener — the HTTP API, the simulator's Modbus server, and
//! those later components add (MQTT, OPC UA) — is checked by [`listener_policy`], whether its
//! address comes from a config section ([`Cx::listener`]) or a command-line flag:
//!
//! * a **loopback** address is accepted as it is (reachable from this machine only);
//! * a non-loopback address needs **TLS** (`tls = { cert = …, key = … }`);
//! * or the listener must say `insecure = true` (the flag `--insecure`), which is accepted with a
//!   warning that the binary logs at start and `/health` shows.
//!
//! Authentication is not part of this choice; a listener whose protocol has neither encryption
//! nor authentication (Modbus TCP) needs `insecure` to leave loopback.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cx::{Cx, Table};

/// TLS material of a listener, as written in the config (paths relative to the working
/// directory; read when the listener starts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require client certificates signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// How a listener may be exposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub insecure: bool,
}

/// Why a listener is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Loopback: this machine only.
    Loopback,
    /// Beyond loopback, with TLS.
    Tls,
    /// Beyond loopback without TLS, because the listener said `insecure = true`.
    Insecure,
}

/// A listener the policy refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerRefused {
    /// What listens (`HTTP`, `Modbus TCP`).
    pub what: String,
    pub address: SocketAddr,
    /// Whether the protocol can have TLS at all (Modbus TCP cannot).
    pub tls_possible: bool,
}

impl fmt::Display for ListenerRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tls_possible {
            write!(
                f,
                "refusing to listen for {} on {} without TLS: it is not a loopback address; give the listener \
                 a certificate (tls = {{ cert = …, key = … }}, see `millwright certs init`) or set \
                 insecure = true (--insecure) to serve it unencrypted on this network anyway",
                self.what, self.address
            )
        } else {
            write!(
                f,
                "refusing to listen for {} on {}: the protocol has no encryption or authentication, so it \
                 binds loopback only; set insecure = true (--insecure) to expose it anyway",
                self.what, self.address
            )
        }
    }
}

impl std::error::Error for ListenerRefused {}

/// The policy (see the module docs). `tls_possible` is false for protocols without TLS.
pub fn listener_policy(
    what: &str,
    l: &ListenerConfig,
    tls_possible: bool,
) -> Result<Exposure, ListenerRefused> {
    if l.address.ip().is_loopback() {
        Ok(Exposure::Loopback)
    } else if l.tls.is_some() && tls_possible {
        Ok(Exposure::Tls)
    } else if l.insecure {
        Ok(Exposure::Insecure)
    } else {
        Err(ListenerRefused {
            what: what.to_owned(),
            address: l.address,
            tls_possible,
        })
    }
}

/// The listener keys a section may hold.
pub const LISTENER_KEYS: &[&str] = &["address", "tls", "insecure"];
const TLS_KEYS: &[&str] = &["cert", "key", "client_ca"];

impl Cx<'_> {
    /// Reads the listener keys (`address`, `tls`, `insecure`) of `t` for a listener called
    /// `what`, starting from `default`, and applies [`listener_policy`], reporting a refusal at
    /// the address. The caller reports unknown keys (it may allow more).
    pub fn listener(
        &mut self,
        t: Table<'_, '_>,
        what: &str,
        default: ListenerConfig,
    ) -> ListenerConfig {
        let mut l = default;
        let mut at = t.start();
        if let Some(f) = self.string(t, "address", false) {
            at = f.span.start;
            match f.v.parse::<SocketAddr>() {
                Ok(addr) => l.address = addr,
                Err(_) => {
                    let msg = format!(
                        "invalid {} address {:?}: expected IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" \
                         (host names are not accepted)",
                        what.to_lowercase(),
                        f.v
                    );
                    self.err(f.span.start, msg);
                    return l;
                }
            }
        }
        if let Some(f) = self.boolean(t, "insecure", false) {
            l.insecure = f.v;
        }
        let name = format!("tls of {}", t.name());
        if let Some(f) = self.table(t, "tls", false, &name) {
            let tt = f.v;
            self.unknown_keys(tt, TLS_KEYS);
            let cert = self.string(tt, "cert", true).map(|f| PathBuf::from(f.v));
            let key = self.string(tt, "key", true).map(|f| PathBuf::from(f.v));
            let client_ca = self
                .string(tt, "client_ca", false)
                .map(|f| PathBuf::from(f.v));
            if let (Some(cert), Some(key)) = (cert, key) {
                l.tls = Some(TlsFiles {
                    cert,
                    key,
                    client_ca,
                });
            }
        }
        if let Err(refused) = listener_policy(what, &l, true) {
            self.err(at, refused.to_string());
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(addr: &str, tls: bool, insecure: bool) -> ListenerConfig {
        ListenerConfig {
            address: addr.parse().unwrap(),
            tls: tls.then(|| TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into(),
                client_ca: None,
            }),
            insecure,
        }
    }

    #[test]
    fn the_policy_table() {
        let cases = [
            ("127.0.0.1:80", false, false, true, Ok(Exposure::Loopback)),
            ("[::1]:80", false, true, true, Ok(Exposure::Loopback)),
            ("0.0.0.0:80", true, false, true, Ok(Exposure::Tls)),
            ("0.0.0.0:80", false, true, true, Ok(Exposure::Insecure)),
            ("0.0.0.0:80", true, true, true, Ok(Exposure::Tls)),
            ("10.0.0.5:502", true, true, false, Ok(Exposure::Insecure)),
        ];
        for (addr, tls, insecure, possible, want) in cases {
            assert_eq!(
                listener_policy("X", &l(addr, tls, insecure), possible),
                want,
                "{addr} tls={tls} insecure={insecure}"
            );
        }
        let refused = listener_policy("HTTP", &l("0.0.0.0:8080", false, false), true).unwrap_err();
        assert!(refused.to_string().contains("without TLS"), "{refused}");
        let refused = listener_policy("Modbus TCP", &l("10.0.0.5:502", true, false), false)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("no encryption or authentication"),
            "{refused}"
        );
        assert!(refused.contains("--insecure"), "{refused}");
    }
}
