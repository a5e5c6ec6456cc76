//! The HTTP API (an empty tag store) served twice on loopback by `mw_web::serve_with`: plain HTTP
//! and HTTPS (a CA and a server certificate for 127.0.0.1/localhost made by rcgen at start). For
//! `bench/http.sh`:
//!
//!     cargo run --release -p mw-web --example bench_server -- DIR
//!
//! writes `DIR/ca.pem`, `DIR/ports` (`PLAIN_PORT TLS_PORT`) and `DIR/token` (an API token stored
//! in `DIR/security/tokens.json`, checked by `mw_security::LocalAuthenticator` as in `millwright
//! run`), then serves until killed. `Bearer bench` is the process's own login token.

use std::sync::Arc;

use mw_model::{Sample, TagPath};
use mw_web::{AppState, ServeOptions, TagStore};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: bench_server DIR")?);
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench CA");
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])?;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    let tls = mw_web::server_tls_config(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        None,
    )?;

    let security = mw_security::security_dir(&dir);
    let issued = mw_security::TokenStore::open(&security)?.create(
        "bench",
        mw_security::Role::Viewer,
        std::time::Duration::from_secs(3600),
        "bench",
    )?;
    std::fs::write(dir.join("token"), format!("{}\n", issued.token))?;
    // `GET /health` is public; `/api/v1/whoami` with `Authorization: Bearer bench` (the
    // process's login token) or with `DIR/token` (a stored API token) measures an
    // authenticated request
    let auth = mw_web::Auth::new(Arc::new(mw_security::LocalAuthenticator::open(&security)?))
        .with_ephemeral_token(
            "bench".into(),
            mw_security::Principal {
                name: "bench".into(),
                role: mw_security::Role::Viewer,
                via: mw_security::Via::Token,
            },
        );
    let state = AppState::new("bench", Arc::new(NoTags), Arc::new(auth));
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let secure = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    std::fs::write(
        dir.join("ports"),
        format!(
            "{} {}\n",
            plain.local_addr()?.port(),
            secure.local_addr()?.port()
        ),
    )?;
    let router = mw_web::router(state);
    let a = tokio::spawn(mw_web::serve_with(
        plain,
        router.clone(),
        ServeOptions::default(),
        std::future::pending(),
    ));
    let b = tokio::spawn(mw_web::serve_with(
        secure,
        router,
        ServeOptions {
            tls: Some(Arc::new(tls)),
            ..ServeOptions::default()
        },
        std::future::pending(),
    ));
    let (a, b) = tokio::try_join!(a, b)?;
    a?;
    b?;
    Ok(())
}
