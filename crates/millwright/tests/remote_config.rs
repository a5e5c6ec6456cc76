//! `[remote_config]` (issue 13, item 5) against a real `nats-server -js` (ephemeral loopback
//! port, own store directory, killed by pid): `millwright run` watches its key in the bucket; a
//! revision that fails `millwright check`'s checks is reported `rejected` with the error and the
//! running configuration stays; a valid one is applied in place (new assets served, audited as
//! `config.apply` with its revision) and reported `applied`; one that passes the checks but
//! cannot start (its HTTP port is taken) is reported `rejected` and the previous one runs again;
//! the applied revision survives a restart of the edge while NATS is down. Skipped, with a
//! message, when `nats-server` is not installed (scripts/setup-test-env.sh installs it).

mod common;

use std::time::Duration;

use common::{Proc, TempDir, create_token, get_json, http_addr_from, register_token, wait_for};
use serde_json::Value as J;

const T: Duration = Duration::from_secs(30);

fn nats_server() -> Option<&'static str> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
}

/// The edge's configuration: the local file and every revision differ only in their assets,
/// HTTP address and historian keys.
fn config(dir: &str, url: &str, http: &str, assets: &[&str], historian: &str) -> String {
    let mut s = format!(
        "[site]\nname = \"remote test\"\ndata_dir = \"{dir}\"\n\n[http]\naddress = \"{http}\"\n\n\
         [historian]\n{historian}\n\n[remote_config]\nurl = \"{url}\"\nkey = \"edge1\"\n"
    );
    for a in assets {
        s.push_str(&format!(
            "\n[[assets]]\npath = \"{a}\"\nkind = \"enterprise\"\n"
        ));
    }
    s
}

fn asset_paths(addr: &str) -> Vec<String> {
    let v = get_json(addr, "/api/v1/assets");
    let list = v
        .as_array()
        .or_else(|| v["assets"].as_array())
        .unwrap_or_else(|| panic!("assets: {v}"));
    list.iter()
        .filter_map(|a| a["path"].as_str().map(str::to_owned))
        .collect()
}

/// The `n`-th (1-based) "web UI at" address the process printed, waiting for it.
fn nth_http_addr(p: &mut Proc, n: usize) -> String {
    let line = wait_for(&format!("start #{n} of the pipeline"), T, || {
        p.drain_stdout();
        p.stdout()
            .iter()
            .filter(|l| l.contains("web UI at http://"))
            .nth(n - 1)
            .cloned()
            .ok_or_else(|| format!("{} start(s) so far\n{}", n - 1, p.stderr()))
    });
    http_addr_from(&line)
}

struct Kv {
    rt: tokio::runtime::Runtime,
    kv: async_nats::jetstream::kv::Store,
}

impl Kv {
    fn open(url: &str) -> Kv {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let kv = rt.block_on(async {
            let t = std::time::Instant::now();
            let client = loop {
                match async_nats::connect(url).await {
                    Ok(c) => break c,
                    Err(e) if t.elapsed() > T => panic!("cannot connect to {url}: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            // the edge creates the bucket when it is missing; the operator may as well
            mw_uplink::remote::open_bucket(&async_nats::jetstream::new(client), "millwright-config")
                .await
                .expect("bucket")
        });
        Kv { rt, kv }
    }

    fn put(&self, text: &str) -> u64 {
        self.rt
            .block_on(self.kv.put("edge1", text.to_owned().into()))
            .expect("put")
    }

    /// Waits for the edge's status of revision `rev`.
    fn status(&self, rev: u64) -> J {
        wait_for(&format!("status of revision {rev}"), T, || {
            let got = self
                .rt
                .block_on(self.kv.get("edge1.status"))
                .map_err(|e| e.to_string())?;
            let v: J = match got {
                Some(b) => serde_json::from_slice(&b).map_err(|e| e.to_string())?,
                None => return Err("no status yet".into()),
            };
            if v["revision"].as_u64() == Some(rev) {
                Ok(v)
            } else {
                Err(format!("status is {v}"))
            }
        })
    }
}

#[test]
fn revisions_from_the_bucket_are_checked_applied_or_rejected_and_survive_a_restart() {
    let Some(bin) = nats_server() else {
        eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
        return;
    };
    let store = TempDir::new("remote-config-nats");
    let port = mw_testpeers::free_port();
    let store_dir = store.path.to_str().expect("utf-8").to_owned();
    let args = [
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-sd",
        &store_dir,
    ];
    let mut server = Proc::spawn(bin, &args);
    let url = format!("nats://127.0.0.1:{port}");
    let kv = Kv::open(&url);

    let data = TempDir::new("remote-config-edge");
    let dir = data.path.to_str().expect("utf-8").to_owned();
    let token = create_token(&dir, "admin", "remote-test");
    let file = data.path.join("millwright.toml");
    let fsync = "fsync = \"always\"";
    std::fs::write(&file, config(&dir, &url, "127.0.0.1:0", &[], fsync)).unwrap();
    let mut edge = Proc::millwright(&["run", "--config", file.to_str().unwrap()]);
    let addr = nth_http_addr(&mut edge, 1);
    register_token(&addr, &token);
    assert!(asset_paths(&addr).is_empty());

    // 1. a revision that fails the checks: rejected with the check's words, nothing restarts
    let bad = kv.put(&config(
        &dir,
        &url,
        "127.0.0.1:0",
        &["acme"],
        "fsync = \"sometimes\"",
    ));
    let st = kv.status(bad);
    assert_eq!(st["outcome"], "rejected", "{st}");
    let err = st["error"].as_str().unwrap_or_default();
    // named by bucket, key and revision, with the line and column of the bad value
    assert!(
        err.contains(&format!("millwright-config/edge1 revision {bad}:9:"))
            && err.contains("\"sometimes\""),
        "{err}"
    );
    assert!(asset_paths(&addr).is_empty(), "the running config stays");

    // 2. a valid revision: applied in place, the new asset served, audited with its revision
    let good = kv.put(&config(&dir, &url, "127.0.0.1:0", &["acme"], fsync));
    let st = kv.status(good);
    assert_eq!(st["outcome"], "applied", "{st}");
    assert!(st.get("error").is_none(), "{st}");
    let addr = nth_http_addr(&mut edge, 2);
    register_token(&addr, &token);
    assert_eq!(asset_paths(&addr), ["acme"]);
    let audit = get_json(&addr, "/api/v1/audit?limit=50");
    let applied: Vec<&J> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["action"] == "config.apply")
        .collect();
    assert!(
        applied
            .iter()
            .any(|r| r.to_string().contains(&format!("revision {good}"))),
        "config.apply of revision {good} in {audit}"
    );

    // 3. passes the checks but cannot start (its port is taken): back to revision `good`
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().unwrap().to_string();
    let unstartable = kv.put(&config(&dir, &url, &busy, &["acme", "other"], fsync));
    let st = kv.status(unstartable);
    assert_eq!(st["outcome"], "rejected", "{st}");
    assert!(
        st["error"]
            .as_str()
            .unwrap_or_default()
            .contains("did not start"),
        "{st}"
    );
    let addr = nth_http_addr(&mut edge, 3);
    register_token(&addr, &token);
    assert_eq!(
        asset_paths(&addr),
        ["acme"],
        "the previous revision runs again"
    );
    drop(taken);

    // 4. NATS down, the edge restarted: it runs the revision it applied last
    server.kill9();
    edge.sigterm();
    assert!(
        edge.wait_exit(T).is_some_and(|s| s.success()),
        "clean stop\n{}",
        edge.report()
    );
    let mut edge = Proc::millwright(&["run", "--config", file.to_str().unwrap()]);
    let addr = nth_http_addr(&mut edge, 1);
    register_token(&addr, &token);
    assert_eq!(asset_paths(&addr), ["acme"], "kept across the restart");
    edge.sigterm();
    assert!(edge.wait_exit(T).is_some(), "stop\n{}", edge.report());
}
