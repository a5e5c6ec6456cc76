//! Tag paths ↔ Sparkplug names, pure.
//!
//! **Edge node** ([`EdgeMapping`]): a tag under the `prefix` of a `[[sparkplug.edge.devices]]`
//! entry (first match in file order) is a metric of that entry's device, named by the rest of its
//! path (`/` kept: `acme/plant1/pump1` + `motor/current` → device `pump1`, metric
//! `motor/current`). Any other tag is a metric of the device named after its asset's last
//! segment, named by the tag's own name: `acme/plant1/utilities/water/pump1/flow` → device
//! `pump1`, metric `flow`. A device belongs to the first asset path (or entry) that used it; a
//! tag of another asset whose last segment is the same is refused ([`MapError::Collision`]),
//! since it would mix two assets in one device — map one of them with a devices entry.
//!
//! **Host application** ([`host_tag`]): a metric becomes the tag
//! `[{prefix}/]{group}/{edge}[/{device}]/{metric}`, each `/` of the metric name a path segment;
//! characters a tag path does not allow become `_` (as does a leading `.`), segments are cut at
//! 64 characters. `bdSeq` and the `Node Control/…` and `Device Control/…` metrics are session
//! control, not data: they become no tag.

use std::collections::HashMap;

use mw_model::MAX_SEGMENT_LEN;
use mw_model::TagPath;

use crate::config::DeviceRule;

/// Why a tag has no place in the edge node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapError {
    /// Its device already holds another asset's tags.
    Collision { device: String, owner: String },
    /// Its asset's last segment is not a valid Sparkplug id.
    BadDevice { device: String },
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapError::Collision { device, owner } => write!(
                f,
                "device {device:?} already holds the tags of {owner:?}; map one of the two with a [[sparkplug.edge.devices]] entry"
            ),
            MapError::BadDevice { device } => {
                write!(f, "{device:?} is not a valid Sparkplug device id")
            }
        }
    }
}

/// Where the edge node's tags go.
#[derive(Debug, Clone, Default)]
pub struct EdgeMapping {
    rules: Vec<DeviceRule>,
    /// device → the asset path (or `prefix/`) whose tags it holds.
    owners: HashMap<String, String>,
}

impl EdgeMapping {
    pub fn new(rules: Vec<DeviceRule>) -> EdgeMapping {
        EdgeMapping {
            rules,
            owners: HashMap::new(),
        }
    }

    /// The (device, metric) of a tag.
    pub fn locate(&mut self, tag: &TagPath) -> Result<(String, String), MapError> {
        let path = tag.as_str();
        let (device, metric, owner) = match self.rules.iter().find(|r| {
            path.len() > r.prefix.len()
                && path.starts_with(&r.prefix)
                && path.as_bytes()[r.prefix.len()] == b'/'
        }) {
            Some(r) => (
                r.device.clone(),
                path[r.prefix.len() + 1..].to_owned(),
                format!("{}/", r.prefix),
            ),
            None => {
                let asset = tag.asset();
                let device = asset.rsplit('/').next().unwrap_or(asset);
                if !crate::config::valid_id(device) {
                    return Err(MapError::BadDevice {
                        device: device.to_owned(),
                    });
                }
                (device.to_owned(), tag.name().to_owned(), asset.to_owned())
            }
        };
        match self.owners.get(&device) {
            Some(o) if *o != owner => Err(MapError::Collision {
                device,
                owner: o.trim_end_matches('/').to_owned(),
            }),
            Some(_) => Ok((device, metric)),
            None => {
                self.owners.insert(device.clone(), owner);
                Ok((device, metric))
            }
        }
    }
}

/// Whether a metric is session control rather than data (no tag on the host side).
pub fn is_control(metric: &str) -> bool {
    metric == mw_sparkplug::BD_SEQ
        || metric.starts_with("Node Control/")
        || metric.starts_with("Device Control/")
}

fn segment(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_SEGMENT_LEN)
        .collect();
    if out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    out
}

/// The tag a host gives a metric (see the module docs); `None` when it is session control or
/// makes no valid tag path (too many segments, too long).
pub fn host_tag(
    prefix: Option<&str>,
    group: &str,
    edge: &str,
    device: Option<&str>,
    metric: &str,
) -> Option<TagPath> {
    if is_control(metric) {
        return None;
    }
    let mut segs: Vec<String> = Vec::new();
    if let Some(p) = prefix {
        segs.extend(p.split('/').map(str::to_owned));
    }
    segs.push(segment(group));
    segs.push(segment(edge));
    if let Some(d) = device {
        segs.push(segment(d));
    }
    segs.extend(metric.split('/').filter(|s| !s.is_empty()).map(segment));
    TagPath::new(&segs.join("/")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> TagPath {
        TagPath::new(s).unwrap()
    }

    #[test]
    fn edge_mapping_by_asset_and_by_rule() {
        let mut m = EdgeMapping::new(vec![DeviceRule {
            device: "P1".into(),
            prefix: "acme/plant1/pump1".into(),
        }]);
        let cases = [
            ("acme/plant1/water/pump2/flow", Ok(("pump2", "flow"))),
            ("acme/plant1/water/pump2/speed", Ok(("pump2", "speed"))),
            (
                "acme/plant1/pump1/motor/current",
                Ok(("P1", "motor/current")),
            ),
            ("acme/plant1/pump1x/temp", Ok(("pump1x", "temp"))),
            ("acme/plant2/pump2/flow", Err("acme/plant1/water/pump2")),
            ("other/P1/x", Err("acme/plant1/pump1")),
        ];
        for (t, want) in cases {
            let got = m.locate(&tag(t));
            match (want, got) {
                (Ok((d, n)), Ok((gd, gn))) => assert_eq!((d, n), (gd.as_str(), gn.as_str()), "{t}"),
                (Err(owner), Err(MapError::Collision { owner: o, .. })) => {
                    assert_eq!(owner, o, "{t}")
                }
                (w, g) => panic!("{t}: wanted {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn host_tags() {
        let t = |p, d, m| host_tag(p, "G 1", "E", d, m).map(|t| t.as_str().to_owned());
        assert_eq!(
            t(None, Some("pump"), "flow").as_deref(),
            Some("G_1/E/pump/flow")
        );
        assert_eq!(t(None, None, "a/b c/.d").as_deref(), Some("G_1/E/a/b_c/_d"));
        assert_eq!(t(Some("x/y"), None, "m").as_deref(), Some("x/y/G_1/E/m"));
        assert_eq!(t(None, None, "bdSeq"), None);
        assert_eq!(t(None, None, "Node Control/Rebirth"), None);
        assert_eq!(t(None, None, "1/2/3/4/5/6/7/8/9"), None); // 11 segments
    }
}
