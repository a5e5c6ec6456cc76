//! Broker conformance against clients not written here: paho-mqtt (3.1.1 and 5.0),
//! mosquitto_pub / mosquitto_sub, and raw sockets (tests/peers/mqtt_conformance.py). Each test
//! starts two brokers on ephemeral loopback ports — one accepting anonymous clients, one with
//! users from a Millwright user store and an ACL — and runs one case of the script.
//!
//! Skips, saying why, when the Python venv with paho-mqtt (scripts/setup-test-env.sh) or the
//! mosquitto tools are missing.

use std::path::PathBuf;
use std::sync::Arc;

use mw_mqtt::{Access, Acl, AclRule, Broker, BrokerConfig};

const ALICE: &str = "alice-Secret-123";
const BOB: &str = "bob-Secret-456";

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("MW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/millwright/venv/bin/python")
        });
    let ok = std::process::Command::new(&p)
        .args(["-c", "import paho.mqtt.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(p)
    } else {
        eprintln!(
            "SKIP: no Python with paho-mqtt at {} (run scripts/setup-test-env.sh)",
            p.display()
        );
        None
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/mqtt_conformance.py")
}

async fn start(
    cfg: BrokerConfig,
    auth: Option<Arc<dyn mw_security::Authenticator>>,
    acl: Acl,
) -> (Broker, u16) {
    let broker = Broker::new(cfg, auth, acl);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(mw_mqtt::listen(broker.clone(), l, None));
    (broker, port)
}

async fn run(case: &str) {
    let Some(py) = python() else { return };
    if case == "mosquitto_tools"
        && std::process::Command::new("mosquitto_pub")
            .arg("--help")
            .output()
            .is_err()
    {
        eprintln!("SKIP: mosquitto_pub is not installed (apt-get install mosquitto-clients)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mw-mqtt-peers-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    {
        let mut users = mw_security::UserStore::open(&dir).unwrap();
        users
            .add("alice", mw_security::Role::Operator, ALICE)
            .unwrap();
        users.add("bob", mw_security::Role::Viewer, BOB).unwrap();
    }
    let auth: Arc<dyn mw_security::Authenticator> =
        Arc::new(mw_security::LocalAuthenticator::open(&dir).unwrap());
    let open = BrokerConfig {
        allow_anonymous: true,
        ..BrokerConfig::default()
    };
    let max_packet = open.max_packet_size;
    let (b1, port) = start(open, None, Acl::allow_all()).await;
    let acl = Acl::new(vec![
        AclRule {
            user: Some("alice".into()),
            pattern: "#".into(),
            access: Access::ReadWrite,
        },
        AclRule {
            user: Some("bob".into()),
            pattern: "plant/%u/#".into(),
            access: Access::ReadWrite,
        },
    ])
    .unwrap();
    let (b2, auth_port) = start(BrokerConfig::default(), Some(auth), acl).await;
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new(&py)
            .arg(script())
            .args([
                "--port",
                &port.to_string(),
                "--auth-port",
                &auth_port.to_string(),
            ])
            .args([
                "--alice",
                ALICE,
                "--bob",
                BOB,
                "--max-packet",
                &max_packet.to_string(),
                "--case",
                case,
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("conformance case ran over 120 s")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success() && stdout.contains(&format!("ok {case}")),
        "case {case} failed:\n{stdout}\n{stderr}"
    );
    b1.shutdown();
    b2.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Persistent sessions, their queued messages, an unreleased QoS 2 id and retained messages
/// survive a broker restart (state saved at the stop, restored before listening again on the
/// same port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_retained_messages_survive_a_broker_restart() {
    let Some(py) = python() else { return };
    let dir = std::env::temp_dir().join(format!("mw-mqtt-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = Arc::new(mw_mqtt::persist::StateFile::new(
        Box::new(mw_storage::FsStorage),
        &dir,
    ));
    let cfg = || BrokerConfig {
        allow_anonymous: true,
        ..BrokerConfig::default()
    };
    let run_case = |port: u16, case: &'static str| {
        let py = py.clone();
        async move {
            let out = tokio::process::Command::new(&py)
                .arg(script())
                .args([
                    "--port",
                    &port.to_string(),
                    "--auth-port",
                    "1",
                    "--tag",
                    "restart-case",
                    "--case",
                    case,
                ])
                .kill_on_drop(true)
                .output()
                .await
                .expect("python runs");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{case} failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            print!("{stdout}");
        }
    };
    let b = Broker::new(cfg(), None, Acl::allow_all());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let listener = tokio::spawn(mw_mqtt::listen(b.clone(), l, None));
    let saver = tokio::spawn(mw_mqtt::keep_saved(b.clone(), file.clone()));
    run_case(port, "restart_before").await;
    b.shutdown();
    saver.await.unwrap();
    listener.await.unwrap();
    drop(b);

    let snap = file.load().unwrap().expect("a saved state");
    let b = Broker::new(cfg(), None, Acl::allow_all());
    let (sessions, retained, queued) = b.restore(snap).unwrap();
    assert_eq!(
        (sessions, retained, queued),
        (2, 1, 5),
        "restored sessions, retained, queued (m0, m1, m2, kept, once)"
    );
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(mw_mqtt::listen(b.clone(), l, None));
    run_case(port, "restart_after").await;
    b.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A damaged state file is set aside and reported; the broker starts empty.
#[test]
fn a_damaged_state_file_is_set_aside() {
    let dir = std::env::temp_dir().join(format!("mw-mqtt-damaged-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("broker-state.json"),
        b"{\"format\":1,\"retained\":[",
    )
    .unwrap();
    let file = mw_mqtt::persist::StateFile::new(Box::new(mw_storage::FsStorage), &dir);
    let e = file.load().unwrap_err();
    assert!(e.contains("damaged") && e.contains("set aside"), "{e}");
    assert!(dir.join("broker-state.json.damaged").exists());
    assert_eq!(
        file.load(),
        Ok(None),
        "after setting it aside, there is no state"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            run(stringify!($name)).await;
        }
    )*};
}

cases!(
    qos_roundtrip,
    retained,
    will,
    will_delay,
    persistent_session,
    session_expiry,
    message_expiry,
    shared_subscription,
    v5_properties,
    qos2_exactly_once_across_reconnect,
    keep_alive,
    bad_input,
    auth,
    mosquitto_tools,
);
