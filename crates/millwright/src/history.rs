//! `millwright query`, `export` and `import`: the historian from the command line, offline.
//! The store is opened with its directory lock (`mw_historian::component::DirLock`), so these
//! refuse, with a message saying so, while a server (or another of them) has it open. Formats
//! and their rules: `millwright::transfer`.

use std::fmt::Write as _;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use millwright::transfer::{self, Format, Importer};
use mw_historian::Agg;
use mw_historian::component::{HistorianConfig, open_store, parse_duration};
use mw_historian::engine::Historian;
use mw_model::{TagPath, TagPattern, format_rfc3339_ns, parse_rfc3339_ns};
use serde_json::json;

use crate::progress::Progress;

/// Where the store is: a config file's `[historian]`, or a data directory's `historian/`.
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Configuration file whose `[historian]` section (and `[site] data_dir`) says where the store is.
    #[arg(long, short, value_name = "FILE", conflicts_with = "data_dir")]
    pub config: Option<PathBuf>,
    /// Data directory (the store is DIR/historian), as `demo --data-dir` and `[site] data_dir`.
    #[arg(long, value_name = "DIR", default_value = "millwright-data")]
    pub data_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Tag path, or a glob (`plant/*/flow`, `line1/**`).
    pub tag: String,
    /// Start: RFC 3339 (`2026-12-04T10:00:00Z`), nanoseconds since the epoch, or an age (`24h`: that long before now). Default: 1h.
    #[arg(
        long,
        value_name = "T",
        default_value = "1h",
        allow_hyphen_values = true
    )]
    pub from: String,
    /// End (exclusive), as --from. Default: now.
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Aggregate per --step: min, max, avg, sum, count, first, last, twa (time-weighted average).
    #[arg(long, value_name = "AGG", requires = "step")]
    pub agg: Option<String>,
    /// Bucket length for --agg (`10s`, `5m`, `1h`, `1d`).
    #[arg(long, value_name = "DURATION", requires = "agg")]
    pub step: Option<String>,
    /// Output: table, csv or json.
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Output file; `.csv` → CSV, `.lp`/`.line`/`.txt` → line protocol (or --format). `-`: standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Tags to export (path or glob; repeatable). Default: every tag.
    #[arg(long = "tag", value_name = "GLOB")]
    pub tags: Vec<String>,
    /// Start, as for `query`. Default: everything stored.
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End (exclusive), as for `query`. Default: now.
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// csv or line (default: from the output's extension).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Files to import (CSV as `export` writes it, or line protocol), streamed.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// csv or line (default: from each file's extension).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Points written (and made durable) at a time.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub batch: usize,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// The `[historian]` section to open: from the config file, or the defaults under --data-dir.
fn historian_config(s: &StoreArgs) -> Result<(HistorianConfig, PathBuf)> {
    match &s.config {
        Some(path) => {
            let cfg = millwright::config_registry()
                .load(path)
                .map_err(|d| anyhow::anyhow!("{d}\n{}: invalid configuration", path.display()))?;
            let hc = cfg
                .section::<HistorianConfig>()
                .cloned()
                .filter(|h| h.enabled)
                .with_context(|| {
                    format!(
                        "{} has no [historian] section: no history is kept",
                        path.display()
                    )
                })?;
            Ok((hc, cfg.site.data_dir.clone()))
        }
        None => Ok((
            HistorianConfig {
                enabled: true,
                ..HistorianConfig::default()
            },
            s.data_dir.clone(),
        )),
    }
}

/// The store of `s`, locked, and its section (read once).
fn open(
    s: &StoreArgs,
    create: bool,
) -> Result<(Historian, mw_historian::component::DirLock, HistorianConfig)> {
    let (hc, data_dir) = historian_config(s)?;
    let dir = mw_historian::component::store_dir(&hc, &data_dir);
    if !create && !dir.join("wal").is_dir() {
        bail!(
            "no history in {} (nothing has been stored there yet; pass --config or --data-dir)",
            dir.display()
        );
    }
    let (h, _report, lock) = open_store(&hc, &data_dir).map_err(anyhow::Error::msg)?;
    Ok((h, lock, hc))
}

/// A time argument: RFC 3339, nanoseconds, or an age before `now`.
pub(crate) fn parse_time(s: &str, now: i64) -> Result<i64> {
    let t = s.trim();
    if let Some(ns) = parse_rfc3339_ns(t) {
        return Ok(ns);
    }
    if let Ok(ns) = t.parse::<i64>() {
        return Ok(ns);
    }
    match parse_duration(t.trim_start_matches('-')) {
        Ok(age) => Ok(now.saturating_sub(age)),
        Err(_) => bail!(
            "invalid time {s:?}: expected RFC 3339 (2026-12-04T10:00:00Z), nanoseconds since the epoch, or an age such as 24h or 7d"
        ),
    }
}

fn select(h: &Historian, globs: &[String]) -> Result<Vec<TagPath>> {
    let all = h.tags();
    if globs.is_empty() {
        return Ok(all);
    }
    let pats: Vec<TagPattern> = globs
        .iter()
        .map(|g| TagPattern::new(g).map_err(|e| anyhow::anyhow!("invalid tag pattern {g:?}: {e}")))
        .collect::<Result<_>>()?;
    Ok(all
        .into_iter()
        .filter(|t| pats.iter().any(|p| p.matches(t)))
        .collect())
}

pub fn query(a: QueryArgs) -> Result<ExitCode> {
    let now = mw_model::now_ns();
    let from = parse_time(&a.from, now)?;
    let to = a.to.as_deref().map_or(Ok(now), |t| parse_time(t, now))?;
    if from >= to {
        bail!(
            "--from ({}) is not before --to ({})",
            format_rfc3339_ns(from),
            format_rfc3339_ns(to)
        );
    }
    if !matches!(a.format.as_str(), "table" | "csv" | "json") {
        bail!(
            "invalid --format {:?}: expected table, csv or json",
            a.format
        );
    }
    let agg = match (&a.agg, &a.step) {
        (Some(name), Some(step)) => {
            let agg = Agg::parse(name).with_context(|| {
                format!(
                    "invalid --agg {name:?}: expected one of {}",
                    Agg::ALL.map(Agg::name).join(", ")
                )
            })?;
            let step = parse_duration(step).map_err(anyhow::Error::msg)?;
            Some((agg, step))
        }
        _ => None,
    };
    let (h, _lock, _) = open(&a.store, false)?;
    let tags = select(&h, std::slice::from_ref(&a.tag))?;
    if tags.is_empty() {
        bail!("no stored tag matches {:?}", a.tag);
    }
    let mut out = String::new();
    let mut series = Vec::new();
    if a.format == "csv" {
        out.push_str(if agg.is_some() {
            "time,tag,value,count\n"
        } else {
            "time,tag,value,quality,reason\n"
        });
    }
    for tag in &tags {
        // rows: time, value text, quality or count, reason
        let rows: Vec<[String; 4]> = match agg {
            Some((agg, step)) => h
                .aggregate(tag, from, to, step, agg)
                .into_iter()
                .map(|b| {
                    [
                        format_rfc3339_ns(b.start),
                        b.value.to_string(),
                        b.count.to_string(),
                        String::new(),
                    ]
                })
                .collect(),
            None => h
                .range_half_open(tag, from, to)
                .into_iter()
                .map(|p| {
                    [
                        format_rfc3339_ns(p.ts),
                        p.value.to_string(),
                        p.quality.status().to_owned(),
                        p.quality.reason().unwrap_or("").to_owned(),
                    ]
                })
                .collect(),
        };
        match a.format.as_str() {
            "json" => series.push(json!({
                "tag": tag.as_str(),
                "points": rows.iter().map(|r| json!([r[0], json_cell(&r[1]), r[2]])).collect::<Vec<_>>(),
            })),
            "csv" => {
                let mut w = csv::Writer::from_writer(Vec::new());
                for r in &rows {
                    let rec: Vec<&str> = if agg.is_some() {
                        vec![&r[0], tag.as_str(), &r[1], &r[2]]
                    } else {
                        vec![&r[0], tag.as_str(), &r[1], &r[2], &r[3]]
                    };
                    w.write_record(rec)?;
                }
                out.push_str(&String::from_utf8_lossy(&w.into_inner()?));
            }
            _ => {
                let _ = writeln!(out, "{tag} ({} point{})", rows.len(), plural(rows.len()));
                for r in &rows {
                    let _ = writeln!(out, "  {:<32} {:>20}  {} {}", r[0], r[1], r[2], r[3]);
                }
            }
        }
    }
    if a.format == "json" {
        let doc = if series.len() == 1 && !a.tag.contains('*') {
            series.remove(0)
        } else {
            json!({ "series": series })
        };
        out = format!("{doc}\n");
    }
    crate::cli::write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// A value's text as JSON: a number or a bool when it reads as one, else a string.
fn json_cell(text: &str) -> serde_json::Value {
    if let Ok(b) = text.parse::<bool>() {
        return json!(b);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => json!(v),
        _ => json!(text),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn format_of(flag: Option<&str>, path: &Path) -> Result<Format> {
    match flag {
        Some(f) => Format::parse(f).with_context(|| format!("invalid --format {f:?}: expected csv or line")),
        None => Format::of_path(path).with_context(|| {
            format!(
                "cannot tell the format of {} from its extension (.csv, .lp, .line, .txt); pass --format csv|line",
                path.display()
            )
        }),
    }
}

pub fn export(a: ExportArgs) -> Result<ExitCode> {
    let now = mw_model::now_ns();
    let from = a
        .from
        .as_deref()
        .map_or(Ok(i64::MIN), |t| parse_time(t, now))?;
    let to = a.to.as_deref().map_or(Ok(now), |t| parse_time(t, now))?;
    let to_stdout = a.output.as_os_str() == "-";
    let format = match (&a.format, to_stdout) {
        (None, true) => Format::Csv,
        _ => format_of(a.format.as_deref(), &a.output)?,
    };
    let (h, _lock, hc) = open(&a.store, false)?;
    let tags = select(&h, &a.tags)?;
    if tags.is_empty() {
        bail!("no stored tag matches {}", a.tags.join(", "));
    }
    // Without --from: everything the store still serves, i.e. from the longest raw retention of
    // the tags back (older points are hidden from every query), read a day at a time — never a
    // tag's whole history at once.
    let from = if from == i64::MIN {
        tags.iter()
            .map(|t| to.saturating_sub(hc.retention.raw_for(t)))
            .min()
            .unwrap_or(to)
    } else {
        from
    };
    let mut bar = Progress::new("export", "tag");
    let total = tags.len() as u64;
    let progress = |done: usize, _points: u64| bar.set(done as u64, total);
    let sum = if to_stdout {
        let out = std::io::stdout().lock();
        transfer::export(&h, &tags, from, to, format, BufWriter::new(out), progress)
    } else {
        let tmp = a.output.with_extension("partial");
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let sum = transfer::export(&h, &tags, from, to, format, BufWriter::new(file), progress)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &a.output).with_context(|| {
            format!("cannot rename {} to {}", tmp.display(), a.output.display())
        })?;
        Ok(sum)
    }
    .context("export failed")?;
    bar.finish();
    let mut msg = format!(
        "exported {} point{} of {} tag{} ({} .. {})",
        sum.points,
        plural(sum.points as usize),
        sum.tags,
        plural(sum.tags),
        format_rfc3339_ns(from),
        format_rfc3339_ns(to)
    );
    if !to_stdout {
        let _ = write!(msg, " to {}", a.output.display());
    }
    if sum.skipped > 0 {
        let _ = write!(
            msg,
            "; {} point(s) skipped: NaN, infinite or multi-line values have no line-protocol form (export CSV to keep them)",
            sum.skipped
        );
    }
    eprintln!("{msg}");
    Ok(ExitCode::SUCCESS)
}

/// The stored history of `tags` as the wide CSV `backtest` reads
/// ([`millwright::transfer::wide_csv`]), produced by a thread into a pipe while the backtest
/// reads it (memory stays bounded by a day of the tags). The thread holds the store's lock and
/// returns the rows written.
pub fn history_csv(
    store: &StoreArgs,
    tags: &[String],
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(
    std::io::PipeReader,
    std::thread::JoinHandle<std::io::Result<u64>>,
)> {
    let now = mw_model::now_ns();
    let from = parse_time(from.unwrap_or("7d"), now)?;
    let to = to.map_or(Ok(now), |t| parse_time(t, now))?;
    let (h, lock, _) = open(store, false)?;
    let paths: Vec<TagPath> = tags
        .iter()
        .map(|t| TagPath::new(t).map_err(|e| anyhow::anyhow!("invalid tag {t:?}: {e}")))
        .collect::<Result<_>>()?;
    let stored = h.tags();
    if let Some(missing) = paths.iter().find(|p| !stored.contains(p)) {
        bail!("no stored history for {missing}");
    }
    let (reader, writer) = std::io::pipe().context("cannot make a pipe")?;
    let rows = std::thread::spawn(move || {
        let _lock = lock;
        let r = transfer::wide_csv(&h, &paths, from, to, BufWriter::new(writer));
        h.close();
        r
    });
    Ok((reader, rows))
}

/// Counts the bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

pub fn import(a: ImportArgs) -> Result<ExitCode> {
    let formats: Vec<Format> = a
        .files
        .iter()
        .map(|f| format_of(a.format.as_deref(), f))
        .collect::<Result<_>>()?;
    let (h, _lock, hc) = open(&a.store, true)?;
    let now = mw_model::now_ns();
    let mut expired = 0u64;
    let mut expired_example: Option<(String, i64)> = None;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let mut total_points = 0u64;
    let mut tags = std::collections::HashSet::new();
    let mut oldest = i64::MAX;
    for (path, format) in a.files.iter().zip(formats) {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let input = BufReader::with_capacity(
            1 << 16,
            Counting {
                inner: file,
                read: read.clone(),
            },
        );
        let mut bar = Progress::new(&format!("import {}", path.display()), "byte");
        let mut points = 0u64;
        let result = (|| -> std::result::Result<(), String> {
            let mut im = Importer::new(input, format, a.batch).map_err(|e| e.to_string())?;
            while let Some(batch) = im.next_batch().map_err(|e| e.to_string())? {
                rt.block_on(h.write(&batch)).map_err(|e| e.to_string())?;
                points += batch.len() as u64;
                for p in &batch {
                    oldest = oldest.min(p.ts);
                    let keep = hc.retention.raw_for(&p.tag);
                    if p.ts < now.saturating_sub(keep) {
                        expired += 1;
                        expired_example.get_or_insert_with(|| (p.tag.as_str().to_owned(), keep));
                    }
                    if !tags.contains(p.tag.as_str()) {
                        tags.insert(p.tag.as_str().to_owned());
                    }
                }
                bar.set(read.load(std::sync::atomic::Ordering::Relaxed), size);
            }
            Ok(())
        })();
        bar.finish();
        total_points += points;
        if let Err(e) = result {
            let _ = rt.block_on(h.flush());
            h.close();
            eprintln!(
                "{}: {e}\nimported {points} point(s) from this file before that line ({total_points} in all); they are stored, nothing after it was",
                path.display()
            );
            warn_expired(expired, expired_example);
            return Ok(ExitCode::FAILURE);
        }
        eprintln!("{}: {points} point(s)", path.display());
    }
    rt.block_on(h.flush())
        .context("cannot flush the historian")?;
    h.close();
    eprintln!(
        "imported {total_points} point(s) of {} tag(s){}",
        tags.len(),
        if total_points > 0 {
            format!(", the oldest at {}", format_rfc3339_ns(oldest))
        } else {
            String::new()
        }
    );
    warn_expired(expired, expired_example);
    Ok(ExitCode::SUCCESS)
}

/// Says how many imported points the retention will not keep (they are older than it).
fn warn_expired(expired: u64, example: Option<(String, i64)>) {
    if let Some((tag, keep)) = example {
        eprintln!(
            "warning: {expired} imported point(s) are older than the raw retention of their tag (e.g. {tag}: {} days) and are not kept: \
             raise [historian] retention (or add a [[historian.retention_class]]) in a config and import with --config",
            keep / 86_400_000_000_000
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_nanoseconds_or_ages() {
        let now = 1_000_000_000_000_000_000;
        assert_eq!(
            parse_time("2026-12-04T10:00:00Z", now).unwrap(),
            1_796_378_400_000_000_000
        );
        assert_eq!(parse_time("42", now).unwrap(), 42);
        assert_eq!(parse_time("1h", now).unwrap(), now - 3_600_000_000_000);
        assert_eq!(parse_time("-1h", now).unwrap(), now - 3_600_000_000_000);
        let e = parse_time("yesterday", now).unwrap_err().to_string();
        assert!(e.starts_with("invalid time \"yesterday\""), "{e}");
    }
}
