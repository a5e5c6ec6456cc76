//! Webhook delivery: one JSON POST per notification over HTTP/1.1 (hyper's connection API on a
//! TCP or rustls stream, one connection per attempt: notifications are rare and a fresh
//! connection never meets a half-closed keep-alive), retried with exponential backoff and
//! jitter on network errors, timeouts, 5xx, 408 and 429; any other status is final.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::{Endpoint, Retry, WebhookConfig};

/// A webhook ready to post: its endpoint, the headers with their secret values read, the
/// HMAC key and the TLS connector. `Debug` shows no header value and no key.
pub struct Webhook {
    pub endpoint: Endpoint,
    headers: Vec<(String, String)>,
    signature: Option<(String, ring::hmac::Key)>,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    pub timeout: Duration,
    pub retry: Retry,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("endpoint", &self.endpoint)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("signed", &self.signature.is_some())
            .finish()
    }
}

fn read_secret(path: &Path, what: &str, target: &str) -> Result<String, String> {
    let s = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "notify target {target:?}: cannot read the {what} file {}: {}",
            path.display(),
            e.kind()
        )
    })?;
    let s = s.trim_end_matches(['\n', '\r']).to_owned();
    if s.is_empty() || s.contains(['\n', '\r']) {
        return Err(format!(
            "notify target {target:?}: the {what} file {} must hold one non-empty line",
            path.display()
        ));
    }
    Ok(s)
}

/// The system's trust roots (for https without `ca`).
fn system_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    for c in found.certs {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(format!(
            "no system trust roots found ({}); set \"ca\"",
            found
                .errors
                .first()
                .map_or_else(|| "none installed".to_owned(), |e| e.to_string())
        ));
    }
    Ok(roots)
}

impl Webhook {
    /// Reads the secret files and loads the TLS roots. Errors name the target and the file,
    /// never a secret.
    pub fn build(name: &str, c: &WebhookConfig) -> Result<Webhook, String> {
        let mut headers = c.headers.clone();
        for (h, path) in &c.header_files {
            headers.push((h.clone(), read_secret(path, &format!("header {h}"), name)?));
        }
        for (h, v) in &headers {
            if hyper::header::HeaderValue::from_str(v).is_err() {
                return Err(format!(
                    "notify target {name:?}: the value of header {h} is not a valid HTTP header value (visible ASCII)"
                ));
            }
        }
        let signature = match &c.secret_file {
            None => None,
            Some(p) => {
                let key = read_secret(p, "secret", name)?;
                Some((
                    c.signature_header.clone(),
                    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes()),
                ))
            }
        };
        let tls = if c.endpoint.https {
            let config = match &c.ca {
                Some(ca) => mw_security::certs::client_config_files(ca, None)
                    .map_err(|e| format!("notify target {name:?}: {e}"))?,
                None => rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("notify target {name:?}: {e}"))?
                .with_root_certificates(
                    system_roots().map_err(|e| format!("notify target {name:?}: {e}"))?,
                )
                .with_no_client_auth(),
            };
            let sn = rustls::pki_types::ServerName::try_from(c.endpoint.host.clone())
                .map_err(|e| format!("notify target {name:?}: host {:?}: {e}", c.endpoint.host))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), sn))
        } else {
            None
        };
        Ok(Webhook {
            endpoint: c.endpoint.clone(),
            headers,
            signature,
            tls,
            timeout: c.timeout,
            retry: c.retry,
        })
    }

    /// The signature header value for `body`: `sha256=<hex of HMAC-SHA256>`.
    pub fn sign(key: &ring::hmac::Key, body: &[u8]) -> String {
        let tag = ring::hmac::sign(key, body);
        let mut s = String::with_capacity(7 + 64);
        s.push_str("sha256=");
        for b in tag.as_ref() {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    fn request(&self, body: &Bytes, id: &str) -> Result<Request<Full<Bytes>>, String> {
        let mut r = Request::post(self.endpoint.path.as_str())
            .header(hyper::header::HOST, self.endpoint.authority())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("millwright/", env!("CARGO_PKG_VERSION")),
            )
            .header("X-Millwright-Notification", id);
        for (h, v) in &self.headers {
            r = r.header(h.as_str(), v.as_str());
        }
        if let Some((h, key)) = &self.signature {
            r = r.header(h.as_str(), Webhook::sign(key, body));
        }
        r.body(Full::new(body.clone()))
            .map_err(|e| format!("cannot build the request: {e}"))
    }

    /// One attempt: the response status, or why there is none.
    pub async fn attempt(&self, body: &Bytes, id: &str) -> Result<u16, String> {
        let req = self.request(body, id)?;
        let fut = async {
            let tcp = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => exchange(TokioIo::new(tcp), req).await,
                Some((c, sn)) => {
                    let s = c
                        .connect(sn.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS: {e}"))?;
                    exchange(TokioIo::new(s), req).await
                }
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }
}

/// Most of a response body read (then dropped): enough to let the server finish cleanly.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

async fn exchange<IO>(io: IO, req: Request<Full<Bytes>>) -> Result<u16, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let conn = tokio::spawn(conn);
    let _abort = AbortOnDrop(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut read = 0usize;
    while read < MAX_RESPONSE_BODY {
        match body.frame().await {
            Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
    Ok(status)
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether a failed attempt is worth repeating.
pub fn retryable(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// The delay before retry `n` (1-based): `backoff · 2^(n-1)`, capped at `backoff_max`, times a
/// jitter factor in [0.75, 1.25) from `rand` (a uniform u32).
pub fn backoff(retry: &Retry, n: u32, rand: u32) -> Duration {
    let base = retry
        .backoff
        .saturating_mul(1u32 << (n.saturating_sub(1)).min(20))
        .min(retry.backoff_max);
    let f = 0.75 + 0.5 * (f64::from(rand) / (f64::from(u32::MAX) + 1.0));
    base.mul_f64(f)
}

/// A uniform random u32 (the system's generator; 0 if it fails).
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b) {
        Ok(()) => u32::from_le_bytes(b),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_capped_with_jitter() {
        let r = Retry {
            retries: 5,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
        };
        assert_eq!(backoff(&r, 1, u32::MAX / 2 + 1), Duration::from_millis(100));
        assert_eq!(backoff(&r, 2, 0), Duration::from_millis(150));
        assert_eq!(backoff(&r, 3, u32::MAX / 2 + 1), Duration::from_millis(400));
        assert_eq!(
            backoff(&r, 9, u32::MAX / 2 + 1),
            Duration::from_millis(1000)
        );
        assert!(backoff(&r, 9, u32::MAX) <= Duration::from_millis(1250));
        assert_eq!(backoff(&r, 60, 0), Duration::from_millis(750));
    }

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            Webhook::sign(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retry_on_server_errors_only() {
        assert!(retryable(500) && retryable(503) && retryable(429) && retryable(408));
        assert!(!retryable(400) && !retryable(401) && !retryable(404));
    }
}
