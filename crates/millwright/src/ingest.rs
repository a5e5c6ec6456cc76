//! What HTTP writes may do to tags: the rules the binary's `mw_web::Ingest` applies before a
//! batch goes on the bus.
//!
//! * A tag a configured source publishes (every tag of the asset tree) is not writable over
//!   HTTP: a line-protocol client must not overwrite what a device measured.
//! * A tag that does not exist yet is created on first write, typed by its field, as InfluxDB
//!   does — unless creating tags is turned off, when only tags written before may be written.
//! * A tag keeps its type: a later write of another type (an integer into a float tag) is refused
//!   naming both types. Types are learnt from writes of this run and from the latest stored
//!   value of the tag (so they hold across restarts).
//!
//! A batch is checked whole before anything is recorded, so a refused batch teaches nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use mw_model::{AssetTree, Sample, TagPath, Value};

/// The type of a written tag, as line protocol names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Float,
    Integer,
    Unsigned,
    Boolean,
    String,
}

impl Kind {
    pub fn of(v: &Value) -> Kind {
        match v {
            Value::F64(_) | Value::F32(_) => Kind::Float,
            Value::I64(_) => Kind::Integer,
            Value::U64(_) => Kind::Unsigned,
            Value::Bool(_) => Kind::Boolean,
            Value::Str(_) => Kind::String,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Float => "float",
            Kind::Integer => "integer",
            Kind::Unsigned => "unsigned",
            Kind::Boolean => "boolean",
            Kind::String => "string",
        }
    }
}

/// A refused sample: its index in the batch and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub index: usize,
    pub message: String,
}

/// The types of the tags HTTP writes have made, and the rules above.
pub struct TagKinds {
    /// Tags a source owns (not writable).
    configured: std::collections::HashSet<TagPath>,
    create: bool,
    /// Most tags it remembers; a write that would create more is refused.
    max_tags: usize,
    known: Mutex<HashMap<TagPath, Kind>>,
}

/// Most tags HTTP writes may create in one process run (the live store holds 100 000).
pub const MAX_WRITTEN_TAGS: usize = 50_000;

impl TagKinds {
    pub fn new(tree: &AssetTree, create: bool) -> TagKinds {
        TagKinds {
            configured: tree.tags().map(|d| d.path.clone()).collect(),
            create,
            max_tags: MAX_WRITTEN_TAGS,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a batch; on success records the types it introduced and returns how many tags it
    /// created. `stored` gives the latest stored value of a tag not seen in this run (the
    /// historian), so its type is kept across restarts.
    pub fn admit(
        &self,
        samples: &[Sample],
        stored: impl Fn(&TagPath) -> Option<Value>,
    ) -> Result<usize, Refusal> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh: HashMap<TagPath, Kind> = HashMap::new();
        let mut created = 0;
        for (index, s) in samples.iter().enumerate() {
            if self.configured.contains(&s.tag) {
                return Err(Refusal {
                    index,
                    message: format!(
                        "tag {} is published by a configured source; HTTP writes may not overwrite it",
                        s.tag
                    ),
                });
            }
            let kind = Kind::of(&s.value);
            let had = match known.get(&s.tag).or_else(|| fresh.get(&s.tag)) {
                Some(k) => Some(*k),
                None => stored(&s.tag).map(|v| Kind::of(&v)),
            };
            match had {
                Some(k) if k != kind => {
                    return Err(Refusal {
                        index,
                        message: format!(
                            "field type conflict: tag {} is {}, this value is {}",
                            s.tag,
                            k.as_str(),
                            kind.as_str()
                        ),
                    });
                }
                Some(k) => {
                    if !known.contains_key(&s.tag) {
                        fresh.insert(s.tag.clone(), k);
                    }
                }
                None if !self.create => {
                    return Err(Refusal {
                        index,
                        message: format!(
                            "tag {} does not exist and creating tags by writing is turned off ([historian] create_tags = false)",
                            s.tag
                        ),
                    });
                }
                None => {
                    if known.len() + fresh.len() >= self.max_tags {
                        return Err(Refusal {
                            index,
                            message: format!(
                                "tag {} would be tag number {} created by writes; at most {}",
                                s.tag,
                                known.len() + fresh.len() + 1,
                                self.max_tags
                            ),
                        });
                    }
                    fresh.insert(s.tag.clone(), kind);
                    created += 1;
                }
            }
        }
        known.extend(fresh);
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mw_model::{DataType, TagDef};

    fn s(tag: &str, v: Value) -> Sample {
        Sample::good(TagPath::new(tag).unwrap(), v, 1)
    }

    fn tree() -> AssetTree {
        let mut t = AssetTree::new();
        t.add_asset("site/pump1", mw_model::AssetKind::Pump, "pump")
            .unwrap();
        t.add_tag(TagDef::new(
            TagPath::new("site/pump1/flow").unwrap(),
            DataType::F32,
        ))
        .unwrap();
        t
    }

    #[test]
    fn creates_types_and_refuses_conflicts_naming_the_sample() {
        let k = TagKinds::new(&tree(), true);
        let none = |_: &TagPath| None;
        assert_eq!(
            k.admit(
                &[
                    s("truck/t1/v", Value::F64(1.0)),
                    s("truck/t1/v", Value::F64(2.0))
                ],
                none
            ),
            Ok(1)
        );
        let e = k
            .admit(
                &[
                    s("truck/t1/w", Value::I64(1)),
                    s("truck/t1/v", Value::I64(3)),
                ],
                none,
            )
            .unwrap_err();
        assert_eq!(e.index, 1);
        assert!(
            e.message.contains("is float, this value is integer"),
            "{}",
            e.message
        );
        // the refused batch taught nothing: w is still free to be a string
        assert_eq!(
            k.admit(&[s("truck/t1/w", Value::Str("x".into()))], none),
            Ok(1)
        );
        // a conflict inside one batch
        let e = k
            .admit(
                &[
                    s("truck/t2/v", Value::Bool(true)),
                    s("truck/t2/v", Value::F64(1.0)),
                ],
                none,
            )
            .unwrap_err();
        assert_eq!(e.index, 1);
    }

    #[test]
    fn source_tags_are_not_writable_and_creation_can_be_turned_off() {
        let k = TagKinds::new(&tree(), false);
        let e = k
            .admit(&[s("site/pump1/flow", Value::F64(1.0))], |_| None)
            .unwrap_err();
        assert!(e.message.contains("configured source"), "{}", e.message);
        let e = k
            .admit(&[s("truck/t1/v", Value::F64(1.0))], |_| None)
            .unwrap_err();
        assert!(e.message.contains("create_tags = false"), "{}", e.message);
        // a tag the historian already holds may be written, with its stored type
        let stored = |t: &TagPath| (t.as_str() == "truck/t1/v").then_some(Value::F64(0.5));
        assert_eq!(k.admit(&[s("truck/t1/v", Value::F64(1.0))], stored), Ok(0));
        let e = k
            .admit(&[s("truck/t1/v", Value::I64(1))], stored)
            .unwrap_err();
        assert!(e.message.contains("conflict"), "{}", e.message);
    }

    #[test]
    fn the_number_of_created_tags_is_bounded() {
        let mut k = TagKinds::new(&tree(), true);
        k.max_tags = 2;
        let none = |_: &TagPath| None;
        assert_eq!(
            k.admit(
                &[s("a/b/c", Value::I64(1)), s("a/b/d", Value::I64(1))],
                none
            ),
            Ok(2)
        );
        let e = k.admit(&[s("a/b/e", Value::I64(1))], none).unwrap_err();
        assert!(e.message.contains("at most 2"), "{}", e.message);
    }
}
