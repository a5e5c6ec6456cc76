//! The broker's TLS listener (`[mqtt.broker] tls`) against clients not written here:
//! `mosquitto_pub` / `mosquitto_sub` with `--cafile`, certificates from mw-security's
//! `certs init` (what `millwright certs init` writes). A client trusting the CA publishes and
//! subscribes (by IP and by host name); a plain-TCP client on the TLS port and a client
//! trusting another CA are refused, and what they tried to publish never arrives.
//!
//! Skips, saying why, when the mosquitto clients are not installed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mw_bus::{BusBuilder, BusConfig, Component, Parts, SourceRegistry};
use mw_mqtt::MqttBrokerComponent;
use tokio::io::{AsyncBufReadExt, BufReader};

fn tools_present() -> bool {
    mw_testpeers::tools_present(&["mosquitto_pub", "mosquitto_sub"])
}

fn temp_dir(name: &str) -> PathBuf {
    mw_testpeers::temp_dir("mqtt-tls", name)
}

use mw_testpeers::free_port;

/// Runs a mosquitto client to its end (at most 20 s), returning (success, stdout, stderr).
async fn run(tool: &str, args: &[String]) -> (bool, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(tool)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{tool} {args:?} ran over 20 s"))
    .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn args(host: &str, port: u16, ca: Option<&Path>, rest: &[&str]) -> Vec<String> {
    let mut a = vec!["-h".to_string(), host.into(), "-p".into(), port.to_string()];
    if let Some(ca) = ca {
        a.extend(["--cafile".to_string(), ca.display().to_string()]);
    }
    a.extend(rest.iter().map(|s| s.to_string()));
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_trusting_clients_and_refuses_plain_and_untrusted_ones() {
    if !tools_present() {
        return;
    }
    let dir = temp_dir("listener");
    let certs = dir.join("certs");
    let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
    mw_security::certs::init(&certs, &hosts, &[], false).unwrap();
    let other = dir.join("other");
    mw_security::certs::init(&other, &hosts, &[], false).unwrap();
    let ca = certs.join("ca.pem");
    let port = free_port();
    let toml = format!(
        r#"
[site]
data_dir = "{data}"
[mqtt.broker]
address = "127.0.0.1:{port}"
anonymous = true
tls = {{ cert = "{cert}", key = "{key}" }}
"#,
        data = dir.join("data").display(),
        cert = certs.join("server.pem").display(),
        key = certs.join("server.key").display(),
    );
    let registry = mw_bus::config_registry(&[&MqttBrokerComponent as &dyn Component]);
    let cfg = registry
        .parse(&toml, "test.toml")
        .unwrap_or_else(|d| panic!("config:\n{d}\n{toml}"));
    let mut parts = Parts::new();
    MqttBrokerComponent
        .build(&cfg, &mut parts)
        .expect("broker builds");
    let mut b = BusBuilder::new(BusConfig::default());
    b.parts(parts);
    let sources = SourceRegistry::new();
    let bus = b.start(&sources);

    // a subscriber through TLS, by host name (the certificate names localhost too)
    let mut sub = tokio::process::Command::new("mosquitto_sub")
        .args(args(
            "localhost",
            port,
            Some(&ca),
            &["-q", "1", "-v", "-W", "20", "-C", "2", "-t", "secure/#"],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_sub runs");
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();

    // retained first: once the subscriber has it, it is subscribed
    let (ok, _, err) = run(
        "mosquitto_pub",
        &args(
            "127.0.0.1",
            port,
            Some(&ca),
            &["-q", "1", "-r", "-t", "secure/retained", "-m", "r1"],
        ),
    )
    .await;
    assert!(ok, "a client trusting the CA publishes over TLS: {err}");
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the retained message within 20 s")
        .unwrap();
    assert_eq!(first.as_deref(), Some("secure/retained r1"));

    // a plain-TCP client on the TLS port: refused (no CONNACK), its message goes nowhere
    let (ok, _, _) = run(
        "mosquitto_pub",
        &args(
            "127.0.0.1",
            port,
            None,
            &["-q", "1", "-t", "secure/plain", "-m", "p"],
        ),
    )
    .await;
    assert!(
        !ok,
        "a plain-TCP client must not get through the TLS listener"
    );
    // a client trusting another CA: the handshake fails on its side
    let (ok, _, err) = run(
        "mosquitto_pub",
        &args(
            "127.0.0.1",
            port,
            Some(&other.join("ca.pem")),
            &["-q", "1", "-t", "secure/untrusted", "-m", "u"],
        ),
    )
    .await;
    assert!(!ok, "a client trusting another CA must fail");
    assert!(
        err.to_lowercase().contains("tls") || err.to_lowercase().contains("certificate"),
        "the untrusted client's error names TLS: {err}"
    );

    // a live message after the refused ones: the subscriber's next line is this one
    let (ok, _, err) = run(
        "mosquitto_pub",
        &args(
            "127.0.0.1",
            port,
            Some(&ca),
            &["-q", "1", "-t", "secure/live", "-m", "l1"],
        ),
    )
    .await;
    assert!(ok, "{err}");
    let second = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the live message within 20 s")
        .unwrap();
    assert_eq!(second.as_deref(), Some("secure/live l1"));
    let status = tokio::time::timeout(Duration::from_secs(20), sub.wait())
        .await
        .expect("mosquitto_sub ends after two messages")
        .unwrap();
    assert!(status.success());

    assert!(bus.stop(Duration::from_secs(5)).await, "bus stops in 5 s");
    let _ = std::fs::remove_dir_all(&dir);
}
