//! `examples/plant.toml` (the annotated example that `millwright demo` runs) must always be
//! valid. Until that file is written this test has nothing to check and says so.

use std::path::Path;

use mw_analytics::config::{DetectorConfig, DetectorsConfig, RulConfig, RulsConfig};
use mw_config::Config;
use mw_modbus::config::{DeviceConfig, ModbusConfig};

fn devices(c: &Config) -> &[DeviceConfig] {
    &c.section::<ModbusConfig>().unwrap().devices
}

fn detectors(c: &Config) -> &[DetectorConfig] {
    &c.section::<DetectorsConfig>().unwrap().detectors
}

fn ruls(c: &Config) -> &[RulConfig] {
    &c.section::<RulsConfig>().unwrap().rul
}

#[test]
fn example_plant_toml_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plant.toml");
    if !path.exists() {
        eprintln!(
            "note: {} does not exist yet; nothing to check",
            path.display()
        );
        return;
    }
    let config = millwright::config_registry()
        .load(&path)
        .unwrap_or_else(|d| panic!("examples/plant.toml is invalid:\n{d}"));
    assert!(
        !devices(&config).is_empty(),
        "the example should configure at least one device"
    );
    assert!(
        devices(&config).iter().all(|d| !d.tags.is_empty()),
        "every example device should have tags"
    );
    let tree = config.asset_tree();
    assert_eq!(
        tree.tag_count(),
        config.tags.len() + 3 * detectors(&config).len() + 3 * ruls(&config).len(),
        "every device tag and every published tag lands in the asset tree"
    );
    for def in &config.published {
        assert_eq!(tree.tag(&def.path), Some(def), "{} in the tree", def.path);
    }
}

/// The analytics the example shows, with the tags they publish.
#[test]
fn example_plant_toml_analytics() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plant.toml");
    if !path.exists() {
        return;
    }
    let config = millwright::config_registry()
        .load(&path)
        .unwrap_or_else(|d| panic!("examples/plant.toml is invalid:\n{d}"));
    let water = "acme/plant1/utilities/water";
    let summary: Vec<(String, &str, usize)> = detectors(&config)
        .iter()
        .map(|d| (d.asset.clone(), d.kind.as_str(), d.tags.len()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (format!("{water}/pump1"), "auto", 4),
            (
                "acme/plant1/utilities/compressor_house/gd1".to_owned(),
                "ewma",
                1
            ),
            (format!("{water}/tank1"), "auto", 3),
        ]
    );
    assert_eq!(ruls(&config).len(), 1);
    let rul = &ruls(&config)[0];
    assert_eq!(rul.tag.as_str(), format!("{water}/pump1/vibration"));
    assert_eq!((rul.threshold, rul.window), (7.1, 600));

    let tree = config.asset_tree();
    for (tag, unit) in [
        ("pump1/anomaly_score", Some("1")),
        ("pump1/anomalous", None),
        ("tank1/anomaly_score", Some("1")),
        ("tank1/anomalous", None),
        ("pump1/rul", Some("h")),
        ("pump1/rul_lower", Some("h")),
        ("pump1/rul_upper", Some("h")),
    ] {
        let p = mw_model::TagPath::new(&format!("{water}/{tag}")).unwrap();
        let def = tree
            .tag(&p)
            .unwrap_or_else(|| panic!("{p} is not in the tree"));
        assert_eq!(def.unit.as_deref(), unit, "{p}");
    }
    let gd1 =
        mw_model::TagPath::new("acme/plant1/utilities/compressor_house/gd1/anomalous").unwrap();
    assert!(tree.tag(&gd1).is_some());
}

/// The demo configures gas alarms on every gas detector and the RUL alarm on the pump. Parsed with
/// the binary's whole registry: a crate test with a partial list of components would break each
/// time another component's section appears in the example.
#[test]
fn demo_config_configures_gas_alarms_on_every_detector() {
    use mw_alarms::{AlarmsConfig, Condition, Priority};
    let src = include_str!("../../../examples/plant.toml");
    let cfg = millwright::config_registry()
        .parse(src, "examples/plant.toml")
        .unwrap_or_else(|d| panic!("{d}"));
    let alarms = &cfg.section::<AlarmsConfig>().unwrap().alarms;
    for gd in ["gd1", "gd2", "gd3"] {
        let tag = format!("acme/plant1/utilities/compressor_house/{gd}/gas");
        let danger = alarms
            .iter()
            .find(|a| a.id == format!("{tag}:hihi"))
            .unwrap_or_else(|| panic!("no danger alarm on {tag}"));
        assert_eq!(danger.condition, Condition::High(20.0));
        assert_eq!(danger.priority, Priority::Critical);
        assert!(alarms.iter().any(|a| a.id == format!("{tag}:hi")));
        for kind in ["rate_of_rise", "stuck", "out_of_range"] {
            let a = alarms
                .iter()
                .find(|a| a.id == format!("{tag}:{kind}"))
                .unwrap_or_else(|| panic!("no {kind} alarm on {tag}"));
            assert_eq!(a.priority, Priority::High, "{}", a.id);
        }
    }
    let evac = alarms
        .iter()
        .find(|a| a.id == "acme/plant1/utilities/compressor_house:evacuation")
        .expect("the compressor house votes over its three detectors");
    assert_eq!(evac.priority, Priority::Critical);
    assert_eq!(evac.area, "acme/plant1/utilities/compressor_house");
    let Condition::Vote {
        members,
        need,
        limit,
        ..
    } = &evac.condition
    else {
        panic!("{evac:?}")
    };
    let members: Vec<&str> = members.iter().map(|m| m.as_str()).collect();
    assert_eq!(
        members,
        ["gd1", "gd2", "gd3"].map(|g| format!("acme/plant1/utilities/compressor_house/{g}/gas"))
    );
    assert_eq!((*need, *limit), (2, 20.0));
    assert!(
        alarms
            .iter()
            .any(|a| a.id == "acme/plant1/utilities/water/pump1/rul:rul")
    );
}
