//! The historian through the HTTP API of the real binary: line-protocol writes answered only once
//! durable, read back through `/api/v1/query` and `/api/v1/latest`, refused batches that name
//! their line and column, history that survives a restart and a SIGKILL at random moments (20
//! times: every acknowledged point is there afterwards, nothing never sent appears), and writes
//! from the real InfluxDB client library.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Proc, TempDir, create_token, get_json, http_addr_from, register_token, request_with};
use serde_json::Value as J;

const T: Duration = Duration::from_secs(20);

/// A data directory with an engineer's API token and a config serving HTTP on an ephemeral
/// loopback port with the historian on.
struct Site {
    _data: TempDir,
    config: String,
    token: String,
}

fn site(name: &str) -> Site {
    site_with(name, "")
}

fn site_with(name: &str, historian_extra: &str) -> Site {
    let data = TempDir::new(name);
    let dir = data.path.to_str().expect("utf-8 temp path").to_owned();
    let token = create_token(&dir, "engineer", "writer");
    let config = data.path.join("millwright.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nname = \"history test\"\ndata_dir = \"{dir}\"\n\n[http]\naddress = \"127.0.0.1:0\"\n\n[historian]\nfsync = \"always\"\n# the test writes 2023 and 1970 timestamps: keep them\nretention = \"100y\"\n{historian_extra}"
        ),
    )
    .unwrap();
    Site {
        config: config.to_str().unwrap().to_owned(),
        _data: data,
        token,
    }
}

/// Starts `millwright run` on the site; returns the process and its HTTP address.
fn start(site: &Site) -> (Proc, String) {
    let mut p = Proc::millwright(&["run", "--config", &site.config]);
    let line = p.wait_line("web UI at http://", T);
    let addr = http_addr_from(&line);
    register_token(&addr, &site.token);
    (p, addr)
}

fn write(addr: &str, path: &str, body: &str) -> common::Response {
    request_with(
        addr,
        "POST",
        path,
        &[("Content-Type", "text/plain; charset=utf-8")],
        Some(body.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

fn points(addr: &str, query: &str) -> Vec<J> {
    get_json(addr, &format!("/api/v1/query?{query}"))["points"]
        .as_array()
        .unwrap_or_else(|| panic!("no points for {query}"))
        .clone()
}

fn stop(mut p: Proc) {
    p.sigterm();
    assert!(
        p.wait_exit(T).is_some_and(|s| s.success()),
        "clean stop\n{}",
        p.report()
    );
}

#[test]
fn writes_are_queryable_refusals_name_line_and_column_and_history_survives_a_restart() {
    let site = site("hist-http");
    let (p, addr) = start(&site);
    let base = 1_700_000_000i64; // s
    let mut body = String::new();
    for i in 0..120 {
        body.push_str(&format!(
            "truck,fleet=North,name=t1 velocity={},fuel={}i {}\n",
            i as f64 * 0.5,
            1000 - i,
            base + i
        ));
    }
    let r = write(&addr, "/api/v1/write?precision=s", &body);
    assert_eq!(r.status, 204, "{}", r.text());
    let q = format!(
        "tag=truck/North/t1/velocity&from={}&to={}",
        base * 1_000_000_000,
        (base + 120) * 1_000_000_000
    );
    let raw = points(&addr, &q);
    assert_eq!(raw.len(), 120);
    assert_eq!(raw[3][1], 1.5);
    assert_eq!(raw[3][2], "good");
    assert_eq!(raw[0][0], "2023-11-14T22:13:20.000Z");
    // per-minute averages and time-weighted averages
    let avg = points(&addr, &format!("{q}&agg=avg&step=1m"));
    assert_eq!(avg.len(), 2);
    assert_eq!(
        avg[0][1],
        (0..60).map(|i| i as f64 * 0.5).sum::<f64>() / 60.0
    );
    assert_eq!(avg[0][3], 60);
    let twa = points(&addr, &format!("{q}&agg=twa&step=1m"));
    assert_eq!(twa.len(), 2, "{twa:?}");
    let count = points(
        &addr,
        &format!(
            "tag=truck/North/t1/fuel&from={}&to={}&agg=count&step=1h",
            base * 1_000_000_000,
            (base + 120) * 1_000_000_000
        ),
    );
    assert_eq!(count[0][1], 120.0);

    // last write wins on the same tag and timestamp
    let r = write(
        &addr,
        "/write?db=x&precision=s",
        &format!("truck,fleet=North,name=t1 velocity=99 {base}\n"),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(points(&addr, &q)[0][1], 99.0);

    // refusals: malformed, a type conflict (line and column of the field), nothing written
    let r = write(
        &addr,
        "/api/v2/write?precision=s",
        &format!("truck,name=t9 speed=1 {base}\ntruck,name=t9 speed= {base}\n"),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("line 2, column"), "{}", r.text());
    let r = write(
        &addr,
        "/api/v1/write?precision=s",
        &format!("truck,name=t8 speed=1 {base}\ntruck,fleet=North,name=t1 fuel=1.5 {base}\n"),
    );
    assert_eq!(r.status, 400);
    let msg = r.text();
    assert!(
        msg.contains("line 2, column 27: field type conflict: tag truck/North/t1/fuel is integer, this value is float"),
        "{msg}"
    );
    let latest = get_json(&addr, "/api/v1/latest?tag=truck/**");
    let tags: Vec<&str> = latest["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tag"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        ["truck/North/t1/fuel", "truck/North/t1/velocity"],
        "refused batches wrote nothing"
    );
    assert_eq!(latest["points"][1]["value"], 59.5);

    // a glob query over several tags
    let multi = get_json(
        &addr,
        &format!(
            "/api/v1/query?tag=truck/North/t1/*&from={}&to={}&agg=max&step=1h",
            base * 1_000_000_000,
            (base + 120) * 1_000_000_000
        ),
    );
    assert_eq!(multi["series"].as_array().unwrap().len(), 2, "{multi}");

    // the historian's and the write routes' metrics
    let m = common::get(&addr, "/metrics").unwrap().text();
    // the sum over every label set of a metric
    let value = |name: &str| -> f64 {
        let vals: Vec<f64> = m
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with([' ', '{']))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        assert!(!vals.is_empty(), "no {name} in /metrics:\n{m}");
        vals.iter().sum()
    };
    assert!(value("mw_historian_points_written_total") >= 241.0);
    assert_eq!(value("mw_http_write_samples_total"), 241.0);
    assert!(value("mw_http_write_rejected_total") >= 2.0);
    assert!(value("mw_historian_wal_bytes") > 0.0);
    assert!(m.contains("mw_historian_query_seconds"), "{m}");

    // a restart keeps everything, and the type of each tag
    stop(p);
    let (p, addr) = start(&site);
    let again = points(&addr, &q);
    assert_eq!(again.len(), 120);
    assert_eq!(again[0][1], 99.0);
    assert_eq!(again[119][1], 59.5);
    let recent = get_json(&addr, "/api/v1/tags/truck/North/t1/velocity/recent?limit=5");
    let rs = recent["samples"].as_array().unwrap();
    assert_eq!(
        rs.len(),
        5,
        "recent reads the historian after a restart: {recent}"
    );
    assert_eq!(rs[4]["value"], 59.5);
    let r = write(
        &addr,
        "/api/v1/write?precision=s",
        &format!("truck,fleet=North,name=t1 velocity=1i {base}\n"),
    );
    assert_eq!(r.status, 400, "the stored type holds across a restart");
    assert!(
        r.text().contains("is float, this value is integer"),
        "{}",
        r.text()
    );
    stop(p);
}

#[test]
fn creating_tags_by_writing_can_be_turned_off() {
    let site = site_with("hist-nocreate", "create_tags = false\n");
    let (p, addr) = start(&site);
    let r = write(&addr, "/api/v1/write", "truck,name=t1 speed=1 1\n");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("line 1, column 15: tag truck/t1/speed does not exist and creating tags by writing is turned off"),
        "{}",
        r.text()
    );
    stop(p);
}

/// Every acknowledged point must be there after a SIGKILL, with the value sent; nothing that was
/// never sent may appear. A writer sends batches of 50 points with unique timestamps while the
/// process is killed at random moments, 20 times.
#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    const ROUNDS: usize = 20;
    let site = site("hist-kill");
    // every point ever sent (ts → value), and those acknowledged
    let sent: Arc<Mutex<BTreeMap<i64, i64>>> = Arc::default();
    let acked: Arc<Mutex<BTreeMap<i64, i64>>> = Arc::default();
    let mut next_ts: i64 = 1_000_000;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // every stored point, read in windows (one answer holds at most 100 000 points)
    let all_stored = |addr: &str, upto_ms: i64| -> BTreeMap<i64, i64> {
        let mut out = BTreeMap::new();
        let mut from_ms = 1_000_000;
        while from_ms < upto_ms + 50_000 {
            let q = format!(
                "tag=crash/c1/seq&from={}&to={}",
                from_ms * 1_000_000,
                (from_ms + 50_000) * 1_000_000
            );
            for pt in points(addr, &q) {
                let ts = common::parse_rfc3339_ns(pt[0].as_str().unwrap()).unwrap() as i64;
                out.insert(ts, pt[1].as_i64().unwrap());
            }
            from_ms += 50_000;
        }
        out
    };
    for round in 0..ROUNDS {
        let (mut p, addr) = start(&site);
        // what survived the previous kill
        let stored = all_stored(&addr, next_ts);
        {
            let sent = sent.lock().unwrap();
            let acked = acked.lock().unwrap();
            for (ts, v) in acked.iter() {
                assert_eq!(
                    stored.get(ts),
                    Some(v),
                    "round {round}: acknowledged point ts={ts} is missing or changed"
                );
            }
            for (ts, v) in &stored {
                assert_eq!(
                    sent.get(ts),
                    Some(v),
                    "round {round}: point ts={ts} was never sent"
                );
            }
        }
        // write until killed
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (sent, acked, stop, addr) =
                (sent.clone(), acked.clone(), stop.clone(), addr.clone());
            let start_ts = next_ts;
            std::thread::spawn(move || {
                let mut ts = start_ts;
                while !stop.load(Ordering::Relaxed) {
                    let mut body = String::new();
                    let mut batch = Vec::new();
                    for _ in 0..50 {
                        // ms timestamps, value derived from them
                        let v = ts * 7 + 3;
                        body.push_str(&format!("crash,c=c1 seq={v}i {}\n", ts));
                        batch.push((ts * 1_000_000, v));
                        ts += 1;
                    }
                    sent.lock().unwrap().extend(batch.iter().copied());
                    match request_with(
                        &addr,
                        "POST",
                        "/api/v1/write?precision=ms",
                        &[("Content-Type", "text/plain")],
                        Some(body.as_bytes()),
                    ) {
                        Ok(r) if r.status == 204 => acked.lock().unwrap().extend(batch),
                        Ok(r) => panic!("write answered {}: {}", r.status, r.text()),
                        Err(_) => break, // killed mid-request: not acknowledged
                    }
                }
                ts
            })
        };
        std::thread::sleep(Duration::from_millis(100 + rand(600)));
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &p.pid().to_string()])
            .status();
        stop.store(true, Ordering::Relaxed);
        next_ts = writer.join().expect("writer thread");
        let deadline = Instant::now() + T;
        while p.try_status().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(p);
    }
    let (p, addr) = start(&site);
    let stored = all_stored(&addr, next_ts).len();
    let acked_n = acked.lock().unwrap().len();
    assert!(
        acked_n >= ROUNDS * 50,
        "the writer got few acknowledgements ({acked_n}); the test did not test much"
    );
    assert!(
        stored >= acked_n,
        "{stored} stored < {acked_n} acknowledged"
    );
    eprintln!(
        "{ROUNDS} kills: {acked_n} points acknowledged, {stored} stored, {} sent",
        sent.lock().unwrap().len()
    );
    stop(p);
}

/// The official InfluxDB 2.x Python client writes unchanged (token auth, `/api/v2/write`, its
/// own batching and precision), and the points read back through the query API.
#[test]
fn the_influxdb_client_library_writes_and_we_read_back() {
    let python = common::python();
    let probe = std::process::Command::new(&python)
        .args(["-c", "import influxdb_client"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "skipped: the Python package influxdb-client is not installed for {} (scripts/setup-test-env.sh installs it)",
            python.display()
        );
        return;
    }
    let site = site("hist-influx");
    let (p, addr) = start(&site);
    let script = common::root().join("tests/peers/influx_write.py");
    let (st, out, err) = common::run_python(
        &script,
        &[&format!("http://{addr}"), &site.token, "100"],
        "",
        T,
    );
    assert!(st.success(), "influx_write.py failed:\n{out}\n{err}");
    let q = "from=0&to=9000000000000000000";
    let temp = points(&addr, &format!("tag=weather/site-a/temperature&{q}"));
    assert_eq!(temp.len(), 100, "{out}");
    assert_eq!(temp[0][1], 20.0);
    assert_eq!(temp[99][1], 20.0 + 99.0 * 0.25);
    let ok = points(&addr, &format!("tag=weather/site-a/ok&{q}"));
    assert_eq!(ok[1][1], false);
    let n = points(&addr, &format!("tag=weather/site-a/samples&{q}"));
    assert_eq!(n[99][1], 99);
    // the client's error path: a malformed record is refused with our message
    assert!(
        out.contains("refused: 400") && out.contains("line 1, column"),
        "{out}"
    );
    stop(p);
}

/// `demo` keeps its history in `--data-dir`: after a restart the query API and the recent window
/// (what the page's sparklines draw) still hold what the plant measured before.
#[test]
fn the_demo_shows_its_history_again_after_a_restart() {
    let tag = "acme/plant1/utilities/water/pump1/flow";
    let demo = common::start_demo("hist-demo", &[]);
    let q = format!("tag={tag}&from=0&to=9000000000000000000");
    // the deadband stores changes only, and a loaded CI machine polls slowly: wait for three
    let before = common::wait_for("3 stored samples of the pump's flow", T * 3, || {
        let p = points(&demo.http, &q);
        if p.len() >= 3 {
            Ok(p)
        } else {
            Err(format!("{} so far", p.len()))
        }
    });
    let common::Demo { proc, data, .. } = demo;
    stop(proc);
    let demo = common::start_demo_in(data, &[]);
    let after = points(&demo.http, &q);
    assert!(
        after.len() >= before.len() && after[..before.len()] == before[..],
        "history before the restart is still there: {} then {}",
        before.len(),
        after.len()
    );
    let recent = get_json(
        &demo.http,
        &format!("/api/v1/tags/{tag}/recent?limit=10000"),
    );
    assert_eq!(
        recent["samples"][0]["ts"], before[0][0],
        "the recent window (the sparklines) reads the stored history: {recent}"
    );
    stop(demo.proc);
}
