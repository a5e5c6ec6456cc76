use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::{pipeline, simrun};

/// The built-in example configuration: the simulated plant (examples/plant.toml).
pub const DEMO_CONFIG: &str = include_str!("../../../examples/plant.toml");

/// Exit status for an invalid configuration.
const EXIT_INVALID_CONFIG: u8 = 2;

#[derive(Parser, Debug)]
#[command(name = "millwright", version, about = "Industrial IoT edge platform: connect equipment, model its data, serve it live.",
    long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log filter (e.g. `info`, `debug`, `mw_modbus=debug`); default from $MILLWRIGHT_LOG, else `info`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run everything against the built-in plant simulator: simulator + Modbus TCP server, poller, live store, web UI.
    Demo(DemoArgs),
    /// Run the pipeline described by a configuration file.
    Run(RunArgs),
    /// Validate a configuration file without starting anything (exit 0 if valid, 2 if not).
    Check(CheckArgs),
    /// Run only the plant simulator and its Modbus TCP server.
    Sim(SimArgs),
    /// Central tier: consume the edges' JetStream streams into VictoriaMetrics and PostgreSQL
    /// (a `[central]` section; any number of replicas share the work; docs/central.md).
    Central(CentralArgs),
    /// Replay a CSV file through an anomaly detector; writes scores and flags, and metrics against labels.
    Backtest(crate::backtest::BacktestArgs),
    /// Read stored history of a tag or a glob of tags (offline: not while a server has the historian open).
    Query(crate::history::QueryArgs),
    /// Export stored history to CSV or line protocol, with a progress bar (offline).
    Export(crate::history::ExportArgs),
    /// Import CSV or line-protocol files of any size into the historian, streamed, with a progress bar (offline).
    Import(crate::history::ImportArgs),
    /// Predictive maintenance: train and apply remaining-useful-life models.
    #[command(subcommand)]
    Pdm(crate::pdm::PdmCommand),
    /// Users: add, list, passwd, disable, enable, del; `bench` measures a password check.
    #[command(subcommand)]
    User(crate::security::UserCommand),
    /// API tokens: create (shown once), list, revoke.
    #[command(subcommand)]
    Token(crate::security::TokenCommand),
    /// The audit trail: `verify` checks its hash chain (exit 0 intact, 1 not).
    #[command(subcommand)]
    Audit(crate::security::AuditCommand),
    /// TLS certificates: init (CA, server, clients), list, trust.
    #[command(subcommand)]
    Certs(crate::security::CertsCommand),
    /// Print a shell completion script (e.g. `millwright completions bash > /etc/bash_completion.d/millwright`).
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug, Clone)]
pub struct SimOptions {
    /// Random seed: the same seed gives the same plant behaviour and the same random faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated seconds per real second (e.g. 60 shows an hour of bearing wear in a minute).
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Mean simulated seconds between random faults; 0 disables random faults.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800.0)]
    pub fault_interval: f64,
    /// Scheduled faults: a CSV file with lines `start_s,asset,kind,duration_s[,point]` (simulated
    /// seconds from the start; `#` starts a comment; an optional header line is skipped).
    #[arg(long, value_name = "FILE")]
    pub schedule: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Web UI and HTTP API listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The simulator's Modbus TCP server (point your own Modbus tools at it).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5020")]
    pub modbus: SocketAddr,
    /// Where the demo writes its files (ground-truth fault labels: sim-labels.csv / .json).
    #[arg(long, value_name = "DIR", default_value = "millwright-data")]
    pub data_dir: PathBuf,
    /// Poll the simulator every MS milliseconds instead of the example's 1000 (detector warm-ups count polls).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub poll_interval: Option<u64>,
    /// Allow listeners on non-loopback addresses without TLS (the demo's HTTP has no certificate;
    /// its simulator's Modbus TCP has no security at all). Logged as a warning at start.
    #[arg(long, alias = "allow-unauthenticated")]
    pub insecure: bool,
    /// Also accept NAME in the HTTP `Host` header (this machine's DNS name, a reverse proxy);
    /// repeatable. `NAME` matches any port, `NAME:PORT` that port. The listener's own address and
    /// `localhost:PORT` are always accepted; other names get 421 (DNS-rebinding defence).
    #[arg(long = "allow-host", value_name = "NAME[:PORT]")]
    pub allow_host: Vec<String>,
    /// Forward the plant to NATS JetStream at URL (nats://HOST:PORT; several comma-separated), as
    /// an `[[uplink]]` named "demo" with its defaults would (docs/uplink.md).
    #[arg(long, value_name = "URL")]
    pub uplink: Option<String>,
    /// POST critical and high alarms as JSON to URL (http:// or https://), as a
    /// `[[notify.webhook]]` named "demo" with `min_priority = "high"` would (docs/notify.md).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Run the embedded MQTT broker on ADDR (default 127.0.0.1:1883) and publish the plant's
    /// samples there under `millwright/<site>/…` (retained JSON). On loopback it accepts
    /// anonymous clients (`mosquitto_sub -t 'millwright/#' -v`); elsewhere Millwright users.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:1883")]
    pub mqtt: Option<SocketAddr>,
    #[command(flatten)]
    pub sim: SimOptions,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Configuration file (TOML; see docs/config.md and examples/plant.toml).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Also accept NAME in the HTTP `Host` header (this machine's DNS name, a reverse proxy);
    /// repeatable. `NAME` matches any port, `NAME:PORT` that port. The listener's own address and
    /// `localhost:PORT` are always accepted; other names get 421 (DNS-rebinding defence).
    #[arg(long = "allow-host", value_name = "NAME[:PORT]")]
    pub allow_host: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CentralArgs {
    /// Configuration file with a `[central]` section.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Configuration file to validate.
    #[arg(
        long,
        short,
        value_name = "FILE",
        required_unless_present = "list_units"
    )]
    pub config: Option<PathBuf>,
    /// Print the accepted engineering-unit codes (UCUM) and exit.
    #[arg(long)]
    pub list_units: bool,
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Modbus TCP listener of the simulator.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5020")]
    pub modbus: SocketAddr,
    /// Write ground-truth fault labels here (`.json` for JSON, anything else CSV); rewritten on every change.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Allow a non-loopback Modbus listener (Modbus TCP has no encryption or authentication).
    #[arg(long, alias = "allow-unauthenticated")]
    pub insecure: bool,
    /// Do not serve: simulate `--duration` seconds as fast as possible and write every point,
    /// one row per `--step`, with ground-truth label columns, to this CSV file (input for
    /// `millwright backtest`). `--speed` is ignored.
    #[arg(long, value_name = "FILE", requires = "duration")]
    pub export: Option<PathBuf>,
    /// Simulated seconds to export (with `--export`).
    #[arg(long, value_name = "SECONDS", value_parser = parse_duration, requires = "export")]
    pub duration: Option<f64>,
    /// Simulated seconds between exported rows.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_step)]
    pub step: f64,
    /// Start of the simulated clock for `--export` (RFC 3339, `YYYY-MM-DD HH:MM:SS` in UTC, or
    /// epoch seconds). The time of day drives the ambient temperature and the water demand.
    /// Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_start, requires = "export")]
    pub start: Option<i64>,
    /// Also run as a Sparkplug B edge node publishing the plant's tags to the MQTT broker at URL
    /// (mqtt://HOST[:PORT]): one device per asset, births, report by exception (docs/sparkplug.md).
    #[arg(long, value_name = "URL", conflicts_with = "export")]
    pub sparkplug: Option<String>,
    /// Sparkplug group id of `--sparkplug`.
    #[arg(
        long,
        value_name = "ID",
        default_value = "millwright",
        requires = "sparkplug"
    )]
    pub sparkplug_group: String,
    /// Sparkplug edge node id of `--sparkplug`.
    #[arg(long, value_name = "ID", default_value = "sim", requires = "sparkplug")]
    pub sparkplug_node: String,
    /// Where `--sparkplug` keeps its bdSeq (in `DIR/sparkplug/GROUP/NODE/bdseq`).
    #[arg(long, value_name = "DIR", default_value = "millwright-data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub sim: SimOptions,
}

/// A finite number for which `ok` holds; otherwise `rule (got S)`.
fn bounded(s: &str, ok: impl Fn(f64) -> bool, rule: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && ok(v) {
        Ok(v)
    } else {
        Err(format!("{rule} (got {s})"))
    }
}

fn parse_duration(s: &str) -> Result<f64, String> {
    bounded(
        s,
        |v| v > 0.0 && v <= 366.0 * 86_400.0,
        "duration must be > 0 and at most a year of seconds",
    )
}

fn parse_start(s: &str) -> Result<i64, String> {
    mw_analytics::backtest::TimestampFormat::detect(s.trim())
        .and_then(|f| f.parse_ns(s.trim()))
        .ok_or_else(|| {
            format!("{s:?} is not a time (RFC 3339, `YYYY-MM-DD HH:MM:SS` or epoch seconds)")
        })
}

fn parse_step(s: &str) -> Result<f64, String> {
    bounded(
        s,
        |v| (0.1..=3600.0).contains(&v),
        "step must be between 0.1 and 3600 seconds",
    )
}

fn parse_speed(s: &str) -> Result<f64, String> {
    bounded(
        s,
        |v| v > 0.0 && v <= 100_000.0,
        "speed must be > 0 and ≤ 100000",
    )
}

pub fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Check(a) => check(a),
        Command::Run(a) => run_file(a),
        Command::Demo(a) => {
            runtime()?.block_on(demo(a))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Central(a) => central(a),
        Command::Pdm(c) => crate::pdm::dispatch(c),
        Command::User(c) => crate::security::user(c),
        Command::Token(c) => crate::security::token(c),
        Command::Audit(c) => crate::security::audit(c),
        Command::Certs(c) => crate::security::certs(c),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "millwright", &mut script);
            write_stdout(&script)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backtest(a) => crate::backtest::run(a),
        Command::Query(a) => crate::history::query(a),
        Command::Export(a) => crate::history::export(a),
        Command::Import(a) => crate::history::import(a),
        Command::Sim(a) => {
            if let (Some(path), Some(duration)) = (&a.export, a.duration) {
                let start_ns = a.start.unwrap_or_else(mw_model::now_ns);
                simrun::export(
                    &a.sim,
                    path,
                    duration,
                    a.step,
                    start_ns,
                    a.labels.as_deref(),
                )?;
            } else {
                runtime()?.block_on(simrun::run_standalone(a))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to standard output; a closed pipe (`… | head`) is not an error.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn central(a: CentralArgs) -> Result<ExitCode> {
    let cfg = match mw_central::config_registry().load(&a.config) {
        Ok(c) => c
            .section::<mw_central::CentralSection>()
            .and_then(|s| s.0.clone()),
        Err(diags) => {
            eprintln!("{diags}");
            eprintln!(
                "{}: {} error(s); nothing was started",
                a.config.display(),
                diags.items.len()
            );
            return Ok(ExitCode::from(EXIT_INVALID_CONFIG));
        }
    };
    let Some(cfg) = cfg else {
        eprintln!(
            "{}: no [central] section (docs/central.md)",
            a.config.display()
        );
        return Ok(ExitCode::from(EXIT_INVALID_CONFIG));
    };
    runtime()?.block_on(async {
        let render = pipeline::install_metrics()?;
        mw_central::run(cfg, Some(render), pipeline::shutdown_signal())
            .await
            .context("millwright central")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The first line of `<data_dir>/remote-config.toml`, before the revision number.
const SAVED_REMOTE_HEADER: &str =
    "# millwright: applied from the [remote_config] bucket, revision ";

/// `millwright run`: the file's configuration, or the `[remote_config]` revision applied last
/// (kept in `<data_dir>/remote-config.toml`), restarted in place with each new revision from
/// the bucket; a revision that passes the checks but does not start is reported `rejected`
/// and the previous configuration runs again.
fn run_file(a: RunArgs) -> Result<ExitCode> {
    // Read once: what is checked is what the audit trail names by its SHA-256.
    let text = std::fs::read_to_string(&a.config);
    let loaded = match &text {
        Ok(t) => millwright::config_registry().parse(t, &a.config.display().to_string()),
        Err(_) => millwright::config_registry().load(&a.config),
    };
    let mut cfg = match loaded {
        Ok(c) => c,
        Err(diags) => {
            eprintln!("{diags}");
            eprintln!(
                "{}: {} error(s); nothing was started",
                a.config.display(),
                diags.items.len()
            );
            return Ok(ExitCode::from(EXIT_INVALID_CONFIG));
        }
    };
    // what the audit trail records as the configuration applied
    let mut source = format!(
        "{} sha256={}",
        a.config.display(),
        mw_security::audit::digest(text.unwrap_or_default().as_bytes())
    );
    let mut remote = pipeline::RemoteState::default();
    let saved = cfg.site.data_dir.join("remote-config.toml");
    if millwright::config_watch(&cfg).is_some()
        && let Some((rev, c, body)) = saved_remote(&saved)
    {
        tracing::info!(file = %saved.display(), revision = rev,
            "running the remote config applied last; {} is the fallback", a.config.display());
        cfg = c;
        source = remote_source(&saved.display().to_string(), rev, &body);
        remote.after = rev;
    }
    runtime()?.block_on(async {
        let metrics = pipeline::install_metrics()?;
        let mut previous: Option<(mw_config::Config, String)> = None;
        loop {
            let opts = http_options(&cfg, &a.allow_host);
            let trying = remote.pending.as_ref().map(|(r, _)| *r);
            let run = pipeline::run(
                cfg.clone(),
                None,
                None,
                opts,
                false,
                source.clone(),
                metrics.clone(),
                std::mem::take(&mut remote),
            )
            .await;
            match run {
                Ok(pipeline::Ended::Shutdown) => return Ok(ExitCode::SUCCESS),
                Ok(pipeline::Ended::Reload(rev)) => {
                    let name = format!("remote config revision {}", rev.revision);
                    let new = millwright::config_registry()
                        .parse(&rev.text, &name)
                        .map_err(|d| anyhow::anyhow!("{name} passed its checks, then not:\n{d}"))?;
                    remote = pipeline::RemoteState {
                        after: rev.revision,
                        pending: Some((rev.revision, mw_bus::ConfigOutcome::Applied)),
                        save: Some((
                            saved.clone(),
                            format!("{SAVED_REMOTE_HEADER}{}\n{}", rev.revision, rev.text),
                        )),
                    };
                    let new_source = remote_source(&name, rev.revision, &rev.text);
                    previous = Some((
                        std::mem::replace(&mut cfg, new),
                        std::mem::replace(&mut source, new_source),
                    ));
                }
                Err(e) => match (trying, previous.take()) {
                    (Some(rev), Some((good, good_source))) => {
                        tracing::error!(
                            revision = rev,
                            error = format!("{e:#}"),
                            "the new configuration does not start; going back to the previous one"
                        );
                        cfg = good;
                        source = good_source;
                        remote = pipeline::RemoteState {
                            after: rev,
                            pending: Some((
                                rev,
                                mw_bus::ConfigOutcome::Rejected(format!(
                                    "passed the checks but did not start: {e:#}"
                                )),
                            )),
                            save: None,
                        };
                    }
                    _ => return Err(e),
                },
            }
        }
    })
}

/// What the audit trail names as an applied remote revision.
fn remote_source(name: &str, revision: u64, text: &str) -> String {
    format!(
        "{name} (remote config revision {revision}) sha256={}",
        mw_security::audit::digest(text.as_bytes())
    )
}

/// The revision kept in `path` by an earlier run, if it is there and still passes the checks.
fn saved_remote(path: &std::path::Path) -> Option<(u64, mw_config::Config, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (first, body) = text.split_once('\n')?;
    let Some(rev) = first
        .strip_prefix(SAVED_REMOTE_HEADER)
        .and_then(|r| r.trim().parse::<u64>().ok())
    else {
        tracing::warn!(file = %path.display(), "not a kept remote config (no revision line); ignored");
        return None;
    };
    match millwright::config_registry().parse(body, &path.display().to_string()) {
        Ok(c) => Some((rev, c, body.to_owned())),
        Err(d) => {
            tracing::warn!(file = %path.display(), error = %d,
                "the kept remote config no longer passes the checks; running the local file");
            None
        }
    }
}

fn check(a: CheckArgs) -> Result<ExitCode> {
    if a.list_units {
        let mut text = String::new();
        for u in mw_model::UNITS {
            text.push_str(&format!("{:<10} {:<8} {}\n", u.code, u.symbol, u.quantity));
        }
        write_stdout(text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = a.config else {
        return Ok(ExitCode::from(EXIT_INVALID_CONFIG));
    };
    match millwright::config_registry().load(&path) {
        Ok(cfg) => {
            let devices = cfg
                .section::<mw_modbus::config::ModbusConfig>()
                .map_or(0, |m| m.devices.len());
            println!(
                "{}: OK — {} asset(s), {} device(s), {} tag(s); HTTP on {}",
                path.display(),
                cfg.asset_tree().assets().count(),
                devices,
                cfg.tags.len(),
                cfg.http.listener.address
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            // a central tier's file is checked as `millwright central` reads it
            let central = std::fs::read_to_string(&path).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.trim() == "[central]" || l.trim_start().starts_with("[central."))
            });
            let diags = if central {
                match mw_central::config_registry().load(&path) {
                    Ok(_) => {
                        println!(
                            "{}: OK — a [central] configuration (run it with `millwright central --config {}`)",
                            path.display(),
                            path.display()
                        );
                        return Ok(ExitCode::SUCCESS);
                    }
                    Err(d) => d,
                }
            } else {
                diags
            };
            eprintln!("{diags}");
            eprintln!("{}: {} error(s)", path.display(), diags.items.len());
            Ok(ExitCode::from(EXIT_INVALID_CONFIG))
        }
    }
}

/// The HTTP serving limits: the documented defaults plus the host names the config allows and
/// those given with `--allow-host`.
fn http_options(cfg: &mw_config::Config, allow_host: &[String]) -> mw_web::ServeOptions {
    let mut allowed_hosts = cfg.http.allowed_hosts.clone();
    allowed_hosts.extend(allow_host.iter().cloned());
    mw_web::ServeOptions {
        allowed_hosts,
        ..mw_web::ServeOptions::default()
    }
}

/// Applies the one listener policy (`mw_config::listener_policy`) to a listener given on the
/// command line, which has no TLS: loopback, or `--insecure` (logged as a warning).
pub fn guard_listener(
    what: &str,
    addr: SocketAddr,
    insecure: bool,
    tls_possible: bool,
) -> Result<()> {
    let l = mw_config::ListenerConfig {
        address: addr,
        tls: None,
        insecure,
    };
    if mw_config::listener_policy(what, &l, tls_possible)? == mw_config::Exposure::Insecure {
        tracing::warn!(%addr, "{what} listens beyond loopback without TLS (insecure)");
    }
    Ok(())
}

async fn demo(a: DemoArgs) -> Result<()> {
    guard_listener("HTTP", a.http, a.insecure, true)?;
    guard_listener("Modbus TCP", a.modbus, a.insecure, false)?;
    if let Some(addr) = a.mqtt {
        guard_listener("MQTT", addr, a.insecure, true)?;
    }
    let mut cfg = millwright::config_registry()
        .parse(DEMO_CONFIG, "examples/plant.toml (built in)")
        .map_err(|d| anyhow::anyhow!("the built-in demo configuration is invalid:\n{d}"))?;
    let http = pipeline::bind_http(a.http).await?;
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("cannot create the data directory {}", a.data_dir.display()))?;
    let sim = simrun::start(&a.sim, a.modbus, Some(a.data_dir.join("sim-labels.csv"))).await?;
    cfg.http.listener.address = http.local_addr()?;
    cfg.site.data_dir = a.data_dir.clone();
    cfg.http.listener.insecure = a.insecure;
    let modbus = cfg
        .section_mut::<mw_modbus::config::ModbusConfig>()
        .context("the demo configuration has no [[devices]] section")?;
    for d in modbus.devices.iter_mut().filter(|d| d.name == "sim") {
        d.endpoint = sim.modbus_addr.to_string();
        if let Some(ms) = a.poll_interval {
            d.poll_interval = std::time::Duration::from_millis(ms);
        }
    }
    if let Some(url) = &a.uplink {
        let u = mw_uplink::UplinkConfig::new("demo", url)
            .map_err(|e| anyhow::anyhow!("--uplink: {e}"))?;
        println!(
            "Forwarding to NATS JetStream at {url} (stream {})",
            u.stream_for(&u.site_for(&cfg.site.name))
        );
        cfg.section_mut::<mw_uplink::UplinkSection>()
            .context("the uplink component is not registered")?
            .uplinks
            .push(u);
    }
    if let Some(url) = &a.webhook {
        let mut t = mw_notify::config::TargetConfig::webhook("demo", url)
            .map_err(|e| anyhow::anyhow!("--webhook {url:?}: {e}"))?;
        t.filter.min_priority = mw_notify::config::Priority::High;
        println!("Notifying critical and high alarms to the webhook at {url}");
        cfg.section_mut::<mw_notify::NotifySection>()
            .context("the notify component is not registered")?
            .targets
            .push(t);
    }
    if let Some(addr) = a.mqtt {
        // a topic-friendly slug of the site name: "Acme Plant 1 (simulated)" → acme-plant-1-simulated
        let mut site = String::new();
        for c in cfg.site.name.chars() {
            if c.is_ascii_alphanumeric() {
                site.push(c.to_ascii_lowercase());
            } else if !site.ends_with('-') && !site.is_empty() {
                site.push('-');
            }
        }
        let site = match site.trim_end_matches('-') {
            "" => "site".to_string(),
            s => s.to_string(),
        };
        let b = cfg
            .section_mut::<mw_mqtt::MqttBrokerConfig>()
            .context("the MQTT broker component is not registered")?;
        let prefix = format!("millwright/{site}");
        b.enabled = true;
        b.listener.address = addr;
        b.listener.insecure = a.insecure;
        b.anonymous = addr.ip().is_loopback();
        b.uns_prefix = Some(prefix.clone());
        println!(
            "MQTT broker on {addr}, the plant under {prefix}/… (try: mosquitto_sub -h {} -p {} -t '{prefix}/#' -v{})",
            addr.ip(),
            addr.port(),
            if b.anonymous {
                ""
            } else {
                " -u USER -P PASSWORD"
            }
        );
    }
    println!(
        "Millwright demo: simulator on Modbus TCP {} (unit 1, seed {}, speed {}x); labels in {}",
        sim.modbus_addr,
        a.sim.seed,
        a.sim.speed,
        a.data_dir.join("sim-labels.csv").display()
    );
    let opts = http_options(&cfg, &a.allow_host);
    pipeline::run(
        cfg,
        Some(sim),
        Some(http),
        opts,
        true,
        "the demo's built-in configuration (examples/plant.toml)".to_owned(),
        pipeline::install_metrics()?,
        pipeline::RemoteState::default(),
    )
    .await
    .map(|_| ())
}
