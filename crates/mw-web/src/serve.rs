//! The serving layer: our own accept loop around hyper's HTTP/1.1 connections (instead of
//! `axum::serve`), so every limit below is ours to set, test and document.
//!
//! Per listener ([`ServeOptions`], defaults in brackets):
//! * at most `max_connections` open connections [512] and `max_connections_per_client` per client
//!   IP address [64]. A connection beyond a cap is accepted and closed at once — the clients
//!   already connected are not disturbed — and counted in
//!   `mw_errors_total{component="http",error_type="connection_limit"}`;
//! * `header_read_timeout` [10 s]: from the moment the server waits for a request head (on a new
//!   connection, *and* between two requests of a kept-alive one) until the head is complete; a
//!   client that trickles its headers byte by byte is cut off. It bounds the TLS handshake too;
//! * `idle_timeout` [60 s]: a connection on which no byte moves either way for that long is closed
//!   (a stalled request body, a client that stops reading its response);
//! * `max_header_bytes` [16 KiB]: the request head must fit (else 431);
//! * `Host` must name this listener (its own address, `localhost:PORT`) or one of
//!   `allowed_hosts` (else 421), and a state-changing request (anything but GET/HEAD/OPTIONS) that
//!   carries an `Origin` must come from one of those hosts (else 403) — DNS rebinding and
//!   cross-site requests are refused before any route runs;
//! * optional TLS ([`ServeOptions::tls`], rustls with the ring provider); with a client-certificate
//!   verifier (mutual TLS, [`server_tls_config`]) the verified certificate reaches every handler
//!   as a [`ClientCert`] request extension. A failed handshake (plain HTTP to the TLS port, a
//!   client that does not trust our certificate, a client certificate from another CA) closes the
//!   connection and is counted in `mw_errors_total{…,error_type="tls_handshake"}`.
//!
//! Every request also carries `axum::extract::ConnectInfo<SocketAddr>` (the client's address).
//! Shutdown: stop accepting, ask every connection to finish its current request
//! (`graceful_shutdown`), wait at most `shutdown_grace` [5 s], then drop what is left.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Limits and options of [`serve_with`]. `ServeOptions::default()` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Open connections at once; more are accepted and closed at once, counted. Default 512.
    pub max_connections: usize,
    /// Open connections from one client IP address. Default 64.
    pub max_connections_per_client: usize,
    /// Time to receive a complete request head, counted from when the server starts waiting for
    /// it (so it also closes a kept-alive connection that sends no next request). Default 10 s.
    pub header_read_timeout: Duration,
    /// A connection with no bytes moving in either direction for this long is closed. Keep it
    /// above the request timeout ([`crate::REQUEST_TIMEOUT`]). Default 60 s.
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes (431 beyond; at least
    /// 8192). Default 16 KiB.
    pub max_header_bytes: usize,
    /// Host names accepted in `Host` (and `Origin`) besides the listener's own address and
    /// `localhost:PORT`: `"name"` (any port, e.g. behind a reverse proxy) or `"name:port"`.
    /// Default: none.
    pub allowed_hosts: Vec<String>,
    /// When set, every connection must complete a TLS handshake with this configuration.
    /// Default: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long shutdown waits for open connections to finish their request. Default 5 s.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 512,
            max_connections_per_client: 64,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            allowed_hosts: Vec::new(),
            tls: None,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The client certificate a mutual-TLS connection presented and the server verified, as a
/// request extension (`Option<Extension<ClientCert>>` in a handler; absent without mutual TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    chain: Arc<[CertificateDer<'static>]>,
    subject_cn: Option<String>,
}

impl ClientCert {
    fn new(chain: &[CertificateDer<'static>]) -> Option<Self> {
        let leaf = chain.first()?;
        Some(ClientCert {
            subject_cn: mw_security::certs::subject_common_name(leaf),
            chain: chain.into(),
        })
    }

    /// The DER encoding of the client's own (end-entity) certificate.
    pub fn der(&self) -> &[u8] {
        self.chain.first().map_or(&[], |c| c.as_ref())
    }

    /// The chain as the client sent it, its own certificate first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The first common name (CN) of the certificate's subject, if it has one as text.
    pub fn subject_common_name(&self) -> Option<&str> {
        self.subject_cn.as_deref()
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// A rustls server configuration with the ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`,
/// serving `cert_chain` (ours first) with `key`. With `client_roots`, clients must present a
/// certificate issued by one of them (mutual TLS); it reaches handlers as [`ClientCert`].
pub fn server_tls_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Option<rustls::RootCertStore>,
) -> Result<rustls::ServerConfig, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_roots {
        Some(roots) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()?,
        ),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(cert_chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

fn count_error(error_type: &'static str) {
    metrics::counter!("mw_errors_total", "component" => "http", "instance" => "api",
        "stage" => "receiving", "error_type" => error_type)
    .increment(1);
}

/// Open connections, in total and per client address.
struct Slots {
    max: usize,
    per_client: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    closed: Notify,
}

/// One connection's place; given back when dropped.
struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, &'static str> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.max {
            return Err("max_connections");
        }
        let n = open.1.entry(ip).or_insert(0);
        if *n >= self.per_client {
            return Err("max_connections_per_client");
        }
        *n += 1;
        open.0 += 1;
        metrics::gauge!("mw_http_open_connections", "component" => "http", "instance" => "api")
            .set(open.0 as f64);
        Ok(Slot {
            slots: Arc::clone(self),
            ip,
        })
    }

    fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
        metrics::gauge!("mw_http_open_connections", "component" => "http", "instance" => "api")
            .set(open.0 as f64);
        drop(open);
        self.slots.closed.notify_waiters();
    }
}

/// Serves `router` on `listener` with `options` until `shutdown` resolves (see the module docs).
/// Returns an error only for an accept error that is not transient.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let slots = Arc::new(Slots {
        max: options.max_connections.max(1),
        per_client: options.max_connections_per_client.max(1),
        open: Mutex::new((0, HashMap::new())),
        closed: Notify::new(),
    });
    let hosts = Arc::new(Hosts::new(&options.allowed_hosts, options.tls.is_some()));
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let options = Arc::new(options);
    let refused = AtomicU64::new(0);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let result = loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) if transient(&e) => {
                    tracing::warn!(%local, "HTTP accept failed, retrying in 100 ms: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => break Err(e),
            },
        };
        // An IPv4 client of a dual-stack listener counts as its IPv4 address.
        let slot = match slots.take(peer.ip().to_canonical()) {
            Ok(slot) => slot,
            Err(limit) => {
                count_error("connection_limit");
                let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
                // Logged at the 1st, 2nd, 4th, 8th, … refusal: visible, but no log flood.
                if n.is_power_of_two() {
                    tracing::warn!(%local, %peer, limit, refused = n, "HTTP connection refused: limit reached");
                }
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            router: router.clone(),
            options: Arc::clone(&options),
            hosts: Arc::clone(&hosts),
            tls: tls.clone(),
            peer,
            stop: stop_rx.clone(),
        };
        tokio::spawn(async move {
            conn.run(stream).await;
            drop(slot);
        });
    };
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + options.shutdown_grace + Duration::from_millis(100);
    loop {
        let closed = slots.closed.notified();
        if slots.open() == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, closed).await.is_err() {
            tracing::warn!(%local, open = slots.open(), "HTTP shutdown: connections still open after the grace period");
            break;
        }
    }
    result
}

fn transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    // 23 ENFILE, 24 EMFILE, 105 ENOBUFS, 12 ENOMEM (Linux numbering).
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105))
}

struct Connection {
    router: Router,
    options: Arc<ServeOptions>,
    hosts: Arc<Hosts>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let io = IdleIo::new(stream, self.options.idle_timeout);
        match self.tls.clone() {
            None => self.http(io, local, None).await,
            Some(acceptor) => {
                let hs =
                    tokio::time::timeout(self.options.header_read_timeout, acceptor.accept(io));
                let mut stop = self.stop.clone();
                let stopped = async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                };
                let hs = tokio::select! {
                    r = hs => r,
                    () = stopped => return, // shutdown: drop the handshake
                };
                match hs {
                    Ok(Ok(tls)) => {
                        let cert = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(ClientCert::new);
                        self.http(tls, local, cert).await;
                    }
                    Ok(Err(e)) => {
                        count_error("tls_handshake");
                        tracing::debug!(peer = %self.peer, "TLS handshake failed: {e}");
                    }
                    Err(_) => {
                        count_error("tls_handshake");
                        tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                    }
                }
            }
        }
    }

    async fn http<I>(self, io: I, local: SocketAddr, cert: Option<ClientCert>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (router, hosts, peer) = (self.router, self.hosts, self.peer);
        let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            if let Some(c) = &cert {
                req.extensions_mut().insert(c.clone());
            }
            let checked = hosts.check(&req, local);
            let router = router.clone();
            async move {
                match checked {
                    Ok(()) => router.oneshot(req.map(axum::body::Body::new)).await,
                    Err((status, msg)) => Ok::<_, Infallible>(refuse(status, msg)),
                }
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.header_read_timeout)
            .max_buf_size(self.options.max_header_bytes.max(8192))
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(io), svc);
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = stopped => {
                conn.as_mut().graceful_shutdown();
                match tokio::time::timeout(self.options.shutdown_grace, conn.as_mut()).await {
                    Ok(r) => r,
                    Err(_) => Ok(()),
                }
            }
        };
        if let Err(e) = result {
            let idle = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<io::Error>())
                .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut);
            if e.is_timeout() {
                count_error("header_timeout");
            } else if idle {
                count_error("idle_timeout");
            } else if e.is_parse() || e.is_parse_too_large() {
                count_error("bad_request");
            }
            tracing::debug!(%peer, "HTTP connection ended with an error: {e}");
        }
    }
}

/// The names `Host` and `Origin` may carry (see [`ServeOptions::allowed_hosts`]).
struct Hosts {
    /// Lower-case names; `None` port = any port.
    configured: Vec<(String, Option<u16>)>,
    default_port: u16,
}

/// Splits `host[:port]` (IPv6 in brackets); `None` for something that is not a host.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host, port))
}

impl Hosts {
    fn new(allowed: &[String], tls: bool) -> Self {
        let configured = allowed
            .iter()
            .filter_map(|a| {
                let a = a.trim().to_ascii_lowercase();
                let (h, p) = split_host_port(&a)?;
                Some((h.to_owned(), p))
            })
            .collect();
        Hosts {
            configured,
            default_port: if tls { 443 } else { 80 },
        }
    }

    /// Whether `authority` (`host[:port]`, the port defaulting to `default_port`) names this
    /// listener, whose accepted socket has the address `local`.
    fn allows(&self, authority: &str, default_port: u16, local: SocketAddr) -> bool {
        let a = authority.trim().to_ascii_lowercase();
        let Some((host, port)) = split_host_port(&a) else {
            return false;
        };
        let port_or_default = port.unwrap_or(default_port);
        // `to_canonical`: on a dual-stack listener an IPv4 client's socket has the local address
        // `::ffff:a.b.c.d`, while its Host says `a.b.c.d`.
        let own = port_or_default == local.port()
            && (host == "localhost"
                || host
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.to_canonical() == local.ip().to_canonical()));
        own || self
            .configured
            .iter()
            .any(|(h, p)| h == host && p.is_none_or(|p| p == port_or_default))
    }

    fn check<B>(&self, req: &Request<B>, local: SocketAddr) -> Result<(), (StatusCode, String)> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        let Some(host) = host else {
            return Err((StatusCode::BAD_REQUEST, "missing Host header".to_owned()));
        };
        if !self.allows(host, self.default_port, local) {
            count_error("host");
            return Err((
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "Host {host:?} is not served here (use this listener's address, localhost:{}, \
                     or a name configured in the allowed hosts)",
                    local.port()
                ),
            ));
        }
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if let (false, Some(origin)) = (safe, req.headers().get(header::ORIGIN)) {
            let origin = origin.to_str().unwrap_or("");
            let allowed = match origin.split_once("://") {
                Some(("http", a)) => self.allows(a, 80, local),
                Some(("https", a)) => self.allows(a, 443, local),
                _ => false,
            };
            if !allowed {
                count_error("origin");
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "cross-origin request refused: Origin {origin:?} is not an allowed host"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A refusal of the serving layer, with the headers every response carries.
fn refuse(status: StatusCode, msg: String) -> Response {
    let mut r = crate::api::error(status, msg);
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A stream that fails with `TimedOut` once no byte has moved either way for `idle`.
struct IdleIo<T> {
    inner: T,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    fn new(inner: T, idle: Duration) -> Self {
        let now = Instant::now();
        IdleIo {
            inner,
            idle,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    /// Called when an operation is pending: an error once the connection has been idle too long.
    /// The timer is re-armed lazily (activity only records the time), so busy connections cost
    /// one clock read per operation, not a timer reset.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last + self.idle;
            if Instant::now() >= due {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle timeout",
                ));
            }
            self.timer.as_mut().reset(due);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if r.as_ref().is_ok_and(|n| *n > 0) {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if r.as_ref().is_ok_and(|n| *n > 0) {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("a:80"), Some(("a", Some(80))));
        assert_eq!(split_host_port("a"), Some(("a", None)));
        assert_eq!(split_host_port("[::1]:8080"), Some(("::1", Some(8080))));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("a:x"), None);
        assert_eq!(split_host_port(":80"), None);
        assert_eq!(split_host_port("[::1]x"), None);
    }

    #[test]
    fn allowed_hosts() {
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let h = Hosts::new(&["gw.example".into(), "Other.Example:9".into()], false);
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "gw.example",
            "gw.example:1234",
            "other.example:9",
        ] {
            assert!(h.allows(ok, 80, local), "{ok}");
        }
        for bad in [
            "127.0.0.1:8081",
            "127.0.0.1",
            "localhost",
            "evil.example:8080",
            "other.example",
            "other.example:8080",
            "",
            "[::1]:8080",
        ] {
            assert!(!h.allows(bad, 80, local), "{bad}");
        }
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:8080".parse().unwrap();
        assert!(
            h.allows("127.0.0.1:8080", 80, mapped),
            "dual-stack listener"
        );
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert!(h.allows("[::1]", 80, v6));
        assert!(h.allows("localhost", 80, v6));
    }
}
