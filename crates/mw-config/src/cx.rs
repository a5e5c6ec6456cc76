//! The checking context that every section checker works with: the spanned TOML tree, the
//! diagnostics collected so far, and what the sections checked before have defined (assets,
//! tags, published tags). It never stops at the first error: a bad value is reported and
//! dropped (the caller falls back to its default) so the walk can go on.
//!
//! Component crates use it through [`crate::Section`]; they see only [`Table`], [`Field`],
//! [`Item`] and [`Elem`], never the TOML library's types.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::{Range, RangeInclusive};

use mw_model::{
    AssetTree, AssetTreeError, DataType, Deadband, PathError, Scaling, TagDef, TagPath, UNITS,
    unit_info,
};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::diagnostic::{Diagnostic, LineIndex};

type Value<'i> = Spanned<DeValue<'i>>;

/// A table being checked, with what to call it in messages (`[http]`, `device "d1"`, …).
#[derive(Clone, Copy)]
pub struct Table<'a, 'i> {
    t: &'a DeTable<'i>,
    /// Where "missing key" errors point: the header or the opening brace.
    start: usize,
    name: &'a str,
}

impl<'a, 'i> Table<'a, 'i> {
    /// The same table under another name (for messages).
    pub fn named<'b>(&self, name: &'b str) -> Table<'b, 'i>
    where
        'a: 'b,
    {
        Table::new(self.t, self.start, name)
    }

    pub(crate) fn new(t: &'a DeTable<'i>, start: usize, name: &'a str) -> Self {
        Table { t, start, name }
    }

    /// What messages call this table.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Byte offset where "missing key" errors point.
    pub fn start(&self) -> usize {
        self.start
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.t.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// The sub-table `key`, named `name` in messages, if there is one; reports nothing (a
    /// section registered as `parent.child` finds its parent this way: the registry has
    /// already reported a parent that is not a table).
    pub fn child<'b>(&self, key: &str, name: &'b str) -> Option<Table<'b, 'i>>
    where
        'a: 'b,
    {
        let v = self.t.get(key)?;
        let start = v.span().start;
        v.get_ref().as_table().map(|t| Table::new(t, start, name))
    }

    /// Whether `key` is present with a string value (for keys that take a number or a
    /// string, such as a warm-up in rows or as a duration).
    pub fn is_string(&self, key: &str) -> bool {
        self.t
            .get(key)
            .is_some_and(|v| v.get_ref().as_str().is_some())
    }

    /// Byte offset of `key` itself, if the table has it.
    pub fn key_start(&self, key: &str) -> Option<usize> {
        self.t.get_key_value(key).map(|(k, _)| k.span().start)
    }
}

/// One element of an array of tables (`[[devices]]`): its 1-based index, the table and the
/// offset where it starts.
#[derive(Clone, Copy)]
pub struct Item<'a, 'i> {
    pub index: usize,
    pub start: usize,
    t: &'a DeTable<'i>,
}

impl<'a, 'i> Item<'a, 'i> {
    /// The element as a table called `name` in messages.
    pub fn table<'b>(&self, name: &'b str) -> Table<'b, 'i>
    where
        'a: 'b,
    {
        Table::new(self.t, self.start, name)
    }
}

/// One element of an array value.
#[derive(Clone, Copy)]
pub struct Elem<'a, 'i>(&'a Value<'i>);

impl<'a> Elem<'a, '_> {
    pub fn start(&self) -> usize {
        self.0.span().start
    }

    pub fn as_str(&self) -> Option<&'a str> {
        self.0.get_ref().as_str()
    }

    pub fn as_number(&self) -> Option<f64> {
        as_number(self.0.get_ref())
    }
}

/// The keys of one kind of `[[…]]` entry: the string key the entry is named after in messages,
/// the keys it requires and those it allows.
pub struct EntryKeys {
    pub id: &'static str,
    pub required: &'static [&'static str],
    pub allowed: &'static [&'static str],
}

/// A checked value with the spans of its key and value.
pub struct Field<T> {
    pub v: T,
    pub key: Range<usize>,
    pub span: Range<usize>,
}

impl<T> Field<T> {
    /// The same spans with another value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Field<U> {
        Field {
            v: f(self.v),
            key: self.key,
            span: self.span,
        }
    }
}

/// Who already owns a tag path that a [`Claim`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A tag defined by a source section (a device tag, …).
    Defined,
    /// A tag published by an earlier claim of this `group`.
    Published { group: &'static str },
}

/// A request to publish tags under the given paths (analytics outputs, alarm states, …). Claims
/// are resolved after every section was checked, in file order, so a clash is reported at the
/// later of the two entries whichever section was checked first.
pub struct Claim {
    pub paths: Vec<TagPath>,
    /// Where a clash is reported.
    pub at: usize,
    /// The claimant in messages (`detector on "acme/p1"`).
    pub label: String,
    /// Claims of one group can name each other in hints (`"rul"`, `"detectors"`).
    pub group: &'static str,
    /// What to add to a clash message, given the earlier owner (e.g. `"; set \"name\" …"`).
    pub hint: fn(Owner) -> &'static str,
}

/// A tag defined by a source section: where, by whom, and how messages call such a tag.
struct DefinedTag {
    at: usize,
    owner: String,
    what: &'static str,
}

/// The checking context (see the module documentation).
pub struct Cx<'s> {
    lines: LineIndex<'s>,
    /// (byte offset, message)
    diags: Vec<(usize, String)>,
    asset_paths: HashMap<String, usize>,
    /// First definition of each tag path.
    tag_paths: HashMap<TagPath, DefinedTag>,
    /// Data type of each tag path in `tag_paths` whose type is valid.
    tag_types: HashMap<TagPath, DataType>,
    /// Fully valid tag definitions, in check order.
    pub(crate) tags: Vec<TagDef>,
    /// Definitions of published tags, in check order.
    pub(crate) published: Vec<TagDef>,
    claims: Vec<Claim>,
}

impl<'s> Cx<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Cx {
            lines: LineIndex::new(src),
            diags: Vec::new(),
            asset_paths: HashMap::new(),
            tag_paths: HashMap::new(),
            tag_types: HashMap::new(),
            tags: Vec::new(),
            published: Vec::new(),
            claims: Vec::new(),
        }
    }

    /// Reports a problem at byte offset `at`.
    pub fn err(&mut self, at: usize, msg: impl Into<String>) {
        self.diags.push((at, msg.into()));
    }

    /// The 1-based line of a byte offset (for "first defined at line N").
    pub fn line(&self, at: usize) -> usize {
        self.lines.line(at)
    }

    /// Resolves the claims, then returns the diagnostics in source order (stable for equal
    /// positions).
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.resolve_claims();
        self.diags.sort_by_key(|(at, _)| *at);
        let lines = self.lines;
        self.diags
            .into_iter()
            .map(|(at, message)| {
                let (line, col) = lines.line_col(at);
                Diagnostic { line, col, message }
            })
            .collect()
    }

    // ---- generic helpers -------------------------------------------------------------------

    /// Reports every key of `t` not in `allowed`, with the allowed keys and, when one is close,
    /// a guess.
    pub fn unknown_keys(&mut self, t: Table<'_, '_>, allowed: &[&str]) {
        self.unknown_keys_but(t, allowed, &[]);
    }

    /// [`Cx::unknown_keys`], passing over the keys in `handled` (which the caller reports
    /// itself, e.g. with a message about a key that was renamed).
    pub fn unknown_keys_but(&mut self, t: Table<'_, '_>, allowed: &[&str], handled: &[&str]) {
        for key in t.t.keys() {
            let k: &str = key.get_ref().as_ref();
            if !allowed.contains(&k) && !handled.contains(&k) {
                let hint = match suggest_key(k, allowed) {
                    Some(s) => format!("; did you mean {s:?}?"),
                    None => String::new(),
                };
                let msg = format!(
                    "unknown key {:?} in {}{hint} (allowed: {})",
                    key.get_ref(),
                    t.name,
                    allowed.join(", ")
                );
                self.err(key.span().start, msg);
            }
        }
    }

    fn entry<'a, 'i>(
        &mut self,
        t: Table<'a, 'i>,
        key: &str,
        required: bool,
    ) -> Option<(&'a Spanned<DeString<'i>>, &'a Value<'i>)> {
        let kv = t.t.get_key_value(key);
        if kv.is_none() && required {
            self.err(
                t.start,
                format!("missing required key {key:?} in {}", t.name),
            );
        }
        kv
    }

    /// Reports each missing required key (in the order given) at the table's start.
    pub fn require(&mut self, t: Table<'_, '_>, keys: &[&str]) {
        for key in keys {
            if !t.t.contains_key(*key) {
                self.err(
                    t.start,
                    format!("missing required key {key:?} in {}", t.name),
                );
            }
        }
    }

    fn wrong_type(&mut self, what: &str, name: &str, expected: &str, v: &Value<'_>) {
        let found = v.get_ref().type_str();
        self.err(
            v.span().start,
            format!("wrong type for {what} in {name}: expected {expected}, found {found}"),
        );
    }

    /// Reports an array element of the wrong type (`what` is e.g. `element 2 of "tags"`).
    pub fn wrong_elem_type(&mut self, what: &str, name: &str, expected: &str, el: Elem<'_, '_>) {
        self.wrong_type(what, name, expected, el.0);
    }

    fn typed<'a, 'i, T>(
        &mut self,
        t: Table<'a, 'i>,
        key: &str,
        required: bool,
        expected: &str,
        get: impl FnOnce(&'a DeValue<'i>) -> Option<T>,
    ) -> Option<Field<T>> {
        let (k, v) = self.entry(t, key, required)?;
        match get(v.get_ref()) {
            Some(x) => Some(Field {
                v: x,
                key: k.span(),
                span: v.span(),
            }),
            None => {
                self.wrong_type(&format!("{key:?}"), t.name, expected, v);
                None
            }
        }
    }

    pub fn string<'a>(
        &mut self,
        t: Table<'a, '_>,
        key: &str,
        required: bool,
    ) -> Option<Field<&'a str>> {
        self.typed(t, key, required, "string", |v| v.as_str())
    }

    pub fn boolean(&mut self, t: Table<'_, '_>, key: &str, required: bool) -> Option<Field<bool>> {
        self.typed(t, key, required, "boolean", |v| v.as_bool())
    }

    /// A sub-table, named `name` in messages.
    pub fn table<'a, 'i>(
        &mut self,
        t: Table<'a, 'i>,
        key: &str,
        required: bool,
        name: &'a str,
    ) -> Option<Field<Table<'a, 'i>>> {
        let f = self.typed(t, key, required, "table", |v| v.as_table())?;
        let start = f.span.start;
        Some(f.map(|tbl| Table::new(tbl, start, name)))
    }

    /// An array, its elements unchecked (`expected` names it in a wrong-type message).
    pub fn array<'a, 'i>(
        &mut self,
        t: Table<'a, 'i>,
        key: &str,
        required: bool,
        expected: &str,
    ) -> Option<Field<Vec<Elem<'a, 'i>>>> {
        let f = self.typed(t, key, required, expected, |v| v.as_array())?;
        Some(f.map(|a| a.iter().map(Elem).collect()))
    }

    /// An integer within `range`; out-of-range values are reported and dropped.
    pub fn integer(
        &mut self,
        t: Table<'_, '_>,
        key: &str,
        required: bool,
        range: RangeInclusive<i128>,
    ) -> Option<Field<i128>> {
        let f = self.typed(t, key, required, "integer", |v| v.as_integer())?;
        let n = i128::from_str_radix(f.v.as_str(), f.v.radix()).ok();
        match n {
            Some(n) if range.contains(&n) => Some(Field {
                v: n,
                key: f.key,
                span: f.span,
            }),
            _ => {
                let msg = format!(
                    "{key:?} in {} is {}, out of range (expected {})",
                    t.name,
                    f.v,
                    range_text(&range)
                );
                self.err(f.span.start, msg);
                None
            }
        }
    }

    /// An integer or float.
    pub fn number(&mut self, t: Table<'_, '_>, key: &str, required: bool) -> Option<Field<f64>> {
        self.typed(t, key, required, "number", as_number)
    }

    /// A finite number; NaN and infinities are reported and dropped.
    pub fn finite(&mut self, t: Table<'_, '_>, key: &str, required: bool) -> Option<Field<f64>> {
        let f = self.number(t, key, required)?;
        self.finite_value(f, key, t.name)
    }

    /// Reports a NaN or infinite `f`, the value of `key` in `name`, and drops it.
    pub fn finite_value(&mut self, f: Field<f64>, key: &str, name: &str) -> Option<Field<f64>> {
        if !f.v.is_finite() {
            self.err(
                f.span.start,
                format!("{key:?} in {name} must be a finite number, found {}", f.v),
            );
            return None;
        }
        Some(f)
    }

    /// `[LO, HI]`: an array of exactly two numbers.
    pub fn pair(&mut self, t: Table<'_, '_>, key: &str) -> Option<(f64, f64)> {
        let f = self.typed(t, key, true, "array [LO, HI]", |v| v.as_array())?;
        if f.v.len() != 2 {
            let msg = format!(
                "{key:?} in {} must be [LO, HI] (2 numbers), found {} element(s)",
                t.name,
                f.v.len()
            );
            self.err(f.span.start, msg);
            return None;
        }
        let mut out = [0.0; 2];
        let mut ok = true;
        for (i, el) in f.v.iter().enumerate() {
            match as_number(el.get_ref()) {
                Some(x) => out[i] = x,
                None => {
                    self.wrong_type(
                        &format!("element {} of {key:?}", i + 1),
                        t.name,
                        "number",
                        el,
                    );
                    ok = false;
                }
            }
        }
        ok.then_some((out[0], out[1]))
    }

    /// An array of tables; elements that are not tables are reported and skipped.
    pub fn array_of_tables<'a, 'i>(
        &mut self,
        t: Table<'a, 'i>,
        key: &str,
        header: &str,
    ) -> Vec<Item<'a, 'i>> {
        let expected = format!("array of tables ([[{header}]])");
        let Some(f) = self.typed(t, key, false, &expected, |v| v.as_array()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, el) in f.v.iter().enumerate() {
            match el.get_ref().as_table() {
                Some(tbl) => out.push(Item {
                    index: i + 1,
                    start: el.span().start,
                    t: tbl,
                }),
                None => self.wrong_type(
                    &format!("element {} of {key:?}", i + 1),
                    t.name,
                    "table",
                    el,
                ),
            }
        }
        out
    }

    /// A string that must be one of `names`.
    pub fn choice<T: Copy>(
        &mut self,
        t: Table<'_, '_>,
        key: &str,
        what: &str,
        names: &[(&str, T)],
    ) -> Option<Field<T>> {
        let f = self.string(t, key, false)?;
        match names.iter().find(|(n, _)| *n == f.v) {
            Some((_, v)) => Some(Field {
                v: *v,
                key: f.key,
                span: f.span,
            }),
            None => {
                let expected: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                let msg = format!(
                    "unknown {what} {:?} in {} (expected one of: {})",
                    f.v,
                    t.name,
                    expected.join(", ")
                );
                self.err(f.span.start, msg);
                None
            }
        }
    }

    /// Starts on a `[[…]]` entry: reads its `keys.id` string (a wrong type is reported under
    /// `anon.name`), names the entry `label(id)` (`anon.name` when there is no id), and reports
    /// its missing required and unknown keys under that name. Returns the id and the name.
    pub fn entry_head<'a>(
        &mut self,
        anon: Table<'a, '_>,
        keys: &EntryKeys,
        label: impl FnOnce(&str) -> String,
    ) -> (Option<Field<&'a str>>, String) {
        let id = self.string(anon, keys.id, false);
        let name = id
            .as_ref()
            .map_or_else(|| anon.name.to_owned(), |f| label(f.v));
        let t = anon.named(&name);
        self.require(t, keys.required);
        self.unknown_keys(t, keys.allowed);
        (id, name)
    }

    /// Records the first definition of the name in `f` in `defined`; a later one is reported as
    /// a duplicate `what`.
    pub fn define_once(
        &mut self,
        what: &str,
        f: &Field<&str>,
        defined: &mut HashMap<String, usize>,
    ) {
        match defined.get(f.v) {
            Some(&first) => {
                let line = self.lines.line(first);
                self.err(
                    f.span.start,
                    format!("duplicate {what} {:?} (first defined at line {line})", f.v),
                );
            }
            None => {
                defined.insert(f.v.to_owned(), f.span.start);
            }
        }
    }

    // ---- assets ----------------------------------------------------------------------------

    /// Reports `f` unless it is a valid asset path. The model owns the path rules; a scratch
    /// tree applies them.
    pub fn valid_asset_path(&mut self, f: &Field<&str>) -> bool {
        let Err(AssetTreeError::BadPath { source, .. }) =
            AssetTree::new().add_asset(f.v, mw_model::AssetKind::Area, "")
        else {
            return true;
        };
        let msg = format!(
            "invalid asset path {:?}: {}",
            f.v,
            asset_path_error(&source)
        );
        self.err(f.span.start, msg);
        false
    }

    /// Records a declared asset path; a second declaration is reported.
    pub(crate) fn declare_asset(&mut self, f: &Field<&str>) {
        let mut paths = std::mem::take(&mut self.asset_paths);
        self.define_once("asset path", f, &mut paths);
        self.asset_paths = paths;
    }

    /// True if `asset` is declared in `[[assets]]` or a defined tag is directly under it.
    pub fn asset_known(&self, asset: &str) -> bool {
        self.asset_paths.contains_key(asset) || self.tag_paths.keys().any(|p| p.asset() == asset)
    }

    // ---- tags ------------------------------------------------------------------------------

    /// Checks the path of a tag that `owner` (`device "d1"`) defines; `what` is how a clash
    /// message calls such a tag (`device tag`). Returns the path if it is valid, and whether this
    /// is its first definition (a later one is reported as a duplicate).
    pub fn define_tag(
        &mut self,
        f: &Field<&str>,
        owner: &str,
        what: &'static str,
    ) -> Option<(TagPath, bool)> {
        let tp = match TagPath::new(f.v) {
            Ok(tp) => tp,
            Err(e) => {
                self.err(f.span.start, format!("invalid tag path {:?}: {e}", f.v));
                return None;
            }
        };
        match self.tag_paths.entry(tp.clone()) {
            Entry::Occupied(first) => {
                let DefinedTag { at, owner, .. } = first.get();
                let line = self.lines.line(*at);
                let msg =
                    format!("duplicate tag path {tp} (first defined at line {line}, in {owner})");
                self.err(f.span.start, msg);
                Some((tp, false))
            }
            Entry::Vacant(slot) => {
                slot.insert(DefinedTag {
                    at: f.span.start,
                    owner: owner.to_owned(),
                    what,
                });
                Some((tp, true))
            }
        }
    }

    /// Records the data type of a tag's first definition (see [`Cx::define_tag`]).
    pub fn set_tag_type(&mut self, path: &TagPath, data_type: DataType) {
        self.tag_types.insert(path.clone(), data_type);
    }

    /// Adds a fully valid tag definition to the config's tags (and so to the asset tree).
    pub fn add_tag(&mut self, def: TagDef) {
        self.tags.push(def);
    }

    pub fn tag_known(&self, path: &TagPath) -> bool {
        self.tag_paths.contains_key(path)
    }

    /// The data type of a defined tag, if its type was valid.
    pub fn tag_type(&self, path: &TagPath) -> Option<DataType> {
        self.tag_types.get(path).copied()
    }

    /// The definition of a fully valid tag.
    pub fn tag_def(&self, path: &TagPath) -> Option<&TagDef> {
        self.tags.iter().find(|d| &d.path == path)
    }

    /// Defined tags directly under `asset` in file order, with their data type when valid.
    pub fn tags_of(&self, asset: &str) -> Vec<(TagPath, Option<DataType>)> {
        let mut found: Vec<(usize, &TagPath)> = self
            .tag_paths
            .iter()
            .filter(|(p, _)| p.asset() == asset)
            .map(|(p, d)| (d.at, p))
            .collect();
        found.sort();
        found
            .into_iter()
            .map(|(_, p)| (p.clone(), self.tag_types.get(p).copied()))
            .collect()
    }

    /// Defined tags matching `pattern` (`mw_model::TagPattern` globs), in file order.
    pub fn tags_matching(&self, pattern: &mw_model::TagPattern) -> Vec<TagPath> {
        let mut found: Vec<(usize, &TagPath)> = self
            .tag_paths
            .iter()
            .filter(|(p, _)| pattern.matches(p))
            .map(|(p, d)| (d.at, p))
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| p.clone()).collect()
    }

    /// The optional `unit` key of a tag: a UCUM code from the unit table.
    pub fn unit(&mut self, t: Table<'_, '_>, label: &str) -> Option<String> {
        let f = self.string(t, "unit", false)?;
        if unit_info(f.v).is_some() {
            return Some(f.v.to_owned());
        }
        let hint = match suggest_unit(f.v) {
            Some(code) => format!("; did you mean {code:?}?"),
            None => String::new(),
        };
        let msg = format!(
            "unknown unit {:?} for {label}{hint} (units are case-sensitive UCUM codes; \
             `millwright check --list-units` lists them)",
            f.v
        );
        self.err(f.span.start, msg);
        None
    }

    /// The optional `scale` table of a tag (`raw`, `eu`, `clamp`).
    pub fn scale(
        &mut self,
        tag: Table<'_, '_>,
        label: &str,
        data_type: Option<DataType>,
    ) -> Option<Scaling> {
        let name = format!("scale of {label}");
        let f = self.table(tag, "scale", false, &name)?;
        let t = f.v;
        self.unknown_keys(t, SCALE_KEYS);
        let raw = self.pair(t, "raw");
        let eu = self.pair(t, "eu");
        let clamp = self.boolean(t, "clamp", false).is_some_and(|c| c.v);
        if data_type == Some(DataType::Bool) {
            self.err(
                f.key.start,
                format!("{label} has type bool, which cannot be scaled; remove scale"),
            );
            return None;
        }
        match Scaling::new(raw?, eu?, clamp) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(f.key.start, format!("invalid scale for {label}: {e}"));
                None
            }
        }
    }

    /// The optional `deadband` table of a tag (`absolute` or `percent`, which needs a scale).
    pub fn deadband(
        &mut self,
        tag: Table<'_, '_>,
        label: &str,
        has_scale: bool,
    ) -> Option<Deadband> {
        let name = format!("deadband of {label}");
        let f = self.table(tag, "deadband", false, &name)?;
        let t = f.v;
        self.unknown_keys(t, DEADBAND_KEYS);
        let absolute = self.number(t, "absolute", false);
        let percent = self.number(t, "percent", false);
        let (kind, v) = match (absolute, percent) {
            (Some(_), Some(_)) => {
                self.err(
                    f.span.start,
                    format!("{name} sets both \"absolute\" and \"percent\"; choose one"),
                );
                return None;
            }
            (None, None) => {
                // a mistyped or misspelt key has been reported already
                if t.is_empty() {
                    self.err(
                        f.span.start,
                        format!(
                            "{name} needs \"absolute\" or \"percent\", e.g. {{ absolute = 0.5 }}"
                        ),
                    );
                }
                return None;
            }
            (Some(a), None) => ("absolute", a),
            (None, Some(p)) => ("percent", p),
        };
        let v = self.finite_value(v, kind, &name)?;
        if v.v < 0.0 {
            self.err(
                v.span.start,
                format!("{kind:?} in {name} is {}, it must not be negative", v.v),
            );
            return None;
        }
        if kind == "percent" {
            if !has_scale {
                let msg = format!(
                    "deadband \"percent\" of {label} needs scale (it is a percentage of the engineering span); \
                     add scale or use deadband = {{ absolute = … }}"
                );
                self.err(v.key.start, msg);
                return None;
            }
            return Some(Deadband::Percent(v.v));
        }
        Some(Deadband::Absolute(v.v))
    }

    // ---- published tags --------------------------------------------------------------------

    /// The paths `asset/NAME` an entry publishes; the first invalid one is reported at `at`.
    pub fn outputs<const N: usize>(
        &mut self,
        asset: &str,
        names: [String; N],
        at: usize,
        label: &str,
    ) -> Option<[TagPath; N]> {
        let mut out = Vec::with_capacity(N);
        for name in names {
            let path = format!("{asset}/{name}");
            match TagPath::new(&path) {
                Ok(p) => out.push(p),
                Err(e) => {
                    self.err(at, format!("{label} cannot publish {path:?}: {e}"));
                    return None;
                }
            }
        }
        out.try_into().ok()
    }

    /// Asks for tag paths to publish under (resolved when every section was checked).
    pub fn claim(&mut self, claim: Claim) {
        self.claims.push(claim);
    }

    /// Adds the definition of a published tag to the config (and so to the asset tree).
    pub fn publish(&mut self, def: TagDef) {
        self.published.push(def);
    }

    /// Resolves the claims in file order. A path already defined by a source or published by an
    /// earlier claim is reported at the later claim, one message per earlier owner.
    fn resolve_claims(&mut self) {
        let mut claims = std::mem::take(&mut self.claims);
        claims.sort_by_key(|c| c.at);
        // path → (offset, claimant, group) of the first claim
        let mut published: HashMap<TagPath, (usize, String, &'static str)> = HashMap::new();
        for c in &claims {
            // Earlier owners, each with the paths this claim shares with it.
            let mut clashes: Vec<(String, Owner, &'static str, Vec<&str>)> = Vec::new();
            for p in &c.paths {
                let (owner, by, what) = if let Some(d) = self.tag_paths.get(p) {
                    let line = self.lines.line(d.at);
                    (
                        format!("line {line}, in {}", d.owner),
                        Owner::Defined,
                        d.what,
                    )
                } else if let Some((first, by, group)) = published.get(p) {
                    let line = self.lines.line(*first);
                    (
                        format!("{by} (line {line})"),
                        Owner::Published { group },
                        "",
                    )
                } else {
                    published.insert(p.clone(), (c.at, c.label.clone(), c.group));
                    continue;
                };
                match clashes.iter_mut().find(|(o, ..)| *o == owner) {
                    Some((.., list)) => list.push(p.as_str()),
                    None => clashes.push((owner, by, what, vec![p.as_str()])),
                }
            }
            for (owner, by, what, list) in clashes {
                let (s, it) = if list.len() == 1 {
                    ("", "it")
                } else {
                    ("s", "them")
                };
                let earlier = match by {
                    // one defined tag per owner: the owner names its line
                    Owner::Defined => format!("it is already defined as a {what} at {owner}"),
                    Owner::Published { .. } => format!("{owner} already publishes {it}"),
                };
                let msg = format!(
                    "duplicate tag path{s} {}: {} publishes {it}, but {earlier}{}",
                    list.join(", "),
                    c.label,
                    (c.hint)(by)
                );
                self.diags.push((c.at, msg));
            }
        }
    }
}

const SCALE_KEYS: &[&str] = &["raw", "eu", "clamp"];
const DEADBAND_KEYS: &[&str] = &["absolute", "percent"];

/// `PREFIX PATH`, with the path quoted unless it is a valid tag path.
pub fn path_label(prefix: &str, path: &str) -> String {
    if TagPath::new(path).is_ok() {
        format!("{prefix} {path}")
    } else {
        format!("{prefix} {path:?}")
    }
}

fn as_number(v: &DeValue<'_>) -> Option<f64> {
    match v {
        DeValue::Integer(i) if i.radix() == 10 => i.as_str().parse::<f64>().ok(),
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n as f64),
        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
        _ => None,
    }
}

fn range_text(r: &RangeInclusive<i128>) -> String {
    if *r.end() >= i128::from(u64::MAX) {
        format!("at least {}", r.start())
    } else {
        format!("{}..={}", r.start(), r.end())
    }
}

/// The model's path error, worded for an asset path (which may have a single segment).
fn asset_path_error(e: &PathError) -> String {
    match e {
        PathError::SegmentCount { count } => {
            format!(
                "asset path has {count} segments (at most {})",
                mw_model::MAX_SEGMENTS
            )
        }
        other => other.to_string().replace("tag path", "asset path"),
    }
}

/// The allowed key an unknown one most likely means: the only one within edit distance 2 (1
/// for keys of up to four characters), ignoring case.
fn suggest_key<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_lowercase();
    let limit = if key.chars().count() <= 4 { 1 } else { 2 };
    let mut best: Option<(usize, &'a str)> = None;
    let mut tie = false;
    for a in allowed {
        let d = edit_distance(a, &lower);
        if d > limit {
            continue;
        }
        match best {
            Some((bd, _)) if d > bd => {}
            Some((bd, _)) if d == bd => tie = true,
            _ => {
                best = Some((d, a));
                tie = false;
            }
        }
    }
    if tie { None } else { best.map(|(_, a)| a) }
}

/// The known unit code a misspelt one most likely means, if the guess is unambiguous.
fn suggest_unit(s: &str) -> Option<&'static str> {
    let t = s.trim();
    if let Some(u) = unit_info(t) {
        return Some(u.code); // only whitespace was wrong
    }
    let lower = t.to_lowercase();
    let unique = |hits: Vec<&'static str>| -> Option<&'static str> {
        match hits.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    };
    let by_code = UNITS
        .iter()
        .filter(|u| u.code.to_lowercase() == lower)
        .map(|u| u.code)
        .collect();
    if let Some(code) = unique(by_code) {
        return Some(code);
    }
    let by_symbol = UNITS
        .iter()
        .filter(|u| !u.symbol.is_empty() && u.symbol.to_lowercase() == lower)
        .map(|u| u.code)
        .collect();
    if let Some(code) = unique(by_symbol) {
        return Some(code);
    }
    let alias = match lower.as_str() {
        "degc" | "deg c" | "°c" | "celsius" | "c" => Some("Cel"),
        "degf" | "deg f" | "°f" | "fahrenheit" => Some("[degF]"),
        "lel" | "%lel" | "% lel" => Some("%{LEL}"),
        "percent" => Some("%"),
        "m3/hr" | "m^3/h" => Some("m3/h"),
        "sec" | "secs" => Some("s"),
        "count" | "counts" => Some("{count}"),
        _ => None,
    };
    if alias.is_some() {
        return alias;
    }
    if t.chars().count() >= 3 {
        let close = UNITS
            .iter()
            .filter(|u| edit_distance(u.code, t) == 1)
            .map(|u| u.code)
            .collect();
        return unique(close);
    }
    None
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_suggestions() {
        assert_eq!(suggest_unit("cel"), Some("Cel"));
        assert_eq!(suggest_unit("CEL"), Some("Cel"));
        assert_eq!(suggest_unit("°C"), Some("Cel"));
        assert_eq!(suggest_unit("degC"), Some("Cel"));
        assert_eq!(suggest_unit("rpm"), Some("/min"));
        assert_eq!(suggest_unit("psi"), Some("[psi]"));
        assert_eq!(suggest_unit("kWh"), Some("kW.h"));
        assert_eq!(suggest_unit("l/min"), Some("L/min"));
        assert_eq!(suggest_unit(" bar"), Some("bar"));
        assert_eq!(suggest_unit("bars"), Some("bar"));
        assert_eq!(suggest_unit("furlong"), None);
        assert_eq!(suggest_unit("x"), None, "too short to guess");
    }

    #[test]
    fn key_suggestions() {
        let allowed = [
            "name",
            "endpoint",
            "unit_id",
            "poll_interval_ms",
            "timeout_ms",
        ];
        assert_eq!(suggest_key("endpont", &allowed), Some("endpoint"));
        assert_eq!(suggest_key("poll_interval", &allowed), None, "too far");
        assert_eq!(
            suggest_key("poll_intervall_ms", &allowed),
            Some("poll_interval_ms")
        );
        assert_eq!(suggest_key("Name", &allowed), Some("name"));
        assert_eq!(suggest_key("nme", &allowed), Some("name"));
        assert_eq!(suggest_key("colour", &allowed), None);
        assert_eq!(suggest_key("ab", &["ac", "ad"]), None, "ambiguous");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("bar", "bars"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("°C", "°C"), 0);
    }

    #[test]
    fn asset_path_errors_say_asset() {
        assert_eq!(
            asset_path_error(&PathError::SegmentCount { count: 11 }),
            "asset path has 11 segments (at most 10)"
        );
        assert!(!asset_path_error(&PathError::EmptySegment { index: 1 }).contains("tag"));
    }
}
