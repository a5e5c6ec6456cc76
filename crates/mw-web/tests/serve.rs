//! The serving layer against real sockets on loopback: connection caps, header-read and idle
//! timeouts, `Host`/`Origin` checks, JSON-only bodies, and TLS (with a CA made here by rcgen),
//! mutual TLS included. Every wait is bounded.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use mw_model::{Sample, TagPath};
use mw_web::{AppState, ClientCert, ServeOptions, TagStore};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const BOUND: Duration = Duration::from_secs(5);

struct NoTags;
impl TagStore for NoTags {
    fn latest(&self, _: &TagPath) -> Option<Sample> {
        None
    }
    fn latest_all(&self) -> Vec<Sample> {
        Vec::new()
    }
    fn recent(&self, _: &TagPath, _: usize) -> Option<Vec<Sample>> {
        None
    }
    fn window(&self) -> usize {
        10
    }
}

/// Counts re-learn requests (so a test sees whether a handler ran).
#[derive(Default)]
struct Relearns(Mutex<usize>);
impl mw_web::DetectorControl for Relearns {
    fn list(&self) -> Vec<mw_web::DetectorInfo> {
        Vec::new()
    }
    fn relearn(&self, _: &str) -> usize {
        *self.0.lock().unwrap() += 1;
        1
    }
}

fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static H: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("recorder")
    })
}

/// The value of `mw_errors_total{component="http",…,error_type=T}` (0 if absent).
fn http_errors(error_type: &str) -> f64 {
    let text = metrics().render();
    text.lines()
        .filter(|l| {
            l.starts_with("mw_errors_total{")
                && l.contains("component=\"http\"")
                && l.contains(&format!("error_type=\"{error_type}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn app(relearns: Arc<Relearns>) -> Router {
    metrics();
    mw_web::router(
        AppState::new(
            "t",
            Arc::new(NoTags),
            Arc::new(mw_web::Auth::token_only(
                "t".into(),
                mw_security::Principal {
                    name: "tester".into(),
                    role: mw_security::Role::Admin,
                    via: mw_security::Via::Token,
                },
            )),
        )
        .with_detectors(Some(relearns)),
    )
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    async fn start(router: Router, options: ServeOptions) -> Server {
        metrics();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(mw_web::serve_with(listener, router, options, async move {
            let _ = rx.await;
        }));
        Server {
            addr,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let r = tokio::time::timeout(BOUND + BOUND, self.task)
            .await
            .expect("serve returns after shutdown");
        r.unwrap().unwrap();
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Reads one response (with `Content-Length`) from a kept-alive connection.
async fn read_response(s: &mut (impl AsyncRead + Unpin)) -> io::Result<Resp> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed after {buf:?}"),
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| io::Error::other(format!("bad head {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    Ok(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn exchange(s: &mut (impl AsyncRead + AsyncWrite + Unpin), raw: &str) -> io::Result<Resp> {
    tokio::time::timeout(BOUND, async {
        s.write_all(raw.as_bytes()).await?;
        read_response(s).await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response in time"))?
}

fn get_req(addr: SocketAddr, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer t\r\n\r\n")
}

fn post_req(host: &str, path: &str, extra: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Whether the server closed the connection (EOF or reset) within `within`, with no response.
async fn closed_within(s: &mut (impl AsyncRead + Unpin), within: Duration) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(within, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => panic!(
            "expected a closed connection, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(_) => false,
    }
}

#[tokio::test]
async fn slow_headers_are_cut_off_by_the_header_read_timeout() {
    let opts = ServeOptions {
        header_read_timeout: Duration::from_millis(800),
        ..ServeOptions::default()
    };
    let srv = Server::start(app(Default::default()), opts).await;
    let before = http_errors("header_timeout");
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let req = get_req(srv.addr, "/health");
    let t0 = Instant::now();
    let mut sent = 0;
    let mut closed = false;
    // one byte every 200 ms: the head would take 5+ s, the timeout is 0.8 s
    for b in req.as_bytes() {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        sent += 1;
        if closed_within(&mut s, Duration::from_millis(200)).await {
            closed = true;
            break;
        }
    }
    let took = t0.elapsed();
    assert!(closed, "the slow client was never cut off");
    assert!(sent < req.len(), "the whole head got through");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "cut off after {took:?}"
    );
    assert!(
        http_errors("header_timeout") > before,
        "the timeout is counted"
    );

    // a kept-alive connection that sends no next request is closed by the same clock
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let r = exchange(&mut s, &get_req(srv.addr, "/health"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let t0 = Instant::now();
    assert!(
        closed_within(&mut s, BOUND).await,
        "idle keep-alive not closed"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t0.elapsed()
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_by_the_idle_timeout() {
    let opts = ServeOptions {
        idle_timeout: Duration::from_millis(600),
        ..ServeOptions::default()
    };
    let srv = Server::start(app(Default::default()), opts).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/detectors/relearn HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        srv.addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    // the server may answer 400 (the body ended early) before it closes; it must close in time
    let r = tokio::time::timeout(BOUND, s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "stalled connection not closed");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "{took:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_431() {
    let srv = Server::start(app(Default::default()), ServeOptions::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let big = "a".repeat(20 * 1024);
    let req = format!(
        "GET /health HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer t\r\nX-Big: {big}\r\n\r\n",
        srv.addr
    );
    let mut out = Vec::new();
    let _ = s.write_all(req.as_bytes()).await;
    let _ = tokio::time::timeout(BOUND, s.read_to_end(&mut out)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    // a head within the limit is served
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let ok = format!(
        "GET /health HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer t\r\nX-Big: {}\r\n\r\n",
        srv.addr,
        "a".repeat(8 * 1024)
    );
    assert_eq!(exchange(&mut s, &ok).await.unwrap().status, 200);
    srv.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_while_existing_clients_are_served() {
    let opts = ServeOptions {
        max_connections: 3,
        ..ServeOptions::default()
    };
    let srv = Server::start(app(Default::default()), opts).await;
    let before = http_errors("connection_limit");
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let r = exchange(&mut s, &get_req(srv.addr, "/health"))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        open.push(s);
    }
    for _ in 0..3 {
        let mut extra = TcpStream::connect(srv.addr).await.unwrap();
        let _ = extra
            .write_all(get_req(srv.addr, "/health").as_bytes())
            .await;
        assert!(
            closed_within(&mut extra, BOUND).await,
            "4th connection was not refused"
        );
    }
    assert!(http_errors("connection_limit") >= before + 3.0);
    // the existing clients keep being served, on the same connections
    for s in &mut open {
        let r = exchange(s, &get_req(srv.addr, "/api/v1/tags"))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
    }
    // a closed connection gives its slot back
    drop(open.pop());
    let t0 = Instant::now();
    loop {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        if let Ok(r) = exchange(&mut s, &get_req(srv.addr, "/health")).await {
            assert_eq!(r.status, 200);
            break;
        }
        assert!(t0.elapsed() < BOUND, "slot never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    srv.stop().await;
}

async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

#[tokio::test]
async fn connections_per_client_address_are_capped() {
    let opts = ServeOptions {
        max_connections_per_client: 2,
        ..ServeOptions::default()
    };
    let srv = Server::start(app(Default::default()), opts).await;
    let mut a1 = connect_from("127.0.0.1", srv.addr).await;
    let mut a2 = connect_from("127.0.0.1", srv.addr).await;
    for s in [&mut a1, &mut a2] {
        assert_eq!(
            exchange(s, &get_req(srv.addr, "/health"))
                .await
                .unwrap()
                .status,
            200
        );
    }
    let mut a3 = connect_from("127.0.0.1", srv.addr).await;
    assert!(
        closed_within(&mut a3, BOUND).await,
        "3rd connection of one client accepted"
    );
    // another client address is not affected
    let mut b = connect_from("127.0.0.2", srv.addr).await;
    assert_eq!(
        exchange(&mut b, &get_req(srv.addr, "/health"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        exchange(&mut a1, &get_req(srv.addr, "/health"))
            .await
            .unwrap()
            .status,
        200
    );
    srv.stop().await;
}

#[tokio::test]
async fn cross_origin_simple_posts_and_foreign_hosts_are_refused() {
    let relearns = Arc::new(Relearns::default());
    let opts = ServeOptions {
        allowed_hosts: vec!["gw.example".into()],
        ..ServeOptions::default()
    };
    let srv = Server::start(app(relearns.clone()), opts).await;
    let host = srv.addr.to_string();
    let body = r#"{"asset":"a/b"}"#;
    let path = "/api/v1/detectors/relearn";
    let mut s = TcpStream::connect(srv.addr).await.unwrap();

    // the no-preflight CSRF shape: a simple POST with text/plain
    let r = exchange(
        &mut s,
        &post_req(&host, path, "Content-Type: text/plain\r\n", body),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 415, "{r:?}");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );
    // ... and from a foreign page, which is refused before anything else
    let evil = "Content-Type: text/plain\r\nOrigin: http://evil.example\r\n";
    let r = exchange(&mut s, &post_req(&host, path, evil, body))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("evil.example"));
    let evil_json = "Content-Type: application/json\r\nOrigin: http://evil.example\r\n";
    let r = exchange(&mut s, &post_req(&host, path, evil_json, body))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    for origin in ["null", "file://", "http://127.0.0.1:1"] {
        let h = format!("Content-Type: application/json\r\nOrigin: {origin}\r\n");
        let r = exchange(&mut s, &post_req(&host, path, &h, body))
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{origin}: {r:?}");
    }
    assert_eq!(*relearns.0.lock().unwrap(), 0, "no handler ran");

    // the page's own origin, and no Origin at all (curl), are served
    let own = format!("Content-Type: application/json\r\nOrigin: http://{host}\r\n");
    let r = exchange(&mut s, &post_req(&host, path, &own, body))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{r:?}");
    let r = exchange(
        &mut s,
        &post_req(&host, path, "Content-Type: application/json\r\n", body),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(*relearns.0.lock().unwrap(), 2);
    // a GET with a foreign Origin is fine (a browser will not let the page read it without CORS)
    let r = exchange(
        &mut s,
        &format!("GET /health HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t\r\nOrigin: http://evil.example\r\n\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);

    // Host: DNS rebinding or a misdirected request
    for bad in [
        "evil.example",
        "evil.example:80",
        "127.0.0.1",
        "127.0.0.2:1",
    ] {
        let r = exchange(
            &mut s,
            &format!("GET /api/v1/tags HTTP/1.1\r\nHost: {bad}\r\nAuthorization: Bearer t\r\n\r\n"),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 421, "{bad}: {r:?}");
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("not served here")
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let port = srv.addr.port();
    for good in [
        format!("localhost:{port}"),
        "gw.example".into(),
        "GW.example:8443".into(),
    ] {
        let r = exchange(
            &mut s,
            &format!("GET /health HTTP/1.1\r\nHost: {good}\r\nAuthorization: Bearer t\r\n\r\n"),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{good}: {r:?}");
    }
    let r = exchange(&mut s, "GET /health HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error"], "missing Host header");
    srv.stop().await;
}

#[tokio::test]
async fn method_not_allowed_and_bad_queries_answer_json() {
    let srv = Server::start(app(Default::default()), ServeOptions::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let host = srv.addr.to_string();
    let r = exchange(
        &mut s,
        &format!("DELETE /api/v1/tags HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t\r\n\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
    assert!(r.json()["error"].as_str().unwrap().contains("not allowed"));
    let r = exchange(
        &mut s,
        &get_req(srv.addr, "/api/v1/tags/a/b/recent?limit=lots"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("limit"),
        "{r:?}"
    );
    let big = "x".repeat(mw_web::CONTROL_BODY_LIMIT + 1);
    let r = exchange(
        &mut s,
        &post_req(
            &host,
            "/api/v1/detectors/relearn",
            "Content-Type: application/json\r\n",
            &big,
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 413);
    r.json();
    srv.stop().await;
}

// ---- TLS ----

struct Pki {
    ca: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap().der().clone();
        Pki {
            ca,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        roots
    }

    /// A certificate for `sans` with CN `cn`, for a server or a client.
    fn issue(
        &self,
        cn: &str,
        sans: &[&str],
        server: bool,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

impl Pki {
    /// A server certificate that expired in 2021.
    fn issue_expired(&self, cn: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(
    trust: &Pki,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<rustls::ClientConfig> {
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(trust.roots());
    Arc::new(match identity {
        Some((chain, key)) => b.with_client_auth_cert(chain, key).unwrap(),
        None => b.with_no_client_auth(),
    })
}

async fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        BOUND,
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "handshake hung"))?
}

/// A handler that shows what a later auth layer would see.
async fn whoami(cert: Option<axum::Extension<ClientCert>>) -> String {
    match cert {
        Some(axum::Extension(c)) => format!(
            "cn={} der={}",
            c.subject_common_name().unwrap_or("-"),
            c.der().len()
        ),
        None => "anonymous".into(),
    }
}

fn whoami_app() -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .merge(app(Default::default()))
}

#[tokio::test]
async fn tls_serves_clients_that_trust_our_ca_and_fails_others_cleanly() {
    let pki = Pki::new("Millwright test CA");
    let (chain, key) = pki.issue("localhost", &["localhost", "127.0.0.1"], true);
    let tls = mw_web::server_tls_config(chain, key, None).unwrap();
    let opts = ServeOptions {
        tls: Some(Arc::new(tls)),
        header_read_timeout: Duration::from_secs(2),
        ..ServeOptions::default()
    };
    let srv = Server::start(whoami_app(), opts).await;
    let host = format!("localhost:{}", srv.addr.port());

    let mut s = tls_connect(srv.addr, client_config(&pki, None))
        .await
        .expect("handshake");
    assert_eq!(
        s.get_ref().1.alpn_protocol(),
        None,
        "client offered no ALPN"
    );
    let r = exchange(
        &mut s,
        &format!("GET /health HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t\r\n\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let r = exchange(
        &mut s,
        &format!("GET /whoami HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t\r\n\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(
        r.body, "anonymous",
        "no client certificate without mutual TLS"
    );
    // Origin on https with the default port rules
    let own = format!("Content-Type: application/json\r\nOrigin: https://{host}\r\n");
    let r = exchange(
        &mut s,
        &post_req(&host, "/api/v1/detectors/relearn", &own, r#"{"asset":"x"}"#),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 202, "served: {r:?}");

    // a client that trusts another CA refuses our certificate
    let before = http_errors("tls_handshake");
    let other = Pki::new("Some other CA");
    let Err(e) = tls_connect(srv.addr, client_config(&other, None)).await else {
        panic!("a client trusting another CA completed the handshake");
    };
    assert!(
        e.to_string().contains("UnknownIssuer") || e.to_string().contains("certificate"),
        "{e}"
    );

    // plain HTTP to the TLS port: no HTTP answer, the connection is closed, nothing breaks
    let mut plain = TcpStream::connect(srv.addr).await.unwrap();
    plain
        .write_all(get_req(srv.addr, "/health").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(BOUND, plain.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "plain connection not closed");
    assert!(!got.starts_with(b"HTTP/"), "answered plain HTTP: {got:?}");
    let t0 = Instant::now();
    while http_errors("tls_handshake") < before + 2.0 {
        assert!(t0.elapsed() < BOUND, "failed handshakes not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // the server still serves TLS
    let r = exchange(
        &mut s,
        &format!("GET /health HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t\r\n\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    srv.stop().await;
}

#[tokio::test]
async fn mutual_tls_exposes_the_client_certificate_to_handlers() {
    let pki = Pki::new("Millwright test CA");
    let clients = Pki::new("Millwright operators CA");
    let (chain, key) = pki.issue("localhost", &["localhost"], true);
    let tls = mw_web::server_tls_config(chain, key, Some(clients.roots())).unwrap();
    let opts = ServeOptions {
        tls: Some(Arc::new(tls)),
        ..ServeOptions::default()
    };
    let srv = Server::start(whoami_app(), opts).await;
    let host = format!("localhost:{}", srv.addr.port());
    let req = format!("GET /whoami HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t\r\n\r\n");

    let (op_chain, op_key) = clients.issue("operator-7", &["operator-7.example"], false);
    let der_len = op_chain[0].len();
    let mut s = tls_connect(srv.addr, client_config(&pki, Some((op_chain, op_key))))
        .await
        .unwrap();
    let r = exchange(&mut s, &req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, format!("cn=operator-7 der={der_len}"));

    // without a certificate, or with one from a CA the server does not trust: refused. With
    // TLS 1.3 the client learns it at its first read.
    let strangers = Pki::new("Not our CA");
    for identity in [
        None,
        Some(strangers.issue("mallory", &["m.example"], false)),
    ] {
        let refused = match tls_connect(srv.addr, client_config(&pki, identity)).await {
            Err(_) => true,
            Ok(mut s) => exchange(&mut s, &req).await.is_err(),
        };
        assert!(refused, "served a client without a trusted certificate");
    }
    srv.stop().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let srv = Server::start(app(Default::default()), ServeOptions::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    assert_eq!(
        exchange(&mut s, &get_req(srv.addr, "/health"))
            .await
            .unwrap()
            .status,
        200
    );
    let t0 = Instant::now();
    srv.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(closed_within(&mut s, BOUND).await);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_pending_tls_handshake() {
    let pki = Pki::new("Millwright test CA");
    let (chain, key) = pki.issue("localhost", &["localhost"], true);
    let opts = ServeOptions {
        tls: Some(Arc::new(
            mw_web::server_tls_config(chain, key, None).unwrap(),
        )),
        ..ServeOptions::default()
    };
    let srv = Server::start(whoami_app(), opts).await;
    // connected, never says hello: the handshake would wait 10 s (header_read_timeout)
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    srv.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(closed_within(&mut silent, BOUND).await);
}

#[tokio::test]
async fn an_expired_server_certificate_fails_the_handshake_cleanly() {
    let pki = Pki::new("Millwright test CA");
    let (chain, key) = pki.issue_expired("localhost");
    let opts = ServeOptions {
        tls: Some(Arc::new(
            mw_web::server_tls_config(chain, key, None).unwrap(),
        )),
        ..ServeOptions::default()
    };
    let srv = Server::start(whoami_app(), opts).await;
    let err = tls_connect(srv.addr, client_config(&pki, None))
        .await
        .expect_err("a client must refuse an expired certificate");
    assert!(err.to_string().to_lowercase().contains("expired"), "{err}");
    srv.stop().await;
}

/// Mutual TLS through the real authentication layer: the verified certificate's CN is the user
/// (from the user store, with its role); an unknown CN is refused.
#[tokio::test]
async fn mutual_tls_signs_in_the_user_the_certificate_names() {
    let dir = std::env::temp_dir().join(format!("mw-web-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut users =
        mw_security::UserStore::open(&dir)
            .unwrap()
            .with_params(mw_security::HashParams {
                m_kib: 1024,
                t: 1,
                p: 1,
            });
    users
        .add(
            "operator-7",
            mw_security::Role::Operator,
            "correct horse battery",
        )
        .unwrap();
    let auth = mw_security::LocalAuthenticator::open(&dir).unwrap();
    let router = mw_web::router(AppState::new(
        "t",
        Arc::new(NoTags),
        Arc::new(mw_web::Auth::new(Arc::new(auth))),
    ));
    let pki = Pki::new("Millwright test CA");
    let clients = Pki::new("Millwright operators CA");
    let (chain, key) = pki.issue("localhost", &["localhost"], true);
    let tls = mw_web::server_tls_config(chain, key, Some(clients.roots())).unwrap();
    let srv = Server::start(
        router,
        ServeOptions {
            tls: Some(Arc::new(tls)),
            ..ServeOptions::default()
        },
    )
    .await;
    let host = format!("localhost:{}", srv.addr.port());
    let req = format!("GET /api/v1/whoami HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut s = tls_connect(
        srv.addr,
        client_config(
            &pki,
            Some(clients.issue("operator-7", &["o.example"], false)),
        ),
    )
    .await
    .unwrap();
    let r = exchange(&mut s, &req).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["user"], "operator-7");
    assert_eq!(r.json()["role"], "operator");
    assert_eq!(r.json()["via"], "client_certificate");
    let mut s = tls_connect(
        srv.addr,
        client_config(&pki, Some(clients.issue("mallory", &["m.example"], false))),
    )
    .await
    .unwrap();
    let r = exchange(&mut s, &req).await.unwrap();
    assert_eq!(r.status, 401, "a CN that is no user: {:?}", r.body);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
