//! The shared sections, which every component may read: `[site]`, `[http]`, `[pipeline]` and
//! `[[assets]]`.

use std::ops::RangeInclusive;

use crate::cx::{Cx, EntryKeys, Table};
use crate::types::{AssetConfig, Config, HttpConfig, OverloadPolicy, PipelineConfig, SiteConfig};

/// The top-level keys checked here, before any registered one.
pub(crate) const KEYS: &[&str] = &["site", "http", "pipeline", "assets"];
const SITE_KEYS: &[&str] = &["name", "data_dir"];
const HTTP_KEYS: &[&str] = &["address", "tls", "insecure", "allowed_hosts"];
const PIPELINE_KEYS: &[&str] = &[
    "bus_capacity",
    "sink_capacity",
    "overload",
    "live_window",
    "max_pending_acks",
];
const ASSET_ENTRY: EntryKeys = EntryKeys {
    id: "path",
    required: &["path"],
    allowed: &["path", "kind", "description"],
};

const CAPACITY_RANGE: RangeInclusive<i128> = 1..=1_048_576;
const LIVE_WINDOW_RANGE: RangeInclusive<i128> = 1..=100_000;

/// Checks the shared sections of the document `t`.
pub(crate) fn check(t: Table<'_, '_>, cx: &mut Cx<'_>) -> Config {
    let mut config = Config::default();
    if let Some(f) = cx.table(t, "site", false, "[site]") {
        config.site = site(f.v, cx);
    }
    if let Some(f) = cx.table(t, "http", false, "[http]") {
        config.http = http(f.v, cx);
    }
    if let Some(f) = cx.table(t, "pipeline", false, "[pipeline]") {
        config.pipeline = pipeline(f.v, cx);
    }
    for item in cx.array_of_tables(t, "assets", "assets") {
        let anon = format!("[[assets]] entry #{}", item.index);
        config.assets.push(asset(item.table(&anon), cx));
    }
    config
}

fn site(t: Table<'_, '_>, cx: &mut Cx<'_>) -> SiteConfig {
    cx.unknown_keys(t, SITE_KEYS);
    let mut site = SiteConfig::default();
    if let Some(f) = cx.string(t, "name", false) {
        site.name = f.v.to_owned();
    }
    if let Some(f) = cx.string(t, "data_dir", false) {
        if f.v.trim().is_empty() {
            cx.err(
                f.span.start,
                "\"data_dir\" in [site] is empty; give a directory, e.g. \"millwright-data\"",
            );
        } else {
            site.data_dir = f.v.into();
        }
    }
    site
}

fn http(t: Table<'_, '_>, cx: &mut Cx<'_>) -> HttpConfig {
    if let Some(k) = t.key_start("auth") {
        // `auth = "none"` meant "expose it anyway"; that is what `insecure` says now, for every
        // listener alike.
        cx.err(
            k,
            "\"auth\" in [http] was replaced by \"insecure\": to serve HTTP beyond loopback without TLS \
             write insecure = true",
        );
    }
    cx.unknown_keys_but(t, HTTP_KEYS, &["auth"]);
    let default = HttpConfig::default();
    let listener = cx.listener(t, "HTTP", default.listener.clone());
    let mut http = HttpConfig {
        listener,
        ..default
    };
    if let Some(f) = cx.array(t, "allowed_hosts", false, "array of host names") {
        for (i, el) in f.v.iter().enumerate() {
            match el.as_str() {
                Some(h) if !h.is_empty() && !h.contains(['/', ' ']) => {
                    http.allowed_hosts.push(h.to_ascii_lowercase());
                }
                Some(h) => cx.err(
                    el.start(),
                    format!("invalid host name {h:?} in \"allowed_hosts\" of [http]"),
                ),
                None => cx.wrong_elem_type(
                    &format!("element {} of \"allowed_hosts\"", i + 1),
                    "[http]",
                    "string",
                    *el,
                ),
            }
        }
    }
    http
}

fn pipeline(t: Table<'_, '_>, cx: &mut Cx<'_>) -> PipelineConfig {
    cx.unknown_keys(t, PIPELINE_KEYS);
    let mut p = PipelineConfig::default();
    if let Some(f) = cx.integer(t, "bus_capacity", false, CAPACITY_RANGE) {
        p.bus_capacity = f.v as usize;
    }
    if let Some(f) = cx.integer(t, "sink_capacity", false, CAPACITY_RANGE) {
        p.sink_capacity = f.v as usize;
    }
    let policies = OverloadPolicy::ALL.map(|p| (p.name(), p));
    if let Some(f) = cx.choice(t, "overload", "overload policy", &policies) {
        p.overload = f.v;
    }
    if let Some(f) = cx.integer(t, "live_window", false, LIVE_WINDOW_RANGE) {
        p.live_window = f.v as usize;
    }
    if let Some(f) = cx.integer(t, "max_pending_acks", false, CAPACITY_RANGE) {
        p.max_pending_acks = f.v as usize;
    }
    p
}

fn asset(anon: Table<'_, '_>, cx: &mut Cx<'_>) -> AssetConfig {
    let (path, name) = cx.entry_head(anon, &ASSET_ENTRY, |p| format!("asset {p:?}"));
    let t = anon.named(&name);
    let mut asset = AssetConfig {
        path: String::new(),
        kind: mw_model::AssetKind::Other("asset".to_owned()),
        description: String::new(),
    };
    if let Some(p) = path {
        if cx.valid_asset_path(&p) {
            cx.declare_asset(&p);
        }
        asset.path = p.v.to_owned();
    }
    if let Some(f) = cx.string(t, "kind", false) {
        asset.kind = mw_model::AssetKind::parse(f.v);
    }
    if let Some(f) = cx.string(t, "description", false) {
        asset.description = f.v.to_owned();
    }
    asset
}
