//! The web UI in a real browser: Playwright (the test venv) drives headless Chromium (Debian's,
//! installed by scripts/setup-test-env.sh) with real-time waits. The first test
//! (`tests/peers/ui_overview.py`) loads `/` from `millwright demo` through the login link: the
//! status line says "updated …", the sparklines of numeric tags are drawn from
//! `/api/v1/tags?history=…`, the alarm stream is open from the start, and under the strict
//! Content-Security-Policy there is no console message, page error or CSP violation. A second
//! test walks the overview's per-asset status: shelved, and unknown once the connection is lost.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

fn chromium() -> PathBuf {
    let p = std::env::var_os("MW_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.exists(),
        "no Chromium at {} (set MW_CHROMIUM or run scripts/setup-test-env.sh as root)",
        p.display()
    );
    p
}

#[test]
fn browser_page_updates_live_values_and_sparklines() {
    let browser = chromium();
    let Demo {
        proc: mut demo,
        http,
        token,
        ..
    } = start_demo(
        "ui-chromium",
        &["--fault-interval", "0", "--poll-interval", "200"],
    );
    wait_ready(&http, Duration::from_secs(20));
    // let every tag collect a few points of history for its sparkline
    std::thread::sleep(Duration::from_secs(2));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/ui_overview.py");
    // signs in through the page: the demo's login link sets the session cookie and sends the
    // browser on to the overview, which then runs under the strict CSP with that session
    let out = Command::new(python())
        .arg(&script)
        .args([http.as_str(), token.as_str()])
        .arg(&browser)
        .output()
        .expect("run ui_overview.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("OK "),
        "the overview in Chromium: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    demo.sigterm();
    let st = demo.wait_exit(Duration::from_secs(3)).expect("demo exits");
    assert!(st.success());
}

/// The overview's per-asset status in a real browser (Playwright in the test venv driving the
/// same Chromium, `tests/peers/overview_status.py`): a shelved alarm shows its asset as
/// `shelved` (from the alarm stream); once the server is killed, every asset turns `unknown`
/// ("connection lost: status unknown") instead of keeping its last colour.
#[test]
fn overview_shows_shelved_assets_and_turns_unknown_when_the_connection_is_lost() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let _ = chromium();
    let Demo {
        proc: mut demo,
        http,
        token,
        ..
    } = start_demo(
        "ui-overview-status",
        &["--fault-interval", "0", "--poll-interval", "200"],
    );
    wait_ready(&http, Duration::from_secs(20));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/peers/overview_status.py");
    let mut py = Command::new(python())
        .arg(&script)
        .args([http.as_str(), token.as_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start overview_status.py");
    let mut stdin = py.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = py.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        if line == "KILL" {
            demo.kill9();
            writeln!(stdin, "killed").unwrap();
        }
        let done = line.starts_with("OK lost") || line.starts_with("FAIL");
        lines.push(line);
        if done {
            break;
        }
    }
    // bounded: the script has its own timeouts; kill it if it outlived ours
    let _ = py.kill();
    let status = py.wait().expect("wait for the script");
    let mut err = String::new();
    if let Some(mut e) = py.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    let all = lines.join("\n");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("OK shelved asset") && l.contains("1 alarm shelved")),
        "gd1 not shown shelved:\n{all}\n{err}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("OK lost")),
        "assets not unknown after the server was killed (exit {status:?}):\n{all}\n{err}"
    );
}
