//! `[mqtt.broker]`: defaults, every key, and each refusal naming key and line.

use mw_bus::Component;
use mw_mqtt::{Access, AclRule, MqttBrokerComponent, MqttBrokerConfig};

fn registry() -> mw_config::Registry {
    mw_bus::config_registry(&[&MqttBrokerComponent as &dyn Component])
}

fn errors(src: &str) -> Vec<String> {
    match registry().parse(src, "t.toml") {
        Ok(_) => Vec::new(),
        Err(d) => d.items.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn absent_means_off_and_keys_are_read() {
    let c = registry().parse("", "t.toml").unwrap();
    assert!(!c.section::<MqttBrokerConfig>().unwrap().enabled);
    let c = registry()
        .parse(
            "[mqtt.broker]\naddress = \"127.0.0.1:18830\"\nanonymous = true\nuns_prefix = \"/acme/p1/\"\n\
             max_queued = 50\n[[mqtt.broker.acl]]\nuser = \"bob\"\ntopic = \"plant/%u/#\"\naccess = \"read\"\n",
            "t.toml",
        )
        .unwrap();
    let b = c.section::<MqttBrokerConfig>().unwrap();
    assert!(b.enabled && b.anonymous);
    assert_eq!(b.listener.address.port(), 18830);
    assert_eq!(b.uns_prefix.as_deref(), Some("acme/p1"));
    assert_eq!(b.max_queued, 50);
    assert_eq!(
        b.acl,
        [AclRule {
            user: Some("bob".into()),
            pattern: "plant/%u/#".into(),
            access: Access::Read
        }]
    );
}

#[test]
fn refusals_name_the_key_and_line() {
    let e =
        errors("[mqtt.broker]\naddress = \"0.0.0.0:1883\"\ninsecure = true\nanonymous = true\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("4:") && e[0].contains("loopback address only"),
        "{e:?}"
    );
    let e = errors("[mqtt.broker]\naddress = \"0.0.0.0:1883\"\n");
    assert!(
        e.iter()
            .any(|m| m.contains("MQTT") && m.contains("0.0.0.0:1883")),
        "{e:?}"
    );
    let e = errors("[mqtt.broker]\nuns_prefix = \"a/+\"\n");
    assert!(
        e[0].starts_with("2:") && e[0].contains("uns_prefix"),
        "{e:?}"
    );
    let e = errors("[mqtt.broker]\n[[mqtt.broker.acl]]\ntopic = \"a/#/b\"\naccess = \"all\"\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("3:") && e[0].contains("'#' must be the whole last level"),
        "{e:?}"
    );
    assert!(e[1].starts_with("4:") && e[1].contains("access"), "{e:?}");
    let e = errors("[mqtt.broker]\nmax_conections = 5\n");
    assert!(e[0].contains("did you mean \"max_connections\""), "{e:?}");
    let e = errors("[mqtt.brokr]\n");
    assert!(e[0].contains("unknown key \"brokr\" in [mqtt]"), "{e:?}");
}

#[test]
fn ingest_rules_are_read_with_the_clients_mapping() {
    let c = registry()
        .parse(
            "[mqtt.broker]\ningest_queue = 50\n[[mqtt.broker.ingest]]\ntopic = \"plant/+/temp\"\ntag = \"acme/{2}/t\"\n\
             [[mqtt.broker.ingest]]\ntopic = \"plant/+/s\"\npayload = \"json\"\nfield = \"data.v\"\ntag = \"acme/{2}/s\"\n",
            "t.toml",
        )
        .unwrap();
    let b = c.section::<MqttBrokerConfig>().unwrap();
    assert_eq!(b.ingest_queue, 50);
    assert_eq!(b.ingest.len(), 2);
    assert_eq!(b.ingest[0].filter, "plant/+/temp");
    assert_eq!(
        b.ingest[1].payload,
        mw_mqtt::client::config::PayloadMap::Json {
            field: vec!["data".into(), "v".into()],
            ts: None
        }
    );
    let e = errors(
        "[mqtt.broker]\n[[mqtt.broker.ingest]]\ntopic = \"a/+\"\nqos = 1\ntag = \"a/{2}\"\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("4:") && e[0].contains("\"qos\" does not apply"),
        "{e:?}"
    );
}
