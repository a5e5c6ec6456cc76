//! The component: `[[uplink]]`, one [`UplinkSink`] (with its buffer and forwarder) per entry,
//! and [`Uplinks`], the status handles, for other layers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mw_buffer::Buffer;
use mw_bus::{BuildError, Component, Parts, SinkOptions, Wants};
use mw_config::{Config, Section};
use mw_storage::storage::FsStorage;

use crate::config::{Auth, Checker, UplinkConfig, UplinkSection};
use crate::forward::{Credentials, ForwarderConfig, Secret, StatusHandle};
use crate::sink::UplinkSink;

/// The status of every uplink, by name (offered with `Parts::provide`).
#[derive(Clone, Default)]
pub struct Uplinks(pub Vec<(String, StatusHandle)>);

/// The uplink component.
pub struct UplinkComponent;

impl Component for UplinkComponent {
    fn name(&self) -> &'static str {
        "uplink"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(Checker), Box::new(crate::remote::RemoteChecker)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        let Some(section) = cfg.section::<UplinkSection>() else {
            return Ok(());
        };
        let mut handles = Uplinks::default();
        for u in &section.uplinks {
            let sink = build_sink(cfg, u).map_err(|message| BuildError {
                component: "uplink",
                message,
            })?;
            handles.0.push((u.name.clone(), sink.status()));
            parts.add_sink(Box::new(sink));
        }
        if !handles.0.is_empty() {
            parts.provide(handles);
        }
        Ok(())
    }

    fn config_watch(&self, cfg: &Config) -> Option<std::sync::Arc<dyn mw_bus::ConfigWatch>> {
        let rc = cfg.section::<crate::RemoteConfigSection>()?.0.clone()?;
        Some(std::sync::Arc::new(crate::remote::KvWatch {
            rc,
            site_name: cfg.site.name.clone(),
        }))
    }
}

/// The buffer directory of `u`: its `buffer.dir`, or `<site.data_dir>/uplink/<name>`.
pub fn buffer_dir(cfg: &Config, u: &UplinkConfig) -> PathBuf {
    if u.buffer.dir.as_os_str().is_empty() {
        cfg.site.data_dir.join("uplink").join(&u.name)
    } else {
        u.buffer.dir.clone()
    }
}

/// Opens the buffer and reads the secrets of one `[[uplink]]` entry. Errors name files, never
/// their contents.
pub fn build_sink(cfg: &Config, u: &UplinkConfig) -> Result<UplinkSink, String> {
    let dir = buffer_dir(cfg, u);
    let mut bc = u.buffer.clone();
    bc.dir = dir.clone();
    let mut opts = bc.check().map_err(|p| {
        format!(
            "uplink {:?}: {}",
            u.name,
            p.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    opts.name = format!("uplink/{}", u.name);
    let chunk_bytes = opts.segment_bytes / 2;
    let (buffer, report) =
        Buffer::open(Arc::new(FsStorage), opts).map_err(|e| format!("uplink {:?}: {e}", u.name))?;
    if let Some(t) = &report.truncated {
        tracing::warn!(uplink = %u.name, segment = %t.segment.display(), bytes = t.bytes,
            "uplink buffer had a torn tail (a crash mid-write); cut off");
    }
    for q in &report.quarantined {
        tracing::error!(uplink = %u.name, segment = %q.segment.display(), file = %q.file.display(),
            lost = ?q.lost_records, "uplink buffer damaged; the damaged bytes were quarantined");
    }
    tracing::info!(uplink = %u.name, dir = %dir.display(), pending = report.pending_records,
        "uplink buffer open");
    let edge_id = match &u.edge_id {
        Some(e) => e.clone(),
        None => edge_id(&dir).map_err(|e| format!("uplink {:?}: {e}", u.name))?,
    };
    let credentials = credentials(&u.auth, &format!("uplink {:?}", u.name))?;
    let site = u.site_for(&cfg.site.name);
    let (forwarder_edge_id, site_for_topics) = (edge_id.clone(), site.clone());
    let mut units = HashMap::new();
    for t in cfg.tags.iter().chain(&cfg.published) {
        if let Some(unit) = &t.unit {
            units.insert(t.path.clone(), unit.clone());
        }
    }
    Ok(UplinkSink {
        opts: SinkOptions::new(format!("uplink/{}", u.name), cfg.pipeline.sink_capacity)
            .wants(if u.victoria_metrics.is_some() {
                Wants::Samples
            } else {
                Wants::Both
            })
            .durable(),
        buffer,
        forwarder: ForwarderConfig {
            name: u.name.clone(),
            urls: u.urls.clone(),
            edge_id,
            stream: u.stream_for(&site),
            site,
            batch: u.batch,
            duplicate_window: u.duplicate_window,
            replicas: u.replicas,
            credentials,
            tls: u.tls.as_ref().map(|t| (t.ca.clone(), t.client.clone())),
            ack_timeout: Duration::from_secs(5),
        },
        units: Arc::new(units),
        status: StatusHandle::default(),
        chunk_bytes,
        pack: u.pack,
        victoria_metrics: u.victoria_metrics.clone(),
        hold: u.hold,
        mqtt: match &u.mqtt {
            None => None,
            Some(m) => {
                let user = match &u.auth {
                    Auth::UserPassword {
                        user,
                        password_file,
                    } => Some((user.clone(), password_file.clone())),
                    _ => None,
                };
                let cc = crate::mqtt::client_config(
                    &u.name,
                    m,
                    &forwarder_edge_id,
                    user,
                    u.tls.as_ref().map(|t| (t.ca.clone(), t.client.clone())),
                );
                let prefix = m
                    .topic_prefix
                    .clone()
                    .unwrap_or_else(|| format!("millwright/{site_for_topics}"));
                Some(crate::mqtt::MqttUpstream::new(cc, prefix, u.batch)?)
            }
        },
    })
}

/// Reads the secret files `auth` names; errors start with `what` and never show a secret.
pub(crate) fn credentials(auth: &Auth, what: &str) -> Result<Credentials, String> {
    Ok(match auth {
        Auth::None => Credentials::None,
        Auth::UserPassword {
            user,
            password_file,
        } => Credentials::UserPassword(user.clone(), read_secret(password_file, what)?),
        Auth::Token { token_file } => Credentials::Token(read_secret(token_file, what)?),
    })
}

fn read_secret(path: &Path, what: &str) -> Result<Secret, String> {
    let s = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{what}: cannot read the secret file {}: {}",
            path.display(),
            e.kind()
        )
    })?;
    let s = s.trim_end_matches(['\r', '\n']);
    if s.is_empty() {
        return Err(format!(
            "{what}: the secret file {} is empty",
            path.display()
        ));
    }
    Ok(Secret(s.to_owned()))
}

/// The edge id kept in `dir/edge-id`, made on first use: 16 hex digits, random, so that a new
/// buffer (whose sequence numbers start again) never collides with an old one in the server's
/// duplicate window.
fn edge_id(dir: &Path) -> Result<String, String> {
    use std::hash::{BuildHasher, Hasher};
    let path = dir.join("edge-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    let id = format!("{:016x}", h.finish());
    let tmp = dir.join("edge-id.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(id.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}
