//! Runs the plant simulator in real (or accelerated) time and serves its register image over
//! Modbus TCP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mw_modbus::config::RegisterTable;
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

fn read_schedule(path: &Path) -> Result<Vec<mw_sim::ScheduledFault>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the fault schedule {}", path.display()))?;
    Ok(mw_sim::parse_schedule(&text, &path.display().to_string())?)
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

/// `millwright sim --export`: simulates `duration_s` seconds offline from `start_ns` and writes
/// the CSV of `mw_sim::export_csv` (readings and ground truth, one row per `step_s`) to `path`
/// (through a temporary file, renamed when complete), and the fault labels to `labels`.
pub fn export(
    opts: &SimOptions,
    path: &Path,
    duration_s: f64,
    step_s: f64,
    start_ns: i64,
    labels: Option<&Path>,
) -> Result<()> {
    let mut plant = Plant::new(sim_config(opts, start_ns)?);
    let tmp = path.with_extension("tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut progress = crate::progress::Progress::new("simulating", "row");
    let rows = mw_sim::export_csv(
        &mut plant,
        duration_s,
        step_s,
        std::io::BufWriter::new(file),
        |done, total| progress.set(done, total),
    )
    .map_err(|e| match e {
        mw_sim::ExportError::Io(e) => anyhow::anyhow!("cannot write {}: {e}", tmp.display()),
        e => anyhow::Error::new(e),
    })?;
    progress.finish();
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

/// `millwright sim`: only the simulator and its Modbus server, until Ctrl-C / SIGTERM.
pub async fn run_standalone(a: SimArgs) -> Result<()> {
    crate::cli::guard_listener("Modbus TCP", a.modbus, a.insecure, false)?;
    let edge_cfg = match &a.sparkplug {
        Some(url) => Some(
            millwright::sim_sparkplug::edge_config(url, &a.sparkplug_group, &a.sparkplug_node)
                .map_err(|e| anyhow::anyhow!("--sparkplug: {e}"))?,
        ),
        None => None,
    };
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
    let edge = match (edge_cfg, &a.sparkplug) {
        (Some(cfg), Some(url)) => {
            let e = millwright::sim_sparkplug::SimEdge::start(cfg, &a.data_dir, sim.plant.clone())
                .map_err(|e| anyhow::anyhow!("--sparkplug: {e}"))?;
            println!(
                "Sparkplug B edge node spBv1.0/{}/…/{} publishing to {url} (bdSeq in {})",
                a.sparkplug_group,
                a.sparkplug_node,
                a.data_dir.join("sparkplug").display()
            );
            Some(e)
        }
        _ => None,
    };
    crate::pipeline::shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(e) = edge {
        e.stop().await;
    }
    sim.stop().await;
    Ok(())
}
