//! Runs the plant simulator in real (or accelerated) time and serves its register image over
//! Modbus TCP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mw_config::RegisterTable;
use mw_modbus::server::{RegisterImage, SharedImage};
use mw_sim::{Plant, SimConfig, Table};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{SimArgs, SimOptions};

/// Real-time step period of the simulator loop.
const TICK: Duration = Duration::from_millis(100);

/// A running simulator: its plant (shared with the web layer for fault injection), the Modbus
/// server address, and the tasks to stop.
pub struct SimRunning {
    pub plant: Arc<Mutex<Plant>>,
    pub wall_start_ns: i64,
    pub speed: f64,
    pub modbus_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimRunning {
    /// Stops the stepping loop and the Modbus server (bounded wait).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_millis(500), t).await;
        }
    }
}

fn table(t: Table) -> RegisterTable {
    match t {
        Table::Coil => RegisterTable::Coil,
        Table::DiscreteInput => RegisterTable::DiscreteInput,
        Table::InputRegister => RegisterTable::InputRegister,
        Table::HoldingRegister => RegisterTable::HoldingRegister,
    }
}

/// Copies the plant's registers into the served image; points whose sensor dropped out are
/// answered with Modbus exception 11 instead of their sentinel value.
fn publish_image(plant: &Plant, image: &SharedImage) {
    let regs = plant.registers();
    let unavailable = plant.unavailable();
    let mut img = image.write().unwrap_or_else(|e| e.into_inner());
    img.coils = regs.coils;
    img.discrete_inputs = regs.discrete_inputs;
    img.input_registers = regs.input_registers;
    img.holding_registers = regs.holding_registers;
    img.unavailable.clear();
    for p in unavailable {
        let width = if matches!(p.data_type, "f32" | "u32" | "i32") {
            2
        } else {
            1
        };
        img.mark_unavailable(table(p.table), p.address, width);
    }
}

fn write_labels(plant: &Plant, path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        if path.extension().is_some_and(|e| e == "json") {
            plant.write_labels_json(&mut f)?;
        } else {
            plant.write_labels_csv(&mut f)?;
        }
        std::io::Write::flush(&mut f)?;
    }
    std::fs::rename(&tmp, path)
}

/// Parses a fault schedule: `start_s,asset,kind,duration_s[,point]` per line. Every bad line is
/// reported (`FILE:LINE: message`), not only the first.
pub fn parse_schedule(text: &str, file: &str) -> Result<Vec<mw_sim::ScheduledFault>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen_first = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let first = std::mem::replace(&mut seen_first, true);
        if !first && line.starts_with("start") {
            continue; // header
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let err = |m: String| format!("{file}:{}: {m}", i + 1);
        if !(4..=5).contains(&f.len()) {
            errors.push(err(format!(
                "expected start_s,asset,kind,duration_s[,point], found {} field(s)",
                f.len()
            )));
            continue;
        }
        let number = |v: &str, name: &str| {
            v.parse::<f64>()
                .map_err(|_| err(format!("{name} {v:?} is not a number")))
        };
        let (start_s, duration_s) = match (number(f[0], "start_s"), number(f[3], "duration_s")) {
            (Ok(s), Ok(d)) => (s, d),
            (Err(e), _) | (_, Err(e)) => {
                errors.push(e);
                continue;
            }
        };
        let kind: mw_sim::FaultKind = match f[2].parse() {
            Ok(k) => k,
            Err(e) => {
                errors.push(err(e.to_string()));
                continue;
            }
        };
        out.push(mw_sim::ScheduledFault {
            start_s,
            asset: f[1].to_owned(),
            kind,
            duration_s,
            point: f.get(4).filter(|p| !p.is_empty()).map(|p| (*p).to_owned()),
        });
    }
    // semantic checks (unknown asset, bad duration, …) by the simulator itself
    let probe = SimConfig {
        schedule: out.clone(),
        ..SimConfig::default()
    };
    for p in probe.validate() {
        errors.push(format!("{file}: {}: {}", p.location, p.error));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        anyhow::bail!("invalid fault schedule:\n{}", errors.join("\n"))
    }
}

fn read_schedule(path: &Path) -> Result<Vec<mw_sim::ScheduledFault>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the fault schedule {}", path.display()))?;
    parse_schedule(&text, &path.display().to_string())
}

/// The simulator configuration for these options, validated.
fn sim_config(opts: &SimOptions, start_epoch_ns: i64) -> Result<SimConfig> {
    let cfg = SimConfig {
        seed: opts.seed,
        start_epoch_ns,
        random_faults: (opts.fault_interval > 0.0).then_some(opts.fault_interval),
        schedule: match &opts.schedule {
            Some(path) => read_schedule(path)?,
            None => Vec::new(),
        },
    };
    let problems = cfg.validate();
    if !problems.is_empty() {
        let msgs: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.location, p.error))
            .collect();
        anyhow::bail!("invalid simulator settings: {}", msgs.join("; "));
    }
    Ok(cfg)
}

/// Starts the simulator loop and its Modbus server on `addr` (port 0 picks a free port).
pub async fn start(
    opts: &SimOptions,
    addr: SocketAddr,
    labels: Option<PathBuf>,
) -> Result<SimRunning> {
    let wall_start_ns = mw_model::now_ns();
    let plant = Plant::new(sim_config(opts, wall_start_ns)?);
    let image = RegisterImage::default().shared();
    publish_image(&plant, &image);
    let plant = Arc::new(Mutex::new(plant));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for Modbus TCP on {addr} (is another program using it? use --modbus ADDR)"))?;
    let modbus_addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);

    let server = {
        let image = image.clone();
        let rx = stop_rx.clone();
        tokio::spawn(async move {
            if let Err(e) = mw_modbus::server::serve(listener, image, rx).await {
                tracing::error!(error = %e, "simulator Modbus server failed");
            }
        })
    };
    let stepper = {
        let plant = plant.clone();
        let speed = opts.speed;
        let mut rx = stop_rx;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = Instant::now();
            let mut faults_seen = usize::MAX;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = rx.changed() => break,
                }
                let now = Instant::now();
                let dt = now.duration_since(last).as_secs_f64() * speed;
                last = now;
                let mut p = plant.lock().unwrap_or_else(|e| e.into_inner());
                p.step(dt);
                publish_image(&p, &image);
                if let Some(path) = &labels {
                    let faults = p.faults();
                    let active = faults.iter().filter(|f| f.active).count();
                    let key = faults.len() * 1000 + active;
                    if key != faults_seen {
                        faults_seen = key;
                        if let Err(e) = write_labels(&p, path) {
                            tracing::warn!(file = %path.display(), error = %e, "cannot write fault labels");
                        }
                    }
                }
            }
            if let Some(path) = &labels {
                let p = plant.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = write_labels(&p, path) {
                    tracing::warn!(file = %path.display(), error = %e, "cannot write fault labels");
                }
            }
        })
    };
    Ok(SimRunning {
        plant,
        wall_start_ns,
        speed: opts.speed,
        modbus_addr,
        stop,
        tasks: vec![stepper, server],
    })
}

/// `millwright sim --export`: simulates `duration_s` seconds offline and writes one CSV row per
/// `step_s`: `timestamp` (RFC 3339, simulated clock starting at `start_ns`), every point by tag path (empty
/// while it has dropped out), then the ground truth: `fault` (1 while any fault is active),
/// `fault:ASSET` for every asset with points (1 while a fault that changes this asset's
/// readings is active, see `FaultRecord::affected_assets`), `faults` (the active faults as
/// `asset:kind`, `+`-separated) and `bearing_wear` (0…1).
pub fn export(
    opts: &SimOptions,
    path: &Path,
    duration_s: f64,
    step_s: f64,
    start_ns: i64,
    labels: Option<&Path>,
) -> Result<()> {
    use std::fmt::Write as _;
    use std::io::Write;
    let mut plant = Plant::new(sim_config(opts, start_ns)?);
    let tmp = path.with_extension("tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let write_err = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", tmp.display());
    let points = plant.points();
    let mut header = vec!["timestamp".to_owned()];
    header.extend(points.iter().map(|p| p.path()));
    let mut assets: Vec<&'static str> = points.iter().map(|p| p.asset).collect();
    assets.sort_unstable();
    assets.dedup();
    header.push("fault".into());
    header.extend(assets.iter().map(|a| format!("fault:{a}")));
    header.extend(["faults", "bearing_wear"].map(String::from));
    writeln!(w, "{}", header.join(",")).map_err(write_err)?;
    let rows = (duration_s / step_s).floor() as u64 + 1;
    let mut progress = crate::progress::Progress::new("simulating", "row");
    let mut line = String::new();
    // The ground-truth cells change only when a fault starts or ends.
    let mut truth_of: Option<Vec<mw_sim::FaultId>> = None;
    let mut truth = String::new();
    for i in 0..rows {
        if i > 0 {
            plant.step(step_s);
        }
        line.clear();
        line.push_str(&mw_model::format_rfc3339_ns(plant.now_ns()));
        for p in plant.points() {
            line.push(',');
            if let Some(v) = p.value {
                let _ = write!(line, "{v}");
            }
        }
        let active = plant.active_faults();
        let ids: Vec<mw_sim::FaultId> = active.iter().map(|f| f.id).collect();
        if truth_of.as_ref() != Some(&ids) {
            truth = truth_cells(&active, &assets);
            truth_of = Some(ids);
        }
        let _ = write!(line, "{truth},{:.6}", plant.bearing_wear());
        writeln!(w, "{line}").map_err(write_err)?;
        if i % 1000 == 0 {
            progress.set(i, rows);
        }
    }
    progress.finish();
    w.flush().map_err(write_err)?;
    drop(w);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(l) = labels {
        write_labels(&plant, l).with_context(|| format!("cannot write {}", l.display()))?;
    }
    eprintln!(
        "wrote {rows} rows ({duration_s} simulated seconds, step {step_s} s, seed {}) to {}",
        opts.seed,
        path.display()
    );
    Ok(())
}

/// `,fault,fault:ASSET…,faults` of one exported row, for these active faults.
fn truth_cells(active: &[mw_sim::FaultRecord], assets: &[&'static str]) -> String {
    let mut s = String::from(if active.is_empty() { ",0" } else { ",1" });
    for a in assets {
        let hit = active.iter().any(|f| f.affected_assets().contains(a));
        s.push_str(if hit { ",1" } else { ",0" });
    }
    let names: Vec<String> = active
        .iter()
        .map(|f| {
            let short = f.asset.rsplit('/').next().unwrap_or(&f.asset);
            format!("{short}:{}", f.kind)
        })
        .collect();
    s.push(',');
    s.push_str(&names.join("+"));
    s
}

/// `millwright sim`: only the simulator and its Modbus server, until Ctrl-C / SIGTERM.
pub async fn run_standalone(a: SimArgs) -> Result<()> {
    crate::cli::guard_listener("Modbus TCP", a.modbus, a.allow_unauthenticated)?;
    let sim = start(&a.sim, a.modbus, a.labels.clone()).await?;
    println!(
        "Millwright simulator: Modbus TCP on {} (unit 1, seed {}, speed {}x); register map in docs/simulator.md{}",
        sim.modbus_addr,
        a.sim.seed,
        a.sim.speed,
        a.labels
            .as_ref()
            .map(|p| format!("; labels in {}", p.display()))
            .unwrap_or_default()
    );
    crate::pipeline::shutdown_signal().await;
    tracing::info!("shutting down");
    sim.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_parses_and_reports_every_bad_line() {
        let ok = parse_schedule(
            "# faults\nstart_s,asset,kind,duration_s,point\n60,gd1,gas_release,120\n# comment\n300, pump1, dropout, 30, flow\n",
            "s.csv",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].point.as_deref(), Some("flow"));
        assert_eq!(ok[0].kind, mw_sim::FaultKind::GasRelease);
        let err = parse_schedule(
            "x,gd1,gas_release,1\n5,gd1,meteor,1\n5,gd1\n5,nowhere,leak,10\n",
            "s.csv",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("s.csv:1: start_s \"x\" is not a number"),
            "{err}"
        );
        assert!(
            err.contains("s.csv:2: unknown fault kind \"meteor\""),
            "{err}"
        );
        assert!(err.contains("s.csv:3: expected"), "{err}");
        assert!(err.contains("unknown asset"), "{err}");
    }
}
