//! Millwright's configuration: parses the TOML file described in `docs/config.md`, checks it
//! and returns either a [`Config`] or **every** problem found, each with its line and column
//! (`plant.toml:14:9: unknown data type "flaot" for tag …`).
//!
//! This crate owns the document walk, spans and diagnostics ([`Cx`]), the shared sections
//! (`[site]`, `[http]`, `[pipeline]`, `[[assets]]`, and the tags every source defines) and a
//! [`Registry`] of section checkers. Each component crate owns its own section's types and
//! validation and registers a [`Section`] for its top-level key: `mw-modbus` owns `[[devices]]`,
//! `mw-analytics` owns `[[detectors]]` and `[[rul]]`. Adding a section needs no edit here.
//!
//! The checker walks the spanned TOML document by hand instead of deriving `Deserialize`, so
//! that it can keep going after an error and point each message at the exact key or value.
//! Only a TOML syntax error stops it (one diagnostic).
//!
//! I/O: only [`Registry::load`] reads the file it is given; checking itself is pure. This crate
//! knows nothing of protocols, HTTP or storage — it only describes them.

mod cx;
mod diagnostic;
mod listener;
mod registry;
mod shared;
mod types;

pub use cx::{Claim, Cx, Elem, EntryKeys, Field, Item, Owner, Table, path_label};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use listener::{
    Exposure, LISTENER_KEYS, ListenerConfig, ListenerRefused, TlsFiles, listener_policy,
};
pub use registry::{Phase, Registry, Section};
pub use types::{
    AssetConfig, Config, HttpConfig, OverloadPolicy, PipelineConfig, SectionValue, SiteConfig,
};

#[cfg(test)]
mod tests;
