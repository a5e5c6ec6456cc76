//! Test support, used only as a dev-dependency: real peer processes started on ephemeral
//! loopback ports and stopped by pid — today Debian's Mosquitto — with the temp dirs and ports
//! tests need around them. One copy instead of one per test file (mw-mqtt, mw-notify,
//! mw-sparkplug-node).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's Mosquitto broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// True when every named tool runs (`mosquitto_pub`, …); prints `SKIP: …` otherwise, so the
/// calling test can return.
pub fn tools_present(tools: &[&str]) -> bool {
    let ok = tools
        .iter()
        .all(|t| Command::new(t).arg("--help").output().is_ok());
    if !ok {
        eprintln!(
            "SKIP: one of {} is not installed (apt-get install mosquitto-clients)",
            tools.join(", ")
        );
    }
    ok
}

/// True when Mosquitto and the named client tools (`mosquitto_pub`, …) are installed; prints
/// `SKIP: …` otherwise, so the calling test can return.
pub fn mosquitto_present(clients: &[&str]) -> bool {
    let ok = Path::new(MOSQUITTO).exists()
        && clients
            .iter()
            .all(|t| Command::new(t).arg("--help").output().is_ok());
    if !ok {
        eprintln!(
            "SKIP: mosquitto or its clients ({}) are not installed (apt-get install mosquitto mosquitto-clients)",
            clients.join(", ")
        );
    }
    ok
}

/// A free loopback TCP port (bound, then released: the caller binds it right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A fresh, empty directory `mw-{prefix}-{pid}-{name}` under the system temp dir.
pub fn temp_dir(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mw-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A Mosquitto process on 127.0.0.1:`port` with its config and log in a directory of the test's,
/// killed by pid on drop.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    conf: PathBuf,
}

impl Mosquitto {
    /// Starts Mosquitto on `port` (no persistence, logging everything to `dir/mosquitto.log`),
    /// with `extra` config lines (`allow_anonymous true`, a `password_file`, TLS, …); waits
    /// (bounded) until it accepts connections.
    pub fn start(dir: &Path, port: u16, extra: &str) -> Mosquitto {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\npersistence false\nlog_dest file {}\nlog_type all\nlistener {port} 127.0.0.1\n{extra}\n",
                dir.join("mosquitto.log").display()
            ),
        )
        .expect("write mosquitto.conf");
        let mut m = Mosquitto {
            child: None,
            port,
            conf,
        };
        m.restart();
        m
    }

    /// [`Mosquitto::start`] on a free port, anonymous clients allowed.
    pub fn anonymous(dir: &Path) -> Mosquitto {
        Mosquitto::start(dir, free_port(), "allow_anonymous true")
    }

    /// (Re)starts the process with the same config and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "mosquitto is already running");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`-STOP`, `-CONT`): a stopped broker keeps its connections but answers
    /// nothing.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let st = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(st.success(), "kill {sig} {pid}");
    }

    /// Kills it (by pid) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
