//! One test per rule of the `[[devices]]` section (and of the shared tag keys as a device tag
//! uses them). Golden files under `tests/data/config` cover the rendered output of whole files.

use std::time::Duration;

use mw_config::{AssetConfig, Config, Diagnostics, OverloadPolicy, PipelineConfig, Registry};
use mw_modbus::config::{DeviceConfig, DevicesSection, ModbusConfig, RegisterTable, WordOrder};
use mw_model::{AssetKind, DataType, Deadband, Scaling, TagPath};

fn parse(src: &str, file: &str) -> Result<Config, Diagnostics> {
    Registry::new()
        .with(Box::new(DevicesSection))
        .parse(src, file)
}

fn devices(c: &Config) -> &[DeviceConfig] {
    &c.section::<ModbusConfig>()
        .expect("the devices section")
        .devices
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

const DEVICE: &str = "[[devices]]\nname = \"plc1\"\nendpoint = \"10.0.0.1:502\"\n";

/// A device (lines 1–3) with one tag whose `[[devices.tags]]` header is line 4; `body` starts
/// on line 5.
fn one_tag(body: &str) -> String {
    format!("{DEVICE}[[devices.tags]]\n{body}\n")
}

const TAG: &str = "path = \"acme/p1/flow\"\ntable = \"holding\"\naddress = 10\ntype = \"u16\"";

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
    assert_eq!(c.http.listener.address, "[::1]:9000".parse().unwrap());
    assert_eq!(
        c.pipeline,
        PipelineConfig {
            bus_capacity: 16,
            sink_capacity: 8,
            overload: OverloadPolicy::DropNewest,
            live_window: 5,
            max_pending_acks: 4096,
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
    let d = &devices(&c)[0];
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
    let d = &devices(&c)[0];
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
fn unknown_keys_list_allowed_keys() {
    assert_eq!(
        errors("[http]\nport = 80\n"),
        vec![
            "2:1: unknown key \"port\" in [http] (allowed: address, tls, insecure, allowed_hosts)"
        ]
    );
    let e = errors(&one_tag(&format!("{TAG}\nadress = 3")));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "9:1: unknown key \"adress\" in tag acme/p1/flow; did you mean \"address\"? (allowed: path, table, address,"
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
        devices(&valid(&format!("{DEVICE}unit_id = 0xFF\n")))[0].unit_id,
        255
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
    assert_eq!(devices(&c)[0].tags[0].word_order, WordOrder::Dcba);
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
fn writable_tags_and_their_limits() {
    let c = valid(&one_tag(&format!(
        "{TAG}\nscale = {{ raw = [0, 1000], eu = [0, 100] }}\nwritable = true\nwrite_min = 5\nwrite_max = 95"
    )));
    let w = devices(&c)[0].tags[0].write.expect("writable");
    assert_eq!((w.min, w.max), (Some(5.0), Some(95.0)));
    let c = valid(&one_tag(TAG));
    assert_eq!(devices(&c)[0].tags[0].write, None, "read-only by default");
    let c = valid(&one_tag(&format!("{TAG}\nwritable = false")));
    assert_eq!(devices(&c)[0].tags[0].write, None);

    let cases = [
        (
            format!("{TAG}\nwrite_max = 3"),
            "9:13: tag acme/p1/flow has a write limit but is not writable (add writable = true, or remove the limit)",
        ),
        (
            format!(
                "{}\nwritable = true",
                TAG.replace("\"holding\"", "\"input\"")
            ),
            "9:12: tag acme/p1/flow cannot be writable: table \"input\" is read-only in Modbus (only \"holding\" registers and \"coil\"s can be written)",
        ),
        (
            format!("{TAG}\nwritable = true\nwrite_min = 9\nwrite_max = 3"),
            "11:13: tag acme/p1/flow: write_min 9 is above write_max 3 (no value could be written)",
        ),
        (
            format!(
                "{}\nwritable = true\nwrite_max = 1",
                TAG.replace("\"holding\"", "\"coil\"")
                    .replace("\"u16\"", "\"bool\"")
            ),
            "10:13: tag acme/p1/flow is a bool: write_min and write_max do not apply",
        ),
        (
            format!("{TAG}\nwritable = \"yes\""),
            "9:12: wrong type for \"writable\" in tag acme/p1/flow: expected boolean, found string",
        ),
    ];
    for (body, want) in cases {
        let e = errors(&one_tag(&body));
        assert_eq!(e.len(), 1, "{body}: {e:?}");
        assert!(e[0].starts_with(want), "{body}:\n{}\nwant: {want}", e[0]);
    }
}
