//! One test per validation rule. Golden files under `tests/data/config` cover the rendered
//! output of whole files; these pin individual rules and the values of a valid config.

use std::time::Duration;

use mw_model::{AssetKind, DataType, Deadband, Scaling, TagPath};

use crate::*;

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

const DEVICE: &str = "[[devices]]\nname = \"plc1\"\nendpoint = \"10.0.0.1:502\"\n";

/// A device (lines 1–3) with one tag whose `[[devices.tags]]` header is line 4; `body` starts
/// on line 5.
fn one_tag(body: &str) -> String {
    format!("{DEVICE}[[devices.tags]]\n{body}\n")
}

const TAG: &str = "path = \"acme/p1/flow\"\ntable = \"holding\"\naddress = 10\ntype = \"u16\"";

#[test]
fn empty_file_gives_defaults() {
    assert_eq!(valid(""), Config::default());
    assert_eq!(valid("# nothing\n"), Config::default());
}

#[test]
fn valid_config_values() {
    let src = r#"
[site]
name = "Plant"
[http]
address = "[::1]:9000"
[pipeline]
bus_capacity = 16
sink_capacity = 8
overload = "drop_newest"
live_window = 5
[[assets]]
path = "acme/p1"
kind = "pump"
description = "P1"
[[devices]]
name = "plc1"
endpoint = "plc1.local:502"
unit_id = 7
poll_interval_ms = 250
timeout_ms = 100
backoff_max_ms = 5000
word_order = "cdab"
[[devices.tags]]
path = "acme/p1/flow"
table = "input"
address = 3
type = "f32"
unit = "m3/h"
scale = { raw = [0, 100], eu = [0, 10], clamp = true }
deadband = { percent = 2.5 }
description = "Flow"
[[devices.tags]]
path = "acme/p1/run"
table = "coil"
address = 3
type = "bool"
[[devices.tags]]
path = "acme/p1/total"
table = "holding"
address = 0
type = "u32"
word_order = "badc"
deadband = { absolute = 1 }
"#;
    let c = valid(src);
    assert_eq!(c.site.name, "Plant");
    assert_eq!(c.http.address, "[::1]:9000".parse().unwrap());
    assert_eq!(
        c.pipeline,
        PipelineConfig {
            bus_capacity: 16,
            sink_capacity: 8,
            overload: OverloadPolicy::DropNewest,
            live_window: 5
        }
    );
    assert_eq!(
        c.assets,
        vec![AssetConfig {
            path: "acme/p1".into(),
            kind: AssetKind::Pump,
            description: "P1".into()
        }]
    );
    let d = &c.devices[0];
    assert_eq!(
        (d.name.as_str(), d.endpoint.as_str(), d.unit_id),
        ("plc1", "plc1.local:502", 7)
    );
    assert_eq!(
        (d.poll_interval, d.timeout, d.backoff_max),
        (
            Duration::from_millis(250),
            Duration::from_millis(100),
            Duration::from_millis(5000)
        )
    );
    assert_eq!(d.word_order, WordOrder::Cdab);
    let [flow, run, total] = &d.tags[..] else {
        panic!("3 tags expected: {:?}", d.tags)
    };
    assert_eq!(flow.def.path, TagPath::new("acme/p1/flow").unwrap());
    assert_eq!(flow.def.data_type, DataType::F32);
    assert_eq!(flow.def.unit.as_deref(), Some("m3/h"));
    assert_eq!(
        flow.def.scaling,
        Some(Scaling::new((0.0, 100.0), (0.0, 10.0), true).unwrap())
    );
    assert_eq!(flow.def.deadband, Some(Deadband::Percent(2.5)));
    assert_eq!(flow.def.description, "Flow");
    assert_eq!(
        (flow.table, flow.address, flow.word_order),
        (RegisterTable::InputRegister, 3, WordOrder::Cdab)
    );
    assert_eq!(flow.register_count(), 2);
    assert_eq!(
        (run.table, run.def.data_type, run.register_count()),
        (RegisterTable::Coil, DataType::Bool, 1)
    );
    assert_eq!(run.def.unit, None);
    assert_eq!(
        total.word_order,
        WordOrder::Badc,
        "tag word_order overrides the device's"
    );
    assert_eq!(total.def.deadband, Some(Deadband::Absolute(1.0)));

    let tree = c.asset_tree();
    assert_eq!(tree.tag_count(), 3);
    assert_eq!(tree.asset("acme/p1").unwrap().kind, AssetKind::Pump);
    assert_eq!(tree.asset("acme/p1").unwrap().tags.len(), 3);
}

#[test]
fn device_defaults() {
    let c = valid(&one_tag(TAG));
    let d = &c.devices[0];
    assert_eq!(d.unit_id, 1);
    assert_eq!(d.poll_interval, Duration::from_secs(1));
    assert_eq!(d.timeout, Duration::from_secs(1));
    assert_eq!(d.backoff_max, Duration::from_secs(30));
    assert_eq!(d.word_order, WordOrder::Abcd);
    assert_eq!(d.tags[0].word_order, WordOrder::Abcd);
    // an asset's kind defaults to "asset"
    let c = valid("[[assets]]\npath = \"acme\"\n");
    assert_eq!(c.assets[0].kind, AssetKind::Other("asset".into()));
}

#[test]
fn syntax_error_is_one_diagnostic() {
    assert_eq!(
        errors("[site]\nname = \"x\nfoo = = 1\n"),
        vec!["2:10: TOML syntax error: invalid basic string, expected `\"`"]
    );
    assert_eq!(
        errors("a = 1\na = 2\n"),
        vec!["2:1: TOML syntax error: duplicate key \"a\""]
    );
}

#[test]
fn unknown_keys_list_allowed_keys() {
    assert_eq!(
        errors("[http]\nport = 80\n"),
        vec!["2:1: unknown key \"port\" in [http] (allowed: address, auth)"]
    );
    let e = errors(&one_tag(&format!("{TAG}\nadress = 3")));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "9:1: unknown key \"adress\" in tag acme/p1/flow (allowed: path, table, address,"
        ),
        "{e:?}"
    );
}

#[test]
fn wrong_types_name_expected_and_found() {
    assert_eq!(
        errors(&one_tag(
            "path = \"acme/p1/flow\"\ntable = \"holding\"\naddress = \"10\"\ntype = \"u16\""
        )),
        vec![
            "7:11: wrong type for \"address\" in tag acme/p1/flow: expected integer, found string"
        ]
    );
    assert_eq!(
        errors("[pipeline]\nbus_capacity = 1.5\n"),
        vec!["2:16: wrong type for \"bus_capacity\" in [pipeline]: expected integer, found float"]
    );
}

#[test]
fn missing_required_keys_point_at_the_header() {
    assert_eq!(
        errors("[site]\n\n[[devices]]\nname = \"plc1\"\n"),
        vec!["3:1: missing required key \"endpoint\" in device \"plc1\""]
    );
    assert_eq!(
        errors(&one_tag("path = \"acme/p1/flow\"")),
        vec![
            "4:1: missing required key \"table\" in tag acme/p1/flow",
            "4:1: missing required key \"address\" in tag acme/p1/flow",
            "4:1: missing required key \"type\" in tag acme/p1/flow",
        ]
    );
}

#[test]
fn bad_paths_use_model_errors() {
    assert_eq!(
        errors(&one_tag(&TAG.replace("acme/p1/flow", "flow"))),
        vec![
            "5:8: invalid tag path \"flow\": tag path has 1 segment(s); it needs at least 2 (asset/tag) and at most 10"
        ]
    );
    assert_eq!(
        errors("[[assets]]\npath = \"a/b c\"\n"),
        vec![
            "2:8: invalid asset path \"a/b c\": invalid character ' ' in segment 1 of the asset path (allowed: A-Z a-z 0-9 _ - .)"
        ]
    );
}

#[test]
fn duplicate_tag_paths_point_at_the_second() {
    let src = format!(
        "{}[[devices.tags]]\n{}\n",
        one_tag(TAG),
        TAG.replace("address = 10", "address = 11")
    );
    assert_eq!(
        errors(&src),
        vec!["10:8: duplicate tag path acme/p1/flow (first defined at line 5, in device \"plc1\")"]
    );
}

#[test]
fn duplicate_device_names_and_asset_paths() {
    let src = format!("{DEVICE}{DEVICE}");
    assert_eq!(
        errors(&src),
        vec!["5:8: duplicate device name \"plc1\" (first defined at line 2)"]
    );
    let src = "[[assets]]\npath = \"a/b\"\n[[assets]]\npath = \"a/b\"\n";
    assert_eq!(
        errors(src),
        vec!["4:8: duplicate asset path \"a/b\" (first defined at line 2)"]
    );
}

#[test]
fn unknown_and_unsupported_data_types() {
    assert_eq!(
        errors(&one_tag(&TAG.replace("\"u16\"", "\"flaot\""))),
        vec![
            "8:8: unknown data type \"flaot\" for tag acme/p1/flow (expected one of: bool, u16, i16, u32, i32, f32)"
        ]
    );
    assert_eq!(
        errors(&one_tag(&TAG.replace("\"u16\"", "\"string\""))),
        vec![
            "8:8: data type \"string\" is not supported for Modbus tag acme/p1/flow (expected one of: bool, u16, i16, u32, i32, f32)"
        ]
    );
}

#[test]
fn bool_only_in_bit_tables_and_numbers_only_in_register_tables() {
    let e = errors(&one_tag(&TAG.replace("\"u16\"", "\"bool\"")));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "8:8: tag acme/p1/flow has type bool, but table \"holding\" holds 16-bit registers"
        ),
        "{e:?}"
    );
    let e = errors(&one_tag(&TAG.replace("\"holding\"", "\"discrete\"")));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "8:8: tag acme/p1/flow has type u16, but table \"discrete\" holds single bits"
        ),
        "{e:?}"
    );
    assert_eq!(
        errors(&one_tag(
            &TAG.replace("\"holding\"", "\"coil\"")
                .replace("\"u16\"", "\"bool\"")
        )),
        Vec::<String>::new()
    );
}

#[test]
fn address_range_counts_registers() {
    assert_eq!(
        errors(&one_tag(&TAG.replace("address = 10", "address = 65535"))),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(&one_tag(
            &TAG.replace("address = 10", "address = 65535")
                .replace("\"u16\"", "\"i32\"")
        )),
        vec![
            "7:11: tag acme/p1/flow at address 65535 needs 2 registers, which runs past the last holding address 65535"
        ]
    );
    assert_eq!(
        errors(&one_tag(&TAG.replace("address = 10", "address = 65536"))),
        vec!["7:11: \"address\" in tag acme/p1/flow is 65536, out of range (expected 0..=65535)"]
    );
}

#[test]
fn overlapping_registers_name_both_tags() {
    let second = "path = \"acme/p1/other\"\ntable = \"holding\"\naddress = 9\ntype = \"f32\"";
    let src = format!("{}[[devices.tags]]\n{second}\n", one_tag(TAG));
    assert_eq!(
        errors(&src),
        vec![
            "12:11: tag acme/p1/other (holding registers 9..=10) overlaps tag acme/p1/flow (holding register 10, line 7) in device \"plc1\""
        ]
    );
    // adjacent is fine, and so are the same addresses in another table
    let adjacent = format!(
        "{}[[devices.tags]]\n{}\n",
        one_tag(TAG),
        second.replace("address = 9", "address = 8")
    );
    assert_eq!(errors(&adjacent), Vec::<String>::new());
    let other_table = format!(
        "{}[[devices.tags]]\n{}\n",
        one_tag(TAG),
        second.replace("holding", "input")
    );
    assert_eq!(errors(&other_table), Vec::<String>::new());
}

#[test]
fn every_overlapping_tag_is_reported() {
    // a wide tag overlapped by two later ones that do not overlap each other
    let mut src = DEVICE.to_owned();
    for (name, addr, ty) in [("a", 0, "f32"), ("b", 0, "u16"), ("c", 1, "u16")] {
        src.push_str(&format!(
            "[[devices.tags]]\npath = \"acme/p1/{name}\"\ntable = \"input\"\naddress = {addr}\ntype = \"{ty}\"\n"
        ));
    }
    let e = errors(&src);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("tag acme/p1/b (input register 0) overlaps tag acme/p1/a"),
        "{e:?}"
    );
    assert!(
        e[1].contains("tag acme/p1/c (input register 1) overlaps tag acme/p1/a"),
        "{e:?}"
    );
}

#[test]
fn unknown_units_suggest_close_codes() {
    assert_eq!(
        errors(&one_tag(&format!("{TAG}\nunit = \"cel\""))),
        vec![
            "9:8: unknown unit \"cel\" for tag acme/p1/flow; did you mean \"Cel\"? (units are case-sensitive UCUM codes; `millwright check --list-units` lists them)"
        ]
    );
    let e = errors(&one_tag(&format!("{TAG}\nunit = \"furlong\"")));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("9:8: unknown unit \"furlong\" for tag acme/p1/flow (units"),
        "{e:?}"
    );
}

#[test]
fn bad_endpoints() {
    let e = errors(&DEVICE.replace("10.0.0.1:502", "10.0.0.1:70000"));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("3:12: invalid endpoint \"10.0.0.1:70000\" for device \"plc1\": port 70000 is out of range"), "{e:?}");
}

#[test]
fn http_address_and_auth() {
    assert_eq!(
        errors("[http]\naddress = \"127.0.0.1\"\n"),
        vec![
            "2:11: invalid http address \"127.0.0.1\": expected IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" (host names are not accepted)"
        ]
    );
    let e = errors("[http]\naddress = \"192.168.1.5:8080\"\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("2:11: http address 192.168.1.5:8080 is not a loopback address"),
        "{e:?}"
    );
    assert!(e[0].contains("auth = \"none\""), "{e:?}");
    let c = valid("[http]\naddress = \"192.168.1.5:8080\"\nauth = \"none\"\n");
    assert_eq!(c.http.address.port(), 8080);
    assert_eq!(c.http.auth, HttpAuth::None);
    assert!(
        valid("[http]\naddress = \"[::1]:1\"\n")
            .http
            .address
            .ip()
            .is_loopback()
    );
    assert_eq!(
        errors("[http]\nauth = \"token\"\n"),
        vec!["2:8: unknown auth \"token\" in [http] (expected: \"none\")"]
    );
}

#[test]
fn integer_ranges() {
    let cases = [
        (
            "unit_id = 256",
            "4:11: \"unit_id\" in device \"plc1\" is 256, out of range (expected 0..=255)",
        ),
        (
            "unit_id = -1",
            "4:11: \"unit_id\" in device \"plc1\" is -1, out of range (expected 0..=255)",
        ),
        (
            "poll_interval_ms = 9",
            "4:20: \"poll_interval_ms\" in device \"plc1\" is 9, out of range (expected 10..=86400000)",
        ),
        (
            "timeout_ms = 600001",
            "4:14: \"timeout_ms\" in device \"plc1\" is 600001, out of range (expected 10..=600000)",
        ),
        (
            "backoff_max_ms = 99",
            "4:18: \"backoff_max_ms\" in device \"plc1\" is 99, out of range (expected at least 100)",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(errors(&format!("{DEVICE}{line}\n")), vec![want], "{line}");
    }
    assert_eq!(
        valid(&format!("{DEVICE}unit_id = 0xFF\n")).devices[0].unit_id,
        255
    );
}

#[test]
fn pipeline_ranges_and_policy() {
    assert_eq!(
        errors(
            "[pipeline]\nbus_capacity = 0\nsink_capacity = 1048577\nlive_window = 100001\noverload = \"drop\"\n"
        ),
        vec![
            "2:16: \"bus_capacity\" in [pipeline] is 0, out of range (expected 1..=1048576)",
            "3:17: \"sink_capacity\" in [pipeline] is 1048577, out of range (expected 1..=1048576)",
            "4:15: \"live_window\" in [pipeline] is 100001, out of range (expected 1..=100000)",
            "5:12: unknown overload policy \"drop\" in [pipeline] (expected one of: block, drop_newest)",
        ]
    );
}

#[test]
fn deadband_rules() {
    assert_eq!(
        errors(&one_tag(&format!("{TAG}\ndeadband = {{ percent = 1 }}"))),
        vec![
            "9:14: deadband \"percent\" of tag acme/p1/flow needs scale (it is a percentage of the engineering span); add scale or use deadband = { absolute = … }"
        ]
    );
    assert_eq!(
        errors(&one_tag(&format!("{TAG}\ndeadband = {{ absolute = -2 }}"))),
        vec!["9:25: \"absolute\" in deadband of tag acme/p1/flow is -2, it must not be negative"]
    );
    let both = errors(&one_tag(&format!(
        "{TAG}\ndeadband = {{ absolute = 1, percent = 1 }}"
    )));
    assert_eq!(
        both,
        vec![
            "9:12: deadband of tag acme/p1/flow sets both \"absolute\" and \"percent\"; choose one"
        ]
    );
}

#[test]
fn scale_rules() {
    assert_eq!(
        errors(&one_tag(&format!(
            "{TAG}\nscale = {{ raw = [3, 3], eu = [0, 1] }}"
        ))),
        vec![
            "9:1: invalid scale for tag acme/p1/flow: raw range is empty (raw low and raw high are both 3)"
        ]
    );
    assert_eq!(
        errors(&one_tag(&format!("{TAG}\nscale = {{ raw = [0, 1] }}"))),
        vec!["9:9: missing required key \"eu\" in scale of tag acme/p1/flow"]
    );
    assert_eq!(
        errors(&one_tag(&format!(
            "{TAG}\nscale = {{ raw = [0], eu = [0, 1] }}"
        ))),
        vec![
            "9:17: \"raw\" in scale of tag acme/p1/flow must be [LO, HI] (2 numbers), found 1 element(s)"
        ]
    );
}

#[test]
fn word_order_rules() {
    assert_eq!(
        errors(&format!("{DEVICE}word_order = \"little\"\n")),
        vec![
            "4:14: unknown word_order \"little\" in device \"plc1\" (expected one of: abcd, cdab, badc, dcba)"
        ]
    );
    let c = valid(&one_tag(&format!("{TAG}\nword_order = \"dcba\"")));
    assert_eq!(c.devices[0].tags[0].word_order, WordOrder::Dcba);
}

#[test]
fn device_names_and_kind() {
    assert_eq!(
        errors(&DEVICE.replace("\"plc1\"", "\"plc/1\"")),
        vec![
            "2:8: invalid device name \"plc/1\": invalid character '/' (allowed: A-Z a-z 0-9 _ -)"
        ]
    );
    assert_eq!(
        errors(&format!("{DEVICE}kind = \"opcua\"\n")),
        vec!["4:8: unknown device kind \"opcua\" in device \"plc1\" (expected one of: modbus_tcp)"]
    );
    assert_eq!(
        errors(&format!("{DEVICE}kind = \"modbus_tcp\"\n")),
        Vec::<String>::new()
    );
}

#[test]
fn all_errors_are_reported_in_source_order() {
    let src = r#"
[pipeline]
bus_capacity = 0
[[devices]]
name = "plc1"
endpoint = "nowhere"
unit_id = 300
[[devices.tags]]
path = "acme/p1/x"
table = "holding"
address = 1
type = "flaot"
unit = "Bar"
bogus = 1
"#;
    let e = errors(src);
    let positions: Vec<&str> = e.iter().map(|l| l.split(": ").next().unwrap()).collect();
    assert_eq!(
        positions,
        vec!["3:16", "6:12", "7:11", "12:8", "13:8", "14:1"],
        "{e:#?}"
    );
}

#[test]
fn columns_count_characters() {
    // "ü" is two bytes; the error is at character 12 of line 2
    assert_eq!(
        errors("[site]\nname = \"ü\"; x = 1\n"),
        vec!["2:11: TOML syntax error: unexpected key or value, expected newline, `#`"]
    );
}

#[test]
fn load_reports_read_errors_at_1_1() {
    let path = std::path::Path::new("/nonexistent/mw-config-test/plant.toml");
    let d = load(path).unwrap_err();
    assert_eq!(d.file, "/nonexistent/mw-config-test/plant.toml");
    assert_eq!(d.items.len(), 1);
    assert_eq!((d.items[0].line, d.items[0].col), (1, 1));
    assert!(
        d.items[0]
            .message
            .starts_with("cannot read config file: No such file or directory"),
        "{d}"
    );
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
        c.detectors,
        vec![DetectorConfig {
            asset: "acme/p1".into(),
            tags: vec![tp("acme/p1/flow"), tp("acme/p1/vib"), tp("acme/p1/temp")],
            kind: DetectorKind::Auto,
            warmup: None,
            score_tag: tp("acme/p1/anomaly_score"),
            flag_tag: tp("acme/p1/anomalous"),
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
    let [d, d2] = &c.detectors[..] else {
        panic!("2 detectors expected: {:?}", c.detectors)
    };
    assert_eq!(
        d.tags,
        vec![tp("acme/p1/vib"), tp("acme/p1/flow")],
        "in the order given"
    );
    assert_eq!((d.kind, d.warmup), (DetectorKind::Pca, Some(300)));
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
        assert_eq!(valid(&src).detectors[0].kind, kind);
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
    assert_eq!(c.detectors[0].tags, vec![tp("acme/p2/level")]);
    // several tags are fine for the multivariate kinds
    assert!(
        DetectorKind::ALL
            .iter()
            .filter(|&&k| !crate::types::is_univariate(k))
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
            assert_eq!(valid(&src).detectors[0].warmup, Some(v.parse().unwrap()));
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
            "14:9: duplicate tag paths acme/p1/anomaly_score, acme/p1/anomalous: detector on \"acme/p1\" publishes them, but detector on \"acme/p1\" (line 11) already publishes them; set \"name\" to publish under other names"
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
         [[rul]]\ntag = \"acme/p2/level\"\nthreshold = 1\nwindow = 10\nbaseline = 3\ndecreasing = true\n",
    ));
    assert_eq!(
        c.rul,
        vec![
            RulConfig {
                tag: tp("acme/p1/vib"),
                threshold: 7.1,
                window: 600,
                baseline: None,
                decreasing: false,
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
            "13:1: unknown key \"horizon\" in rul for acme/p1/vib (allowed: tag, threshold, window, baseline, decreasing)"
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
            "4:1: unknown key \"bogus\" in detector on \"a\" (allowed: asset, tags, kind, warmup, name)",
        ],
        "every problem of an entry is reported, even with an unknown asset"
    );
}

#[test]
fn asset_tree_lists_the_published_tags() {
    let c = valid(&with_plant(
        "[[detectors]]\nasset = \"acme/p1\"\n[[detectors]]\nasset = \"acme/p2\"\nkind = \"mad\"\nname = \"level_anomaly\"\n\
         [[rul]]\ntag = \"acme/p1/vib\"\nthreshold = 7.1\n",
    ));
    let tree = c.asset_tree();
    assert_eq!(tree.tag_count(), c.tags().count() + 2 * 2 + 3);
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
            "remaining useful life: hours until vib reaches 7.1 mm/s (trend over 600 samples)",
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
    for d in c.published_tags() {
        if let Some(u) = &d.unit {
            assert!(mw_model::unit_info(u).is_some(), "{u}");
        }
    }
    // a hand-built config with a clashing output: the tree skips it instead of failing
    let mut bad = c.clone();
    bad.detectors[1].score_tag = tp("acme/p1/flow");
    assert_eq!(bad.asset_tree().tag_count(), tree.tag_count() - 1);
}
