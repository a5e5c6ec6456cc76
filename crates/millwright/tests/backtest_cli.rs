//! `millwright backtest` end to end: a SKAB file with `--labels`, checked against metrics computed
//! here independently from the input labels and the output flags; bad input gives a clear error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_millwright"))
}

fn skab(file: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets/skab")
        .join(file);
    p.exists().then_some(p)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mw-backtest-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(input: &Path, output: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("backtest")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra)
        .output()
        .unwrap()
}

/// Pulls `NAME VALUE` out of the metrics line, e.g. `F1 0.9421`.
fn metric(stdout: &str, name: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("precision"))
        .expect("metrics line");
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == name {
            return it.next().unwrap().trim_end_matches('%').parse().unwrap();
        }
    }
    panic!("no {name} in {line}");
}

#[test]
fn backtest_skab_file_metrics_match_an_independent_count() {
    let Some(input) = skab("valve1/1.csv") else {
        eprintln!(
            "SKIP backtest_skab_file_metrics_match_an_independent_count: ../shared/datasets/skab absent"
        );
        return;
    };
    let dir = tmp("skab");
    let output = dir.join("out.csv");
    let o = run(&input, &output, &["--labels", "anomaly", "--warmup", "400"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();

    let src = std::fs::read_to_string(&input).unwrap();
    let out = std::fs::read_to_string(&output).unwrap();
    let src_rows: Vec<Vec<&str>> = src
        .lines()
        .skip(1)
        .map(|l| l.split(';').collect())
        .collect();
    let mut out_lines = out.lines();
    let header: Vec<&str> = out_lines.next().unwrap().split(',').collect();
    assert_eq!(header.first(), Some(&"timestamp"));
    assert_eq!(
        &header[header.len() - 3..],
        &["anomaly_score", "is_anomaly", "contributors"]
    );
    assert_eq!(
        header.len(),
        1 + 8 + 3,
        "timestamp, 8 sensors, score, flag, contributors: {header:?}"
    );
    let out_rows: Vec<Vec<&str>> = out_lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(
        out_rows.len(),
        src_rows.len(),
        "one output row per input row"
    );

    let (mut tp, mut fp, mut tn, mut fn_) = (0u64, 0u64, 0u64, 0u64);
    for (i, (s, o)) in src_rows.iter().zip(&out_rows).enumerate() {
        assert_eq!(o[0], s[0], "row {i}: timestamp kept exactly");
        let score: f64 = o[o.len() - 3].parse().unwrap();
        assert!((0.0..=1.0).contains(&score), "row {i}: score {score}");
        let flag = o[o.len() - 2] == "1";
        if i < 400 {
            assert!(!flag, "row {i}: no alarm during warm-up");
            continue;
        }
        let label = s[s.len() - 2].parse::<f64>().unwrap() > 0.5; // columns: …, anomaly, changepoint
        match (flag, label) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fn_) as f64;
    let f1 = 2.0 * precision * recall / (precision + recall);
    let far = 100.0 * fp as f64 / (fp + tn) as f64;
    let mar = 100.0 * fn_ as f64 / (fn_ + tp) as f64;
    eprintln!(
        "independent: TP {tp} FP {fp} TN {tn} FN {fn_}; F1 {f1:.4} FAR {far:.2} % MAR {mar:.2} %"
    );
    assert!(
        (metric(&stdout, "precision") - precision).abs() < 1e-4,
        "{stdout}"
    );
    assert!(
        (metric(&stdout, "recall") - recall).abs() < 1e-4,
        "{stdout}"
    );
    assert!((metric(&stdout, "F1") - f1).abs() < 1e-4, "{stdout}");
    assert!((metric(&stdout, "rate") - far).abs() < 0.01, "{stdout}"); // first "rate" is the false-alarm rate
    assert!(
        stdout.contains(&format!("TP {tp} FP {fp} TN {tn} FN {fn_}")),
        "{stdout}"
    );
    assert!(
        f1 > 0.5,
        "the detector finds this file's valve fault (F1 {f1:.3})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn backtest_bad_input_names_row_and_column() {
    let dir = tmp("bad");
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "ragged.csv",
            "ts,a,b\n2026-01-01 00:00:00,1,2\n2026-01-01 00:00:01,1\n",
            &["--fail-on-bad-rows"],
            &["row 3"],
        ),
        (
            "text.csv",
            "ts,a\n2026-01-01 00:00:00,1\n2026-01-01 00:00:01,abc\n",
            &["--fail-on-bad-rows"],
            &["row 3", "a"],
        ),
        (
            "unsorted.csv",
            "ts,a\n2026-01-01 00:00:05,1\n2026-01-01 00:00:01,2\n",
            &["--strict-order"],
            &["row 3", "2026-01-01 00:00:01", "2026-01-01 00:00:05"],
        ),
        ("empty.csv", "", &[], &["empty"]),
        (
            "missing_col.csv",
            "ts,a\n2026-01-01 00:00:00,1\n",
            &["--value-column", "zzz"],
            &["zzz"],
        ),
    ];
    for (name, content, extra, needles) in cases {
        let input = dir.join(name);
        std::fs::write(&input, content).unwrap();
        let output = dir.join(format!("{name}.out"));
        let o = run(&input, &output, extra);
        let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
        assert!(!o.status.success(), "{name}: must fail");
        assert!(
            err.contains(&name.to_lowercase()),
            "{name}: error names the file: {err}"
        );
        for n in *needles {
            assert!(
                err.contains(&n.to_lowercase()),
                "{name}: error should mention {n:?}: {err}"
            );
        }
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(!output.exists(), "{name}: no partial output left behind");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn backtest_replays_a_clock_step_in_file_order_and_strict_order_refuses_it() {
    let dir = tmp("step");
    let input = dir.join("step.csv");
    // 5-minute rows; before line 302 the clock steps back 55 minutes; line 10 is not a number,
    // line 20 repeats line 19's time.
    let make = |duplicate: bool| {
        let mut text = String::from("timestamp,temp\n");
        for i in 0..600i64 {
            let dup = if duplicate && i == 18 { 300 } else { 0 };
            let t = 1_700_000_000 + 300 * i - if i >= 300 { 3600 } else { 0 } - dup;
            let v = if i == 8 {
                "n/a".to_owned()
            } else {
                format!("{:.3}", 70.0 + ((i * 37) % 11) as f64 / 10.0)
            };
            text.push_str(&format!("{t},{v}\n"));
        }
        text
    };
    std::fs::write(&input, make(true)).unwrap();
    let output = dir.join("out.csv");
    let o = run(&input, &output, &["--warmup", "100"]);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = std::fs::read_to_string(&output).unwrap();
    assert_eq!(out.lines().count(), 601, "one output row per input row");
    assert_eq!(
        out.lines().nth(9),
        Some("1700002400,n/a,,0,"),
        "unusable row: empty score"
    );
    for needle in [
        "600 read, 600 written",
        "time goes backwards 1 time, first at line 302: \"1700086400\" after \"1700089700\", 55 min back",
        "11 rows are earlier than a row before them",
        "duplicate timestamps: 1 row, first at line 20",
        "not a number: 1, first at line 10: column \"temp\": \"n/a\" is not a number",
        "typically 5 min between rows",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in\n{stdout}");
    }
    for bad in ["Some(", "Issue", "NaiveDateTime", "{ "] {
        assert!(!stdout.contains(bad), "debug output {bad:?} in\n{stdout}");
    }

    let o = run(&input, &output, &["--strict-order"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("step.csv: row 20, column \"timestamp\": timestamp \"1700005100\" is the same as the previous row's"),
        "{err}"
    );
    std::fs::write(&input, make(false)).unwrap();
    let o = run(&input, &output, &["--strict-order"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("step.csv: row 302, column \"timestamp\": timestamp \"1700086400\" is earlier than the previous row's \"1700089700\""),
        "{err}"
    );
    assert!(!output.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn backtest_bad_output_path_names_the_output_file() {
    let dir = tmp("badout");
    let input = dir.join("in.csv");
    std::fs::write(&input, "ts,a\n1,1\n2,2\n").unwrap();
    let output = dir.join("no/such/dir/out.csv");
    let o = run(&input, &output, &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("no/such/dir/out.csv"), "{err}");
    assert!(!err.contains("in.csv"), "the input is fine: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn backtest_label_windows_match_the_labels_column() {
    let dir = tmp("windows");
    let input = dir.join("in.csv");
    let mut text = String::from("timestamp,x,anomaly\n");
    for i in 0..300 {
        let bad = (200..230).contains(&i);
        let x = ((i * 7919) % 101) as f64 / 101.0 + if bad { 15.0 } else { 0.0 };
        text.push_str(&format!(
            "2024-05-01 10:{:02}:{:02},{x:.4},{}\n",
            i / 60,
            i % 60,
            u8::from(bad)
        ));
    }
    std::fs::write(&input, &text).unwrap();
    let json = dir.join("windows.json");
    std::fs::write(
        &json,
        r#"{"other/a.csv": [], "plant/in.csv": [["2024-05-01 10:03:20.000000", "2024-05-01 10:03:49.000000"]]}"#,
    )
    .unwrap();
    let csv = dir.join("windows.csv");
    std::fs::write(&csv, "start,end\n2024-05-01 10:03:20,2024-05-01 10:03:49\n").unwrap();
    let output = dir.join("out.csv");
    let by_column = run(&input, &output, &["--labels", "anomaly", "--warmup", "100"]);
    assert!(
        by_column.status.success(),
        "{}",
        String::from_utf8_lossy(&by_column.stderr)
    );
    let by_column = String::from_utf8_lossy(&by_column.stdout).to_string();
    let tail = |s: &str| {
        s.lines()
            .skip_while(|l| !l.starts_with("precision"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        by_column.contains("labelled windows caught: 1 of 1"),
        "{by_column}"
    );
    for extra in [
        &[
            "--label-windows",
            json.to_str().unwrap(),
            "--label-key",
            "plant/in.csv",
        ][..],
        &[
            "--label-windows",
            json.to_str().unwrap(),
            "--label-key",
            "in.csv",
        ][..],
        &["--label-windows", csv.to_str().unwrap()][..],
    ] {
        let mut args = extra.to_vec();
        args.extend(["--warmup", "100"]);
        let o = run(&input, &output, &args);
        assert!(
            o.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let s = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(tail(&s), tail(&by_column), "{extra:?}");
        assert!(s.contains("labels: 1 time window"), "{s}");
    }
    // Without --label-key the input's file name picks the entry.
    let o = run(
        &input,
        &output,
        &["--label-windows", json.to_str().unwrap(), "--warmup", "100"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(tail(&String::from_utf8_lossy(&o.stdout)), tail(&by_column));
    let o = run(
        &input,
        &output,
        &[
            "--label-windows",
            json.to_str().unwrap(),
            "--label-key",
            "nope.csv",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success());
    assert!(
        err.contains("windows.json: bad label windows: no entry \"nope.csv\""),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// NAB's 5-minute machine temperature export has a clock step back (and was refused before
/// rows were replayed in file order).
#[test]
fn backtest_nab_machine_temperature_runs_through() {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/nab");
    let Some(input) = [
        base.join("realKnownCause/machine_temperature_system_failure.csv"),
        base.join("machine_temperature_system_failure.csv"),
    ]
    .into_iter()
    .find(|p| p.exists()) else {
        eprintln!(
            "SKIP backtest_nab_machine_temperature_runs_through: machine_temperature_system_failure.csv not in ../shared/datasets/nab"
        );
        return;
    };
    let dir = tmp("nab");
    let output = dir.join("out.csv");
    let mut args = vec!["--detector", "auto"];
    let windows = base.join("combined_windows.json");
    let windows_s = windows.to_string_lossy().to_string();
    let has_key = std::fs::read_to_string(&windows)
        .is_ok_and(|t| t.contains("machine_temperature_system_failure.csv"));
    if has_key {
        args.extend([
            "--label-windows",
            &windows_s,
            "--label-key",
            "machine_temperature_system_failure.csv",
        ]);
    }
    let o = run(&input, &output, &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    eprintln!("{stdout}");
    let out = std::fs::read_to_string(&output).unwrap();
    assert_eq!(
        out.lines().count() - 1,
        22_695,
        "one output row per input row"
    );
    assert!(stdout.contains("22695 read, 22695 written"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 14 item 2: `--warmup` takes a duration as well as rows (converted with the typical
/// interval: 500 minutes of 5-minute rows are 100 rows), `--gap-factor` sets what counts as
/// a gap, and a bad duration is refused with the forms it accepts.
#[test]
fn backtest_warmup_as_a_duration_and_gap_factor() {
    let dir = tmp("duration");
    let input = dir.join("in.csv");
    let mut text = String::from("timestamp,temp\n");
    for i in 0..400i64 {
        // A 2-hour hole after row 200: 24 intervals.
        let t = 1_700_000_000 + 300 * i + if i >= 200 { 7_200 } else { 0 };
        text.push_str(&format!(
            "{t},{:.3}\n",
            70.0 + ((i * 37) % 11) as f64 / 10.0
        ));
    }
    std::fs::write(&input, text).unwrap();
    let output = dir.join("out.csv");
    let o = run(&input, &output, &["--warmup", "500m"]);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for needle in [
        "400 read, 400 written (one per input row), 100 warm-up, 300 scored",
        "gaps longer than 50 min (10 typical intervals): 1",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in\n{stdout}");
    }
    let o = run(&input, &output, &["--warmup", "500m", "--gap-factor", "30"]);
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    for needle in [
        "no gaps longer than 2 h 30 min (30 typical intervals)",
        "irregular rows: 24 ticks of 5 min the source did not send were filled as held values",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in\n{stdout}");
    }
    let o = run(&input, &output, &["--warmup", "2 hours"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid length \"2 hours\""), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
