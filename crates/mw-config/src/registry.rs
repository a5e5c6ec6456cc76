//! The registry of section checkers. `mw-config` checks the shared sections itself (`[site]`,
//! `[http]`, `[pipeline]`, `[[assets]]`); every other top-level key belongs to a component
//! crate, which registers a [`Section`] for it. Registering a section needs no edit here.

use std::path::Path;

use toml::de::DeTable;

use crate::cx::{Cx, Table};
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::shared;
use crate::types::{Config, SectionValue};

/// When a section is checked relative to the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Defines tags (device maps, subscriptions): checked right after the shared sections.
    Sources,
    /// Refers to tags the sources define and may publish tags of its own (analytics, alarms):
    /// checked after every `Sources` section.
    Derived,
}

/// A component's checker for one top-level key.
pub trait Section: Send + Sync {
    /// The top-level key it owns (`devices`, `detectors`, …), or `parent.child` for a table
    /// inside a top-level table that several sections share (`mqtt.broker`, `mqtt.client`):
    /// the registry then allows `parent` at the top level, reports a `parent` that is not a
    /// table and every key in it that no section owns; the section reads its own table with
    /// [`Table::child`](crate::Table::child).
    fn key(&self) -> &'static str;

    fn phase(&self) -> Phase {
        Phase::Sources
    }

    /// Checks the section. `root` is the whole document: the checker reads its own key from it
    /// (absent: its defaults), reports every problem through `cx` and returns its value — which
    /// is meaningful only if no problem was reported. It must return a value of the same type
    /// whatever the input, so components can find it with [`Config::section`].
    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue>;
}

/// The shared sections plus every registered one.
#[derive(Default)]
pub struct Registry {
    sections: Vec<Box<dyn Section>>,
}

impl Registry {
    /// A registry with the shared sections only.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers a section.
    ///
    /// # Panics
    /// If its key is a shared section's or already registered: two owners of one key is a wiring
    /// bug that the first test run must show.
    pub fn register(&mut self, section: Box<dyn Section>) {
        let key = section.key();
        assert!(
            !shared::KEYS.contains(&key) && !self.keys().any(|k| k == key),
            "config section {key:?} registered twice"
        );
        // A key may not be both a section and the parent of dotted ones.
        let parent = parent_of(key);
        assert!(
            !shared::KEYS.contains(&parent)
                && !self
                    .keys()
                    .any(|k| (k == parent && k != key) || parent_of(k) == key),
            "config section {key:?} clashes with a section already registered"
        );
        self.sections.push(section);
    }

    /// [`Registry::register`], builder style.
    pub fn with(mut self, section: Box<dyn Section>) -> Registry {
        self.register(section);
        self
    }

    /// The registered keys, in registration order (the shared ones are not listed).
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.sections.iter().map(|s| s.key())
    }

    /// Parses and validates a config. `file` is only used to label the diagnostics.
    pub fn parse(&self, source: &str, file: &str) -> Result<Config, Diagnostics> {
        let (config, items) = self.check(source);
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
    pub fn load(&self, path: &Path) -> Result<Config, Diagnostics> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(source) => self.parse(&source, &file),
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

    /// Parses and checks `src`; the config is meaningful only if the diagnostics are empty.
    fn check(&self, src: &str) -> (Config, Vec<Diagnostic>) {
        let mut cx = Cx::new(src);
        let (root, errors) = DeTable::parse_recoverable(src);
        // The parser does not report errors in source order; the earliest one is the one to fix
        // first, and the others are often its consequences.
        let first = errors
            .iter()
            .min_by_key(|e| e.span().map_or(0, |s| s.start));
        let config = match first {
            None => self.root(Table::new(root.get_ref(), 0, "the top level"), &mut cx),
            Some(e) => {
                let at = e.span().map_or(0, |s| s.start);
                let mut msg = e.message().trim().replace('\n', " ");
                if msg == "duplicate key"
                    && let Some(key) = e.span().and_then(|s| src.get(s))
                {
                    msg = if key.starts_with(['"', '\'']) {
                        format!("duplicate key {key}")
                    } else {
                        format!("duplicate key {key:?}")
                    };
                }
                cx.err(at, format!("TOML syntax error: {msg}"));
                Config::default()
            }
        };
        (config, cx.finish())
    }

    fn root(&self, t: Table<'_, '_>, cx: &mut Cx<'_>) -> Config {
        let mut allowed: Vec<&str> = shared::KEYS.to_vec();
        let mut parents: Vec<&str> = Vec::new();
        for k in self.keys() {
            let p = parent_of(k);
            if !allowed.contains(&p) {
                allowed.push(p);
            }
            if p != k && !parents.contains(&p) {
                parents.push(p);
            }
        }
        cx.unknown_keys(t, &allowed);
        for p in parents {
            let name = format!("[{p}]");
            if let Some(f) = cx.table(t, p, false, &name) {
                let children: Vec<&str> = self
                    .keys()
                    .filter_map(|k| k.strip_prefix(p)?.strip_prefix('.'))
                    .collect();
                cx.unknown_keys(f.v, &children);
            }
        }
        let mut config = shared::check(t, cx);
        for phase in [Phase::Sources, Phase::Derived] {
            for s in self.sections.iter().filter(|s| s.phase() == phase) {
                let value = s.check(t, cx);
                config.sections.set(s.key(), value);
            }
        }
        config.tags = std::mem::take(&mut cx.tags);
        config.published = std::mem::take(&mut cx.published);
        config
    }
}

/// The top-level key of a section key: `mqtt` for `mqtt.broker`, the key itself otherwise.
fn parent_of(key: &str) -> &str {
    key.split_once('.').map_or(key, |(p, _)| p)
}
