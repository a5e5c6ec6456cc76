//! Millwright's configuration: parses the TOML file described in `docs/config.md`, checks it
//! against the schema and returns either a [`Config`] or **every** problem found, each with
//! its line and column (`plant.toml:14:9: unknown data type "flaot" for tag …`).
//!
//! The checker walks the spanned TOML document by hand instead of deriving `Deserialize`, so
//! that it can keep going after an error and point each message at the exact key or value.
//! Only a TOML syntax error stops it (one diagnostic).
//!
//! This crate does no I/O beyond [`load`] reading the file; it knows nothing of Modbus
//! connections, HTTP or storage — it only describes them.

mod check;
mod diagnostic;
mod types;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use types::{
    AssetConfig, Config, DetectorConfig, DetectorKind, DeviceConfig, HttpAuth, HttpConfig,
    ModbusTag, OverloadPolicy, PipelineConfig, RegisterTable, RulConfig, SiteConfig, WordOrder,
};

/// Parses and validates a config. `file` is only used to label the diagnostics.
pub fn parse(source: &str, file: &str) -> Result<Config, Diagnostics> {
    let (config, items) = check::check(source);
    if items.is_empty() {
        Ok(config)
    } else {
        Err(Diagnostics {
            file: file.to_owned(),
            items,
        })
    }
}

/// Reads and validates a config file. A read error is one diagnostic at 1:1.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => parse(&source, &file),
        Err(e) => Err(Diagnostics {
            items: vec![Diagnostic {
                line: 1,
                col: 1,
                message: format!("cannot read config file: {e}"),
            }],
            file,
        }),
    }
}

#[cfg(test)]
mod tests;
