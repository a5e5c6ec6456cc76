//! The validated configuration: plain values, every default already applied.

use std::any::Any;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use mw_model::{AssetKind, AssetTree, TagDef};

use crate::listener::ListenerConfig;

/// A whole, validated configuration file: the shared sections, every tag the sources define and
/// every tag the processors publish, and one value per registered section (see
/// [`crate::Registry`]), which only the component that registered it knows how to read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub site: SiteConfig,
    pub http: HttpConfig,
    pub pipeline: PipelineConfig,
    pub assets: Vec<AssetConfig>,
    /// Tags defined by source sections (device tags, …), in file order.
    pub tags: Vec<TagDef>,
    /// Tags published by processors (analytics outputs, …), in check order.
    pub published: Vec<TagDef>,
    pub(crate) sections: Sections,
}

impl Config {
    /// The asset tree: declared assets, every defined tag (a tag under an undeclared asset
    /// creates that asset), then the published tags. A validated config adds without error; on
    /// a hand-built `Config`, entries the tree refuses (bad or duplicate paths) are skipped.
    pub fn asset_tree(&self) -> AssetTree {
        let mut tree = AssetTree::new();
        for a in &self.assets {
            let _ = tree.add_asset(&a.path, a.kind.clone(), &a.description);
        }
        for def in self.tags.iter().chain(&self.published) {
            let _ = tree.add_tag(def.clone());
        }
        tree
    }

    /// The value of the registered section of type `T` (`None` if no section of that type was
    /// registered when this config was parsed).
    pub fn section<T: Any>(&self) -> Option<&T> {
        self.sections
            .0
            .iter()
            .find_map(|(_, v)| v.as_any().downcast_ref::<T>())
    }

    /// Mutable access, for callers that adjust a validated config (the demo points its device
    /// at the simulator's port).
    pub fn section_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.sections
            .0
            .iter_mut()
            .find_map(|(_, v)| v.as_any_mut().downcast_mut::<T>())
    }

    /// Sets (or replaces) the value of the section `key`, as a checker would have.
    pub fn set_section<T: SectionValue>(&mut self, key: &'static str, value: T) {
        self.sections.set(key, Box::new(value));
    }

    /// The keys of the sections this config has values for, in registration order.
    pub fn section_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sections.0.iter().map(|(k, _)| *k)
    }
}

/// A registered section's checked value: any plain value that can be cloned, compared and
/// printed (implemented for every such type).
pub trait SectionValue: Any + Send + Sync + fmt::Debug {
    fn clone_box(&self) -> Box<dyn SectionValue>;
    fn eq_dyn(&self, other: &dyn SectionValue) -> bool;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Send + Sync + fmt::Debug + Clone + PartialEq> SectionValue for T {
    fn clone_box(&self) -> Box<dyn SectionValue> {
        Box::new(self.clone())
    }

    fn eq_dyn(&self, other: &dyn SectionValue) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The registered sections' values by key, in registration order.
#[derive(Debug, Default)]
pub(crate) struct Sections(pub(crate) Vec<(&'static str, Box<dyn SectionValue>)>);

impl Sections {
    pub(crate) fn set(&mut self, key: &'static str, value: Box<dyn SectionValue>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }
}

impl Clone for Sections {
    fn clone(&self) -> Self {
        Sections(self.0.iter().map(|(k, v)| (*k, v.clone_box())).collect())
    }
}

impl PartialEq for Sections {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((ka, va), (kb, vb))| ka == kb && va.eq_dyn(vb.as_ref()))
    }
}
/// `[site]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteConfig {
    pub name: String,
    /// Where Millwright keeps its files (users, tokens, audit trail, certificates, history),
    /// relative to the working directory unless absolute.
    pub data_dir: std::path::PathBuf,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            name: "Millwright".to_owned(),
            data_dir: "millwright-data".into(),
        }
    }
}

/// `[http]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Address, TLS and `insecure`, checked by the one listener policy.
    pub listener: ListenerConfig,
    /// Host names (lower case) the API answers to besides its own address and `localhost`
    /// (the `Host` check against DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listener: ListenerConfig {
                address: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
                tls: None,
                insecure: false,
            },
            allowed_hosts: Vec::new(),
        }
    }
}

/// `[pipeline]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Batches queued between the sources and the fan-out.
    pub bus_capacity: usize,
    /// Batches queued per sink, for sinks whose own section does not size their queue.
    pub sink_capacity: usize,
    /// Overload policy of sinks whose own section does not set one (the live store's).
    pub overload: OverloadPolicy,
    /// Samples kept per tag in the live store.
    pub live_window: usize,
    /// Batches whose acknowledgement sources may await at once; more wait for a slot.
    pub max_pending_acks: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            bus_capacity: 1024,
            sink_capacity: 1024,
            overload: OverloadPolicy::Block,
            live_window: 600,
            max_pending_acks: 4096,
        }
    }
}

/// What the fan-out does when a sink's queue is full (the config's spelling of the bus's
/// `Overload`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OverloadPolicy {
    /// Wait: backpressure reaches the sources.
    #[default]
    Block,
    /// Drop the incoming batch for that sink and count it.
    DropNewest,
    /// Drop the oldest queued batch for that sink, queue the new one, and count it.
    DropOldest,
}

impl OverloadPolicy {
    pub const ALL: [OverloadPolicy; 3] = [
        OverloadPolicy::Block,
        OverloadPolicy::DropNewest,
        OverloadPolicy::DropOldest,
    ];

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            OverloadPolicy::Block => "block",
            OverloadPolicy::DropNewest => "drop_newest",
            OverloadPolicy::DropOldest => "drop_oldest",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl fmt::Display for OverloadPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `[[assets]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AssetConfig {
    pub path: String,
    pub kind: AssetKind,
    pub description: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        for p in OverloadPolicy::ALL {
            assert_eq!(OverloadPolicy::parse(p.name()), Some(p));
        }
        assert_eq!(OverloadPolicy::parse("drop"), None);
    }

    #[test]
    fn defaults_match_docs() {
        let c = Config::default();
        assert_eq!(c.site.name, "Millwright");
        assert_eq!(c.http.listener.address.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.pipeline,
            PipelineConfig {
                bus_capacity: 1024,
                sink_capacity: 1024,
                overload: OverloadPolicy::Block,
                live_window: 600,
                max_pending_acks: 4096,
            }
        );
        assert!(c.tags.is_empty() && c.published.is_empty());
    }

    #[derive(Clone, Debug, PartialEq)]
    struct Toy(u32);

    #[test]
    fn sections_are_found_by_type_and_compared_by_value() {
        let mut a = Config::default();
        assert_eq!(a.section::<Toy>(), None);
        a.set_section("toy", Toy(1));
        assert_eq!(a.section::<Toy>(), Some(&Toy(1)));
        let mut b = a.clone();
        assert_eq!(a, b);
        b.section_mut::<Toy>().unwrap().0 = 2;
        assert_ne!(a, b);
        b.set_section("toy", Toy(1));
        assert_eq!(a, b, "set_section replaces the value of the same key");
        assert_eq!(b.section_keys().collect::<Vec<_>>(), ["toy"]);
    }
}
