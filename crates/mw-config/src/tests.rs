//! One test per rule of the shared sections and of the registry. The rules of a component's
//! section are tested in that component's crate (`mw-modbus/tests/config.rs`,
//! `mw-analytics/tests/config.rs`); golden files under `tests/data/config` cover the rendered
//! output of whole files with every shipped section (`crates/millwright/tests/config_golden.rs`).

use mw_model::{DataType, TagDef, TagPath};

use crate::*;

fn parse(src: &str, file: &str) -> Result<Config, Diagnostics> {
    Registry::new().parse(src, file)
}

fn load(path: &std::path::Path) -> Result<Config, Diagnostics> {
    Registry::new().load(path)
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
fn empty_file_gives_defaults() {
    assert_eq!(valid(""), Config::default());
    assert_eq!(valid("# nothing\n"), Config::default());
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
fn http_listener_policy_and_hosts() {
    assert_eq!(
        errors("[http]\naddress = \"127.0.0.1\"\n"),
        vec![
            "2:11: invalid http address \"127.0.0.1\": expected IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" (host names are not accepted)"
        ]
    );
    let e = errors("[http]\naddress = \"192.168.1.5:8080\"\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("2:11: refusing to listen for HTTP on 192.168.1.5:8080 without TLS"),
        "{e:?}"
    );
    assert!(e[0].contains("insecure = true"), "{e:?}");
    let c = valid("[http]\naddress = \"192.168.1.5:8080\"\ninsecure = true\n");
    assert_eq!(c.http.listener.address.port(), 8080);
    assert!(c.http.listener.insecure);
    let c = valid(
        "[http]\naddress = \"0.0.0.0:8443\"\ntls = { cert = \"s.pem\", key = \"s.key\", client_ca = \"ca.pem\" }\n\
         allowed_hosts = [\"Edge1.Plant.local\"]\n",
    );
    let tls = c.http.listener.tls.expect("tls");
    assert_eq!(
        (
            tls.cert.to_str(),
            tls.key.to_str(),
            tls.client_ca.as_deref().and_then(|p| p.to_str())
        ),
        (Some("s.pem"), Some("s.key"), Some("ca.pem"))
    );
    assert_eq!(c.http.allowed_hosts, ["edge1.plant.local"]);
    assert!(
        valid("[http]\naddress = \"[::1]:1\"\n")
            .http
            .listener
            .address
            .ip()
            .is_loopback()
    );
    assert_eq!(
        errors("[http]\ntls = { cert = \"s.pem\" }\n"),
        vec!["2:7: missing required key \"key\" in tls of [http]"]
    );
    assert_eq!(
        errors("[http]\nauth = \"none\"\n"),
        vec![
            "2:1: \"auth\" in [http] was replaced by \"insecure\": to serve HTTP beyond loopback without TLS \
             write insecure = true"
        ]
    );
    assert_eq!(
        errors("[http]\nallowed_hosts = [\"a b\", 3]\n"),
        vec![
            "2:18: invalid host name \"a b\" in \"allowed_hosts\" of [http]",
            "2:25: wrong type for element 2 of \"allowed_hosts\" in [http]: expected string, found integer"
        ]
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
            "5:12: unknown overload policy \"drop\" in [pipeline] (expected one of: block, drop_newest, drop_oldest)",
        ]
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

// ---- the registry ----------------------------------------------------------------------------

/// `[[gauges]]`: a toy source section defining one tag per entry (`path`, `max`).
#[derive(Clone, Debug, Default, PartialEq)]
struct Gauges(Vec<(TagPath, f64)>);

struct GaugesSection;

impl Section for GaugesSection {
    fn key(&self) -> &'static str {
        "gauges"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        const KEYS: EntryKeys = EntryKeys {
            id: "path",
            required: &["path", "max"],
            allowed: &["path", "max"],
        };
        let mut out = Gauges::default();
        for item in cx.array_of_tables(root, "gauges", "gauges") {
            let anon = format!("[[gauges]] entry #{}", item.index);
            let (path, label) = cx.entry_head(item.table(&anon), &KEYS, |p| format!("gauge {p:?}"));
            let t = item.table(&label);
            let max = cx.finite(t, "max", false);
            if let Some(m) = &max
                && m.v <= 0.0
            {
                cx.err(m.span.start, format!("\"max\" of {label} must be positive"));
            }
            let defined = path
                .as_ref()
                .and_then(|p| cx.define_tag(p, &label, "gauge tag"));
            if let (Some((tp, first)), Some(m)) = (defined, max) {
                if first {
                    cx.set_tag_type(&tp, DataType::F64);
                }
                cx.add_tag(TagDef::new(tp.clone(), DataType::F64));
                out.0.push((tp, m.v));
            }
        }
        Box::new(out)
    }
}

/// `[[echo]]`: a toy derived section publishing `TAG_echo` for a defined tag.
#[derive(Clone, Debug, Default, PartialEq)]
struct Echoes(Vec<TagPath>);

struct EchoSection;

impl Section for EchoSection {
    fn key(&self) -> &'static str {
        "echo"
    }

    fn phase(&self) -> Phase {
        Phase::Derived
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut out = Echoes::default();
        for item in cx.array_of_tables(root, "echo", "echo") {
            let t = item.table("[[echo]]");
            cx.unknown_keys(t, &["tag"]);
            let Some(f) = cx.string(t, "tag", true) else {
                continue;
            };
            let Ok(tag) = TagPath::new(f.v) else { continue };
            if !cx.tag_known(&tag) {
                cx.err(f.span.start, format!("unknown tag {tag}"));
                continue;
            }
            let Some([echo]) = cx.outputs(
                tag.asset(),
                [format!("{}_echo", tag.name())],
                f.span.start,
                "echo",
            ) else {
                continue;
            };
            cx.claim(Claim {
                paths: vec![echo.clone()],
                at: f.span.start,
                label: format!("echo of {tag}"),
                group: "echo",
                hint: |_| "",
            });
            cx.publish(TagDef::new(echo.clone(), DataType::F64));
            out.0.push(echo);
        }
        Box::new(out)
    }
}

fn toy_registry() -> Registry {
    // registered derived-first: checking order comes from the phase, not the registration
    Registry::new()
        .with(Box::new(EchoSection))
        .with(Box::new(GaugesSection))
}

fn toy_errors(src: &str) -> Vec<String> {
    match toy_registry().parse(src, "t.toml") {
        Ok(_) => Vec::new(),
        Err(d) => d.items.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_registered_section_is_checked_with_spans_and_its_value_found_by_type() {
    let src = "[[gauges]]\npath = \"a/p/x\"\nmax = 5\n[[echo]]\ntag = \"a/p/x\"\n";
    let c = toy_registry().parse(src, "t.toml").unwrap();
    assert_eq!(
        c.section::<Gauges>(),
        Some(&Gauges(vec![(TagPath::new("a/p/x").unwrap(), 5.0)]))
    );
    assert_eq!(
        c.section::<Echoes>(),
        Some(&Echoes(vec![TagPath::new("a/p/x_echo").unwrap()]))
    );
    assert_eq!(c.tags.len(), 1);
    assert_eq!(c.published.len(), 1);
    assert_eq!(c.asset_tree().tag_count(), 2);
    assert_eq!(c.section_keys().collect::<Vec<_>>(), ["gauges", "echo"]);
    assert_eq!(
        toy_errors("[[gauges]]\npath = \"a/p/x\"\nmax = -1\n"),
        ["3:7: \"max\" of gauge \"a/p/x\" must be positive"]
    );
    // an empty file still has every section's (default) value
    let empty = toy_registry().parse("", "t.toml").unwrap();
    assert_eq!(empty.section::<Gauges>(), Some(&Gauges::default()));
}

#[test]
fn unknown_top_level_keys_list_the_registered_sections_and_suggest_one() {
    assert_eq!(
        toy_errors("[[gauge]]\npath = \"a/b\"\n"),
        [
            "1:3: unknown key \"gauge\" in the top level; did you mean \"gauges\"? \
          (allowed: site, http, pipeline, assets, echo, gauges)"
        ]
    );
    assert_eq!(
        errors("[[gauges]]\n"),
        ["1:3: unknown key \"gauges\" in the top level (allowed: site, http, pipeline, assets)"],
        "without the registration the key is unknown"
    );
}

#[test]
fn claims_are_resolved_in_file_order_across_sections() {
    // the echo's output clashes with a gauge defined later in the file: reported at the later
    // entry (the gauge's own definition wins, it is a defined tag)
    let src = "[[echo]]\ntag = \"a/p/x\"\n[[gauges]]\npath = \"a/p/x\"\nmax = 1\n\
               [[gauges]]\npath = \"a/p/x_echo\"\nmax = 1\n";
    assert_eq!(
        toy_errors(src),
        [
            "2:7: duplicate tag path a/p/x_echo: echo of a/p/x publishes it, but it is already defined \
          as a gauge tag at line 7, in gauge \"a/p/x_echo\""
        ]
    );
    // two claims of the same path: the later one is reported
    let src = "[[gauges]]\npath = \"a/p/x\"\nmax = 1\n[[echo]]\ntag = \"a/p/x\"\n[[echo]]\ntag = \"a/p/x\"\n";
    assert_eq!(
        toy_errors(src),
        [
            "7:7: duplicate tag path a/p/x_echo: echo of a/p/x publishes it, but echo of a/p/x (line 5) \
          already publishes it"
        ]
    );
}

#[test]
#[should_panic(expected = "config section \"gauges\" registered twice")]
fn a_key_registered_twice_is_a_wiring_bug() {
    let _ = toy_registry().with(Box::new(GaugesSection));
}

/// `[bus.NAME]`: a toy section owning one table inside a top-level table shared with others.
#[derive(Clone, Debug, Default, PartialEq)]
struct Nested(Option<i128>);

struct NestedSection(&'static str);

impl Section for NestedSection {
    fn key(&self) -> &'static str {
        self.0
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let (_, child) = self.0.split_once('.').unwrap();
        let name = format!("[{}]", self.0);
        let Some(t) = root
            .child("bus", "[bus]")
            .and_then(|bus| cx.table(bus, child, false, &name))
        else {
            return Box::new(Nested(None));
        };
        cx.unknown_keys(t.v, &["size"]);
        Box::new(Nested(cx.integer(t.v, "size", false, 0..=100).map(|f| f.v)))
    }
}

fn nested_errors(src: &str) -> Vec<String> {
    let r = Registry::new()
        .with(Box::new(NestedSection("bus.left")))
        .with(Box::new(NestedSection("bus.right")));
    match r.parse(src, "t.toml") {
        Ok(_) => Vec::new(),
        Err(d) => d.items.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn dotted_sections_share_their_parent_table_and_unknown_children_are_reported_once() {
    assert!(nested_errors("[bus.left]\nsize = 1\n[bus.right]\nsize = 2\n").is_empty());
    assert!(nested_errors("").is_empty());
    assert_eq!(
        nested_errors("[bus.leftt]\nsize = 1\n"),
        ["1:6: unknown key \"leftt\" in [bus]; did you mean \"left\"? (allowed: left, right)"]
    );
    assert_eq!(
        nested_errors("bus = 3\n"),
        ["1:7: wrong type for \"bus\" in the top level: expected table, found integer"],
        "a parent of the wrong type is reported once, by the registry"
    );
    assert_eq!(
        nested_errors("[bus.left]\nsise = 1\n"),
        ["2:1: unknown key \"sise\" in [bus.left]; did you mean \"size\"? (allowed: size)"]
    );
    let r = Registry::new().with(Box::new(NestedSection("bus.left")));
    let c = r.parse("[bus.left]\nsize = 7\n", "t.toml").unwrap();
    assert_eq!(c.section::<Nested>(), Some(&Nested(Some(7))));
}

#[test]
#[should_panic(expected = "clashes with a section already registered")]
fn a_key_cannot_be_both_a_section_and_a_parent() {
    let _ = Registry::new()
        .with(Box::new(NestedSection("bus.left")))
        .with(Box::new(NestedSection("bus")));
}
