//! Certificates for TLS and mutual TLS: a local CA, a server certificate for the host names
//! and client certificates, made with rcgen (ECDSA P-256); the rustls [`ServerConfig`] built
//! from them (ring provider); and the mapping of a client certificate's CN to a user name.
//!
//! Layout of a certificate directory (`DATA_DIR/security/certs` by default):
//! ```text
//! ca.pem  ca.key                  the CA (key mode 0600)
//! server.pem  server.key          server certificate + CA chain, its key
//! client-NAME.pem  client-NAME.key
//! trusted/*.pem                   CAs whose client certificates are accepted (ca.pem is one)
//! ```

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::{crypto, fsutil, validate_name};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server.key";
pub const TRUSTED_DIR: &str = "trusted";
/// The host names a server certificate gets when none are given.
pub const DEFAULT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
const CA_DAYS: i64 = 3650;
const LEAF_DAYS: i64 = 825;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: already exist(s); pass --force to replace them", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Exists(Vec<PathBuf>),
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("invalid host name {0:?} (a DNS name or an IP address)")]
    BadHost(String),
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("{path}: not a CA certificate (basicConstraints CA is not set)")]
    NotCa { path: PathBuf },
    #[error("{0}")]
    Invalid(String),
    #[error("TLS configuration: {0}")]
    Tls(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_owned(),
        source,
    }
}

fn gen_err(e: rcgen::Error) -> CertError {
    CertError::Generate(e.to_string())
}

/// The ring crypto provider (the tree's only one).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn client_cert_file(name: &str) -> String {
    format!("client-{name}.pem")
}

pub fn client_key_file(name: &str) -> String {
    format!("client-{name}.key")
}

fn validity(p: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(days);
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "Millwright");
    d.push(DnType::CommonName, cn);
    d
}

fn san(host: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        });
    if !ok {
        return Err(CertError::BadHost(host.to_owned()));
    }
    Ok(SanType::DnsName(
        host.to_owned()
            .try_into()
            .map_err(|_| CertError::BadHost(host.to_owned()))?,
    ))
}

/// Creates the CA, the server certificate for `hosts` (default [`DEFAULT_HOSTS`]) and a client
/// certificate per name in `clients` (each a valid user name: it becomes the CN). Refuses to
/// replace existing files unless `force`. Returns the files written.
pub fn init(
    dir: &Path,
    hosts: &[String],
    clients: &[String],
    force: bool,
) -> Result<Vec<PathBuf>, CertError> {
    let hosts: Vec<String> = if hosts.is_empty() {
        DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect()
    } else {
        hosts.to_vec()
    };
    let sans = hosts
        .iter()
        .map(|h| san(h))
        .collect::<Result<Vec<_>, _>>()?;
    for c in clients {
        validate_name(c).map_err(|e| CertError::Invalid(format!("client certificate: {e}")))?;
    }
    let mut outputs = vec![
        (dir.join(CA_CERT), 0o644),
        (dir.join(CA_KEY), 0o600),
        (dir.join(SERVER_CERT), 0o644),
        (dir.join(SERVER_KEY), 0o600),
        (dir.join(TRUSTED_DIR).join(CA_CERT), 0o644),
    ];
    for c in clients {
        outputs.push((dir.join(client_cert_file(c)), 0o644));
        outputs.push((dir.join(client_key_file(c)), 0o600));
    }
    let existing: Vec<PathBuf> = outputs
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() && !force {
        return Err(CertError::Exists(existing));
    }

    // The CA.
    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = dn("Millwright local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca, CA_DAYS);
    let ca_cert = ca.self_signed(&ca_key).map_err(gen_err)?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca, ca_key);

    // The server.
    let server_key = KeyPair::generate().map_err(gen_err)?;
    let mut sp = CertificateParams::default();
    sp.distinguished_name = dn(&hosts[0]);
    sp.subject_alt_names = sans;
    sp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sp.use_authority_key_identifier_extension = true;
    validity(&mut sp, LEAF_DAYS);
    let server_cert = sp.signed_by(&server_key, &issuer).map_err(gen_err)?;

    let mut files: Vec<(PathBuf, String, u32)> = vec![
        (dir.join(CA_CERT), ca_pem.clone(), 0o644),
        (dir.join(CA_KEY), issuer.key().serialize_pem(), 0o600),
        (
            dir.join(SERVER_CERT),
            format!("{}{}", server_cert.pem(), ca_pem),
            0o644,
        ),
        (dir.join(SERVER_KEY), server_key.serialize_pem(), 0o600),
        (dir.join(TRUSTED_DIR).join(CA_CERT), ca_pem.clone(), 0o644),
    ];
    for c in clients {
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut cp = CertificateParams::default();
        cp.distinguished_name = dn(c);
        cp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        cp.use_authority_key_identifier_extension = true;
        validity(&mut cp, LEAF_DAYS);
        let cert = cp.signed_by(&key, &issuer).map_err(gen_err)?;
        files.push((dir.join(client_cert_file(c)), cert.pem(), 0o644));
        files.push((dir.join(client_key_file(c)), key.serialize_pem(), 0o600));
    }

    let trusted = dir.join(TRUSTED_DIR);
    fsutil::private_dir(dir).map_err(|e| CertError::Invalid(e.to_string()))?;
    fs::create_dir_all(&trusted).map_err(io_err(&trusted))?;
    let mut written = Vec::new();
    for (path, text, mode) in files {
        if force && path.exists() {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
        fsutil::write_new(&path, text.as_bytes(), mode).map_err(io_err(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// What `certs list` shows of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub path: PathBuf,
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses.
    pub sans: Vec<String>,
    pub not_before_ns: i64,
    pub not_after_ns: i64,
    /// SHA-256 of the DER, hex pairs separated by `:`.
    pub fingerprint: String,
    pub is_ca: bool,
}

/// Reads the certificates of a PEM file.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(CertError::Pem {
            path: path.to_owned(),
            message: "no CERTIFICATE block".to_owned(),
        });
    }
    Ok(certs)
}

/// Describes one DER certificate.
pub fn describe(path: &Path, der: &[u8]) -> Result<CertInfo, CertError> {
    let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| CertError::Pem {
        path: path.to_owned(),
        message: format!("not an X.509 certificate: {e}"),
    })?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = c.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    sans.push(ip.map_or_else(|| "?".to_owned(), |i| i.to_string()));
                }
                other => sans.push(format!("{other:?}")),
            }
        }
    }
    let fp = crypto::sha256(der);
    Ok(CertInfo {
        path: path.to_owned(),
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        sans,
        not_before_ns: c
            .validity()
            .not_before
            .timestamp()
            .saturating_mul(1_000_000_000),
        not_after_ns: c
            .validity()
            .not_after
            .timestamp()
            .saturating_mul(1_000_000_000),
        fingerprint: fp
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
        is_ca: c.is_ca(),
    })
}

/// Every certificate in `dir` and `dir/trusted` (`*.pem`, sorted by path).
pub fn list(dir: &Path) -> Result<Vec<CertInfo>, CertError> {
    let mut paths = Vec::new();
    for d in [dir.to_owned(), dir.join(TRUSTED_DIR)] {
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d != dir => continue,
            Err(e) => return Err(io_err(&d)(e)),
        };
        for entry in rd {
            let p = entry.map_err(io_err(&d))?.path();
            if p.extension().is_some_and(|x| x == "pem") {
                paths.push(p);
            }
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        for der in read_pem_certs(&p)? {
            out.push(describe(&p, &der)?);
        }
    }
    Ok(out)
}

/// Adds the CA certificate(s) in `file` to the trusted client CAs (`dir/trusted/`), each under
/// its fingerprint. Refuses a certificate that is not a CA.
pub fn trust(dir: &Path, file: &Path) -> Result<Vec<PathBuf>, CertError> {
    let certs = read_pem_certs(file)?;
    let trusted = dir.join(TRUSTED_DIR);
    fs::create_dir_all(&trusted).map_err(io_err(&trusted))?;
    let mut out = Vec::new();
    for der in certs {
        let info = describe(file, &der)?;
        if !info.is_ca {
            return Err(CertError::NotCa {
                path: file.to_owned(),
            });
        }
        let name = crypto::hex(&crypto::sha256(&der)[..8]);
        let path = trusted.join(format!("{name}.pem"));
        let text = pem_encode(&der);
        if !path.exists() {
            fsutil::write_new(&path, text.as_bytes(), 0o644).map_err(io_err(&path))?;
        }
        out.push(path);
    }
    Ok(out)
}

fn pem_encode(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

/// Whether the server asks for client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates.
    None,
    /// Accepted and verified if offered (then the CN names the user); others may log in with a
    /// password or token.
    Optional,
    /// Every client must present a certificate signed by a trusted CA.
    Required,
}

/// The trusted client CAs (`dir/trusted/*.pem`).
pub fn trusted_roots(dir: &Path) -> Result<RootCertStore, CertError> {
    let mut roots = RootCertStore::empty();
    let d = dir.join(TRUSTED_DIR);
    let rd = fs::read_dir(&d).map_err(io_err(&d))?;
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    paths.sort();
    for p in paths {
        for der in read_pem_certs(&p)? {
            roots.add(der).map_err(|e| CertError::Pem {
                path: p.clone(),
                message: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(CertError::Invalid(format!(
            "{}: no trusted client CA (run `millwright certs init` or `certs trust FILE`)",
            d.display()
        )));
    }
    Ok(roots)
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3) from `dir/server.pem` and
/// `dir/server.key`, verifying client certificates against `dir/trusted/` as `client_auth` says.
/// The caller sets ALPN (`alpn_protocols`) as its protocol needs.
pub fn server_config(
    dir: &Path,
    client_auth: ClientAuth,
) -> Result<rustls::ServerConfig, CertError> {
    let provider = provider();
    let chain = read_pem_certs(&dir.join(SERVER_CERT))?;
    let key_path = dir.join(SERVER_KEY);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| CertError::Pem {
        path: key_path.clone(),
        message: e.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Tls(e.to_string()))?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let roots = Arc::new(trusted_roots(dir)?);
            let v = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let v = if client_auth == ClientAuth::Optional {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| CertError::Tls(e.to_string()))?)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| CertError::Tls(format!("{}: {e}", key_path.display())))
}

/// A rustls server configuration from explicit files (the `[http] tls` keys): a PEM certificate
/// chain, its PEM private key and, optionally, a PEM file of client CAs — then client certificates
/// are verified when offered (their CN names the user) and clients without one may still sign in
/// with a password or token.
pub fn server_config_files(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, CertError> {
    let provider = provider();
    let chain = read_pem_certs(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| CertError::Pem {
        path: key.to_owned(),
        message: e.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Tls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for der in read_pem_certs(ca)? {
                roots.add(der).map_err(|e| CertError::Pem {
                    path: ca.to_owned(),
                    message: e.to_string(),
                })?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| CertError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    builder
        .with_single_cert(chain, key_der)
        .map_err(|e| CertError::Tls(format!("{}: {e}", key.display())))
}

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3) trusting the CAs of the PEM
/// file `ca`, presenting the certificate chain and key of `client` when given (mutual TLS). The
/// caller sets ALPN as its protocol needs.
pub fn client_config_files(
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, CertError> {
    let mut roots = RootCertStore::empty();
    for der in read_pem_certs(ca)? {
        roots.add(der).map_err(|e| CertError::Pem {
            path: ca.to_owned(),
            message: e.to_string(),
        })?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = read_pem_certs(cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| CertError::Pem {
                path: key.to_owned(),
                message: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| CertError::Tls(format!("{}: {e}", key.display())))
        }
    }
}

/// The first common name (CN) of a certificate's subject, if it parses and has one as text
/// (any text: [`client_cert_user`] also checks it is a valid user name). Never panics.
pub fn subject_common_name(der: &[u8]) -> Option<String> {
    let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
    c.subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned)
}

/// The user name a verified client certificate stands for: its subject's CN, which must be a
/// valid user name. (Call it only with a certificate rustls has verified.)
pub fn client_cert_user(der: &[u8]) -> Result<String, CertError> {
    x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertError::Invalid(format!("client certificate: not X.509: {e}")))?;
    let cn = subject_common_name(der)
        .ok_or_else(|| CertError::Invalid("client certificate has no CN".to_owned()))?;
    validate_name(&cn).map_err(|e| CertError::Invalid(format!("client certificate CN: {e}")))?;
    Ok(cn)
}

#[cfg(test)]
mod cn_tests {
    use super::*;

    fn cert(cn: Option<&str>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_the_subject_common_name() {
        assert_eq!(
            subject_common_name(&cert(Some("operator-7"))).as_deref(),
            Some("operator-7")
        );
        assert_eq!(
            subject_common_name(&cert(Some("Zoë"))).as_deref(),
            Some("Zoë")
        );
        assert_eq!(subject_common_name(&cert(None)), None);
        assert_eq!(
            client_cert_user(&cert(Some("operator-7"))).unwrap(),
            "operator-7"
        );
        assert!(client_cert_user(&cert(Some("Zoë"))).is_err());
        assert!(client_cert_user(&cert(None)).is_err());
    }

    #[test]
    fn never_panics_on_truncated_or_corrupted_input() {
        let der = cert(Some("operator-7"));
        for n in 0..der.len() {
            let _ = subject_common_name(&der[..n]);
            let _ = client_cert_user(&der[..n]);
        }
        for i in 0..der.len() {
            let mut bad = der.clone();
            bad[i] ^= 0xff;
            let _ = subject_common_name(&bad);
            let _ = client_cert_user(&bad);
        }
        assert_eq!(
            subject_common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(subject_common_name(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
    }
}
