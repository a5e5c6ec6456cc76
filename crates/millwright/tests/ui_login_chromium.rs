//! Signing in through the login page in a real browser: an operator created with
//! `millwright user add` signs in to `millwright demo` in headless Chromium (Debian's, driven by
//! Playwright from the test venv: tests/peers/ui_login.py), through the password form, and uses
//! the overview under its strict Content-Security-Policy — a refused wrong password, the session
//! cookie's flags, the live alarm banner over SSE after a fault injected from the page, logout.
//! Any console message, page error or CSP violation fails it (the driver lists them). Afterwards
//! neither the password nor the session id may appear in the demo's output, its log or any file
//! of its data directory, and the audit trail holds both logins.
//!
//! Skips (printing `SKIP:`) only when no Chromium is installed; scripts/setup-test-env.sh installs
//! it and Playwright, as CI runs it.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const USER: &str = "otto";
const PASSWORD: &str = "Grain silo 7 / night shift";

/// `$MW_CHROMIUM` (which must exist), else `chromium` on `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MW_CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "MW_CHROMIUM={} does not exist", p.display());
        return Some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

fn add_user(data: &Path) {
    let mut child = Command::new(BIN)
        .args(["user", "add", USER, "--role", "operator", "--data-dir"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millwright user add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("user add");
    assert!(
        out.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read data dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
            {
                hits.push(p);
            }
        }
    }
    hits
}

#[test]
fn operator_signs_in_through_the_login_page_and_uses_it_under_the_strict_csp() {
    let Some(browser) = chromium() else {
        eprintln!(
            "SKIP: no chromium on PATH (and MW_CHROMIUM is not set); run scripts/setup-test-env.sh as root"
        );
        return;
    };
    let data = TempDir::new("ui-login");
    add_user(&data.path);
    let Demo {
        proc: mut demo,
        http,
        data,
        ..
    } = start_demo_in(
        data,
        &[
            "--seed",
            "3",
            "--fault-interval",
            "0",
            "--poll-interval",
            "200",
        ],
    );
    wait_ready(&http, Duration::from_secs(20));

    let script = root().join("tests/peers/ui_login.py");
    let (status, out, err) = run_python(
        &script,
        &[
            "--base",
            &format!("http://{http}"),
            "--chromium",
            browser.to_str().expect("utf-8 path"),
            "--user",
            USER,
            "--role",
            "operator",
        ],
        &format!("{PASSWORD}\n"),
        Duration::from_secs(120),
    );
    assert!(
        status.success() && out.lines().last() == Some("ok"),
        "browser session failed\n--- driver stdout\n{out}\n--- driver stderr\n{err}\n{}",
        demo.report()
    );
    for step in ["step 1:", "step 2:", "step 3:", "step 4:"] {
        assert!(out.contains(step), "driver skipped {step}: {out}");
    }
    let session = out
        .lines()
        .find_map(|l| l.strip_prefix("session "))
        .expect("the driver names the session id")
        .to_owned();
    assert!(session.len() >= 32, "session id {session:?}");

    demo.sigterm();
    let st = demo.wait_exit(Duration::from_secs(5)).expect("demo exits");
    assert!(st.success(), "{}", demo.report());

    // No secret in the demo's output or log, nor in any file it wrote.
    let report = demo.report();
    for (what, secret) in [("password", PASSWORD), ("session id", session.as_str())] {
        assert!(
            !report.contains(secret),
            "the {what} appears in the demo's output"
        );
        let hits = files_containing(&data.path, secret);
        assert!(hits.is_empty(), "the {what} appears in {hits:?}");
    }
    // The audit trail holds what the browser did, in order: a refused and an accepted password
    // login, the fault injection and the logout, each with the user as actor.
    let audit = std::fs::read_to_string(data.path.join("audit/audit.jsonl")).expect("audit trail");
    let by_user: Vec<(String, String)> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("audit record is JSON"))
        .filter(|r| r["actor"] == USER)
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default().to_owned(),
                r["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("login", "denied"),
        ("login", "ok"),
        ("inject_fault", "ok"),
        ("logout", "ok"),
    ]
    .iter()
    .map(|(a, o)| (a.to_string(), o.to_string()))
    .collect();
    assert_eq!(by_user, expected, "audit trail:\n{audit}");
}
