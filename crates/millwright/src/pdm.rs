//! `millwright pdm train|predict`: remaining-useful-life models (library: mw-pdm).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mw_pdm::{CsvOptions, Format, Model, Run, TrainOptions};

use crate::progress::Progress;

#[derive(Subcommand, Debug)]
pub enum PdmCommand {
    /// Train a RUL model on run-to-failure histories (the last row of each unit is its failure).
    Train(TrainArgs),
    /// Predict the remaining useful life of each unit at its last observed cycle; writes `unit,rul,rul_lower,rul_upper`.
    Predict(PredictArgs),
}

#[derive(Args, Debug)]
pub struct InputArgs {
    /// Input layout: `cmapss` (NASA turbofan: unit, cycle, 3 settings, 21 sensors, whitespace-separated) or
    /// `csv` (header row; `asset`/`unit` column, `cycle`/`time` column, numeric feature columns; see docs/pdm.md).
    #[arg(long, value_name = "FORMAT")]
    pub format: Format,
    /// Input file.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// CSV only: field delimiter.
    #[arg(long, default_value_t = ',', value_name = "CHAR")]
    pub delimiter: char,
    /// CSV only: columns that are operating settings (normalisation groups), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    pub settings: Vec<String>,
    /// CSV only: columns to ignore, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    pub ignore: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Where to write the trained model (JSON).
    #[arg(long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Training targets are min(RUL, cap), in the input's time unit.
    #[arg(long, default_value_t = 125.0)]
    pub rul_cap: f64,
    /// Seed for every random choice (same data + seed → same model).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// A model written by `pdm train`.
    #[arg(long, value_name = "MODEL")]
    pub model: PathBuf,
    /// Output CSV (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
}

fn read(input: &InputArgs) -> Result<Vec<Run>> {
    let f = File::open(&input.input)
        .with_context(|| format!("cannot open {}", input.input.display()))?;
    let opts = CsvOptions {
        delimiter: input.delimiter,
        settings: input.settings.clone(),
        ignore: input.ignore.clone(),
        ..CsvOptions::default()
    };
    let runs = mw_pdm::read_runs(BufReader::new(f), input.format, &opts)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.input.display()))?;
    if runs.is_empty() {
        anyhow::bail!("{}: no units found", input.input.display());
    }
    Ok(runs)
}

fn create(path: &Path) -> Result<Box<dyn Write>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdout().lock()));
    }
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::new(f)))
}

pub fn dispatch(cmd: PdmCommand) -> Result<ExitCode> {
    match cmd {
        PdmCommand::Train(a) => {
            let runs = read(&a.input)?;
            let rows: usize = runs.iter().map(|r| r.len()).sum();
            eprintln!(
                "read {} unit(s), {rows} row(s) from {}",
                runs.len(),
                a.input.input.display()
            );
            if !(a.rul_cap.is_finite() && a.rul_cap > 0.0) {
                anyhow::bail!("--rul-cap must be a positive number (got {})", a.rul_cap);
            }
            let opts = TrainOptions {
                rul_cap: a.rul_cap,
                seed: a.seed,
                ..TrainOptions::default()
            };
            let started = Instant::now();
            let mut bar = Progress::new("training", "step");
            let model = mw_pdm::train(&runs, &opts, &mut |done, total| {
                bar.set(done as u64, total as u64)
            })
            .map_err(|e| anyhow::anyhow!("training failed: {e}"))?;
            bar.finish();
            let mut w = create(&a.model)?;
            model
                .save(&mut w)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", a.model.display()))?;
            w.flush()
                .with_context(|| format!("cannot write {}", a.model.display()))?;
            eprintln!(
                "trained in {:.1} s; model written to {}",
                started.elapsed().as_secs_f64(),
                a.model.display()
            );
            eprintln!("{}", serde_summary(&model));
            Ok(ExitCode::SUCCESS)
        }
        PdmCommand::Predict(a) => {
            let f = File::open(&a.model)
                .with_context(|| format!("cannot open model {}", a.model.display()))?;
            let model = Model::load(BufReader::new(f))
                .map_err(|e| anyhow::anyhow!("{}: not a usable model: {e}", a.model.display()))?;
            let runs = read(&a.input)?;
            let mut out = Vec::with_capacity(runs.len());
            for r in &runs {
                let p = model
                    .predict_last(r)
                    .map_err(|e| anyhow::anyhow!("unit {}: {e}", r.unit))?;
                out.push((r.unit.clone(), p));
            }
            let mut w = create(&a.output)?;
            mw_pdm::write_predictions(&mut w, &out)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", a.output.display()))?;
            w.flush()
                .with_context(|| format!("cannot write {}", a.output.display()))?;
            if a.output.as_os_str() != "-" {
                eprintln!(
                    "predicted {} unit(s); written to {}",
                    out.len(),
                    a.output.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serde_summary(model: &Model) -> String {
    let i = model.info();
    let cv = i
        .cv_rmse
        .map(|r| format!("{r:.2}"))
        .unwrap_or_else(|| "n/a".into());
    format!(
        "model: {} unit(s), {} row(s), {} input column(s) ({} constant dropped), {} operating condition(s), \
         {} feature(s); cross-validated RMSE of min(RUL, {}) = {cv}",
        i.units,
        i.rows,
        i.inputs.len(),
        i.dropped.len(),
        i.conditions,
        i.features,
        i.options.rul_cap
    )
}
