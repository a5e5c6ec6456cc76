//! How a component crate plugs in: it names the config sections it owns and builds its sources,
//! processors and sinks from the validated config. The binary holds a list of components and
//! never needs to know what is inside one.

use std::any::Any;

use mw_config::{Config, Registry, Section};

use crate::{Processor, Sink, Source, WriteRegistry};

/// A component could not be built from a valid config (a file it needs is unreadable, …).
#[derive(Debug, thiserror::Error)]
#[error("{component}: {message}")]
pub struct BuildError {
    pub component: &'static str,
    pub message: String,
}

/// A pluggable capability: its config sections and the parts it adds to the bus.
pub trait Component: Send + Sync {
    /// Short name for errors and logs (`modbus`, `analytics`).
    fn name(&self) -> &'static str;

    /// The config sections it owns (each a top-level key). Default: none.
    fn sections(&self) -> Vec<Box<dyn Section>> {
        Vec::new()
    }

    /// Adds its sources, processors and sinks (and any run-time handle other layers need) to
    /// `parts`, from a config validated with the registry of [`config_registry`].
    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError>;

    /// Where new revisions of the whole configuration come from, when this component's
    /// sections in `cfg` ask for that (see [`crate::config_watch`]). Asked before the
    /// pipeline is built, with the same validated config. Default: none.
    fn config_watch(&self, cfg: &Config) -> Option<std::sync::Arc<dyn crate::ConfigWatch>> {
        let _ = cfg;
        None
    }
}

/// A config registry with every section of these components, in their order.
pub fn config_registry(components: &[&dyn Component]) -> Registry {
    let mut r = Registry::new();
    for c in components {
        for s in c.sections() {
            r.register(s);
        }
    }
    r
}

/// What components built: parts for the bus and handles for other layers (the HTTP API's
/// detector control, …), found by type; and the process's [`WriteRegistry`], where a source
/// registers the tags it can write and a consumer (the Sparkplug edge, the HTTP API) sends writes.
#[derive(Default)]
pub struct Parts {
    pub(crate) sources: Vec<Box<dyn Source>>,
    pub(crate) processors: Vec<Box<dyn Processor>>,
    pub(crate) sinks: Vec<Box<dyn Sink>>,
    handles: Vec<Box<dyn Any + Send>>,
    writes: WriteRegistry,
}

impl Parts {
    pub fn new() -> Parts {
        Parts::default()
    }

    pub fn add_source(&mut self, s: Box<dyn Source>) {
        self.sources.push(s);
    }

    /// Processors run in the order added (over all components).
    pub fn add_processor(&mut self, p: Box<dyn Processor>) {
        self.processors.push(p);
    }

    pub fn add_sink(&mut self, s: Box<dyn Sink>) {
        self.sinks.push(s);
    }

    /// Offers a run-time handle to other layers.
    pub fn provide<T: Any + Send>(&mut self, handle: T) {
        self.handles.push(Box::new(handle));
    }

    /// Takes the first handle of type `T`.
    pub fn take<T: Any + Send>(&mut self) -> Option<T> {
        let i = self.handles.iter().position(|h| h.is::<T>())?;
        self.handles.remove(i).downcast::<T>().ok().map(|b| *b)
    }

    /// The tag-write registry every component of this process shares (a clone).
    pub fn writes(&self) -> WriteRegistry {
        self.writes.clone()
    }

    pub fn source_count(&self) -> usize {
        self.sources.len()
    }

    pub fn sink_count(&self) -> usize {
        self.sinks.len()
    }
}
