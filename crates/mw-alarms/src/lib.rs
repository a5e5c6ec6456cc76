//! Alarms for Millwright, per ISA-18.2: definitions from the `[[alarms]]` config section
//! ([`config`]), the pure lifecycle state machine ([`lifecycle`]), the evaluator as a bus
//! processor with an operator handle ([`engine`]), a durable journal on mw-storage's WAL (through mw-historian's re-export)
//! ([`journal`]) and KPIs from the journal ([`kpi`]). User docs: `docs/alarms.md`.
//!
//! [`AlarmComponent`] registers the section and, when alarms are configured, builds one
//! [`AlarmProcessor`] (list it after the analytics, so their outputs are evaluated in the same
//! batch, and before deadband, so alarms see every sample) and provides an [`AlarmControl`].
//! The journal lives in `DATA_DIR/alarms/`.

pub mod config;
pub mod engine;
pub mod journal;
pub mod kpi;
pub mod lifecycle;

use std::sync::Arc;

use mw_bus::{BuildError, Component, Parts};
use mw_config::{Config, Section};

pub use config::{AlarmDef, AlarmsConfig, AlarmsSection, Condition, Priority};
pub use engine::{
    Action, ActionError, AlarmControl, AlarmInfo, AlarmProcessor, Clock, Subscription, Transition,
};
pub use journal::{Journal, JournalError, Record};
pub use lifecycle::State;

/// The journal's directory under the data directory.
pub fn journal_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("alarms")
}

/// The alarms component: the `[[alarms]]` section and the evaluator (none when no alarm is
/// configured). Provides an [`AlarmControl`].
pub struct AlarmComponent;

impl Component for AlarmComponent {
    fn name(&self) -> &'static str {
        "alarms"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(AlarmsSection)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        let defs = cfg.section::<AlarmsConfig>().map_or(&[][..], |a| &a.alarms);
        if defs.is_empty() {
            return Ok(());
        }
        let dir = journal_dir(&cfg.site.data_dir);
        let (processor, control) = engine::open(
            defs,
            Arc::new(mw_historian::FsStorage),
            dir,
            engine::system_clock(),
        )
        .map_err(|e| BuildError {
            component: "alarms",
            message: e.to_string(),
        })?;
        parts.add_processor(Box::new(processor));
        parts.provide(control);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
