use std::collections::BTreeMap;

use crate::path::validate_segments;
use crate::{PathError, TagDef, TagPath};

/// What kind of equipment an asset is. Free-form kinds are kept as `Other`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    Area,
    Pump,
    Motor,
    Tank,
    Valve,
    GasDetector,
    Compressor,
    Fan,
    Other(String),
}

impl AssetKind {
    pub fn parse(s: &str) -> AssetKind {
        match s {
            "area" => AssetKind::Area,
            "pump" => AssetKind::Pump,
            "motor" => AssetKind::Motor,
            "tank" => AssetKind::Tank,
            "valve" => AssetKind::Valve,
            "gas_detector" | "gas-detector" => AssetKind::GasDetector,
            "compressor" => AssetKind::Compressor,
            "fan" => AssetKind::Fan,
            other => AssetKind::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            AssetKind::Area => "area",
            AssetKind::Pump => "pump",
            AssetKind::Motor => "motor",
            AssetKind::Tank => "tank",
            AssetKind::Valve => "valve",
            AssetKind::GasDetector => "gas_detector",
            AssetKind::Compressor => "compressor",
            AssetKind::Fan => "fan",
            AssetKind::Other(s) => s,
        }
    }
}

/// One asset (a node of the tree) and the tags directly under it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Asset {
    pub path: String,
    pub kind: AssetKind,
    pub description: String,
    pub tags: Vec<TagDef>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssetTreeError {
    #[error("invalid asset path {path:?}: {source}")]
    BadPath { path: String, source: PathError },
    #[error("asset {0:?} is defined twice")]
    DuplicateAsset(String),
    #[error("tag {0} is defined twice")]
    DuplicateTag(TagPath),
}

/// The plant's asset hierarchy. Assets are keyed by their path (`acme/plant1/…/pump1`);
/// a tag belongs to the asset named by its path minus the last segment. Iteration is in
/// path order, so parents come before children.
#[derive(Clone, Debug, Default)]
pub struct AssetTree {
    assets: BTreeMap<String, Asset>,
    tag_index: BTreeMap<TagPath, String>,
}

impl AssetTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an asset; parents need not exist (intermediate levels are implicit).
    pub fn add_asset(
        &mut self,
        path: &str,
        kind: AssetKind,
        description: &str,
    ) -> Result<(), AssetTreeError> {
        validate_segments(path, 1).map_err(|source| AssetTreeError::BadPath {
            path: path.to_owned(),
            source,
        })?;
        if self.assets.contains_key(path) {
            return Err(AssetTreeError::DuplicateAsset(path.to_owned()));
        }
        self.assets.insert(
            path.to_owned(),
            Asset {
                path: path.to_owned(),
                kind,
                description: description.to_owned(),
                tags: Vec::new(),
            },
        );
        Ok(())
    }

    /// Adds a tag under its asset, creating the asset as `Other("asset")` if it was not declared.
    pub fn add_tag(&mut self, def: TagDef) -> Result<(), AssetTreeError> {
        if self.tag_index.contains_key(&def.path) {
            return Err(AssetTreeError::DuplicateTag(def.path));
        }
        let asset = def.path.asset().to_owned();
        let entry = self.assets.entry(asset.clone()).or_insert_with(|| Asset {
            path: asset.clone(),
            kind: AssetKind::Other("asset".into()),
            description: String::new(),
            tags: Vec::new(),
        });
        self.tag_index.insert(def.path.clone(), asset);
        entry.tags.push(def);
        Ok(())
    }

    pub fn asset(&self, path: &str) -> Option<&Asset> {
        self.assets.get(path)
    }

    pub fn tag(&self, path: &TagPath) -> Option<&TagDef> {
        let asset = self.tag_index.get(path)?;
        self.assets
            .get(asset)?
            .tags
            .iter()
            .find(|t| &t.path == path)
    }

    /// Assets in path order.
    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        self.assets.values()
    }

    /// Direct and indirect children of `path`.
    pub fn descendants<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Asset> + 'a {
        self.assets
            .range(format!("{path}/")..)
            .take_while(move |(k, _)| {
                k.starts_with(path) && k.as_bytes().get(path.len()) == Some(&b'/')
            })
            .map(|(_, a)| a)
    }

    pub fn tags(&self) -> impl Iterator<Item = &TagDef> {
        self.assets.values().flat_map(|a| a.tags.iter())
    }

    pub fn tag_count(&self) -> usize {
        self.tag_index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataType;

    #[test]
    fn builds_tree_and_rejects_duplicates() {
        let mut t = AssetTree::new();
        t.add_asset("acme/p1/water", AssetKind::Area, "").unwrap();
        t.add_asset("acme/p1/water/pump1", AssetKind::Pump, "feed pump")
            .unwrap();
        t.add_asset("acme/p1/water_tank", AssetKind::Tank, "")
            .unwrap();
        let flow = TagPath::new("acme/p1/water/pump1/flow").unwrap();
        t.add_tag(TagDef::new(flow.clone(), DataType::F32)).unwrap();
        assert_eq!(
            t.add_tag(TagDef::new(flow.clone(), DataType::F32)),
            Err(AssetTreeError::DuplicateTag(flow.clone()))
        );
        assert_eq!(
            t.add_asset("acme/p1/water", AssetKind::Area, ""),
            Err(AssetTreeError::DuplicateAsset("acme/p1/water".into()))
        );
        assert!(matches!(
            t.add_asset("bad path", AssetKind::Area, ""),
            Err(AssetTreeError::BadPath { .. })
        ));
        assert_eq!(t.tag(&flow).unwrap().data_type, DataType::F32);
        assert_eq!(t.asset("acme/p1/water/pump1").unwrap().tags.len(), 1);
        let kids: Vec<_> = t
            .descendants("acme/p1/water")
            .map(|a| a.path.as_str())
            .collect();
        assert_eq!(
            kids,
            vec!["acme/p1/water/pump1"],
            "water_tank is a sibling, not a child"
        );
        // a tag under an undeclared asset creates it
        t.add_tag(TagDef::new(
            TagPath::new("acme/p1/x/y").unwrap(),
            DataType::Bool,
        ))
        .unwrap();
        assert_eq!(
            t.asset("acme/p1/x").unwrap().kind,
            AssetKind::Other("asset".into())
        );
        assert_eq!(t.tag_count(), 2);
    }

    #[test]
    fn asset_kind_parse() {
        assert_eq!(AssetKind::parse("gas-detector"), AssetKind::GasDetector);
        assert_eq!(AssetKind::parse("pump").as_str(), "pump");
        assert_eq!(AssetKind::parse("mixer").as_str(), "mixer");
    }
}
