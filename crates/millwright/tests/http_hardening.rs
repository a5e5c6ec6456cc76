//! The binary's HTTP listener is the hardened one: `millwright demo` answers only for its own
//! address, `localhost:PORT` and the `--allow-host` names (421 otherwise), refuses a cross-site
//! simple POST, and serves its page with the strict CSP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// One raw request (`Connection: close`) with the given `Host`; returns the status and the head.
fn raw(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

fn get_with_host(addr: &str, host: &str, path: &str, token: &str) -> (u16, String) {
    raw(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
    )
}

#[test]
fn demo_checks_host_origin_and_content_type_and_sends_the_csp() {
    let Demo {
        proc: mut demo,
        http,
        token,
        ..
    } = start_demo(
        "http-hardening",
        &["--fault-interval", "0", "--allow-host", "gw.example"],
    );
    wait_ready(&http, Duration::from_secs(20));
    let port = http.rsplit(':').next().unwrap();

    assert_eq!(get_with_host(&http, &http, "/health", &token).0, 200);
    assert_eq!(
        get_with_host(&http, &format!("localhost:{port}"), "/health", &token).0,
        200
    );
    assert_eq!(
        get_with_host(&http, "gw.example", "/health", &token).0,
        200,
        "--allow-host"
    );
    let (s, text) = get_with_host(&http, "rebound.evil.example", "/api/v1/tags", &token);
    assert_eq!(s, 421, "{text}");
    assert!(text.contains("not served here"), "{text}");

    let (s, page) = get_with_host(&http, &http, "/", &token);
    assert_eq!(s, 200);
    let lower = page.to_ascii_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'none'; script-src 'self';"),
        "{}",
        &page[..page.len().min(800)]
    );
    assert!(lower.contains("x-content-type-options: nosniff"));
    assert!(lower.contains("referrer-policy: no-referrer"));

    let body = r#"{"asset":"acme/plant1/utilities/water/pump1"}"#;
    let post = |headers: &str| {
        raw(
            &http,
            &format!(
                "POST /api/v1/detectors/relearn HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    assert_eq!(post("Content-Type: text/plain\r\n").0, 415);
    assert_eq!(
        post("Content-Type: application/json\r\nOrigin: http://evil.example\r\n").0,
        403
    );
    let (s, text) = post(&format!(
        "Content-Type: application/json\r\nOrigin: http://{http}\r\n"
    ));
    assert_eq!(s, 202, "{text}");

    // without a token the API is closed, the page sends the browser to the login, and /health
    // stays open for probes
    let anon = |path: &str| {
        raw(
            &http,
            &format!("GET {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"),
        )
    };
    let (s, text) = anon("/api/v1/tags");
    assert_eq!(s, 401, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{text}"
    );
    assert_eq!(anon("/metrics").0, 401, "metrics need a token too");
    let (s, text) = anon("/");
    assert_eq!(s, 303, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("location: /login"),
        "{text}"
    );
    assert_eq!(anon("/health").0, 200);
    assert_eq!(anon("/login").0, 200);

    demo.sigterm();
    let st = demo.wait_exit(Duration::from_secs(5)).expect("demo exits");
    assert!(st.success());
}

/// Logins and operator actions land in the audit trail (through the bus, durably), the trail
/// verifies, and the login token appears nowhere it must not: not in the logs, not on
/// `/metrics`, not in the trail.
#[test]
fn demo_audits_logins_and_actions_and_leaks_no_secret() {
    let Demo {
        proc: mut demo,
        http,
        token,
        data,
        ..
    } = start_demo("http-audit", &["--fault-interval", "0"]);
    wait_ready(&http, Duration::from_secs(20));
    // a login through the link, a refused one, and a fault injection
    let (s, text) = raw(
        &http,
        &format!("GET /login?token={token} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(s, 303, "{text}");
    assert!(text.contains("mw_session="), "{text}");
    let (s, _) = raw(
        &http,
        &format!("GET /login?token=mw_wrong HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(s, 401);
    let fault = serde_json::json!({
        "asset": "acme/plant1/utilities/compressor_house/gd1", "kind": "gas_release", "duration_s": 5
    });
    let r = post_json(&http, "/api/v1/sim/faults", &fault).expect("inject");
    assert_eq!(r.status, 201, "{}", r.text());
    // the trail, as the API shows it to an admin
    let records = wait_for("the audit records", Duration::from_secs(10), || {
        let j = get_json(&http, "/api/v1/audit?limit=50");
        let recs = j["records"].as_array().cloned().unwrap_or_default();
        let has = |action: &str, outcome: &str| {
            recs.iter()
                .any(|r| r["action"] == action && r["outcome"] == outcome)
        };
        if has("login", "ok") && has("login", "denied") && has("inject_fault", "ok") {
            Ok(recs)
        } else {
            Err(format!("{recs:?}"))
        }
    });
    assert!(records.iter().all(|r| r["seq"].as_u64().is_some()));
    let metrics = get(&http, "/metrics").expect("metrics").text();
    demo.sigterm();
    let st = demo.wait_exit(Duration::from_secs(5)).expect("demo exits");
    assert!(st.success());
    let trail = std::fs::read_to_string(data.path.join("audit/audit.jsonl")).expect("audit trail");
    let logs = demo.stderr();
    for (what, text) in [
        ("the logs", &logs),
        ("/metrics", &metrics),
        ("the audit trail", &trail),
    ] {
        assert!(!text.contains(&token), "the login token appears in {what}");
    }
    // and the chain verifies
    let data_arg = data.path.to_str().expect("utf-8 temp path");
    let (st, out, err) = run_to_end(
        &["audit", "verify", "--data-dir", data_arg],
        Duration::from_secs(10),
    );
    assert!(st.success(), "audit verify: {out}{err}");
}
