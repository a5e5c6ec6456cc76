//! `[[mqtt.client]]`: every key read, defaults, and each refusal naming key and line.

use mw_bus::Component;
use mw_mqtt::client::MqttClientSection;
use mw_mqtt::client::config::{PasswordSource, PayloadMap, PlainType, Protocol, TagPart, TlsFiles};
use mw_mqtt::{MqttBrokerComponent, MqttClientComponent};

fn registry() -> mw_config::Registry {
    mw_bus::config_registry(&[
        &MqttBrokerComponent as &dyn Component,
        &MqttClientComponent as &dyn Component,
    ])
}

fn errors(src: &str) -> Vec<String> {
    match registry().parse(src, "t.toml") {
        Ok(_) => Vec::new(),
        Err(d) => d.items.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn absent_means_no_client() {
    let c = registry().parse("", "t.toml").unwrap();
    assert!(c.section::<MqttClientSection>().unwrap().clients.is_empty());
}

#[test]
fn every_key_is_read() {
    let src = r#"
[[mqtt.client]]
name = "plant"
url = "mqtts://broker.example.com:8884"
client_id = "gw-1"
protocol = "5"
user = "gw"
password_file = "/etc/mw/mqtt-pw"
tls = { ca = "ca.pem", cert = "c.pem", key = "c.key" }
keep_alive_s = 20
clean_start = false
backoff_max_ms = 2000

[[mqtt.client.subscribe]]
topic = "plant/+/temp"
qos = 1
payload = "json"
field = "data.temp"
ts_field = "ts"
tag = "acme/p1/{2}/temp"
unit = "Cel"

[[mqtt.client.subscribe]]
topic = "raw/#"
payload = "plain"
type = "bool"
tag = "acme/raw/{topic}"

[[mqtt.client.subscribe]]
topic = "spBv1.0/g1/+/e1"
payload = "sparkplug"
tag = "acme/sp/{metric}"

[mqtt.client.publish]
prefix = "/uns/acme/"
qos = 1
retain = true
queue = 16

[[mqtt.client]]
name = "second"
url = "mqtt://10.0.0.1"
user = "u"
password_env = "MW_MQTT_PW"
[mqtt.client.publish]
prefix = "x"
"#;
    let c = registry().parse(src, "t.toml").unwrap();
    let s = c.section::<MqttClientSection>().unwrap();
    assert_eq!(s.clients.len(), 2);
    let a = &s.clients[0];
    assert_eq!(
        (a.name.as_str(), a.host.as_str(), a.port),
        ("plant", "broker.example.com", 8884)
    );
    assert_eq!(a.client_id, "gw-1");
    assert_eq!(a.protocol, Protocol::V5);
    assert_eq!(
        a.user,
        Some(("gw".into(), PasswordSource::File("/etc/mw/mqtt-pw".into())))
    );
    assert_eq!(
        a.tls,
        Some(TlsFiles {
            ca: "ca.pem".into(),
            client: Some(("c.pem".into(), "c.key".into()))
        })
    );
    assert_eq!(a.keep_alive.as_secs(), 20);
    assert!(!a.clean_start);
    assert_eq!(a.backoff_max.as_millis(), 2000);
    assert_eq!(a.subscribe.len(), 3);
    let j = &a.subscribe[0];
    assert_eq!((j.filter.as_str(), j.qos), ("plant/+/temp", 1));
    assert_eq!(
        j.payload,
        PayloadMap::Json {
            field: vec!["data".into(), "temp".into()],
            ts: Some(vec!["ts".into()])
        }
    );
    assert_eq!(
        j.tag,
        [
            TagPart::Text("acme/p1/".into()),
            TagPart::Level(2),
            TagPart::Text("/temp".into())
        ]
    );
    assert_eq!(j.unit.as_deref(), Some("Cel"));
    assert_eq!(a.subscribe[1].payload, PayloadMap::Plain(PlainType::Bool));
    assert_eq!(a.subscribe[1].qos, 0, "qos defaults to 0");
    assert_eq!(a.subscribe[2].payload, PayloadMap::Sparkplug);
    let p = a.publish.as_ref().unwrap();
    assert_eq!(
        (p.prefix.as_str(), p.qos, p.retain, p.queue),
        ("uns/acme", 1, true, Some(16))
    );
    let b = &s.clients[1];
    assert_eq!(
        (b.port, b.protocol, b.clean_start),
        (1883, Protocol::V311, true)
    );
    assert_eq!(b.client_id, "millwright-second");
    assert_eq!(
        b.user,
        Some(("u".into(), PasswordSource::Env("MW_MQTT_PW".into())))
    );
    assert!(b.tls.is_none());
}

#[test]
fn refusals_name_the_key_and_line() {
    let e = errors(
        "[[mqtt.client]]\nname = \"a\"\nurl = \"http://h:1\"\npassword = \"secret\"\n\
         [mqtt.client.publish]\nprefix = \"p\"\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("3:") && e[0].contains("unknown URL scheme"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("4:") && e[1].contains("password_file"),
        "{e:?}"
    );
    assert!(
        !e.iter().any(|m| m.contains("secret")),
        "the password is never repeated: {e:?}"
    );

    let e = errors(
        "[[mqtt.client]]\nname = \"a\"\nurl = \"mqtt://h:1\"\n\
         [[mqtt.client.subscribe]]\ntopic = \"a/#/b\"\ntag = \"x/{1}\"\n\
         [[mqtt.client.subscribe]]\ntopic = \"a/b\"\ntag = \"x/{3}\"\n\
         [[mqtt.client.subscribe]]\ntopic = \"a/b\"\npayload = \"json\"\ntag = \"x/y\"\n\
         [[mqtt.client.subscribe]]\ntopic = \"a/b\"\npayload = \"sparkplug\"\ntag = \"x/y\"\n\
         [[mqtt.client.subscribe]]\ntopic = \"a/b\"\npayload = \"xml\"\ntag = \"x/{9x}\"\nqos = 3\n",
    );
    let want = [
        ("5:", "'#' must be the whole last level"),
        ("9:", "uses {3}, but topic \"a/b\" has 2 level(s)"),
        ("10:", "no \"field\""),
        ("17:", "needs {metric}"),
        ("20:", "unknown payload mapping \"xml\""),
        ("21:", "unknown placeholder {9x}"),
        ("22:", "\"qos\""),
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for ((line, text), got) in want.iter().zip(&e) {
        assert!(
            got.starts_with(line) && got.contains(text),
            "{got:?} should be {line} …{text}"
        );
    }

    let e = errors(
        "[[mqtt.client]]\nname = \"a\"\nurl = \"mqtts://h\"\nuser = \"u\"\n\
         [mqtt.client.publish]\nprefix = \"a/+\"\n",
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("3:") && m.contains("no \"tls\"")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("4:") && m.contains("no \"password_file\"")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("6:") && m.contains("\"prefix\"")),
        "{e:?}"
    );

    let e = errors(
        "[[mqtt.client]]\nname = \"a\"\nurl = \"mqtt://h\"\n\
         [[mqtt.client.subscribe]]\ntopic = \"uns/#\"\ntag = \"x/{topic}\"\n\
         [mqtt.client.publish]\nprefix = \"uns\"\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("read back what it publishes"), "{e:?}");

    let e = errors("[[mqtt.client]]\nname = \"a\"\nurl = \"mqtt://h\"\n");
    assert!(e[0].contains("neither subscribes nor publishes"), "{e:?}");
    let e = errors(
        "[[mqtt.client]]\nname = \"a\"\nurl = \"mqtt://h\"\nkeep_alive = 5\n[mqtt.client.publish]\nprefix = \"p\"\n",
    );
    assert!(
        e[0].starts_with("4:") && e[0].contains("did you mean \"keep_alive_s\""),
        "{e:?}"
    );
    let e = errors("[mqtt.clients]\n");
    assert!(e[0].contains("unknown key \"clients\" in [mqtt]"), "{e:?}");
    assert!(e[0].contains("broker, client"), "{e:?}");
}
