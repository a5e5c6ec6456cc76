//! `examples/plant.toml` and `docs/simulator.md` describe the simulator's register map; these tests keep them from
//! drifting apart from `register_map()`.

use std::collections::BTreeMap;

use mw_sim::{RegisterPoint, assets, register_map};
use toml::Value;

fn repo_file(rel: &str) -> String {
    let path = format!("{}/../../{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Integer(i) => *i as f64,
        Value::Float(f) => *f,
        other => panic!("expected a number, got {other}"),
    }
}

fn pair(v: Option<&Value>) -> (f64, f64) {
    let a = v.and_then(Value::as_array).expect("two-element array");
    assert_eq!(a.len(), 2);
    (number(&a[0]), number(&a[1]))
}

fn str_of<'a>(t: &'a toml::Table, key: &str) -> Option<&'a str> {
    t.get(key).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("{key} must be a string"))
    })
}

#[test]
fn example_config_tags_match_the_register_map_exactly() {
    let doc: toml::Table = repo_file("examples/plant.toml")
        .parse()
        .expect("examples/plant.toml parses");
    let devices = doc["devices"].as_array().expect("[[devices]]");
    let sims: Vec<&toml::Table> = devices
        .iter()
        .filter_map(Value::as_table)
        .filter(|d| str_of(d, "name") == Some("sim"))
        .collect();
    assert_eq!(sims.len(), 1, "exactly one device named sim");
    let dev = sims[0];
    assert_eq!(str_of(dev, "endpoint"), Some("127.0.0.1:5020"));
    assert_eq!(
        dev.get("unit_id").and_then(Value::as_integer).unwrap_or(1),
        1
    );
    assert_eq!(str_of(dev, "kind").unwrap_or("modbus_tcp"), "modbus_tcp");
    let device_order = str_of(dev, "word_order").unwrap_or("abcd");

    let mut tags: BTreeMap<String, &toml::Table> = BTreeMap::new();
    for t in dev["tags"].as_array().expect("[[devices.tags]]") {
        let t = t.as_table().expect("table");
        let path = str_of(t, "path").expect("path").to_string();
        assert!(
            tags.insert(path.clone(), t).is_none(),
            "duplicate tag {path}"
        );
    }
    let map: BTreeMap<String, &RegisterPoint> =
        register_map().iter().map(|p| (p.path(), p)).collect();
    assert_eq!(
        tags.keys().collect::<Vec<_>>(),
        map.keys().collect::<Vec<_>>(),
        "tag paths differ from the map"
    );

    for (path, t) in &tags {
        let p = map[path];
        assert_eq!(str_of(t, "table"), Some(p.table.as_str()), "{path}: table");
        assert_eq!(
            t.get("address").and_then(Value::as_integer),
            Some(i64::from(p.address)),
            "{path}: address"
        );
        assert_eq!(str_of(t, "type"), Some(p.data_type), "{path}: type");
        let order = str_of(t, "word_order").unwrap_or(device_order);
        assert_eq!(order, p.word_order, "{path}: word order");
        assert_eq!(str_of(t, "unit").unwrap_or(""), p.unit, "{path}: unit");
        match (t.get("scale"), p.scale) {
            (None, None) => {}
            (Some(s), Some((rlo, rhi, elo, ehi))) => {
                let s = s.as_table().expect("scale table");
                assert_eq!(pair(s.get("raw")), (rlo, rhi), "{path}: scale.raw");
                assert_eq!(pair(s.get("eu")), (elo, ehi), "{path}: scale.eu");
                assert!(
                    !s.get("clamp").and_then(Value::as_bool).unwrap_or(false),
                    "{path}: clamp would hide sentinels"
                );
            }
            (s, m) => panic!("{path}: scale {s:?} vs map {m:?}"),
        }
        if let Some(d) = t.get("deadband").and_then(Value::as_table)
            && d.contains_key("percent")
        {
            assert!(
                p.scale.is_some(),
                "{path}: a percent deadband needs a scale"
            );
        }
    }
    assert!(
        tags.values().any(|t| t.contains_key("deadband")),
        "the example shows a deadband"
    );

    // Assets: every simulated asset, with the same kind.
    let listed: BTreeMap<&str, &str> = doc["assets"]
        .as_array()
        .expect("[[assets]]")
        .iter()
        .map(|a| {
            let a = a.as_table().expect("table");
            (
                str_of(a, "path").expect("path"),
                str_of(a, "kind").unwrap_or("asset"),
            )
        })
        .collect();
    let expected: BTreeMap<&str, &str> = assets().iter().map(|a| (a.path, a.kind)).collect();
    assert_eq!(listed, expected);

    // The rest of the file follows docs/config.md.
    assert_eq!(
        str_of(doc["http"].as_table().expect("[http]"), "address"),
        Some("127.0.0.1:8080")
    );
    let pipeline = doc["pipeline"].as_table().expect("[pipeline]");
    assert_eq!(
        pipeline.get("bus_capacity").and_then(Value::as_integer),
        Some(1024)
    );
    assert_eq!(
        pipeline.get("sink_capacity").and_then(Value::as_integer),
        Some(1024)
    );
    assert_eq!(str_of(pipeline, "overload"), Some("block"));
    assert_eq!(
        pipeline.get("live_window").and_then(Value::as_integer),
        Some(600)
    );
    // Which top-level keys are allowed is the config registry's business: crates/millwright/tests/
    // config_example.rs loads this file with the binary's whole registry, which rejects any other.
}

/// The cells a row of the register table must have, in order, for this point.
fn expected_cells(p: &RegisterPoint) -> Vec<String> {
    let dash = || "—".to_string();
    vec![
        p.table.as_str().to_string(),
        p.address.to_string(),
        p.data_type.to_string(),
        if p.width() == 2 {
            p.word_order.to_string()
        } else {
            dash()
        },
        p.scale
            .map_or_else(dash, |(a, b, c, d)| format!("{a}..{b} → {c}..{d}")),
        if p.unit.is_empty() {
            dash()
        } else {
            p.unit.to_string()
        },
        format!("`{}`", p.path()),
    ]
}

#[test]
fn simulator_doc_has_a_register_table_row_for_every_point() {
    let doc = repo_file("docs/simulator.md");
    let rows: Vec<Vec<String>> = doc
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    for p in register_map() {
        let want = expected_cells(p);
        let found = rows
            .iter()
            .filter(|r| r.len() >= want.len() && r[..want.len()] == want[..])
            .count();
        assert_eq!(
            found,
            1,
            "docs/simulator.md needs exactly one register row {}",
            want.join(" | ")
        );
    }
    assert!(doc.contains("127.0.0.1:5020") && doc.contains("unit id 1"));
}
