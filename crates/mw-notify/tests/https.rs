//! Webhooks over HTTPS against a real TLS receiver (tokio-rustls + hyper on 127.0.0.1:0, its
//! certificate from `mw_security::certs::init`): trusted through `ca`, the body arrives; with
//! another CA the handshake is refused.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mw_notify::config::{NotifySection, TargetKind};
use mw_notify::webhook::Webhook;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mw-notify-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An HTTPS server answering 200 to every request and recording the bodies.
async fn serve(dir: &std::path::Path) -> (u16, Arc<Mutex<Vec<Bytes>>>) {
    let cfg = mw_security::certs::server_config(dir, mw_security::certs::ClientAuth::None).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let g = g.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let g = g.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        if let Ok(b) = body {
                            g.lock().unwrap().push(b);
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, got)
}

fn webhook(port: u16, ca: &std::path::Path) -> Webhook {
    let toml = format!(
        "[[notify.webhook]]\nname = \"tls\"\nurl = \"https://127.0.0.1:{port}/hook\"\nca = \"{}\"\ntimeout = \"5s\"\n",
        ca.display()
    );
    let reg = mw_bus::config_registry(&[&mw_notify::NotifyComponent as &dyn mw_bus::Component]);
    let cfg = reg.parse(&toml, "t.toml").unwrap_or_else(|d| panic!("{d}"));
    let s = cfg.section::<NotifySection>().unwrap();
    let TargetKind::Webhook(w) = &s.targets[0].kind else {
        unreachable!()
    };
    Webhook::build("tls", w).unwrap()
}

#[tokio::test]
async fn https_with_the_configured_ca() {
    let server_dir = temp_dir("server");
    mw_security::certs::init(&server_dir, &[], &[], false).unwrap();
    let other_dir = temp_dir("other");
    mw_security::certs::init(&other_dir, &[], &[], false).unwrap();
    let (port, got) = serve(&server_dir).await;

    let ok = webhook(port, &server_dir.join(mw_security::certs::CA_CERT));
    let body = Bytes::from_static(br#"{"type":"alarm","alarm":"a"}"#);
    assert_eq!(ok.attempt(&body, "id-1").await, Ok(200));
    assert_eq!(got.lock().unwrap().as_slice(), std::slice::from_ref(&body));

    let wrong = webhook(port, &other_dir.join(mw_security::certs::CA_CERT));
    let e = wrong.attempt(&body, "id-2").await.unwrap_err();
    assert!(e.starts_with("TLS:"), "{e}");
    assert_eq!(got.lock().unwrap().len(), 1);
}
