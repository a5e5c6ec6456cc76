//! `millwright`: the Industrial IoT edge binary. Thin shell: CLI, config loading, wiring,
//! signals. All behaviour lives in the `mw-*` crates; the list of shipped components is the
//! package's library (`src/lib.rs`).

mod backtest;
mod cli;
mod pdm;
mod pipeline;
mod progress;
mod security;
mod simrun;
mod web_adapters;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.log.as_deref());
    match cli::dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => {
            EnvFilter::try_from_env("MILLWRIGHT_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
        }
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}
