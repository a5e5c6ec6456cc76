//! The historian as a component: its config section's errors, and samples acknowledged through
//! the bus only once stored, still there after the process's store is reopened.

use std::sync::Arc;
use std::time::Duration;

use mw_bus::{
    AckOutcome, Batch, BusBuilder, BusConfig, Component, Parts, SourceRegistry, config_registry,
};
use mw_historian::component::HistorianComponent;
use mw_historian::engine::{Historian, Options};
use mw_historian::storage::FsStorage;
use mw_model::{Sample, TagPath, Value};

#[test]
fn the_section_names_what_is_wrong_and_where() {
    let reg = config_registry(&[&HistorianComponent]);
    let d = reg
        .parse(
            "[historian]\nfsync = \"always\"\ninterval_ms = 100\ncolour = 1\n",
            "h.toml",
        )
        .unwrap_err()
        .to_string();
    assert!(
        d.contains("h.toml:2:9: [historian] has both \"fsync\" and \"interval_ms\""),
        "{d}"
    );
    assert!(
        d.contains("h.toml:4:1: unknown key \"colour\" in [historian]"),
        "{d}"
    );
    let d = reg
        .parse("[historian]\nfsync = \"sometimes\"\n", "h.toml")
        .unwrap_err()
        .to_string();
    assert!(d.contains("unknown fsync policy \"sometimes\""), "{d}");
    let d = reg
        .parse("[historian]\npartition = \"10m\"\n", "h.toml")
        .unwrap_err()
        .to_string();
    assert!(
        d.contains("h.toml:2:13: \"partition\" in [historian] is \"10m\": it must be between \"1h\" and \"31d\""),
        "{d}"
    );
    let d = reg
        .parse("[historian]\npartition = \"1 day\"\n", "h.toml")
        .unwrap_err()
        .to_string();
    assert!(
        d.contains("h.toml:2:13: \"partition\" in [historian]: invalid duration \"1 day\""),
        "{d}"
    );
}

#[test]
fn retention_classes_are_checked_and_kept_in_order() {
    use mw_historian::component::HistorianConfig;
    let reg = config_registry(&[&HistorianComponent]);
    let d = reg
        .parse(
            "[historian]\nretention = \"2h\"\npartition = \"90m\"\n\
             [[historian.retention_class]]\nmatch = \"a//b\"\nraw = \"7d\"\n\
             [[historian.retention_class]]\nmatch = \"a/**\"\nkeep = 1\n",
            "h.toml",
        )
        .unwrap_err()
        .to_string();
    assert!(
        d.contains("h.toml:3:1: \"partition\" in [historian] must be a whole number of hours"),
        "{d}"
    );
    assert!(
        d.contains(
            "h.toml:5:9: \"match\" in [[historian.retention_class]]: tag pattern \"a//b\" has an empty segment"
        ),
        "{d}"
    );
    assert!(d.contains("h.toml:9:1: unknown key \"keep\""), "{d}");
    assert!(d.contains("\"raw\""), "a missing raw is reported: {d}");
    let cfg = reg
        .parse(
            "[historian]\nretention = \"90d\"\nrollup_1m = \"1y\"\nrollup_1h = \"10y\"\n\
             [[historian.retention_class]]\nmatch = \"a/fast/**\"\nraw = \"7d\"\n\
             [[historian.retention_class]]\nmatch = \"a/**\"\nraw = \"1y\"\n",
            "h.toml",
        )
        .unwrap();
    let r = &cfg.section::<HistorianConfig>().unwrap().retention;
    let day = 86_400_000_000_000;
    assert_eq!(r.raw, 90 * day);
    assert_eq!((r.rollup_1m, r.rollup_1h), (365 * day, 3650 * day));
    let tag = |s| TagPath::new(s).unwrap();
    assert_eq!(r.raw_for(&tag("a/fast/x")), 7 * day);
    assert_eq!(r.raw_for(&tag("a/slow")), 365 * day);
    assert_eq!(r.raw_for(&tag("b/slow")), 90 * day);
}

#[test]
fn the_quota_takes_a_size_with_a_unit() {
    use mw_historian::component::{HistorianConfig, parse_size};
    assert_eq!(parse_size("20GB"), Ok(20_000_000_000));
    assert_eq!(parse_size("512MiB"), Ok(512 << 20));
    assert_eq!(parse_size("7 TB"), Ok(7_000_000_000_000));
    for bad in ["", "GB", "20", "1.5GB", "20gb", "-1GB"] {
        assert!(parse_size(bad).is_err(), "{bad}");
    }
    let reg = config_registry(&[&HistorianComponent]);
    let d = reg
        .parse("[historian]\nmax_bytes = \"1MB\"\n", "h.toml")
        .unwrap_err()
        .to_string();
    assert!(
        d.contains("h.toml:2:13: \"max_bytes\" in [historian] is \"1MB\": at least"),
        "{d}"
    );
    let d = reg
        .parse("[historian]\nmax_bytes = 100\n", "h.toml")
        .unwrap_err()
        .to_string();
    assert!(d.contains("h.toml:2:13"), "{d}");
    let cfg = reg
        .parse("[historian]\nmax_bytes = \"2GiB\"\n", "h.toml")
        .unwrap();
    assert_eq!(
        cfg.section::<HistorianConfig>().unwrap().max_bytes,
        Some(2 << 30)
    );
    assert_eq!(HistorianConfig::default().max_bytes, None);
}

#[test]
fn durations_and_defaults() {
    use mw_historian::component::{HistorianConfig, parse_duration};
    assert_eq!(parse_duration("30d"), Ok(30 * 86_400_000_000_000));
    assert_eq!(parse_duration("90m"), Ok(5_400_000_000_000));
    assert_eq!(parse_duration("5y"), Ok(5 * 365 * 86_400_000_000_000));
    for bad in ["", "d", "3", "-3d", "1.5d", "3D", "300y"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    let cfg = config_registry(&[&HistorianComponent])
        .parse("[historian]\npartition = \"6h\"\n", "h.toml")
        .unwrap();
    let hc = cfg.section::<HistorianConfig>().unwrap();
    assert_eq!(hc.partition, 6 * 3_600_000_000_000);
    assert_eq!(HistorianConfig::default().partition, 86_400_000_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_are_acknowledged_once_stored_and_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("mw-hist-comp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let toml = format!(
        "[site]\ndata_dir = {:?}\n[historian]\nflush_points = 1000\n",
        dir.display().to_string()
    );
    let cfg = config_registry(&[&HistorianComponent])
        .parse(&toml, "h.toml")
        .unwrap();
    let mut parts = Parts::new();
    HistorianComponent.build(&cfg, &mut parts).unwrap();
    let h = parts
        .take::<Historian>()
        .expect("the historian offers its store");
    let mut bus = BusBuilder::new(BusConfig::default());
    let publisher = bus.publisher();
    bus.parts(parts);
    let running = bus.start(&SourceRegistry::new());
    let tag = TagPath::new("plant/p1/flow").unwrap();
    // recent timestamps: data older than the retention (30 days) is not returned
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    // 3 batches of 1000: beyond flush_points, so segment files are written on the way
    for b in 0..3i64 {
        let samples: Vec<Sample> = (0..1000)
            .map(|i| Sample::good(tag.clone(), Value::F32(i as f32 / 8.0), base + b * 1000 + i))
            .collect();
        let ack = publisher
            .send_with_ack(Batch::from_samples(samples))
            .await
            .unwrap();
        let out = ack.outcome().await;
        assert!(matches!(out, AckOutcome::Committed { sinks: 1 }), "{out:?}");
        // acknowledged means queryable
        assert_eq!(h.range(&tag, 0, i64::MAX).len() as i64, (b + 1) * 1000);
    }
    drop(publisher);
    assert!(running.stop(Duration::from_secs(5)).await);
    drop(h);
    let (h, report) =
        Historian::open(Arc::new(FsStorage), Options::new(dir.join("historian"))).unwrap();
    assert!(report.segments >= 1, "{report:?}");
    let back = h.range(&tag, 0, i64::MAX);
    assert_eq!(back.len(), 3000);
    assert_eq!(
        back[8].value,
        Value::F32(1.0),
        "single precision stays single"
    );
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stop can cut a compaction short (the benchmark found three flushed files beside a day's
/// compacted partition after a clean stop, and the 1 h aggregate over that day decoding every
/// point): the component compacts them when it starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_files_an_earlier_run_left_are_compacted_at_start() {
    use mw_historian::engine::Clock;
    use mw_historian::record::Point;
    let dir = std::env::temp_dir().join(format!("mw-hist-leftover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tag = TagPath::new("plant/p1/flow").unwrap();
    let day = 86_400_000_000_000i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let two_days_ago = (now / day - 2) * day;
    let seg_dir = dir.join("historian").join("segments");
    let files = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&seg_dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    {
        // an earlier run whose clock had not reached the partition's end: flushed, not compacted
        let mut o = Options::new(dir.join("historian"));
        o.clock = Clock::new(move || two_days_ago);
        let (h, _) = Historian::open(Arc::new(FsStorage), o).unwrap();
        for b in 0..2i64 {
            let pts: Vec<Point> = (0..100)
                .map(|i| {
                    Point::from(&Sample::good(
                        tag.clone(),
                        Value::F64(i as f64),
                        two_days_ago + (b * 100 + i) * 1_000_000_000,
                    ))
                })
                .collect();
            h.write(&pts).await.unwrap();
            h.flush().await.unwrap();
        }
        h.close();
    }
    assert_eq!(files().len(), 2, "two flushed files: {:?}", files());
    assert!(files().iter().all(|f| !f.contains("_p")), "{:?}", files());

    let toml = format!(
        "[site]\ndata_dir = {:?}\n[historian]\n",
        dir.display().to_string()
    );
    let cfg = config_registry(&[&HistorianComponent])
        .parse(&toml, "h.toml")
        .unwrap();
    let mut parts = Parts::new();
    HistorianComponent.build(&cfg, &mut parts).unwrap();
    let h = parts.take::<Historian>().unwrap();
    let mut bus = BusBuilder::new(BusConfig::default());
    bus.parts(parts);
    let running = bus.start(&SourceRegistry::new());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(files().len() == 1 && files()[0].contains("_p")) {
        assert!(
            std::time::Instant::now() < deadline,
            "not compacted within 60 s: {:?}",
            files()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.range(&tag, 0, i64::MAX).len(), 200, "every point kept");
    assert!(running.stop(Duration::from_secs(5)).await);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}
