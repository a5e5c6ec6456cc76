//! Sparkplug B over MQTT (issue 12, items 3 and 4): the runtime with I/O around mw-sparkplug's
//! pure state machines, on mw-mqtt's client connection (rumqttc).
//!
//! - [`config`]: `[sparkplug.edge]` and `[sparkplug.host]` (the connection keys of
//!   `[[mqtt.client]]` plus their own).
//! - [`mapping`]: tag paths ↔ Sparkplug device and metric names (pure).
//! - [`bdseq`]: the edge node's bdSeq file under `<site.data_dir>/sparkplug/` (mw-storage).
//! - [`edge`]: the edge node, a sink of the pipeline's samples and its connection task.
//! - [`host`]: the host application, a source of samples from births and data.
//!
//! docs/sparkplug.md describes both for operators.

pub mod bdseq;
pub mod config;
pub mod edge;
pub mod host;
pub mod mapping;
mod session;

use std::sync::Arc;

use mw_bus::{BuildError, Component, Parts};
use mw_config::{Config, Section};

pub use config::{DeviceRule, EdgeConfig, EdgeSection, HostConfig, HostSection};

/// `[sparkplug.edge]`: an edge node publishing the pipeline's samples.
pub struct SparkplugEdgeComponent;

impl Component for SparkplugEdgeComponent {
    fn name(&self) -> &'static str {
        "sparkplug-edge"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(config::EdgeChecker)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        let Some(EdgeSection(Some(e))) = cfg.section::<EdgeSection>() else {
            return Ok(());
        };
        add_edge(
            e.clone(),
            &cfg.site.data_dir,
            cfg.pipeline.sink_capacity,
            parts,
        )
        .map_err(|message| BuildError {
            component: "sparkplug-edge",
            message,
        })
    }
}

/// Adds an edge node's sink and connection task to `parts`, its bdSeq file under `data_dir`
/// (also used by `millwright sim --sparkplug`).
pub fn add_edge(
    cfg: EdgeConfig,
    data_dir: &std::path::Path,
    default_queue: usize,
    parts: &mut Parts,
) -> Result<(), String> {
    let file = bdseq::BdSeqFile::new(
        Arc::new(mw_storage::FsStorage),
        data_dir,
        &cfg.group_id,
        &cfg.edge_node_id,
    );
    let (source, sink) = edge::build(cfg, file, default_queue, parts.writes())?;
    parts.add_source(Box::new(source));
    parts.add_sink(Box::new(sink));
    Ok(())
}

/// `[sparkplug.host]`: a host application whose births and data become samples.
pub struct SparkplugHostComponent;

impl Component for SparkplugHostComponent {
    fn name(&self) -> &'static str {
        "sparkplug-host"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(config::HostChecker)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        let Some(HostSection(Some(h))) = cfg.section::<HostSection>() else {
            return Ok(());
        };
        let source = host::build(h.clone()).map_err(|message| BuildError {
            component: "sparkplug-host",
            message,
        })?;
        parts.add_source(Box::new(source));
        Ok(())
    }
}
