//! `[notify]`: a full config is read into the expected value, and a file with one mistake per
//! key gives exactly the diagnostics in `data/bad.expected` (golden file; regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p mw-notify --test config` and review the diff).

use std::time::Duration;

use mw_bus::Component;
use mw_notify::NotifyComponent;
use mw_notify::config::{NotifySection, Priority, TargetKind};

fn registry() -> mw_config::Registry {
    mw_bus::config_registry(&[&NotifyComponent as &dyn Component])
}

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn absent_is_off() {
    let c = registry().parse("", "t.toml").unwrap();
    assert_eq!(
        c.section::<NotifySection>().unwrap(),
        &NotifySection::default()
    );
}

#[test]
fn every_key_is_read() {
    let c = registry().load(&data("good.toml")).unwrap();
    let n = c.section::<NotifySection>().unwrap();
    assert_eq!(n.targets.len(), 2);
    let ops = &n.targets[0];
    assert_eq!(ops.name, "ops");
    assert_eq!(ops.filter.min_priority, Priority::High);
    assert_eq!(ops.filter.areas, ["gas", "utilities"]);
    assert_eq!(ops.filter.states, ["unack_active", "rtn_unack", "normal"]);
    assert_eq!(
        (ops.max_per_minute, ops.dedup, ops.queue),
        (10, Duration::from_secs(30), 64)
    );
    let TargetKind::Webhook(w) = &ops.kind else {
        panic!("ops is a webhook")
    };
    assert!(w.endpoint.https);
    assert_eq!(w.endpoint.host, "hooks.example.com");
    assert_eq!(w.endpoint.path, "/services/T000/B000");
    assert_eq!(w.headers, [("X-Team".to_owned(), "utilities".to_owned())]);
    assert_eq!(w.header_files[0].0, "Authorization");
    assert_eq!(w.timeout, Duration::from_secs(2));
    assert_eq!(
        (w.retry.retries, w.retry.backoff, w.retry.backoff_max),
        (3, Duration::from_millis(250), Duration::from_secs(10))
    );
    // the URL's path (a token, for many services) is not in Debug
    assert!(!format!("{n:?}").contains("T000"), "{n:?}");
    let scada = &n.targets[1];
    let TargetKind::Mqtt(m) = &scada.kind else {
        panic!("scada is MQTT")
    };
    assert_eq!(
        (m.connection.host.as_str(), m.connection.port),
        ("127.0.0.1", 1883)
    );
    assert_eq!(m.topic, "alarms/{area}/{priority}/{alarm}");
    assert!(m.retain);
    // defaults
    assert_eq!(scada.filter.states, ["unack_active", "normal"]);
    assert_eq!(scada.filter.min_priority, Priority::Low);
    assert_eq!(
        (scada.max_per_minute, scada.dedup),
        (30, Duration::from_secs(60))
    );
    let e = &n.escalations[0];
    assert_eq!(e.min_priority, Priority::Critical);
    assert_eq!(e.after, Duration::from_secs(300));
    assert_eq!(e.repeat, Some(Duration::from_secs(600)));
    assert_eq!(e.targets, [0, 1]);
}

#[test]
fn mistakes_are_reported_with_line_and_column() {
    let got = match registry().load(&data("bad.toml")) {
        Ok(_) => panic!("bad.toml was accepted"),
        Err(d) => d.items.iter().map(|i| format!("{i}\n")).collect::<String>(),
    };
    // a secret given inline is refused without being repeated
    assert!(!got.contains("s3cr3t"), "{got}");
    let path = data("bad.expected");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(got, want, "diagnostics differ from {}", path.display());
}

/// The commented-out block in `examples/plant.toml` is a valid `[notify]` once uncommented.
#[test]
fn the_example_block_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plant.toml");
    let src = std::fs::read_to_string(&path).unwrap();
    let begin = src
        .find("# notify-example-begin")
        .expect("the example block");
    let end = src.find("# notify-example-end").expect("its end");
    let block: String = src[begin..end]
        .lines()
        .skip(1)
        .map(|l| {
            format!(
                "{}\n",
                l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#'))
            )
        })
        .collect();
    let c = registry()
        .parse(&block, "plant.toml")
        .unwrap_or_else(|d| panic!("{d}\n{block}"));
    let n = c.section::<NotifySection>().unwrap();
    assert_eq!((n.targets.len(), n.escalations.len()), (2, 1));
}

proptest::proptest! {
    /// Arbitrary edits of the test files never make the checker panic.
    #[test]
    fn never_panics(cut in 0usize..2000, insert in ".{0,8}", which in 0usize..2) {
        let src = std::fs::read_to_string(data(["good.toml", "bad.toml"][which])).unwrap();
        let mut at = cut.min(src.len());
        while !src.is_char_boundary(at) {
            at -= 1;
        }
        let edited = format!("{}{insert}{}", &src[..at], &src[at..]);
        let _ = registry().parse(&edited, "t.toml");
    }
}

/// Secret files are read when the component is built: a missing one is named, a bad one is
/// refused without its content in the message.
#[test]
fn build_errors_name_the_file_never_the_secret() {
    let dir = std::env::temp_dir().join(format!("mw-notify-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let build = |extra: &str| {
        let toml =
            format!("[[notify.webhook]]\nname = \"ops\"\nurl = \"http://127.0.0.1:9/\"\n{extra}\n");
        let cfg = registry().parse(&toml, "t.toml").unwrap();
        let mut parts = mw_bus::Parts::new();
        NotifyComponent
            .build(&cfg, &mut parts)
            .map(|()| parts.sink_count())
    };
    let missing = dir.join("missing-key");
    let e = build(&format!("secret_file = \"{}\"", missing.display())).unwrap_err();
    assert!(
        e.to_string().contains("cannot read the secret file")
            && e.to_string().contains("missing-key"),
        "{e}"
    );
    let bad = dir.join("two-lines");
    std::fs::write(&bad, "Bearer top-secret\nsecond line\n").unwrap();
    let e = build(&format!(
        "header_files = [{{ name = \"Authorization\", file = \"{}\" }}]",
        bad.display()
    ))
    .unwrap_err();
    assert!(e.to_string().contains("two-lines"), "{e}");
    assert!(!e.to_string().contains("top-secret"), "{e}");
    let ok = dir.join("token");
    std::fs::write(&ok, "Bearer top-secret\n").unwrap();
    let n = build(&format!(
        "header_files = [{{ name = \"Authorization\", file = \"{}\" }}]",
        ok.display()
    ))
    .unwrap();
    assert_eq!(n, 1);
    // no target, no sink
    let cfg = registry().parse("", "t.toml").unwrap();
    let mut parts = mw_bus::Parts::new();
    NotifyComponent.build(&cfg, &mut parts).unwrap();
    assert_eq!(parts.sink_count(), 0);
}
