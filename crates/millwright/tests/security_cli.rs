//! `millwright user|token|audit|certs` end to end: the built binary in a temp data directory,
//! passwords on stdin, results checked through the files and the mw-security library; no
//! secret in any output but the token's one line, nor in the audit trail.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{BIN, TempDir};
use mw_security::{AuthError, Role, TokenStore, UserStore, security_dir};

const T: Duration = Duration::from_secs(30);

/// Runs the binary with `stdin`, bounded by `T` (killed by pid after that).
fn mw(args: &[&str], stdin: &str) -> (ExitStatus, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("MILLWRIGHT_LOG")
        .env_remove("MILLWRIGHT_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millwright");
    let mut input = child.stdin.take().expect("stdin");
    // The child may exit before it reads (a refused name): a broken pipe is not an error.
    match input.write_all(stdin.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
        _ => {}
    }
    drop(input);
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(T) {
        Ok(out) => {
            let out = out.expect("wait");
            (
                out.status,
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("millwright {args:?} did not finish within {T:?}");
        }
    }
}

fn ok(args: &[&str], stdin: &str) -> (String, String) {
    let (st, out, err) = mw(args, stdin);
    assert!(
        st.success(),
        "millwright {args:?} failed: {st}\n{out}\n{err}"
    );
    (out, err)
}

fn fails(args: &[&str], stdin: &str) -> String {
    let (st, out, err) = mw(args, stdin);
    assert_eq!(
        st.code(),
        Some(1),
        "millwright {args:?}: {st}\n{out}\n{err}"
    );
    err
}

fn audit_log(d: &Path) -> String {
    std::fs::read_to_string(d.join("audit/audit.jsonl")).unwrap_or_default()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn users_add_list_passwd_disable_del() {
    let tmp = TempDir::new("sec-users");
    let d = tmp.path.to_str().expect("utf-8");
    let pw = "correct horse battery";
    let pw2 = "tr0ub4dor and more";
    let (out, err) = ok(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "operator",
            "--data-dir",
            d,
        ],
        &format!("{pw}\n"),
    );
    assert!(err.contains("added user alice (operator)"), "{err}");
    let (list, _) = ok(&["user", "list", "--data-dir", d], "");
    let line = list
        .lines()
        .find(|l| l.starts_with("alice"))
        .expect("alice listed");
    assert!(
        line.contains("operator") && line.contains("active"),
        "{list}"
    );

    let err = fails(
        &["user", "add", "alice", "--role", "admin", "--data-dir", d],
        &format!("{pw}\n"),
    );
    assert!(err.contains("already exists"), "{err}");
    let err = fails(
        &[
            "user",
            "add",
            "Bad Name",
            "--role",
            "viewer",
            "--data-dir",
            d,
        ],
        "x\n",
    );
    assert!(
        err.contains("invalid user name") && err.contains("a-z, 0-9"),
        "{err}"
    );
    let err = fails(
        &["user", "add", "bob", "--role", "viewer", "--data-dir", d],
        "hunter2\n",
    );
    assert!(
        err.contains("too short") && !err.contains("hunter2"),
        "{err}"
    );
    let err = fails(
        &["user", "add", "bob", "--role", "viewer", "--data-dir", d],
        "",
    );
    assert!(err.contains("no password"), "{err}");
    let (st, _, err) = mw(
        &["user", "add", "bob", "--role", "root", "--data-dir", d],
        "",
    );
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("unknown role"), "{err}");

    let sec = security_dir(&tmp.path);
    let users = || UserStore::open(&sec).expect("open users");
    assert_eq!(
        users().verify_password("alice", pw).expect("login").role,
        Role::Operator
    );
    ok(
        &["user", "passwd", "alice", "--data-dir", d],
        &format!("{pw2}\r\n"),
    );
    assert!(matches!(
        users().verify_password("alice", pw),
        Err(AuthError::Denied)
    ));
    assert!(users().verify_password("alice", pw2).is_ok());

    ok(&["user", "disable", "alice", "--data-dir", d], "");
    let (list, _) = ok(&["user", "list", "--data-dir", d], "");
    assert!(
        list.lines()
            .any(|l| l.starts_with("alice") && l.contains("disabled")),
        "{list}"
    );
    assert!(matches!(
        users().verify_password("alice", pw2),
        Err(AuthError::Disabled(_))
    ));
    ok(&["user", "enable", "alice", "--data-dir", d], "");
    assert!(users().verify_password("alice", pw2).is_ok());
    ok(&["user", "del", "alice", "--data-dir", d], "");
    let err = fails(&["user", "del", "alice", "--data-dir", d], "");
    assert!(err.contains("no user named \"alice\""), "{err}");
    assert!(users().list().is_empty());

    // Files: private, and no password in them, in the audit trail or in any output.
    assert_eq!(mode(&sec.join("users.json")), 0o600);
    assert_eq!(mode(&sec), 0o700);
    let users_json = std::fs::read_to_string(sec.join("users.json")).expect("users.json");
    let log = audit_log(&tmp.path);
    for text in [&users_json, &log, &out] {
        assert!(
            !text.contains(pw) && !text.contains(pw2) && !text.contains("hunter2"),
            "{text}"
        );
    }
    let actions: Vec<String> = log
        .lines()
        .map(|l| mw_security::audit::parse_line(l).expect("record").action)
        .collect();
    // Refused attempts are recorded too (the duplicate, the bad name, the short password, the
    // empty stdin; the unknown role never reached the command).
    assert_eq!(
        actions,
        [
            "user.add",
            "user.add",
            "user.add",
            "user.add",
            "user.add",
            "user.passwd",
            "user.disable",
            "user.enable",
            "user.del",
            "user.del"
        ],
        "{log}"
    );
    assert!(
        log.lines()
            .last()
            .is_some_and(|l| l.contains("\"outcome\":\"failed\"")),
        "{log}"
    );
}

#[test]
fn tokens_create_list_revoke() {
    let tmp = TempDir::new("sec-tokens");
    let d = tmp.path.to_str().expect("utf-8");
    let (out, err) = ok(
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--expires",
            "30d",
            "--name",
            "scada",
            "--data-dir",
            d,
        ],
        "",
    );
    let token = out.trim();
    assert_eq!(out.lines().count(), 1, "only the token on stdout: {out}");
    assert!(token.starts_with("mw_") && token.len() == 63, "{token}");
    let id = &token[3..19];
    assert!(err.contains(id) && err.contains("shown only now"), "{err}");
    let sec = security_dir(&tmp.path);
    let p = TokenStore::open(&sec)
        .expect("tokens")
        .authenticate_token(token)
        .expect("valid");
    assert_eq!((p.name.as_str(), p.role), ("scada", Role::Viewer));

    let (list, _) = ok(&["token", "list", "--data-dir", d], "");
    let line = list
        .lines()
        .find(|l| l.starts_with(id))
        .expect("listed by id");
    assert!(
        line.contains("scada") && line.contains("viewer") && line.contains("active"),
        "{list}"
    );
    let secret = &token[20..];
    for text in [
        &list,
        &err,
        &audit_log(&tmp.path),
        &std::fs::read_to_string(sec.join("tokens.json")).expect("tokens.json"),
    ] {
        assert!(!text.contains(secret), "the secret leaked into {text}");
    }
    assert_eq!(mode(&sec.join("tokens.json")), 0o600);

    let (_, err) = ok(&["token", "revoke", id, "--data-dir", d], "");
    assert!(err.contains("revoked"), "{err}");
    let (list, _) = ok(&["token", "list", "--data-dir", d], "");
    assert!(
        list.lines()
            .any(|l| l.starts_with(id) && l.contains("revoked")),
        "{list}"
    );
    assert!(matches!(
        TokenStore::open(&sec)
            .expect("tokens")
            .authenticate_token(token),
        Err(AuthError::RevokedToken(_))
    ));
    let err = fails(
        &["token", "revoke", "0123456789abcdef", "--data-dir", d],
        "",
    );
    assert!(err.contains("no token with id"), "{err}");
    for bad in ["30x", "0d", "400d"] {
        let (st, _, err) = mw(
            &[
                "token",
                "create",
                "--role",
                "admin",
                "--expires",
                bad,
                "--name",
                "x",
                "--data-dir",
                d,
            ],
            "",
        );
        assert_eq!(st.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("lifetime"), "{err}");
    }
}

#[test]
fn audit_verify_detects_edits_deletions_and_swaps() {
    let tmp = TempDir::new("sec-audit");
    let d = tmp.path.to_str().expect("utf-8");
    let (out, _) = ok(&["audit", "verify", "--data-dir", d], "");
    assert!(out.contains("0 record(s)"), "{out}");
    for name in ["ann", "ben", "cat", "dan"] {
        ok(
            &["user", "add", name, "--role", "viewer", "--data-dir", d],
            "a good long password\n",
        );
    }
    let (out, _) = ok(&["audit", "verify", "--data-dir", d], "");
    assert!(out.contains("OK — 4 record(s)"), "{out}");
    let head = out.trim().rsplit(' ').next().expect("head").to_owned();
    assert_eq!(head.len(), 64);
    ok(&["audit", "verify", "--head", &head, "--data-dir", d], "");

    let path = tmp.path.join("audit/audit.jsonl");
    let original = std::fs::read_to_string(&path).expect("log");
    let lines: Vec<&str> = original.lines().collect();
    let write = |ls: &[&str]| {
        let mut s = ls.join("\n");
        s.push('\n');
        std::fs::write(&path, s).expect("write log");
    };
    let verify = || fails(&["audit", "verify", "--data-dir", d], "");

    // One changed byte in record 2 ("ben" → "bem").
    write(&[
        lines[0],
        &lines[1].replace("\"ben\"", "\"bem\""),
        lines[2],
        lines[3],
    ]);
    let err = verify();
    assert!(
        err.contains("line 3 (seq 3)") && err.contains("line 2 (seq 2)"),
        "{err}"
    );
    // Record 2 deleted.
    write(&[lines[0], lines[2], lines[3]]);
    let err = verify();
    assert!(
        err.contains("line 2 (seq 3)") && err.contains("expected seq 2"),
        "{err}"
    );
    // Records 2 and 3 swapped.
    write(&[lines[0], lines[2], lines[1], lines[3]]);
    let err = verify();
    assert!(err.contains("line 2 (seq 3)"), "{err}");
    // A record inserted (a copy of record 1 after it).
    write(&[lines[0], lines[0], lines[1], lines[2], lines[3]]);
    let err = verify();
    assert!(err.contains("line 2 (seq 1)"), "{err}");
    // The last record removed: the chain alone holds, the remembered head does not.
    write(&lines[..3]);
    ok(&["audit", "verify", "--data-dir", d], "");
    let err = fails(&["audit", "verify", "--head", &head, "--data-dir", d], "");
    assert!(err.contains("removed from the end"), "{err}");
    // A record that is not JSON.
    write(&[lines[0], "{not json", lines[2]]);
    let err = verify();
    assert!(
        err.contains("line 2") && err.contains("not a record"),
        "{err}"
    );
    // Restored, it verifies again; a tampered log also refuses further appends.
    std::fs::write(&path, &original).expect("restore");
    ok(&["audit", "verify", "--head", &head, "--data-dir", d], "");
    write(&[lines[0], lines[2], lines[1], lines[3]]);
    let err = fails(&["user", "del", "ann", "--data-dir", d], "");
    assert!(
        err.contains("damaged") && err.contains("nothing was changed"),
        "{err}"
    );
    let users = UserStore::open(&security_dir(&tmp.path)).expect("users");
    assert!(
        users.get("ann").is_some(),
        "no change without an audit record"
    );
}

#[test]
fn certs_init_list_trust() {
    let tmp = TempDir::new("sec-certs");
    let d = tmp.path.to_str().expect("utf-8");
    let args = [
        "certs",
        "init",
        "--data-dir",
        d,
        "--hosts",
        "edge.local,10.1.2.3",
        "--client",
        "alice",
        "--client",
        "bob",
    ];
    let (out, _) = ok(&args, "");
    let dir = security_dir(&tmp.path).join("certs");
    for f in ["ca.key", "server.key", "client-alice.key", "client-bob.key"] {
        assert!(out.contains(f), "{out}");
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let before = std::fs::read(dir.join("ca.key")).expect("ca.key");
    let err = fails(&args, "");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read(dir.join("ca.key")).expect("ca.key"),
        before,
        "not overwritten"
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    ok(&forced, "");
    assert_ne!(std::fs::read(dir.join("ca.key")).expect("ca.key"), before);

    let (list, _) = ok(&["certs", "list", "--data-dir", d], "");
    assert!(list.contains("SANs        edge.local, 10.1.2.3"), "{list}");
    assert!(
        list.contains("CN=alice") && list.contains("CN=bob"),
        "{list}"
    );
    assert!(
        list.contains("issuer      O=Millwright, CN=Millwright local CA"),
        "{list}"
    );
    assert!(list.contains("SHA-256     "), "{list}");

    // Another CA is trusted for client certificates; a leaf certificate is refused.
    let other = TempDir::new("sec-certs-other");
    let od = other.path.to_str().expect("utf-8");
    ok(&["certs", "init", "--dir", od, "--data-dir", od], "");
    let (out, _) = ok(
        &[
            "certs",
            "trust",
            other.path.join("ca.pem").to_str().expect("utf-8"),
            "--data-dir",
            d,
        ],
        "",
    );
    assert!(out.contains("trusted "), "{out}");
    let err = fails(
        &[
            "certs",
            "trust",
            other.path.join("server.pem").to_str().expect("utf-8"),
            "--data-dir",
            d,
        ],
        "",
    );
    assert!(err.contains("not a CA"), "{err}");
    // What the web layer will load.
    mw_security::certs::server_config(&dir, mw_security::certs::ClientAuth::Required)
        .expect("server config from the files");
    let log = audit_log(&tmp.path);
    assert!(
        log.contains("certs.init") && log.contains("certs.trust"),
        "{log}"
    );
    assert!(!log.contains("PRIVATE KEY"));
}

#[test]
fn help_lists_the_security_subcommands() {
    let (top, _) = ok(&["--help"], "");
    for sub in ["user", "token", "audit", "certs"] {
        assert!(
            top.lines().any(|l| l.trim_start().starts_with(sub)),
            "{sub}:\n{top}"
        );
    }
    let (h, _) = ok(&["user", "--help"], "");
    for sub in ["add", "list", "passwd", "disable", "del", "bench"] {
        assert!(h.contains(sub), "{sub}:\n{h}");
    }
    let (h, _) = ok(&["token", "create", "--help"], "");
    for f in ["--role", "--expires", "--name", "--data-dir"] {
        assert!(h.contains(f), "{f}:\n{h}");
    }
}

/// On a terminal the password is prompted twice with echo off. The terminal is a pty made by
/// util-linux `script`; each answer is typed only after its prompt appeared.
#[test]
fn on_a_terminal_the_password_is_prompted_twice_without_echo() {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipped: /usr/bin/script (util-linux) is not installed");
        return;
    }
    let tmp = TempDir::new("sec-tty");
    let pw = "typed on a terminal";
    let run = |answers: [&str; 2]| -> (Option<i32>, String) {
        let cmd = format!(
            "{BIN} user add tty --role viewer --data-dir {}",
            tmp.path.display()
        );
        let mut child = Command::new("/usr/bin/script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start script");
        let out = Arc::new(Mutex::new(String::new()));
        let mut stdout = child.stdout.take().expect("stdout");
        let sink = out.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut input = child.stdin.take().expect("stdin");
        let wait_for = |what: &str| {
            let deadline = Instant::now() + T;
            while !out.lock().unwrap().contains(what) {
                assert!(
                    Instant::now() < deadline,
                    "no {what:?} prompt: {}",
                    out.lock().unwrap()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            // rpassword prints the prompt, then turns echo off: type only after that.
            std::thread::sleep(Duration::from_millis(300));
        };
        wait_for("New password for tty:");
        input
            .write_all(format!("{}\n", answers[0]).as_bytes())
            .expect("type");
        wait_for("Repeat it:");
        input
            .write_all(format!("{}\n", answers[1]).as_bytes())
            .expect("type");
        let deadline = Instant::now() + T;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("script did not finish: {}", out.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(input);
        let _ = reader.join();
        let text = out.lock().unwrap().clone();
        (status.code(), text)
    };
    let (code, text) = run([pw, "something else entirely"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("differ"), "{text}");
    let (code, text) = run([pw, pw]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains(pw), "the password was echoed: {text}");
    let users = UserStore::open(&security_dir(&tmp.path)).expect("users");
    assert!(users.verify_password("tty", pw).is_ok());
}

/// One HTTP/1.1 request to `addr` with extra header lines; returns (status, headers, body).
fn http(addr: &str, method: &str, path: &str, headers: &str, body: Option<&str>) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

/// The `mw_session` value a response sets.
fn session_cookie(resp: &str) -> String {
    resp.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: mw_session=")
                .then(|| {
                    l["set-cookie: mw_session=".len()..]
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .to_owned()
                })
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("no session cookie in {resp:?}"))
}

#[test]
fn disabling_a_user_or_revoking_a_token_ends_their_sessions_on_a_running_server() {
    let demo = common::start_demo("sec-revoke-live", &[]);
    let d = demo.data.path.to_str().expect("utf-8");
    let addr = demo.http.as_str();
    // Added while the server runs: it reads the users file again when it changed.
    ok(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "operator",
            "--data-dir",
            d,
        ],
        "correct horse battery\n",
    );
    let (st, resp) = http(
        addr,
        "POST",
        "/api/v1/login",
        "",
        Some(r#"{"user":"alice","password":"correct horse battery"}"#),
    );
    assert_eq!(st, 200, "{resp}");
    let alice = format!("Cookie: mw_session={}\r\n", session_cookie(&resp));
    let (st, resp) = http(addr, "GET", "/api/v1/whoami", &alice, None);
    assert!(st == 200 && resp.contains("alice"), "{resp}");

    // A token and a session started with it.
    let (out, _) = ok(
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "scada",
            "--expires",
            "1d",
            "--data-dir",
            d,
        ],
        "",
    );
    let token = out.trim().to_owned();
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let (st, resp) = http(addr, "GET", "/api/v1/whoami", &bearer, None);
    assert!(st == 200 && resp.contains("scada"), "{resp}");
    let (st, resp) = http(addr, "GET", &format!("/login?token={token}"), "", None);
    assert_eq!(st, 303, "{resp}");
    let scada = format!("Cookie: mw_session={}\r\n", session_cookie(&resp));
    let (st, resp) = http(addr, "GET", "/api/v1/whoami", &scada, None);
    assert!(st == 200 && resp.contains("scada"), "{resp}");

    ok(&["user", "disable", "alice", "--data-dir", d], "");
    let (st, resp) = http(addr, "GET", "/api/v1/whoami", &alice, None);
    assert_eq!(st, 401, "a disabled user's session must end: {resp}");
    // …and stays ended when the user is enabled again (it was revoked, not suspended).
    ok(&["user", "enable", "alice", "--data-dir", d], "");
    let (st, _) = http(addr, "GET", "/api/v1/whoami", &alice, None);
    assert_eq!(st, 401);
    // The token's session still works until the token is revoked.
    let (st, _) = http(addr, "GET", "/api/v1/whoami", &scada, None);
    assert_eq!(st, 200);
    ok(&["token", "revoke", &token[3..19], "--data-dir", d], "");
    let (st, resp) = http(addr, "GET", "/api/v1/whoami", &bearer, None);
    assert_eq!(st, 401, "a revoked token must be refused: {resp}");
    let (st, resp) = http(addr, "GET", "/api/v1/whoami", &scada, None);
    assert_eq!(st, 401, "a revoked token's session must end: {resp}");

    // A deleted user's fresh session ends too.
    let (st, resp) = http(
        addr,
        "POST",
        "/api/v1/login",
        "",
        Some(r#"{"user":"alice","password":"correct horse battery"}"#),
    );
    assert_eq!(st, 200, "{resp}");
    let alice2 = format!("Cookie: mw_session={}\r\n", session_cookie(&resp));
    assert_eq!(http(addr, "GET", "/api/v1/whoami", &alice2, None).0, 200);
    ok(&["user", "del", "alice", "--data-dir", d], "");
    assert_eq!(http(addr, "GET", "/api/v1/whoami", &alice2, None).0, 401);
}
