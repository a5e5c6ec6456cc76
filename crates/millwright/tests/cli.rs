//! The command line: version, help, `check` exit codes and diagnostics (data-driven over
//! tests/data/config), `run` refusing an invalid config, and a clear error for a busy address.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(10);

#[test]
fn version_is_the_crate_version() {
    let (st, out, err) = run_to_end(&["--version"], T);
    assert!(st.success(), "{err}");
    assert_eq!(
        out.trim(),
        format!("millwright {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_of_each_subcommand_lists_its_flags() {
    let cases: [(&str, &[&str]); 4] = [
        (
            "demo",
            &[
                "--http",
                "--modbus",
                "--data-dir",
                "--seed",
                "--speed",
                "--fault-interval",
                "--webhook",
            ],
        ),
        ("run", &["--config"]),
        ("check", &["--config", "--list-units"]),
        (
            "sim",
            &[
                "--modbus",
                "--labels",
                "--seed",
                "--speed",
                "--fault-interval",
            ],
        ),
    ];
    let (st, top, err) = run_to_end(&["--help"], T);
    assert!(st.success(), "{err}");
    for (sub, flags) in cases {
        assert!(
            top.contains(sub),
            "`millwright --help` does not mention {sub}:\n{top}"
        );
        let (st, out, err) = run_to_end(&[sub, "--help"], T);
        assert!(
            st.success(),
            "`millwright {sub} --help` failed: {st}\n{err}"
        );
        assert!(
            out.contains(&format!("millwright {sub}")),
            "usage line missing:\n{out}"
        );
        for f in flags.iter().chain(&["--help", "--log"]) {
            assert!(
                out.contains(f),
                "`millwright {sub} --help` does not mention {f}:\n{out}"
            );
        }
    }
}

#[test]
fn check_accepts_the_example_config() {
    let plant = root().join("examples/plant.toml");
    let (st, out, err) = run_to_end(
        &["check", "--config", plant.to_str().expect("utf-8 path")],
        T,
    );
    assert_eq!(st.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains("OK") && out.contains("1 device(s), 25 tag(s)"),
        "{out}"
    );
    assert!(
        err.trim().is_empty(),
        "warnings for the example config:\n{err}"
    );
}

/// Every case in tests/data/config: `check` exits 0 when NAME.expected is empty, else 2 with exactly
/// the diagnostics of NAME.expected on stderr (`FILE:LINE:COL: message`, FILE as given on the
/// command line) followed by a summary line.
#[test]
fn check_reports_every_diagnostic_of_the_config_cases() {
    let dir = root().join("tests/data/config");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected at least 10 cases in {}",
        dir.display()
    );
    let mut invalid = 0;
    let mut failures = Vec::new();
    for input in &cases {
        let name = input
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        let expected = std::fs::read_to_string(input.with_extension("expected"))
            .unwrap_or_else(|e| panic!("{}: {e}", input.with_extension("expected").display()));
        let arg = input.to_str().expect("utf-8 path");
        let (st, out, err) = run_to_end(&["check", "--config", arg], T);
        if expected.trim().is_empty() {
            if st.code() != Some(0) {
                failures.push(format!("{name}: expected exit 0, got {st}\n{err}"));
            }
            continue;
        }
        invalid += 1;
        if st.code() != Some(2) {
            failures.push(format!("{name}: expected exit 2, got {st}\n{out}\n{err}"));
            continue;
        }
        let prefix = format!("{arg}:");
        let diags: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with(&prefix) && is_diagnostic(&l[prefix.len()..]))
            .collect();
        let want: Vec<String> = expected
            .lines()
            .map(|l| format!("{}{l}", &arg[..arg.len() - name.len()]))
            .collect();
        if diags != want {
            failures.push(format!(
                "{name}: stderr diagnostics differ\n--- expected\n{}\n--- got\n{err}",
                want.join("\n")
            ));
        }
        let summary = format!("{arg}: {} error(s)", want.len());
        if !err.lines().any(|l| l == summary) {
            failures.push(format!("{name}: no summary line {summary:?}\n{err}"));
        }
        if !out.trim().is_empty() {
            failures.push(format!(
                "{name}: stdout should be empty for an invalid config: {out}"
            ));
        }
    }
    assert!(invalid >= 5, "too few invalid cases in {}", dir.display());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `LINE:COL: message` with 1-based numbers.
fn is_diagnostic(rest: &str) -> bool {
    let mut it = rest.splitn(3, ':');
    let (Some(line), Some(col), Some(msg)) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    line.parse::<u32>().is_ok_and(|n| n >= 1)
        && col.parse::<u32>().is_ok_and(|n| n >= 1)
        && msg.starts_with(' ')
}

#[test]
fn run_refuses_an_invalid_config_without_starting() {
    // An invalid config whose [http] address is a free port we know: after `run` has exited,
    // binding that port again proves nothing was left listening, and stdout shows no start.
    let free = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let dir = TempDir::new("cli-run-invalid");
    let cfg = dir.path.join("invalid.toml");
    std::fs::write(
        &cfg,
        format!(
            "[http]\naddress = \"{free}\"\n\n[[devices]]\nname = \"plc\"\nendpoint = \"127.0.0.1:502\"\n\
             tags = [{{ path = \"a/b\", table = \"holding\", address = 0, type = \"flaot\" }}]\n"
        ),
    )
    .expect("write config");
    let arg = cfg.to_str().expect("utf-8 path");
    let started = Instant::now();
    let (st, out, err) = run_to_end(&["run", "--config", arg], T);
    assert_eq!(st.code(), Some(2), "{out}\n{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(!out.contains("serving"), "something was started:\n{out}");
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("{arg}:7:"))
                && l.contains("unknown data type \"flaot\"")),
        "{err}"
    );
    assert!(err.contains("nothing was started"), "{err}");
    TcpListener::bind(free)
        .unwrap_or_else(|e| panic!("{free} is still taken after `run` refused the config: {e}"));

    // The same for the example test cases, which `run` must refuse exactly like `check`.
    let bad = root().join("tests/data/config/many_errors.toml");
    let (st, out, err) = run_to_end(&["run", "--config", bad.to_str().expect("utf-8 path")], T);
    assert_eq!(st.code(), Some(2), "{out}\n{err}");
    assert!(!out.contains("serving"), "{out}");
    assert!(err.contains("7 error(s); nothing was started"), "{err}");
}

#[test]
fn check_of_a_missing_file_says_so() {
    let (st, out, err) = run_to_end(&["check", "--config", "/nonexistent/millwright.toml"], T);
    assert_eq!(st.code(), Some(2), "{out}\n{err}");
    assert!(
        err.contains("/nonexistent/millwright.toml")
            && err.contains("cannot read")
            && err.contains("No such file"),
        "unclear message:\n{err}"
    );
    let (st, _, err) = run_to_end(&["run", "--config", "/nonexistent/millwright.toml"], T);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn demo_on_a_busy_http_address_fails_naming_it() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let dir = TempDir::new("cli-busy");
    let (st, out, err) = run_to_end(
        &[
            "demo",
            "--http",
            &addr,
            "--modbus",
            "127.0.0.1:0",
            "--data-dir",
            dir.path.to_str().expect("utf-8 path"),
        ],
        T,
    );
    assert!(!st.success(), "demo started on a busy port:\n{out}\n{err}");
    assert!(
        err.contains(&addr) && err.contains("cannot listen for HTTP"),
        "message does not name {addr}:\n{err}"
    );
    assert!(!out.contains("serving"), "{out}");
    drop(busy);
}

#[test]
fn sim_on_a_busy_modbus_address_fails_naming_it() {
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let (st, out, err) = run_to_end(&["sim", "--modbus", &addr], T);
    assert!(!st.success(), "sim started on a busy port:\n{out}\n{err}");
    assert!(
        err.contains(&addr) && err.contains("Modbus"),
        "message does not name {addr}:\n{err}"
    );
    drop(busy);
}

#[test]
fn invalid_flag_values_are_usage_errors() {
    for args in [
        &["demo", "--speed", "0"][..],
        &["demo", "--http", "localhost"],
        &["sim", "--speed", "abc"],
    ] {
        let (st, out, err) = run_to_end(args, T);
        assert_eq!(st.code(), Some(2), "{args:?}: {out}\n{err}");
        assert!(err.contains("error:"), "{args:?}: {err}");
    }
}

#[test]
fn completions_and_unit_list_print_and_survive_a_closed_pipe() {
    let (st, out, _) = run_to_end(&["completions", "bash"], Duration::from_secs(10));
    assert!(st.success());
    for sub in ["demo", "run", "check", "sim", "backtest", "pdm"] {
        assert!(out.contains(sub), "bash completion lacks {sub}");
    }
    let (st, out, _) = run_to_end(&["check", "--list-units"], Duration::from_secs(10));
    assert!(st.success());
    assert!(out.lines().any(|l| l.starts_with("%{LEL}")), "{out}");
    // `millwright completions zsh | head -1`: the reader goes away early; no panic, exit 0
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_millwright"))
        .args(["completions", "zsh"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("panicked"),
        "{:?} {err}",
        out.status
    );
}

/// The one listener policy on the command line: a non-loopback listener without TLS is refused
/// before anything binds, naming the listener and the way out; Modbus TCP (no TLS possible)
/// says so.
#[test]
fn non_loopback_listeners_are_refused_without_insecure() {
    let (st, _, err) = run_to_end(&["demo", "--http", "0.0.0.0:0"], T);
    assert!(!st.success());
    assert!(
        err.contains("refusing to listen for HTTP on 0.0.0.0:0 without TLS")
            && err.contains("--insecure"),
        "{err}"
    );
    let (st, _, err) = run_to_end(&["sim", "--modbus", "0.0.0.0:0"], T);
    assert!(!st.success());
    assert!(
        err.contains("refusing to listen for Modbus TCP on 0.0.0.0:0")
            && err.contains("no encryption or authentication"),
        "{err}"
    );
}

/// `check` on a `millwright central` file checks it as central reads it, and still names a
/// mistake in one at its line.
#[test]
fn check_accepts_a_central_configuration_and_reports_its_errors() {
    let dir = common::TempDir::new("check-central");
    let good = dir.path.join("central.toml");
    std::fs::write(
        &good,
        "[central]\nurl = \"nats://127.0.0.1:4222\"\nstreams = [\"MW_PLANT1\"]\nvictoria_metrics = \"http://127.0.0.1:8428\"\n",
    )
    .unwrap();
    let (st, out, err) = run_to_end(&["check", "--config", good.to_str().unwrap()], T);
    assert_eq!(st.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("OK — a [central] configuration"), "{out}");
    let bad = dir.path.join("bad.toml");
    std::fs::write(&bad, "[central]\nurl = \"http://nowhere\"\n").unwrap();
    let (st, out, err) = run_to_end(&["check", "--config", bad.to_str().unwrap()], T);
    assert_ne!(st.code(), Some(0), "{out}\n{err}");
    assert!(
        err.contains("bad.toml:2:")
            && err.contains("missing required key \"streams\"")
            && !err.contains("unknown key"),
        "{err}"
    );
}
