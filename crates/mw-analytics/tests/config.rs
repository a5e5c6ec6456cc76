//! One test per rule of the `[[detectors]]` and `[[rul]]` sections. Their tags come from a
//! Modbus device, the source section the demo uses. Golden files under `tests/data/config`
//! cover the rendered output of whole files.

use mw_analytics::config::{
    DetectorConfig, DetectorsConfig, DetectorsSection, RulConfig, RulSection, RulsConfig,
};
use mw_analytics::{DetectorKind, Length};
use mw_config::{Config, Diagnostics, Registry};
use mw_model::{DataType, TagPath};

fn registry() -> Registry {
    Registry::new()
        .with(Box::new(mw_modbus::config::DevicesSection))
        .with(Box::new(DetectorsSection))
        .with(Box::new(RulSection))
}

fn parse(src: &str, file: &str) -> Result<Config, Diagnostics> {
    registry().parse(src, file)
}

fn load(path: &std::path::Path) -> Result<Config, Diagnostics> {
    registry().load(path)
}

fn detectors(c: &Config) -> &[DetectorConfig] {
    &c.section::<DetectorsConfig>()
        .expect("the detectors section")
        .detectors
}

fn ruls(c: &Config) -> &[RulConfig] {
    &c.section::<RulsConfig>().expect("the rul section").rul
}

/// Diagnostics as `LINE:COL: message`.
fn errors(src: &str) -> Vec<String> {
    match parse(src, "t.toml") {
        Ok(_) => Vec::new(),
        Err(d) => d.items.iter().map(ToString::to_string).collect(),
    }
}

fn valid(src: &str) -> Config {
    parse(src, "t.toml").unwrap_or_else(|d| panic!("unexpected diagnostics:\n{d}"))
}

#[test]
fn load_reads_and_labels_with_the_path() {
    let dir = std::env::temp_dir().join(format!("mw-config-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[site]\nname = 1\n").unwrap();
    let d = load(&path).unwrap_err();
    assert_eq!(
        d.to_string(),
        format!(
            "{}:2:8: wrong type for \"name\" in [site]: expected string, found integer",
            path.display()
        )
    );
    std::fs::write(&path, "[site]\nname = \"ok\"\n").unwrap();
    assert_eq!(load(&path).unwrap().site.name, "ok");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- [[detectors]] and [[rul]] ---------------------------------------------------------------

/// Lines 1–9: a pump asset and a device with three numeric tags and a bool under it, and a
/// tag under an undeclared asset. Analytics entries start on line 10.
const PLANT: &str = r#"[[assets]]
path = "acme/p1"
[[devices]]
name = "plc1"
endpoint = "10.0.0.1:502"
tags = [{ path = "acme/p1/flow", table = "input", address = 0, type = "f32", unit = "m3/h" }, { path = "acme/p1/vib", table = "input", address = 2, type = "f32", unit = "mm/s" }, { path = "acme/p1/temp", table = "input", address = 4, type = "i16", scale = { raw = [0, 1000], eu = [0, 100] } }, { path = "acme/p1/run", table = "coil", address = 0, type = "bool" }, { path = "acme/p2/level", table = "input", address = 5, type = "u16" }]
[[assets]]
path = "acme/empty"
kind = "area"
"#;

fn with_plant(analytics: &str) -> String {
    format!("{PLANT}{analytics}")
}

fn tp(s: &str) -> TagPath {
    TagPath::new(s).unwrap()
}

#[test]
fn detector_defaults_watch_every_numeric_tag_in_file_order() {
    let c = valid(&with_plant("[[detectors]]\nasset = \"acme/p1\"\n"));
    assert_eq!(
        detectors(&c),
        vec![DetectorConfig {
            asset: "acme/p1".into(),
            tags: vec![tp("acme/p1/flow"), tp("acme/p1/vib"), tp("acme/p1/temp")],
            kind: DetectorKind::Auto,
            warmup: None,
            gap_factor: 10,
            interval_ns: None,
            score_tag: tp("acme/p1/anomaly_score"),
            flag_tag: tp("acme/p1/anomalous"),
            contributors_tag: tp("acme/p1/anomaly_contributors"),
        }],
        "bool tags are left out; scaled integer tags are numeric"
    );
}

#[test]
fn detector_with_every_key() {
    let c = valid(&with_plant(
        "[[detectors]]\nasset = \"acme/p1\"\ntags = [\"vib\", \"flow\"]\nkind = \"pca\"\nwarmup = 300\nname = \"x\"\n\
         [[detectors]]\nasset = \"acme/p2\"\ntags = [\"level\"]\nkind = \"seasonal\"\n",
    ));
    let [d, d2] = detectors(&c) else {
        panic!("2 detectors expected: {:?}", detectors(&c))
    };
    assert_eq!(
        d.tags,
        vec![tp("acme/p1/vib"), tp("acme/p1/flow")],
        "in the order given"
    );
    assert_eq!(
        (d.kind, d.warmup),
        (DetectorKind::Pca, Some(Length::Rows(300)))
    );
    assert_eq!(
        (d.score_tag.as_str(), d.flag_tag.as_str()),
        ("acme/p1/x_score", "acme/p1/x")
    );
    assert_eq!(
        (d2.asset.as_str(), d2.kind),
        ("acme/p2", DetectorKind::Seasonal),
        "an undeclared asset is known through its tags"
    );
}

#[test]
fn detector_asset_must_be_valid_and_known() {
    assert_eq!(
        errors(&with_plant("[[detectors]]\nasset = \"acme/p3\"\n")),
        vec![
            "11:9: unknown asset \"acme/p3\": it is not declared in [[assets]] and no configured tag is directly under it"
        ]
    );
    assert_eq!(
        errors(&with_plant("[[detectors]]\nasset = \"acme/empty\"\n")),
        vec![
            "11:9: detector on \"acme/empty\" has nothing to watch: no numeric tag is configured directly under its asset"
        ]
    );
    assert_eq!(
        errors(&with_plant("[[detectors]]\nasset = \"acme//p1\"\n")),
        vec![
            "11:9: invalid asset path \"acme//p1\": segment 1 of the asset path is empty (leading, trailing or doubled '/')"
        ]
    );
    assert_eq!(
        errors(&with_plant("[[detectors]]\nkind = \"mad\"\n")),
        vec!["10:1: missing required key \"asset\" in [[detectors]] entry #1"]
    );
    // the parent of a tag's asset is not the asset of any tag
    assert_eq!(
        errors(&with_plant("[[detectors]]\nasset = \"acme\"\n")).len(),
        1
    );
}

#[test]
fn detector_kinds() {
    assert_eq!(
        errors(&with_plant(
            "[[detectors]]\nasset = \"acme/p1\"\nkind = \"iforest\"\n"
        )),
        vec![
            "12:8: unknown detector kind \"iforest\" in detector on \"acme/p1\" (expected one of: auto, mad, ewma, cusum, seasonal, pca)"
        ]
    );
    assert_eq!(
        errors(&with_plant(
            "[[detectors]]\nasset = \"acme/p1\"\nkind = \"Auto\"\n"
        )),
        vec![
            "12:8: unknown detector kind \"Auto\" in detector on \"acme/p1\" (expected one of: auto, mad, ewma, cusum, seasonal, pca)"
        ],
        "kind names are case-sensitive"
    );
    for kind in DetectorKind::ALL {
        let src = with_plant(&format!(
            "[[detectors]]\nasset = \"acme/p1\"\ntags = [\"vib\"]\nkind = \"{kind}\"\n"
        ));
        assert_eq!(detectors(&valid(&src))[0].kind, kind);
    }
}

#[test]
fn univariate_kinds_need_exactly_one_tag() {
    assert_eq!(
        errors(&with_plant(
            "[[detectors]]\nasset = \"acme/p1\"\ntags = [\"vib\", \"flow\"]\nkind = \"ewma\"\n"
        )),
        vec![
            "13:8: detector kind \"ewma\" watches exactly one tag, but \"tags\" in detector on \"acme/p1\" lists 2; use kind \"auto\" or \"pca\" for several tags, or one [[detectors]] entry per tag"
        ]
    );
    assert_eq!(
        errors(&with_plant(
            "[[detectors]]\nasset = \"acme/p1\"\nkind = \"mad\"\n"
        )),
        vec![
            "12:8: detector kind \"mad\" watches exactly one tag, but detector on \"acme/p1\" has no \"tags\" and its asset has 3 numeric tags (flow, vib, temp); use kind \"auto\" or \"pca\" for several tags, or one [[detectors]] entry per tag"
        ]
    );
    // one numeric tag under the asset: the default list is fine
    let c = valid(&with_plant(
        "[[detectors]]\nasset = \"acme/p2\"\nkind = \"cusum\"\n",
    ));
    assert_eq!(detectors(&c)[0].tags, vec![tp("acme/p2/level")]);
    // several tags are fine for the multivariate kinds
    assert!(
        DetectorKind::ALL
            .iter()
            .filter(|&&k| !mw_analytics::config::is_univariate(k))
            .eq([DetectorKind::Auto, DetectorKind::Pca].iter())
    );
}

#[test]
fn detector_tag_names_resolve_under_the_asset() {
    let e = errors(&with_plant(
        "[[detectors]]\nasset = \"acme/p1\"\ntags = [\"flwo\", \"run\", \"vib\", \"vib\", \"acme/p1/temp\", 7, \"a b\"]\n",
    ));
    assert_eq!(
        e,
        vec![
            "12:9: unknown tag \"flwo\" in \"tags\" of detector on \"acme/p1\": acme/p1/flwo is not a configured tag (numeric tags of acme/p1: flow, vib, temp)",
            "12:17: tag acme/p1/run in \"tags\" of detector on \"acme/p1\" has type bool; a detector needs numeric tags",
            "12:31: duplicate tag name \"vib\" in \"tags\" of detector on \"acme/p1\"",
            "12:38: tag name \"acme/p1/temp\" in \"tags\" of detector on \"acme/p1\" contains '/': list the names of tags directly under the asset, e.g. \"flow\"; did you mean \"temp\"?",
            "12:54: wrong type for element 6 of \"tags\" in detector on \"acme/p1\": expected string, found integer",
            "12:57: invalid tag name \"a b\" in \"tags\" of detector on \"acme/p1\": invalid character ' ' in segment 2 of the tag path (allowed: A-Z a-z 0-9 _ - .)",
        ]
    );
    assert_eq!(
        errors(&with_plant(
            "[[detectors]]\nasset = \"acme/p1\"\ntags = []\n"
        )),
        vec![
            "12:8: \"tags\" in detector on \"acme/p1\" is empty; list tag names under the asset, or leave \"tags\" out to watch every numeric tag of the asset"
        ]
    );
    assert_eq!(
        errors(&with_plant(
            "[[detectors]]\nasset = \"acme/p1\"\ntags = \"vib\"\n"
        )),
        vec![
            "12:8: wrong type for \"tags\" in detector on \"acme/p1\": expected array of tag names, found string"
        ]
    );
    // a tag of another asset is not found under this one
    assert_eq!(
        errors(&with_plant(
            "[[detectors]]\nasset = \"acme/p2\"\ntags = [\"vib\"]\n"
        )),
        vec![
            "12:9: unknown tag \"vib\" in \"tags\" of detector on \"acme/p2\": acme/p2/vib is not a configured tag (numeric tags of acme/p2: level)"
        ]
    );
}

#[test]
fn detector_warmup_range() {
    for (v, ok) in [
        ("9", false),
        ("10", true),
        ("1000000", true),
        ("1000001", false),
    ] {
        let src = with_plant(&format!(
            "[[detectors]]\nasset = \"acme/p1\"\nwarmup = {v}\n"
        ));
        if ok {
            assert_eq!(
                detectors(&valid(&src))[0].warmup,
                Some(Length::Rows(v.parse().unwrap()))
            );
        } else {
            assert_eq!(
                errors(&src),
                vec![format!(
                    "12:10: \"warmup\" in detector on \"acme/p1\" is {v}, out of range (expected 10..=1000000)"
                )]
            );
        }
    }
}

/// Issue 14 item 2: a warm-up as a duration, a gap factor and an interval; old configs
/// (warm-up in rows) stay valid (above).
#[test]
fn detector_warmup_as_a_duration_gap_factor_and_interval() {
    let src = with_plant(
        "[[detectors]]\nasset = \"acme/p1\"\nwarmup = \"2h\"\ngap_factor = 30\ninterval = \"5s\"\n",
    );
    let c = valid(&src);
    let d = &detectors(&c)[0];
    assert_eq!(d.warmup, Some(Length::Duration(7_200_000_000_000)));
    assert_eq!((d.gap_factor, d.interval_ns), (30, Some(5_000_000_000)));
    let o = d.time_options();
    assert_eq!(
        (o.warmup, o.gap_factor, o.interval_ns),
        (d.warmup, 30, Some(5_000_000_000))
    );
    assert_eq!(
        errors(&with_plant(
            "[[detectors]]\nasset = \"acme/p1\"\nwarmup = \"2 hours\"\ngap_factor = 1\ninterval = \"400d\"\n"
        )),
        vec![
            "12:10: \"warmup\" in detector on \"acme/p1\": invalid length \"2 hours\" (expected a number of \
             rows, e.g. \"400\", or a whole number and a unit: ms, s, m, h, d or w, e.g. \"2h\")",
            "13:14: \"gap_factor\" in detector on \"acme/p1\" is 1, out of range (expected 2..=10000)",
            "14:12: \"interval\" in detector on \"acme/p1\" is \"400d\": at most a year (e.g. \"52w\")",
        ]
    );
}

#[test]
fn detector_names_make_valid_tag_paths() {
    assert_eq!(
        errors(&with_plant(
            "[[detectors]]\nasset = \"acme/p1\"\nname = \"a/b\"\n"
        )),
        vec![
            "12:8: \"name\" in detector on \"acme/p1\" must be one tag-name segment (the detector publishes NAME_score and NAME under its asset), found \"a/b\""
        ]
    );
    let long = "n".repeat(60);
    assert_eq!(
        errors(&with_plant(&format!(
            "[[detectors]]\nasset = \"acme/p1\"\nname = \"{long}\"\n"
        ))),
        vec![format!(
            "12:8: detector on \"acme/p1\" cannot publish \"acme/p1/{long}_score\": segment 2 of the tag path is 66 characters long (at most 64)"
        )]
    );
    assert_eq!(
        errors(&with_plant(
            "[[detectors]]\nasset = \"acme/p1\"\nname = 3\n"
        )),
        vec![
            "12:8: wrong type for \"name\" in detector on \"acme/p1\": expected string, found integer"
        ]
    );
}

#[test]
fn detector_outputs_must_not_collide() {
    // with a device tag
    let src = PLANT.replace("acme/p1/run", "acme/p1/anomalous");
    assert_eq!(
        errors(&format!("{src}[[detectors]]\nasset = \"acme/p1\"\n")),
        vec![
            "11:9: duplicate tag path acme/p1/anomalous: detector on \"acme/p1\" publishes it, but it is already defined as a device tag at line 6, in device \"plc1\"; set \"name\" to publish under other names"
        ]
    );
    // with another detector: reported at the later one, naming the first
    let two = "[[detectors]]\nasset = \"acme/p1\"\ntags = [\"vib\"]\n[[detectors]]\nasset = \"acme/p1\"\ntags = [\"flow\"]\n";
    assert_eq!(
        errors(&with_plant(two)),
        vec![
            "14:9: duplicate tag paths acme/p1/anomaly_score, acme/p1/anomalous, acme/p1/anomaly_contributors: detector on \"acme/p1\" publishes them, but detector on \"acme/p1\" (line 11) already publishes them; set \"name\" to publish under other names"
        ]
    );
    // a distinct name resolves it
    assert!(errors(&with_plant(&format!("{two}name = \"flow_anomaly\"\n"))).is_empty());
    // NAME_score of one is NAME of the other
    let crossed = "[[detectors]]\nasset = \"acme/p1\"\nname = \"x_score\"\n[[detectors]]\nasset = \"acme/p1\"\nname = \"x\"\n";
    assert_eq!(
        errors(&with_plant(crossed)),
        vec![
            "15:8: duplicate tag path acme/p1/x_score: detector on \"acme/p1\" publishes it, but detector on \"acme/p1\" (line 12) already publishes it; set \"name\" to publish under other names"
        ]
    );
}

#[test]
fn rul_defaults_and_values() {
    let c = valid(&with_plant(
        "[[rul]]\ntag = \"acme/p1/vib\"\nthreshold = 7.1\n\
         [[rul]]\ntag = \"acme/p2/level\"\nthreshold = 1\nwindow = 10\nbaseline = 3\ndecreasing = true\n\
         horizon_days = 7.5\nsignificance = 3\nsmoothing = 0\n",
    ));
    assert_eq!(
        ruls(&c),
        vec![
            RulConfig {
                tag: tp("acme/p1/vib"),
                threshold: 7.1,
                window: 600,
                baseline: None,
                decreasing: false,
                horizon_days: 30.0,
                significance: 6.0,
                smoothing: 0.25,
                rul_tag: tp("acme/p1/rul"),
                lower_tag: tp("acme/p1/rul_lower"),
                upper_tag: tp("acme/p1/rul_upper"),
            },
            RulConfig {
                tag: tp("acme/p2/level"),
                threshold: 1.0,
                window: 10,
                baseline: Some(3.0),
                decreasing: true,
                horizon_days: 7.5,
                significance: 3.0,
                smoothing: 0.0,
                rul_tag: tp("acme/p2/rul"),
                lower_tag: tp("acme/p2/rul_lower"),
                upper_tag: tp("acme/p2/rul_upper"),
            },
        ]
    );
}

#[test]
fn rul_tag_must_be_a_configured_numeric_tag() {
    assert_eq!(
        errors(&with_plant(
            "[[rul]]\ntag = \"acme/p1/vibration\"\nthreshold = 7.1\n"
        )),
        vec![
            "11:7: unknown tag acme/p1/vibration for [[rul]]: not a configured tag (numeric tags of acme/p1: flow, vib, temp)"
        ]
    );
    assert_eq!(
        errors(&with_plant(
            "[[rul]]\ntag = \"acme/p9/vib\"\nthreshold = 7.1\n"
        )),
        vec![
            "11:7: unknown tag acme/p9/vib for [[rul]]: not a configured tag (no tag is configured directly under acme/p9)"
        ]
    );
    assert_eq!(
        errors(&with_plant(
            "[[rul]]\ntag = \"acme/p1/run\"\nthreshold = 1\n"
        )),
        vec![
            "11:7: tag acme/p1/run for [[rul]] has type bool; a remaining-useful-life estimate needs a numeric tag"
        ]
    );
    assert_eq!(
        errors(&with_plant("[[rul]]\ntag = \"vib\"\nthreshold = 1\n")),
        vec![
            "11:7: invalid tag path \"vib\": tag path has 1 segment(s); it needs at least 2 (asset/tag) and at most 10"
        ]
    );
}

#[test]
fn rul_threshold_window_and_baseline() {
    assert_eq!(
        errors(&with_plant("[[rul]]\ntag = \"acme/p1/vib\"\n")),
        vec!["10:1: missing required key \"threshold\" in rul for acme/p1/vib"]
    );
    assert_eq!(
        errors(&with_plant("[[rul]]\nthreshold = 1\n")),
        vec!["10:1: missing required key \"tag\" in [[rul]] entry #1"]
    );
    let rul = |body: &str| {
        errors(&with_plant(&format!(
            "[[rul]]\ntag = \"acme/p1/vib\"\n{body}\n"
        )))
    };
    assert_eq!(
        rul("threshold = -inf"),
        vec!["12:13: \"threshold\" in rul for acme/p1/vib must be a finite number, found -inf"]
    );
    assert_eq!(
        rul("threshold = \"7\""),
        vec![
            "12:13: wrong type for \"threshold\" in rul for acme/p1/vib: expected number, found string"
        ]
    );
    assert_eq!(
        rul("threshold = 7\nwindow = 9"),
        vec!["13:10: \"window\" in rul for acme/p1/vib is 9, out of range (expected 10..=100000)"]
    );
    assert_eq!(
        rul("threshold = 7\nwindow = 100001"),
        vec![
            "13:10: \"window\" in rul for acme/p1/vib is 100001, out of range (expected 10..=100000)"
        ]
    );
    assert!(rul("threshold = 7\nwindow = 100000\nbaseline = 6.9").is_empty());
    assert_eq!(
        rul("threshold = 7\nbaseline = 7"),
        vec![
            "13:12: \"baseline\" in rul for acme/p1/vib is 7, not below \"threshold\" 7: the indicator rises toward failure, so its healthy level is below the threshold (set decreasing = true if it falls)"
        ]
    );
    assert_eq!(
        rul("threshold = 7\nbaseline = 2\ndecreasing = true"),
        vec![
            "13:12: \"baseline\" in rul for acme/p1/vib is 2, not above \"threshold\" 7: with decreasing = true the indicator falls toward failure, so its healthy level is above the threshold"
        ]
    );
    assert_eq!(
        rul("threshold = 7\nbaseline = nan"),
        vec!["13:12: \"baseline\" in rul for acme/p1/vib must be a finite number, found NaN"]
    );
    assert_eq!(
        rul("threshold = 7\ndecreasing = 1"),
        vec![
            "13:14: wrong type for \"decreasing\" in rul for acme/p1/vib: expected boolean, found integer"
        ]
    );
    let e = rul("threshold = 7\nhorizon = 3");
    assert_eq!(
        e,
        vec![
            "13:1: unknown key \"horizon\" in rul for acme/p1/vib (allowed: tag, threshold, window, baseline, decreasing, horizon_days, significance, smoothing)"
        ]
    );
    assert_eq!(
        rul("threshold = 7\nhorizon_days = 0\nsignificance = 0.5\nsmoothing = 11"),
        vec![
            "13:16: \"horizon_days\" in rul for acme/p1/vib is 0, out of range (expected > 0 and <= 3650)",
            "14:16: \"significance\" in rul for acme/p1/vib is 0.5, out of range (expected 1..=20)",
            "15:13: \"smoothing\" in rul for acme/p1/vib is 11, out of range (expected 0..=10)",
        ]
    );
}

#[test]
fn rul_outputs_one_entry_per_asset() {
    assert_eq!(
        errors(&with_plant(
            "[[rul]]\ntag = \"acme/p1/vib\"\nthreshold = 7\n[[rul]]\ntag = \"acme/p1/temp\"\nthreshold = 90\n"
        )),
        vec![
            "14:7: duplicate tag paths acme/p1/rul, acme/p1/rul_lower, acme/p1/rul_upper: rul for acme/p1/temp publishes them, but rul for acme/p1/vib (line 11) already publishes them; at most one [[rul]] entry per asset"
        ]
    );
}

#[test]
fn analytics_clashes_are_reported_at_the_later_entry() {
    // a [[rul]] written before a detector whose name makes it publish ASSET/rul
    let src = with_plant(
        "[[rul]]\ntag = \"acme/p1/vib\"\nthreshold = 7\n[[detectors]]\nasset = \"acme/p1\"\nname = \"rul\"\n",
    );
    assert_eq!(
        errors(&src),
        vec![
            "15:8: duplicate tag path acme/p1/rul: detector on \"acme/p1\" publishes it, but rul for acme/p1/vib (line 11) already publishes it; set \"name\" to publish under other names"
        ]
    );
}

#[test]
fn analytics_sections_must_be_arrays_of_tables() {
    assert_eq!(
        errors("detectors = 1\nrul = [1]\n"),
        vec![
            "1:13: wrong type for \"detectors\" in the top level: expected array of tables ([[detectors]]), found integer",
            "2:8: wrong type for element 1 of \"rul\" in the top level: expected table, found integer",
        ]
    );
    assert_eq!(
        errors("[[detectors]]\nasset = \"a\"\nwarmup = 5\nbogus = 1\n"),
        vec![
            "2:9: unknown asset \"a\": it is not declared in [[assets]] and no configured tag is directly under it",
            "3:10: \"warmup\" in detector on \"a\" is 5, out of range (expected 10..=1000000)",
            "4:1: unknown key \"bogus\" in detector on \"a\" (allowed: asset, tags, kind, warmup, name, gap_factor, interval)",
        ],
        "every problem of an entry is reported, even with an unknown asset"
    );
}

fn def_type(tree: &mw_model::AssetTree, p: &str) -> Option<DataType> {
    tree.tag(&tp(p)).map(|d| d.data_type)
}

#[test]
fn asset_tree_lists_the_published_tags() {
    let c = valid(&with_plant(
        "[[detectors]]\nasset = \"acme/p1\"\n[[detectors]]\nasset = \"acme/p2\"\nkind = \"mad\"\nname = \"level_anomaly\"\n\
         [[rul]]\ntag = \"acme/p1/vib\"\nthreshold = 7.1\n",
    ));
    let tree = c.asset_tree();
    assert_eq!(tree.tag_count(), c.tags.len() + 2 * 3 + 3);
    assert_eq!(
        def_type(&tree, "acme/p2/level_anomaly_contributors"),
        Some(DataType::String)
    );
    let def = |p: &str| {
        tree.tag(&tp(p))
            .unwrap_or_else(|| panic!("{p} not in the tree"))
    };

    let score = def("acme/p1/anomaly_score");
    assert_eq!(
        (
            score.data_type,
            score.unit.as_deref(),
            score.description.as_str()
        ),
        (
            DataType::F64,
            Some("1"),
            "anomaly score 0..1 (auto detector over 3 tags)"
        )
    );
    let flag = def("acme/p1/anomalous");
    assert_eq!(
        (
            flag.data_type,
            flag.unit.as_deref(),
            flag.description.as_str()
        ),
        (DataType::Bool, None, "anomalous (auto detector)")
    );
    assert_eq!(
        def("acme/p2/level_anomaly_score").description,
        "anomaly score 0..1 (mad detector over 1 tag)"
    );
    assert_eq!(
        def("acme/p2/level_anomaly").description,
        "anomalous (mad detector)"
    );
    for (p, what) in [
        (
            "acme/p1/rul",
            "remaining useful life: hours until vib reaches 7.1 mm/s (trend over 600 samples; 720 h = beyond the 30-day horizon)",
        ),
        (
            "acme/p1/rul_lower",
            "remaining useful life, lower bound: hours until vib reaches 7.1 mm/s",
        ),
        (
            "acme/p1/rul_upper",
            "remaining useful life, upper bound: hours until vib reaches 7.1 mm/s",
        ),
    ] {
        let d = def(p);
        assert_eq!(
            (d.data_type, d.unit.as_deref(), d.description.as_str()),
            (DataType::F64, Some("h"), what),
            "{p}"
        );
        assert!(d.scaling.is_none() && d.deadband.is_none());
    }
    // every published unit is a known one
    assert_eq!(c.published.len(), 2 * 3 + 3);
    for d in &c.published {
        if let Some(u) = &d.unit {
            assert!(mw_model::unit_info(u).is_some(), "{u}");
        }
    }
    // a hand-built config with a clashing output: the tree skips it instead of failing
    let mut bad = c.clone();
    assert_eq!(bad.published[3].path, tp("acme/p2/level_anomaly_score"));
    bad.published[3].path = tp("acme/p1/flow");
    assert_eq!(bad.asset_tree().tag_count(), tree.tag_count() - 1);
}
