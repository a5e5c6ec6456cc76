//! `millwright`: the Industrial IoT edge binary. Thin shell: CLI, config loading, wiring,
//! signals. All behaviour lives in the `mw-*` crates; the list of shipped components is the
//! package's library (`src/lib.rs`).

mod backtest;
mod cli;
mod history;
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
    // Offline history commands print their own summary: only warnings from the libraries.
    let quiet = matches!(
        cli.command,
        cli::Command::Query(_) | cli::Command::Export(_) | cli::Command::Import(_)
    );
    init_logging(cli.log.as_deref(), if quiet { "warn" } else { "info" });
    match cli::dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: Option<&str>, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => {
            EnvFilter::try_from_env("MILLWRIGHT_LOG").unwrap_or_else(|_| EnvFilter::new(default))
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
