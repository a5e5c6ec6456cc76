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
        &header[header.len() - 2..],
        &["anomaly_score", "is_anomaly"]
    );
    assert_eq!(
        header.len(),
        1 + 8 + 2,
        "timestamp, 8 sensors, score, flag: {header:?}"
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
        let score: f64 = o[o.len() - 2].parse().unwrap();
        assert!((0.0..=1.0).contains(&score), "row {i}: score {score}");
        let flag = o[o.len() - 1] == "1";
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
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "ragged.csv",
            "ts,a,b\n2026-01-01 00:00:00,1,2\n2026-01-01 00:00:01,1\n",
            &["row 3"],
        ),
        (
            "text.csv",
            "ts,a\n2026-01-01 00:00:00,1\n2026-01-01 00:00:01,abc\n",
            &["row 3", "a"],
        ),
        (
            "unsorted.csv",
            "ts,a\n2026-01-01 00:00:05,1\n2026-01-01 00:00:01,2\n",
            &["row 3"],
        ),
        ("empty.csv", "", &["empty"]),
        ("missing_col.csv", "ts,a\n2026-01-01 00:00:00,1\n", &["zzz"]),
    ];
    for (name, content, needles) in cases {
        let input = dir.join(name);
        std::fs::write(&input, content).unwrap();
        let output = dir.join(format!("{name}.out"));
        let extra: &[&str] = if *name == "missing_col.csv" {
            &["--value-column", "zzz"]
        } else {
            &[]
        };
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
