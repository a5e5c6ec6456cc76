//! End-to-end backtests: formats, output shape, metrics and every kind of bad input.

use mw_analytics::DetectorKind;
use mw_analytics::backtest::{
    self, BacktestError, BacktestOptions, BadRows, EpochUnit, TimestampFormat,
};

fn run(input: &str, opts: &BacktestOptions) -> Result<(backtest::Summary, String), BacktestError> {
    let mut out = Vec::new();
    let s = backtest::run(input.as_bytes(), &mut out, opts, &mut |_, _| {})?;
    Ok((s, String::from_utf8(out).expect("utf-8 output")))
}

/// `n` rows of a noisy-ish deterministic series with a step at `step_at`.
fn csv(sep: char, n: usize, ts: impl Fn(usize) -> String, step_at: usize) -> String {
    let mut s = format!("time{sep}a{sep}b{sep}label\n");
    for i in 0..n {
        let wiggle = ((i * 7919) % 101) as f64 / 101.0;
        let a = 10.0 + wiggle + if i >= step_at { 20.0 } else { 0.0 };
        let b = 5.0 - wiggle;
        s.push_str(&format!(
            "{}{sep}{a:.4}{sep}{b:.4}{sep}{}\n",
            ts(i),
            u8::from(i >= step_at)
        ));
    }
    s
}

fn opts() -> BacktestOptions {
    BacktestOptions {
        labels_column: Some("label".into()),
        warmup: Some(64),
        ..Default::default()
    }
}

#[test]
fn semicolon_naive_timestamps_output_shape_and_metrics() {
    let input = csv(
        ';',
        200,
        |i| format!("2024-01-01 00:{:02}:{:02}.5", i / 60, i % 60),
        150,
    );
    let (s, out) = run(&input, &opts()).expect("runs");
    assert_eq!(s.delimiter, ';');
    assert_eq!(s.timestamp_column, "time");
    assert_eq!(s.timestamp_format, TimestampFormat::NaiveDateTime);
    assert_eq!(s.value_columns, ["a", "b"]);
    assert_eq!(
        (s.rows, s.written, s.warmup_rows, s.scored),
        (200, 200, 64, 136)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "timestamp,a,b,anomaly_score,is_anomaly,contributors"
    );
    assert_eq!(lines.len(), 201);
    // Timestamps and values are copied exactly.
    assert!(
        lines[1].starts_with("2024-01-01 00:00:00.5,10.0000,5.0000,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[64].ends_with(",0.000000,0,"),
        "warm-up row: {}",
        lines[64]
    );
    assert_onsets_name(&lines, "a", false);
    let m = s.metrics.expect("metrics");
    assert_eq!(m.tp + m.fp + m.tn + m.fn_, 136);
    assert!(m.recall > 0.9 && m.far < 0.05, "{m:?}");
}

/// Checks the `contributors` column: filled on alarm onsets only, where (when `strict`, or
/// whenever the detector names anything) the first named column is `moved`.
fn assert_onsets_name(lines: &[&str], moved: &str, strict: bool) {
    let mut onsets = 0;
    let mut was = false;
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        let (flag, contributors) = (f[f.len() - 2] == "1", f[f.len() - 1]);
        if flag && !was {
            onsets += 1;
            if strict || !contributors.is_empty() {
                assert!(
                    contributors.starts_with(&format!("{moved}:")),
                    "onset row: {l}"
                );
            }
        } else {
            assert_eq!(contributors, "", "not an onset: {l}");
        }
        was = flag;
    }
    assert!(onsets >= 1, "the step raised an alarm");
}

#[test]
fn alarm_onsets_name_their_contributing_columns() {
    let input = csv(',', 200, |i| format!("{}", 1_700_000_000 + i), 150);
    let o = BacktestOptions {
        detector: DetectorKind::Mad,
        ..opts()
    };
    let (s, out) = run(&input, &o).expect("runs");
    assert_eq!(s.written, 200, "one row per input row");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].ends_with(",is_anomaly,contributors"),
        "{}",
        lines[0]
    );
    assert_onsets_name(&lines, "a", true);
    let onset = lines[1..]
        .iter()
        .find(|l| !l.ends_with(','))
        .expect("an onset row");
    let cell = onset.rsplit(',').next().unwrap();
    let shares: Vec<f64> = cell
        .split(' ')
        .map(|p| p.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        shares.iter().all(|s| (0.0..=1.0).contains(s)) && shares.iter().sum::<f64>() <= 1.0 + 0.02,
        "{cell}"
    );
}

#[test]
fn epoch_and_rfc3339_timestamps() {
    for (f, fmt) in [
        (
            Box::new(|i: usize| format!("{}", 1_700_000_000 + i)) as Box<dyn Fn(usize) -> String>,
            TimestampFormat::Epoch(EpochUnit::Seconds),
        ),
        (
            Box::new(|i: usize| format!("{}", 1_700_000_000_000u64 + 500 * i as u64)),
            TimestampFormat::Epoch(EpochUnit::Millis),
        ),
        (
            Box::new(|i: usize| format!("2024-01-01T00:{:02}:{:02}Z", i / 60, i % 60)),
            TimestampFormat::Rfc3339,
        ),
    ] {
        let (s, out) = run(&csv(',', 100, f, 1000), &opts()).expect("runs");
        assert_eq!(s.timestamp_format, fmt);
        assert_eq!(s.delimiter, ',');
        assert_eq!(out.lines().count(), 101);
    }
}

#[test]
fn named_columns_and_detectors() {
    let input = csv(',', 120, |i| i.to_string(), 1000);
    let o = BacktestOptions {
        timestamp_column: Some("TIME".into()),
        value_columns: vec!["b".into()],
        detector: DetectorKind::Cusum,
        warmup: Some(40),
        ..Default::default()
    };
    let (s, out) = run(&input, &o).expect("runs");
    assert_eq!(s.value_columns, ["b"]);
    assert_eq!(s.detector, "cusum");
    assert!(s.metrics.is_none());
    assert_eq!(
        out.lines().next(),
        Some("timestamp,b,anomaly_score,is_anomaly,contributors")
    );
}

#[test]
fn progress_is_reported() {
    let input = csv(',', 9000, |i| i.to_string(), 100_000);
    let mut calls = Vec::new();
    let mut out = Vec::new();
    backtest::run(input.as_bytes(), &mut out, &opts(), &mut |done, total| {
        calls.push((done, total))
    })
    .expect("runs");
    assert_eq!(calls.first(), Some(&(4096, None)));
    assert_eq!(calls.last(), Some(&(9000, Some(9000))));
}

fn err(input: &str, o: &BacktestOptions) -> BacktestError {
    run(input, o).expect_err("must fail")
}

const HEAD: &str = "time,a,b,label\n";

fn body(rows: &[&str]) -> String {
    let mut s = HEAD.to_owned();
    for i in 0..40 {
        s.push_str(&format!("{i},1.0,2.0,0\n"));
    }
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

#[test]
fn bad_input_names_row_and_column() {
    let o = BacktestOptions {
        bad_rows: BadRows::Fail,
        strict_order: true,
        ..opts()
    };
    // Data row k of `body` is on line k + 2; the extra rows start at line 42.
    match err(&body(&["40,1.0"]), &o) {
        BacktestError::Ragged {
            row: 42,
            expected: 4,
            found: 2,
        } => {}
        e => panic!("{e:?}"),
    }
    match err(&body(&["40,abc,2,0"]), &o) {
        BacktestError::NotANumber {
            row: 42,
            column,
            value,
        } => assert_eq!((column.as_str(), value.as_str()), ("a", "abc")),
        e => panic!("{e:?}"),
    }
    match err(&body(&["40,1,NaN,0"]), &o) {
        BacktestError::MissingValue {
            row: 42, column, ..
        } => assert_eq!(column, "b"),
        e => panic!("{e:?}"),
    }
    match err(&body(&["40,1,,0"]), &o) {
        BacktestError::MissingValue { row: 42, .. } => {}
        e => panic!("{e:?}"),
    }
    match err(&body(&["39,1,2,0"]), &o) {
        BacktestError::DuplicateTimestamp { row: 42, .. } => {}
        e => panic!("{e:?}"),
    }
    match err(&body(&["12,1,2,0"]), &o) {
        BacktestError::Unsorted {
            row: 42, previous, ..
        } => assert_eq!(previous, "39"),
        e => panic!("{e:?}"),
    }
    match err(&body(&["soon,1,2,0"]), &o) {
        BacktestError::BadTimestamp { row: 42, .. } => {}
        e => panic!("{e:?}"),
    }
    match err(&body(&["40,1,2,maybe"]), &o) {
        BacktestError::BadLabel {
            row: 42, column, ..
        } => assert_eq!(column, "label"),
        e => panic!("{e:?}"),
    }
    match err(&body(&["40,\"1,2,0"]), &o) {
        BacktestError::UnterminatedQuote { row: 42 } => {}
        e => panic!("{e:?}"),
    }
    let e = err(&body(&["40,abc,2,0"]), &o).to_string();
    assert_eq!(e, "row 42, column \"a\": \"abc\" is not a number");
}

#[test]
fn bad_files() {
    let o = opts();
    assert!(matches!(err("", &o), BacktestError::Empty));
    assert!(matches!(err("\n\n", &o), BacktestError::Empty));
    assert!(matches!(err(HEAD, &o), BacktestError::NoData));
    assert!(matches!(
        err("justone\n1\n", &o),
        BacktestError::NoDelimiter
    ));
    let missing = BacktestOptions {
        labels_column: Some("truth".into()),
        ..Default::default()
    };
    match err(&body(&[]), &missing) {
        BacktestError::MissingColumn { name, available } => {
            assert_eq!(name, "truth");
            assert_eq!(available, ["time", "a", "b", "label"]);
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        err("x,y\nfoo,bar\n", &o),
        BacktestError::NoTimestampColumn { .. }
    ));
    assert!(matches!(
        err("time,y\n1,bar\n", &BacktestOptions::default()),
        BacktestError::NoValueColumns { .. }
    ));
    assert!(matches!(
        err("time,y\nyesterday,1\n", &BacktestOptions::default()),
        BacktestError::UnknownTimestampFormat { row: 2, .. }
    ));
}

#[test]
fn invalid_utf8_is_an_error_not_a_panic() {
    let mut input = b"time,a\n1,2\n".to_vec();
    input.extend_from_slice(b"2,\xff\xfe\n");
    let mut out = Vec::new();
    let e = backtest::run(
        &input[..],
        &mut out,
        &BacktestOptions::default(),
        &mut |_, _| {},
    )
    .expect_err("fails");
    assert!(matches!(e, BacktestError::Encoding { row: 3 }), "{e:?}");
}

#[test]
fn unusable_rows_and_order_problems_are_counted_with_their_first_line() {
    let input = body(&[
        "40,1.0",     // line 42: ragged
        "41,abc,2,0", // 43: not a number
        "42,1,NaN,0", // 44: missing (its time still counts for the order)
        "42,1,2,0",   // 45: duplicate
        "42,1,2,0",   // 46: duplicate
        "3,1,2,0",    // 47: backwards, 39 s
        "soon,1,2,0", // 48: bad timestamp
        "43,1,2,x",   // 49: bad label
        "44,1,2,1",   // 50
    ]);
    let (s, out) = run(&input, &opts()).expect("runs");
    let k = &s.issues;
    let counts = |i: &backtest::Issue| (i.count, i.first.as_ref().map(|f| f.line));
    assert_eq!(counts(&k.ragged), (1, Some(42)));
    assert_eq!(counts(&k.non_numeric), (1, Some(43)));
    assert_eq!(counts(&k.missing), (1, Some(44)));
    assert_eq!(counts(&k.duplicates), (2, Some(45)));
    assert_eq!(counts(&k.backwards), (1, Some(47)));
    assert_eq!(counts(&k.bad_timestamp), (1, Some(48)));
    assert_eq!(counts(&k.bad_label), (1, Some(49)));
    assert_eq!(k.unusable(), 5);
    assert_eq!(k.behind, 1);
    assert_eq!(k.largest_step_back_ns, 39_000_000_000);
    assert_eq!(
        k.non_numeric.first.as_ref().unwrap().detail,
        "column \"a\": \"abc\" is not a number"
    );
    assert_eq!(
        k.backwards.first.as_ref().unwrap().detail,
        "\"3\" after \"42\", 39 s back"
    );
    // One output row per input row; unusable rows have an empty score and flag 0.
    assert_eq!((s.rows, s.written), (49, 49));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 50);
    assert_eq!(lines[41], "40,1.0,,,0,");
    assert_eq!(lines[42], "41,abc,2,,0,");
    assert_eq!(lines[47], "soon,1,2,,0,");
    assert!(lines[46].starts_with("3,1,2,") && !lines[46].ends_with(",,0,"));
    let text = s.to_string();
    for needle in [
        "49 read, 49 written",
        "time goes backwards 1 time, first at line 47: \"3\" after \"42\", 39 s back",
        "duplicate timestamps: 2 rows, first at line 45",
        "unusable rows: 5",
        "not a number: 1, first at line 43: column \"a\": \"abc\" is not a number",
        "wrong number of fields: 1, first at line 42: 2 fields, but the header has 4",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    assert!(
        !text.contains("Issue") && !text.contains("NaiveDateTime"),
        "{text}"
    );
}

/// 5-minute rows with the clock stepped back an hour (a 55-minute step back) before line `STEP_LINE`.
const STEP_LINE: u64 = 252;

fn clock_step_csv() -> String {
    let mut s = String::from("timestamp,value\n");
    for i in 0..600i64 {
        // Data row i is on line i + 2; from row 250 on, the clock is an hour behind.
        let t = 1_700_000_000 + 300 * i - if i >= 250 { 3600 } else { 0 };
        let wiggle = ((i * 7919) % 101) as f64 / 101.0;
        s.push_str(&format!("{t},{:.4}\n", 50.0 + wiggle));
    }
    s
}

#[test]
fn a_clock_step_back_is_replayed_in_file_order_and_reported_with_its_line() {
    let input = clock_step_csv();
    let (s, out) = run(&input, &BacktestOptions::default()).expect("runs");
    assert_eq!((s.rows, s.written), (600, 600));
    assert_eq!(out.lines().count(), 601);
    let k = &s.issues;
    assert_eq!(k.backwards.count, 1);
    assert_eq!(k.backwards.first.as_ref().unwrap().line, STEP_LINE);
    assert_eq!(k.largest_step_back_ns, 3_300_000_000_000);
    assert_eq!(k.behind, 11, "rows earlier than the latest time seen");
    assert_eq!(k.duplicates.count, 0);
    assert_eq!(k.unusable(), 0);
    assert_eq!(
        s.warmup_rows + s.scored,
        600,
        "every row reached the detector"
    );
    let t = s.time.expect("time stats");
    assert_eq!(t.typical_interval_ns, Some(300_000_000_000));
    assert_eq!(t.gaps, 0);
    let text = s.to_string();
    assert!(
        text.contains("time goes backwards 1 time, first at line 252: \"1700071400\" after \"1700074700\", 55 min back"),
        "{text}"
    );
    assert!(text.contains("typically 5 min between rows"), "{text}");
    assert!(
        text.contains("11 rows are earlier than a row before them"),
        "{text}"
    );

    // Strict order refuses it, naming the line and both timestamps.
    let strict = BacktestOptions {
        strict_order: true,
        ..Default::default()
    };
    let e = err(&input, &strict);
    match &e {
        BacktestError::Unsorted {
            row,
            value,
            previous,
            ..
        } => assert_eq!(
            (*row, value.as_str(), previous.as_str()),
            (STEP_LINE, "1700071400", "1700074700")
        ),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("row 252, column \"timestamp\": timestamp \"1700071400\" is earlier than the previous row's \"1700074700\""), "{e}");
}

#[test]
fn gaps_are_found_against_the_typical_interval() {
    let mut s = String::from("ts,v\n");
    let mut t = 0i64;
    for i in 0..200 {
        t += match i {
            50 => 120,
            120 => 600,
            _ => 10,
        };
        s.push_str(&format!("{t},{}\n", i % 7));
    }
    let (sum, _) = run(&s, &BacktestOptions::default()).expect("runs");
    let t = sum.time.unwrap();
    assert_eq!(t.typical_interval_ns, Some(10_000_000_000));
    assert_eq!(t.gaps, 2);
    let g = t.longest_gap.unwrap();
    assert_eq!((g.line, g.to_ns - g.from_ns), (122, 600_000_000_000));
    assert!(sum.to_string().contains("gaps longer than 1 min 40 s (10 typical intervals): 2, the longest 10 min before line 122"), "{sum}");
}

#[test]
fn label_windows_from_json_and_csv_give_the_metrics_of_the_equivalent_column() {
    // 1-second rows from 2024-01-01 00:00:00; label 1 on rows 150..=170 and 185..=199.
    let ts = |i: usize| format!("2024-01-01 00:{:02}:{:02}", i / 60, i % 60);
    let labelled = |i: usize| (150..=170).contains(&i) || (185..=199).contains(&i);
    let mut input = String::from("time,a,b,label\n");
    for i in 0..200 {
        let wiggle = ((i * 7919) % 101) as f64 / 101.0;
        let a = 10.0 + wiggle + if labelled(i) { 20.0 } else { 0.0 };
        input.push_str(&format!(
            "{},{a:.4},{:.4},{}\n",
            ts(i),
            5.0 - wiggle,
            u8::from(labelled(i))
        ));
    }
    let (by_column, out_column) = run(&input, &opts()).expect("column");
    let json = format!(
        "{{\"x/other.csv\": [], \"realKnownCause/f.csv\": [[\"{}.000000\", \"{}.000000\"], [\"{}\", \"{}\"]]}}",
        ts(150),
        ts(170),
        ts(185),
        ts(199)
    );
    let csv = format!(
        "start,end\n{},{}\n{},{}\n",
        ts(150),
        ts(170),
        ts(185),
        ts(199)
    );
    for (what, windows) in [
        (
            "json",
            backtest::LabelWindows::parse(&json, Some("realKnownCause/f.csv")).unwrap(),
        ),
        ("csv", backtest::LabelWindows::parse(&csv, None).unwrap()),
    ] {
        let o = BacktestOptions {
            labels_column: None,
            label_windows: Some(windows),
            ..opts()
        };
        let (s, out) = run(&input, &o).expect(what);
        assert_eq!(s.metrics, by_column.metrics, "{what}");
        assert_eq!(s.events, by_column.events, "{what}");
        assert_eq!(out, out_column, "{what}");
        assert_eq!(s.labels.as_deref(), Some("2 time windows"));
    }
    let e = by_column.events.expect("events");
    assert_eq!(e.windows, 2);
    assert!(e.caught >= 1, "{e:?}");
    let both = BacktestOptions {
        label_windows: Some(backtest::LabelWindows::parse(&csv, None).unwrap()),
        ..opts()
    };
    assert!(matches!(err(&input, &both), BacktestError::TwoLabelSources));
}

#[test]
fn event_metrics_on_a_hand_computed_case() {
    // row:     0 1 2 3 4 5 6 7 8 9 10 11
    // label:   0 0 1 1 1 0 0 0 1 1 0  0     windows: rows 2-4, 8-9
    // flagged: 1 0 0 0 1 1 0 1 1 0 0  0     onsets: rows 0, 4, 7
    // Onsets outside windows: row 0 and row 7 (row 7 is unlabelled; row 4 is inside).
    // Window 1 caught at row 4 (delay 2 rows, 20 s); window 2 flagged at its start (row 8,
    // delay 0): mean 1 row, 10 s. 12 rows over 110 s.
    let labels = [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0];
    let flags = [1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0];
    let mut c = backtest::EventCounter::default();
    for (i, (l, f)) in labels.iter().zip(flags).enumerate() {
        c.push(
            i as u64 + 2,
            i as i64 * 10_000_000_000,
            Some(*l == 1),
            f == 1,
        );
    }
    let (alarms, events) = c.finish();
    let e = events.expect("labelled");
    assert_eq!(alarms.onsets, 3);
    assert_eq!(
        alarms
            .ranges
            .iter()
            .map(|r| (r.first_line, r.rows))
            .collect::<Vec<_>>(),
        [(2, 1), (6, 2), (9, 2)]
    );
    assert_eq!((e.onsets, e.false_onsets), (3, 2));
    assert_eq!((e.windows, e.caught), (2, 2));
    assert_eq!(e.mean_delay_rows, Some(1.0));
    assert_eq!(e.mean_delay_ns, Some(10e9));
    assert!((e.false_onsets_per_1000_rows - 2000.0 / 12.0).abs() < 1e-9);
    assert!((e.false_onsets_per_day.unwrap() - 2.0 * 86_400.0 / 110.0).abs() < 1e-6);
}

#[test]
fn flagged_ranges_beyond_the_first_few_are_counted() {
    let mut c = backtest::EventCounter::default();
    for i in 0..40u64 {
        c.push(i + 2, i as i64, None, i % 4 == 0);
    }
    let (a, e) = c.finish();
    assert_eq!(a.onsets, 10);
    assert_eq!(a.ranges.len(), backtest::MAX_RANGES);
    assert_eq!(a.more, 10 - backtest::MAX_RANGES as u64);
    assert!(e.is_none(), "no labels, no event metrics");
}

/// Real data with duplicate timestamps: NAB's `ec2_request_latency_system_failure.csv` has 11
/// rows whose time repeats the previous row's. Before replay in file order it was refused.
#[test]
fn nab_file_with_duplicate_timestamps_runs_through_with_its_windows() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/nab");
    let path = dir.join("ec2_request_latency_system_failure.csv");
    if !path.exists() {
        eprintln!(
            "SKIPPED: {} not found (the NAB data set lives in shared/datasets)",
            path.display()
        );
        return;
    }
    let text = std::fs::read_to_string(&path).expect("read");
    let windows = std::fs::read_to_string(dir.join("combined_windows.json")).expect("windows");
    let o = BacktestOptions {
        label_windows: Some(
            backtest::LabelWindows::parse(
                &windows,
                Some("realKnownCause/ec2_request_latency_system_failure.csv"),
            )
            .expect("windows parse"),
        ),
        ..Default::default()
    };
    let (s, out) = run(&text, &o).expect("runs");
    let input_rows = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    assert_eq!((s.rows, s.written), (input_rows, input_rows));
    assert_eq!(out.lines().count() as u64, input_rows + 1);
    assert_eq!(s.issues.duplicates.count, 11);
    assert_eq!(s.issues.backwards.count, 0);
    assert_eq!(s.issues.unusable(), 0);
    let e = s.events.expect("events");
    assert_eq!(e.windows, 3, "{e:?}");
    eprintln!("{s}");
}

#[test]
fn missing_values_can_be_passed_to_the_detector() {
    let o = BacktestOptions {
        pass_missing: true,
        ..opts()
    };
    let (s, out) = run(&body(&["40,,2,0", "41,nan,2,0", "42,1,2,0"]), &o).expect("runs");
    assert_eq!(s.rows_with_missing, 2);
    assert_eq!(s.written, 43);
    // The cell is copied as it was.
    assert!(out.lines().any(|l| l.starts_with("41,nan,2,")));
}

#[test]
fn labels_like_columns_are_not_values_and_decimal_commas_parse() {
    let input = "datetime;x;anomaly;changepoint\n2020-01-01 00:00:00;1,5;0;0\n2020-01-01 00:00:01;2,5;0;0\n";
    let (s, out) = run(input, &BacktestOptions::default()).expect("runs");
    assert_eq!(s.value_columns, ["x"]);
    assert!(out.contains("2020-01-01 00:00:01,\"2,5\","), "{out}");
}

/// Independent pointwise metrics from the output CSV and the labels.
fn independent_metrics(labels: &[bool], predicted: &[bool], skip: usize) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut tn, mut fn_) = (0.0, 0.0, 0.0, 0.0);
    for (l, p) in labels.iter().zip(predicted).skip(skip) {
        match (p, l) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, false) => tn += 1.0,
            (false, true) => fn_ += 1.0,
        }
    }
    let precision = tp / (tp + fp);
    let recall = tp / (tp + fn_);
    (
        2.0 * precision * recall / (precision + recall),
        fp / (fp + tn),
        fn_ / (fn_ + tp),
    )
}

#[test]
fn skab_file_end_to_end_matches_an_independent_metric() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets/skab/valve1/1.csv");
    if !path.exists() {
        eprintln!(
            "SKIPPED: {} not found (the SKAB data set lives in shared/datasets)",
            path.display()
        );
        return;
    }
    let text = std::fs::read_to_string(&path).expect("read");
    let o = BacktestOptions {
        labels_column: Some("anomaly".into()),
        warmup: Some(400),
        ..Default::default()
    };
    let mut out = Vec::new();
    let s = backtest::run(text.as_bytes(), &mut out, &o, &mut |_, _| {}).expect("runs");
    // `changepoint` and `anomaly` are not taken as values.
    assert_eq!(s.value_columns.len(), 8);
    assert_eq!(s.delimiter, ';');
    let out = String::from_utf8(out).expect("utf-8");
    let labels: Vec<bool> = text
        .lines()
        .skip(1)
        .map(|l| l.split(';').nth(9) == Some("1.0"))
        .collect();
    let predicted: Vec<bool> = out
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').nth(1) == Some("1"))
        .collect();
    let stamps_in: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(';').next().unwrap_or(""))
        .collect();
    let stamps_out: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or(""))
        .collect();
    assert_eq!(stamps_in, stamps_out, "timestamps must be copied exactly");
    // SKAB's 1 s rows skip a second now and then: the time-aware layer fills those ticks,
    // and they count toward the 400-tick warm-up, so it ends a few rows before row 400.
    let warm = usize::try_from(s.warmup_rows).expect("fits");
    let filled = s.time_layer.map_or(0, |t| t.filled);
    assert!(
        warm <= 400 && warm as u64 + filled >= 400,
        "{warm} + {filled}"
    );
    let (f1, far, mar) = independent_metrics(&labels, &predicted, warm);
    let m = s.metrics.expect("metrics");
    assert!(
        (m.f1 - f1).abs() < 1e-12 && (m.far - far).abs() < 1e-12 && (m.mar - mar).abs() < 1e-12
    );
    assert!(m.f1 > 0.5, "{m:?}");
}

/// Found by the `backtest_csv` fuzz target: a first data row with more fields than the header
/// used to index past the header while choosing the value columns.
#[test]
fn backtest_ragged_first_row_is_an_error_not_a_panic() {
    let input = "0-30T00:00:02,.02.\n,0,2024-03-30T00:00:02,bp";
    for bad_rows in [BadRows::Fail, BadRows::Mark] {
        let o = BacktestOptions { bad_rows, ..opts() };
        match run(input, &o) {
            Err(BacktestError::Ragged {
                row: 2,
                expected: 2,
                found: 4,
            }) => {}
            other => panic!("{bad_rows:?}: expected a ragged-row error at row 2, got {other:?}"),
        }
    }
}

/// A CSV of `n` good rows with arbitrary damage: each row may be ragged, hold text, lose its
/// time, repeat or step back its time, or be preceded by blank lines.
fn damaged_csv(damage: &[u8]) -> (String, u64) {
    let mut s = String::from("ts;a;b\n");
    let mut t = 1_000i64;
    for (i, d) in damage.iter().enumerate() {
        t += 10;
        let row = match d % 8 {
            0 => format!("{t};1;2"),
            1 => format!("{t};1"),
            2 => format!("{t};x;2"),
            3 => "soon;1;2".to_owned(),
            4 => format!("{};1;2", t - 10),
            5 => format!("{};1;2", t - 500),
            6 => format!("\n\n{t};\"1,5\";2"),
            _ => format!("{t};;2"),
        };
        s.push_str(&row);
        s.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
    }
    (s, damage.len() as u64)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    #[test]
    fn backtest_never_panics_on_arbitrary_text(text in "[0-9a-z,;\"\t\r\n .:-]{0,300}") {
        let mut out = Vec::new();
        let _ = backtest::run(text.as_bytes(), &mut out, &BacktestOptions::default(), &mut |_, _| {});
        let strict = BacktestOptions { strict_order: true, bad_rows: BadRows::Fail, ..Default::default() };
        let _ = backtest::run(text.as_bytes(), &mut out, &strict, &mut |_, _| {});
    }

    #[test]
    fn every_input_row_gets_exactly_one_output_row(damage in proptest::collection::vec(0u8..8, 1..120)) {
        let mut damage = damage;
        damage[0] = 0; // the first row decides the layout
        let (input, rows) = damaged_csv(&damage);
        let o = BacktestOptions { warmup: Some(32), ..Default::default() };
        let (s, out) = run(&input, &o).expect("runs");
        proptest::prop_assert_eq!(s.rows, rows);
        proptest::prop_assert_eq!(s.written, rows);
        proptest::prop_assert_eq!(out.lines().count() as u64, rows + 1);
        let k = &s.issues;
        let kind = |n: u8| damage.iter().filter(|&&d| d % 8 == n).count() as u64;
        proptest::prop_assert_eq!(k.ragged.count, kind(1));
        proptest::prop_assert_eq!(k.non_numeric.count, kind(2));
        proptest::prop_assert_eq!(k.bad_timestamp.count, kind(3));
        proptest::prop_assert_eq!(k.missing.count, kind(7));
        proptest::prop_assert_eq!(s.warmup_rows + s.scored + k.unusable(), rows);
        // The first ragged row's line: the header is line 1, kind 6 adds two blank lines.
        if let Some(i) = damage.iter().position(|&d| d == 1) {
            let line = 2 + i as u64 + 2 * damage[..i].iter().filter(|&&d| d == 6).count() as u64;
            proptest::prop_assert_eq!(k.ragged.first.as_ref().map(|f| f.line), Some(line));
        }
    }
}

#[test]
fn tab_separated_input_is_detected() {
    let input = csv(
        '\t',
        100,
        |i| format!("2024-01-01T00:00:{:02}.{:03}", i / 10, (i % 10) * 100),
        1000,
    );
    let (s, out) = run(&input, &opts()).expect("runs");
    assert_eq!(s.delimiter, '\t');
    assert_eq!(s.value_columns, ["a", "b"]);
    assert_eq!(out.lines().count(), 101);
    assert!(s.to_string().contains("input: delimiter tab"), "{s}");
    assert_eq!(s.time.unwrap().typical_interval_ns, Some(100_000_000));
}
