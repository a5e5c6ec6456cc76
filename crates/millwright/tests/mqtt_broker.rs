//! The embedded MQTT broker inside `millwright run` (`[mqtt.broker]` on an ephemeral loopback
//! port), driven by real `mosquitto_pub` / `mosquitto_sub`: its `mw_mqtt_*` series on
//! `/metrics` (read with a viewer's API token) count exactly what the clients did.
//! Skipped, with a message, when mosquitto-clients is not installed.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{Proc, TempDir, create_token, get, http_addr_from, register_token, wait_for};

const T: Duration = Duration::from_secs(20);

fn clients_present() -> bool {
    let ok = ["mosquitto_pub", "mosquitto_sub"]
        .iter()
        .all(|t| Command::new(t).arg("--help").output().is_ok());
    if !ok {
        eprintln!(
            "SKIPPED: the mosquitto clients are not installed (apt-get install mosquitto-clients)"
        );
    }
    ok
}

/// A data directory with a viewer's API token and `millwright.toml` made of `[site]`,
/// `[http]` on an ephemeral port and `extra`.
struct Site {
    data: TempDir,
    config: String,
    token: String,
}

fn site(name: &str, extra: &str) -> Site {
    let data = TempDir::new(name);
    let dir = data.path.to_str().expect("utf-8 temp path").to_owned();
    let token = create_token(&dir, "viewer", "scraper");
    let config = data.path.join("millwright.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nname = \"mqtt test\"\ndata_dir = \"{dir}\"\n\n[http]\naddress = \"127.0.0.1:0\"\n\n{extra}"
        ),
    )
    .unwrap();
    Site {
        config: config.to_str().unwrap().to_owned(),
        data,
        token,
    }
}

/// Starts `millwright run`; returns it, its HTTP address and the broker's address (from the
/// "MQTT broker listening" log line: the port is chosen by the system).
fn start(site: &Site) -> (Proc, String, SocketAddr) {
    let mut p = Proc::millwright(&["run", "--config", &site.config]);
    let line = p.wait_line("web UI at http://", T);
    let http = http_addr_from(&line);
    register_token(&http, &site.token);
    let broker = wait_for("the broker's address in the log", T, || {
        let err = p.stderr();
        let line = err
            .lines()
            .find(|l| l.contains("MQTT broker listening"))
            .ok_or_else(|| format!("no \"MQTT broker listening\" line in:\n{err}"))?;
        let at = line
            .find("address=")
            .ok_or_else(|| format!("no address= in {line:?}"))?;
        line[at + "address=".len()..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .parse::<SocketAddr>()
            .map_err(|e| format!("{line:?}: {e}"))
    });
    (p, http, broker)
}

fn mqtt_args(broker: SocketAddr, rest: &[&str]) -> Vec<String> {
    let mut a = vec![
        "-h".to_string(),
        broker.ip().to_string(),
        "-p".into(),
        broker.port().to_string(),
    ];
    a.extend(rest.iter().map(|s| s.to_string()));
    a
}

fn mosquitto_pub(broker: SocketAddr, rest: &[&str]) -> (bool, String) {
    let out = Command::new("mosquitto_pub")
        .args(mqtt_args(broker, rest))
        .output()
        .expect("mosquitto_pub runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of the series `name` (with exactly the labels `labels`, e.g. `{reason="acl"}`,
/// or `""` for none) in a Prometheus text page.
/// A broker series as `/metrics` names it: labelled `component` and `instance` (STYLE.md),
/// then `more` (`,reason="acl"`).
fn broker_series(name: &str, more: &str) -> String {
    format!("{name}{{component=\"mqtt-broker\",instance=\"broker\"{more}}}")
}

fn series(page: &str, name_labels: &str) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == name_labels).then(|| v.parse().ok())?
    })
}

#[test]
fn broker_metrics_on_slash_metrics_count_what_clients_did() {
    if !clients_present() {
        return;
    }
    let s = site(
        "mqtt-metrics",
        "[mqtt.broker]\naddress = \"127.0.0.1:0\"\nanonymous = true\n\
         [[mqtt.broker.acl]]\ntopic = \"plant/#\"\naccess = \"readwrite\"\n",
    );
    let (mut mw, http, broker) = start(&s);

    // one subscriber that stays connected
    let sub_args = mqtt_args(
        broker,
        &["-q", "1", "-v", "-W", "60", "-C", "10", "-t", "plant/#"],
    );
    let sub_args: Vec<&str> = sub_args.iter().map(String::as_str).collect();
    let mut sub = Proc::spawn("mosquitto_sub", &sub_args);
    // retained first: once the subscriber has it, it is subscribed
    let (ok, err) = mosquitto_pub(broker, &["-q", "1", "-r", "-t", "plant/a", "-m", "1"]);
    assert!(ok, "{err}");
    sub.wait_line("plant/a 1", T);
    for (qos, m) in [("0", "2"), ("1", "3")] {
        let (ok, err) = mosquitto_pub(broker, &["-q", qos, "-t", "plant/b", "-m", m]);
        assert!(ok, "{err}");
    }
    // outside the ACL: not routed, counted as dropped "acl"
    let (ok, err) = mosquitto_pub(broker, &["-q", "1", "-t", "elsewhere/x", "-m", "4"]);
    assert!(ok, "an MQTT 3.1.1 publisher is not told of the ACL: {err}");
    // an unknown user: refused
    let (ok, _) = mosquitto_pub(
        broker,
        &["-u", "nobody", "-P", "nothing", "-t", "plant/c", "-m", "5"],
    );
    assert!(!ok, "an unknown user must be refused");
    sub.wait_line("plant/b 3", T);

    let page = wait_for("the broker's series on /metrics", T, || {
        let r = get(&http, "/metrics")?;
        if r.status != 200 {
            return Err(format!("GET /metrics: {} {}", r.status, r.text()));
        }
        let page = r.text();
        let want = [
            (broker_series("mw_mqtt_connections", ""), 1.0),
            (broker_series("mw_mqtt_messages_received_total", ""), 3.0),
            (broker_series("mw_mqtt_messages_sent_total", ""), 3.0),
            (
                broker_series("mw_mqtt_dropped_total", ",reason=\"acl\""),
                1.0,
            ),
            (broker_series("mw_mqtt_refused_connects_total", ""), 1.0),
            (broker_series("mw_mqtt_retained", ""), 1.0),
        ];
        for (k, v) in want {
            if series(&page, &k) != Some(v) {
                return Err(format!(
                    "{k} is {:?}, expected {v}:\n{page}",
                    series(&page, &k)
                ));
            }
        }
        Ok(page)
    });
    assert_eq!(
        series(
            &page,
            &broker_series("mw_mqtt_dropped_total", ",reason=\"slow_consumer\"")
        ),
        None,
        "nothing else dropped"
    );
    // /metrics needs the token
    let wrong = common::request_with(
        &http,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer nope")],
        None,
    )
    .expect("GET /metrics");
    assert_eq!(
        wrong.status,
        401,
        "a wrong token is refused: {}",
        wrong.text()
    );
    drop(sub);
    mw.sigterm();
    assert!(mw.wait_exit(T).is_some(), "{}", mw.report());
    drop(s.data);
}

/// `[[mqtt.broker.ingest]]` in the binary: what `mosquitto_pub` publishes to the broker is a
/// tag in `/api/v1/latest` (plain number, JSON field, a bad payload as bad quality), with no
/// `[[mqtt.client]]` anywhere.
#[test]
fn broker_publishes_become_tags_in_latest() {
    if !clients_present() {
        return;
    }
    let s = site(
        "mqtt-ingest",
        "[mqtt.broker]\naddress = \"127.0.0.1:0\"\nanonymous = true\n\
         [[mqtt.broker.ingest]]\ntopic = \"plant/+/temp\"\ntag = \"acme/p1/{2}/temp\"\n\
         [[mqtt.broker.ingest]]\ntopic = \"plant/+/status\"\npayload = \"json\"\nfield = \"data.running\"\n\
         tag = \"acme/p1/{2}/running\"\n",
    );
    let (mut mw, http, broker) = start(&s);
    for (topic, msg) in [
        ("plant/m1/temp", "21.5"),
        ("plant/m1/status", r#"{"data":{"running":true}}"#),
        ("plant/m2/temp", "warm"),
    ] {
        let (ok, err) = mosquitto_pub(broker, &["-q", "1", "-t", topic, "-m", msg]);
        assert!(ok, "{topic}: {err}");
    }
    let points = wait_for("three ingested tags in /api/v1/latest", T, || {
        let r = get(&http, "/api/v1/latest?tag=acme/p1/**")?;
        if r.status != 200 {
            return Err(format!("{} {}", r.status, r.text()));
        }
        let j = r.json();
        let points = j["points"].as_array().cloned().unwrap_or_default();
        if points.len() < 3 {
            return Err(j.to_string());
        }
        Ok(points)
    });
    let by_tag = |t: &str| {
        points
            .iter()
            .find(|p| p["tag"] == t)
            .unwrap_or_else(|| panic!("no {t} in {points:?}"))
            .clone()
    };
    assert_eq!(by_tag("acme/p1/m1/temp")["value"], 21.5);
    assert_eq!(by_tag("acme/p1/m1/temp")["quality"], "good");
    assert_eq!(by_tag("acme/p1/m1/running")["value"], true);
    let bad = by_tag("acme/p1/m2/temp");
    assert_eq!(bad["quality"], "bad", "{bad}");
    assert!(
        bad["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not a number")),
        "{bad}"
    );
    mw.sigterm();
    assert!(mw.wait_exit(T).is_some(), "{}", mw.report());
    drop(s.data);
}
