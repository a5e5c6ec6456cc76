//! `millwright import`, `query` and `export` on the real binary: a CSV of 60 000 points imported
//! in batches and read back exactly (values, types, qualities), aggregates, an export that
//! imports into a fresh store and exports to the same bytes, line protocol both ways, a bad row
//! that stops the import with its line while keeping what came before, and the lock that keeps
//! an offline command away from a store a running server has open.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use common::{Proc, TempDir, run_to_end};
use serde_json::Value as J;

const T: Duration = Duration::from_secs(60);
const N: i64 = 20_000;
const SECOND: i64 = 1_000_000_000;

fn mw(args: &[&str]) -> (bool, String, String) {
    let (st, out, err) = run_to_end(args, T);
    (st.success(), out, err)
}

fn ok(args: &[&str]) -> (String, String) {
    let (good, out, err) = mw(args);
    assert!(good, "millwright {}: failed\n{out}\n{err}", args.join(" "));
    (out, err)
}

/// 3 tags × N points one second apart, ending a minute ago: a float, an integer with a bad
/// stretch, a bool. Times in nanoseconds (import reads those and RFC 3339; the export writes
/// RFC 3339, so the round trip below covers both).
fn input_csv(path: &Path, end_ns: i64) {
    let mut s = String::from("time,tag,type,value,quality,reason\n");
    for i in 0..N {
        let ts = end_ns - (N - i) * SECOND;
        let _ = writeln!(s, "{},plant/p1/flow,f64,{},good,", ts, i as f64 * 0.25);
        let (q, r) = if (100..200).contains(&i) {
            ("bad", "timeout after 1000 ms")
        } else {
            ("good", "")
        };
        let _ = writeln!(s, "{},plant/p1/count,i64,{},{q},{r}", ts, i - 5);
        let _ = writeln!(s, "{},plant/p1/running,bool,{},good,", ts, i % 7 == 0);
    }
    std::fs::write(path, s).unwrap();
}

fn query_json(dir: &str, tag: &str, extra: &[&str]) -> J {
    let mut args = vec![
        "query",
        tag,
        "--from",
        "12h",
        "--format",
        "json",
        "--data-dir",
        dir,
    ];
    args.extend_from_slice(extra);
    let (out, _) = ok(&args);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn import_query_export_round_trip_and_the_store_lock() {
    let tmp = TempDir::new("history-cli");
    let p = |name: &str| tmp.path.join(name).to_str().unwrap().to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let end = now - 60 * SECOND;
    input_csv(&tmp.path.join("in.csv"), end);
    let (d1, d2, d3) = (p("d1"), p("d2"), p("d3"));

    let (_, err) = ok(&["import", &p("in.csv"), "--batch", "5000", "--data-dir", &d1]);
    assert!(err.contains("imported 60000 point(s) of 3 tag(s)"), "{err}");

    let flow = query_json(&d1, "plant/p1/flow", &[]);
    let pts = flow["points"].as_array().unwrap();
    assert_eq!(pts.len(), N as usize, "every point back");
    assert_eq!(pts[0][1], 0.0);
    assert_eq!(pts[N as usize - 1][1], (N - 1) as f64 * 0.25);
    let count = query_json(&d1, "plant/p1/count", &[]);
    let c = count["points"].as_array().unwrap();
    assert_eq!((&c[0][1], &c[0][2]), (&J::from(-5.0), &J::from("good")));
    assert_eq!(c[150][2], "bad", "qualities kept: {}", c[150]);
    let running = query_json(&d1, "plant/p1/running", &[]);
    assert_eq!(running["points"][7][1], true, "bools stay bools");

    // 1-hour counts over the float tag add up to every point
    let agg = query_json(&d1, "plant/p1/flow", &["--agg", "count", "--step", "1h"]);
    let total: f64 = agg["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_f64().unwrap())
        .sum();
    assert_eq!(total, N as f64, "{agg}");
    let glob = query_json(&d1, "plant/p1/*", &[]);
    assert_eq!(
        glob["series"].as_array().unwrap().len(),
        3,
        "a glob is every match"
    );

    // CSV out, into a fresh store, out again: the same bytes (values, types, qualities kept)
    ok(&["export", "-o", &p("out1.csv"), "--data-dir", &d1]);
    ok(&["import", &p("out1.csv"), "--data-dir", &d2]);
    let (_, err) = ok(&[
        "export",
        "-o",
        &p("out2.csv"),
        "--from",
        "1d",
        "--data-dir",
        &d2,
    ]);
    assert!(err.contains("exported 60000 points of 3 tags"), "{err}");
    let (a, b) = (
        std::fs::read(p("out1.csv")).unwrap(),
        std::fs::read(p("out2.csv")).unwrap(),
    );
    assert!(a == b, "the round trip changed the export");
    let first_row = String::from_utf8_lossy(&a)
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        first_row.ends_with(",plant/p1/count,i64,-5,good,"),
        "{first_row}"
    );

    // line protocol out and in: numbers come back the same
    ok(&[
        "export",
        "-o",
        &p("out.lp"),
        "--tag",
        "plant/p1/flow",
        "--data-dir",
        &d1,
    ]);
    let lp = std::fs::read_to_string(p("out.lp")).unwrap();
    assert_eq!(lp.lines().count(), N as usize);
    assert!(lp.starts_with("plant,l1=p1 flow=0 "), "{}", &lp[..60]);
    ok(&["import", &p("out.lp"), "--data-dir", &d3]);
    assert_eq!(
        query_json(&d3, "plant/p1/flow", &[])["points"],
        flow["points"]
    );

    // backtest from history = backtest of the same rows from a file
    let mut file = String::from("timestamp,plant/p1/flow,plant/p1/running\n");
    for i in 0..N {
        let ts = end - (N - i) * SECOND;
        let running = f64::from(u8::from(i % 7 == 0));
        let _ = writeln!(
            file,
            "{},{},{running}",
            mw_model::format_rfc3339_ns(ts),
            i as f64 * 0.25
        );
    }
    std::fs::write(p("wide.csv"), file).unwrap();
    ok(&[
        "backtest",
        "--input",
        &p("wide.csv"),
        "--output",
        &p("bt_file.csv"),
        "--detector",
        "ewma",
    ]);
    let (out, _) = ok(&[
        "backtest",
        "--tag",
        "plant/p1/flow",
        "--tag",
        "plant/p1/running",
        "--from",
        "12h",
        "--output",
        &p("bt_hist.csv"),
        "--detector",
        "ewma",
        "--data-dir",
        &d1,
    ]);
    assert!(
        out.contains("history of plant/p1/flow, plant/p1/running"),
        "{out}"
    );
    let (f, h) = (
        std::fs::read_to_string(p("bt_file.csv")).unwrap(),
        std::fs::read_to_string(p("bt_hist.csv")).unwrap(),
    );
    assert_eq!(h.lines().count(), N as usize + 1);
    assert!(
        f == h,
        "the replay of stored history differs from the file's"
    );
    let (good, _, err) = mw(&[
        "backtest",
        "--tag",
        "plant/p9/none",
        "--output",
        &p("x.csv"),
        "--data-dir",
        &d1,
    ]);
    assert!(
        !good && err.contains("no stored history for plant/p9/none"),
        "{err}"
    );

    // a bad row: stops with its line, what came before is stored
    let bad = format!(
        "time,tag,value\n{},plant/p2/level,1.5\n{},plant/p2/level\n",
        end - SECOND,
        end
    );
    std::fs::write(p("bad.csv"), bad).unwrap();
    let (good, _, err) = mw(&["import", &p("bad.csv"), "--data-dir", &d1]);
    assert!(!good, "a malformed file fails the import");
    assert!(
        err.contains("bad.csv: line 3: 2 fields where the header has 3")
            && err.contains("imported 1 point(s) from this file before that line"),
        "{err}"
    );
    assert_eq!(
        query_json(&d1, "plant/p2/level", &[])["points"][0][1],
        1.5,
        "the row before the bad one is stored"
    );

    // a running server holds the store: offline commands refuse, and work again after it stops
    let cfg = tmp.path.join("mw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nname = \"cli test\"\ndata_dir = {d1:?}\n\n[http]\naddress = \"127.0.0.1:0\"\n\n[historian]\n"
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let mut server = Proc::millwright(&["run", "--config", cfg]);
    server.wait_line("web UI at http://", T);
    let (good, _, err) = mw(&["query", "plant/p1/flow", "--config", cfg]);
    assert!(!good);
    assert!(
        err.contains("is in use by another Millwright process"),
        "{err}"
    );
    server.sigterm();
    assert!(
        server.wait_exit(T).is_some_and(|s| s.success()),
        "{}",
        server.report()
    );
    let (out, _) = ok(&[
        "query",
        "plant/p1/flow",
        "--from",
        "12h",
        "--config",
        cfg,
        "--format",
        "csv",
    ]);
    assert_eq!(out.lines().count(), N as usize + 1, "header + every point");
}
