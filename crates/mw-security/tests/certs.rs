//! Certificates end to end in the library: `init` writes a CA, a server certificate and client
//! certificates; the server certificate verifies against the CA for its host names (webpki, as
//! a rustls client would) and not for another; a real in-memory TLS handshake with mutual
//! authentication works, and the client's CN comes out as the user name.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use mw_security::certs::{self, ClientAuth};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConnection};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mw-security-it-{name}-{}-{}",
        std::process::id(),
        mw_model::now_ns()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn roots(dir: &std::path::Path) -> RootCertStore {
    let mut r = RootCertStore::empty();
    for c in certs::read_pem_certs(&dir.join(certs::CA_CERT)).unwrap() {
        r.add(c).unwrap();
    }
    r
}

#[test]
fn server_certificate_verifies_for_its_hosts_only() {
    let dir = temp_dir("verify");
    let hosts = vec!["plant-edge.local".to_owned(), "10.0.0.5".to_owned()];
    let written = certs::init(&dir, &hosts, &[], false).unwrap();
    assert!(written.contains(&dir.join("server.key")));
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let chain = certs::read_pem_certs(&dir.join(certs::SERVER_CERT)).unwrap();
    assert_eq!(chain.len(), 2, "server certificate and the CA");
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(&dir)),
        certs::provider(),
    )
    .build()
    .unwrap();
    let check = |name: &str| {
        verifier.verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
    };
    assert!(check("plant-edge.local").is_ok());
    assert!(check("10.0.0.5").is_ok());
    let e = check("other.example").unwrap_err();
    assert!(
        e.to_string().to_lowercase().contains("not valid for name"),
        "{e}"
    );
    assert!(check("localhost").is_err(), "not among the hosts given");
    // Another CA's view: the certificate does not chain to a fresh, unrelated CA.
    let other = temp_dir("verify-other");
    certs::init(&other, &[], &[], false).unwrap();
    let stranger = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(&other)),
        certs::provider(),
    )
    .build()
    .unwrap();
    assert!(
        stranger
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from("plant-edge.local").unwrap(),
                &[],
                UnixTime::now()
            )
            .is_err()
    );
    // Default hosts; listing shows them.
    let listed = certs::list(&other).unwrap();
    let server = listed
        .iter()
        .find(|c| c.path.ends_with("server.pem") && !c.is_ca)
        .unwrap();
    assert_eq!(server.sans, ["localhost", "127.0.0.1", "::1"]);
    assert!(
        server.issuer.contains("Millwright local CA"),
        "{}",
        server.issuer
    );
    assert_eq!(server.fingerprint.len(), 32 * 3 - 1);
    assert!(server.not_after_ns > server.not_before_ns);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = temp_dir("force");
    certs::init(&dir, &[], &[], false).unwrap();
    let before = std::fs::read(dir.join("ca.key")).unwrap();
    let e = certs::init(&dir, &[], &[], false).unwrap_err().to_string();
    assert!(e.contains("ca.key") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(dir.join("ca.key")).unwrap(), before);
    certs::init(&dir, &[], &[], true).unwrap();
    assert_ne!(std::fs::read(dir.join("ca.key")).unwrap(), before);
    assert!(certs::init(&dir, &["bad host!".into()], &[], true).is_err());
    assert!(certs::init(&dir, &[], &["Not A User".into()], true).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs a handshake between the two connections in memory, then sends `ping` to the server.
fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), String> {
    let mut buf = Vec::new();
    for _ in 0..20 {
        buf.clear();
        client.write_tls(&mut buf).map_err(|e| e.to_string())?;
        if !buf.is_empty() {
            server
                .read_tls(&mut buf.as_slice())
                .map_err(|e| e.to_string())?;
            server
                .process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
        }
        buf.clear();
        server.write_tls(&mut buf).map_err(|e| e.to_string())?;
        if !buf.is_empty() {
            client
                .read_tls(&mut buf.as_slice())
                .map_err(|e| e.to_string())?;
            client
                .process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            client
                .writer()
                .write_all(b"ping")
                .map_err(|e| e.to_string())?;
            buf.clear();
            client.write_tls(&mut buf).map_err(|e| e.to_string())?;
            server
                .read_tls(&mut buf.as_slice())
                .map_err(|e| e.to_string())?;
            server
                .process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
            let mut got = [0u8; 4];
            server
                .reader()
                .read_exact(&mut got)
                .map_err(|e| e.to_string())?;
            return if &got == b"ping" {
                Ok(())
            } else {
                Err("garbled".into())
            };
        }
    }
    Err("handshake did not finish".into())
}

fn client_config(dir: &std::path::Path, user: Option<&str>) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(certs::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(dir));
    Arc::new(match user {
        None => b.with_no_client_auth(),
        Some(u) => {
            let chain = certs::read_pem_certs(&dir.join(certs::client_cert_file(u))).unwrap();
            let key = PrivateKeyDer::from_pem_file(dir.join(certs::client_key_file(u))).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
    })
}

#[test]
fn mutual_tls_handshake_and_cn_to_user() {
    let dir = temp_dir("mtls");
    certs::init(&dir, &[], &["alice".into()], false).unwrap();
    let name = ServerName::try_from("localhost").unwrap();

    let required = Arc::new(certs::server_config(&dir, ClientAuth::Required).unwrap());
    let mut server = ServerConnection::new(required.clone()).unwrap();
    let mut client =
        ClientConnection::new(client_config(&dir, Some("alice")), name.clone()).unwrap();
    handshake(&mut client, &mut server).unwrap();
    let peer: Vec<CertificateDer<'static>> = server.peer_certificates().unwrap().to_vec();
    assert_eq!(certs::client_cert_user(&peer[0]).unwrap(), "alice");

    // Without a client certificate the required server refuses…
    let mut server = ServerConnection::new(required).unwrap();
    let mut client = ClientConnection::new(client_config(&dir, None), name.clone()).unwrap();
    assert!(handshake(&mut client, &mut server).is_err());
    // …the optional one accepts, with no peer certificate.
    let optional = Arc::new(certs::server_config(&dir, ClientAuth::Optional).unwrap());
    let mut server = ServerConnection::new(optional).unwrap();
    let mut client = ClientConnection::new(client_config(&dir, None), name.clone()).unwrap();
    handshake(&mut client, &mut server).unwrap();
    assert!(server.peer_certificates().is_none());

    // A client certificate from a CA that is not trusted is refused; after `trust` it is not.
    let other = temp_dir("mtls-other");
    certs::init(&other, &[], &["bob".into()], false).unwrap();
    let bob = {
        let b = ClientConfig::builder_with_provider(certs::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(&dir));
        let chain = certs::read_pem_certs(&other.join(certs::client_cert_file("bob"))).unwrap();
        let key = PrivateKeyDer::from_pem_file(other.join(certs::client_key_file("bob"))).unwrap();
        Arc::new(b.with_client_auth_cert(chain, key).unwrap())
    };
    let mut server = ServerConnection::new(Arc::new(
        certs::server_config(&dir, ClientAuth::Required).unwrap(),
    ))
    .unwrap();
    let mut client = ClientConnection::new(bob.clone(), name.clone()).unwrap();
    assert!(handshake(&mut client, &mut server).is_err());
    assert!(
        certs::trust(&dir, &other.join(certs::SERVER_CERT)).is_err(),
        "a leaf is not a CA"
    );
    certs::trust(&dir, &other.join(certs::CA_CERT)).unwrap();
    let mut server = ServerConnection::new(Arc::new(
        certs::server_config(&dir, ClientAuth::Required).unwrap(),
    ))
    .unwrap();
    let mut client = ClientConnection::new(bob, name).unwrap();
    handshake(&mut client, &mut server).unwrap();
    let peer = server.peer_certificates().unwrap()[0].clone();
    assert_eq!(certs::client_cert_user(&peer).unwrap(), "bob");

    // The server certificate's CN ("localhost") is a valid name, but garbage is not a certificate.
    assert!(certs::client_cert_user(b"not a certificate").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}
