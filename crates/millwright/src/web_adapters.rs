//! The web layer's seams (`mw_web::TagStore`, `mw_web::Ingest`, `mw_web::FaultControl`,
//! `mw_web::DetectorControl`, `mw_web::AlarmApi`) over this process's live store and historian,
//! its bus, in-process simulator, live detectors and alarm engine. Thin delegation: the
//! behaviour is in `mw-live`, `mw-historian`, `mw-bus`, `millwright::ingest`, `mw-sim`,
//! `mw-analytics-live` and `mw-alarms`, the JSON shapes in `mw-web`.

use std::sync::{Arc, Mutex};

use mw_historian::engine::Historian;
use mw_live::LiveStore;
use mw_model::{Sample, TagPath};
use mw_web::{FaultInfo, FaultSpec};

/// The live store as the API's tag store. It keeps only a recent window per tag, so range and
/// aggregate queries keep their default answer (`QueryError::Unsupported`): the tag store of a
/// process without a historian.
pub struct LiveTags(pub LiveStore);

impl mw_web::TagStore for LiveTags {
    fn latest(&self, tag: &TagPath) -> Option<Sample> {
        self.0.latest(tag)
    }

    fn latest_all(&self) -> Vec<Sample> {
        self.0.latest_all()
    }

    fn recent(&self, tag: &TagPath, limit: usize) -> Option<Vec<Sample>> {
        self.0.recent(tag, limit)
    }

    fn window(&self) -> usize {
        self.0.window()
    }
}

/// The live store and the historian as the API's tag store: the latest value from the live
/// store (the historian's when the live store has none yet, e.g. after a restart), the recent
/// window and every history query from the historian, so a restart keeps the trends.
pub struct HistoryTags {
    pub live: LiveStore,
    pub historian: Historian,
}

/// How far back [`HistoryTags::recent`] looks first; it widens (×8, up to
/// [`RECENT_LOOKBACK_MAX_NS`]) while it finds fewer samples than asked.
const RECENT_LOOKBACK_NS: i64 = 3_600_000_000_000;
const RECENT_LOOKBACK_MAX_NS: i64 = 30 * 86_400_000_000_000;

fn sample(p: mw_historian::record::Point) -> Sample {
    Sample {
        tag: p.tag,
        value: p.value,
        quality: p.quality,
        source_ts: p.ts,
        receive_ts: p.ts,
    }
}

impl mw_web::TagStore for HistoryTags {
    fn latest(&self, tag: &TagPath) -> Option<Sample> {
        self.live
            .latest(tag)
            .or_else(|| self.historian.latest(tag).map(sample))
    }

    fn latest_all(&self) -> Vec<Sample> {
        let mut live = self.live.latest_all();
        let have: std::collections::HashSet<TagPath> = live.iter().map(|s| s.tag.clone()).collect();
        for t in self.historian.tags() {
            if !have.contains(&t)
                && let Some(p) = self.historian.latest(&t)
            {
                live.push(sample(p));
            }
        }
        live.sort_by(|a, b| a.tag.cmp(&b.tag));
        live
    }

    fn recent(&self, tag: &TagPath, limit: usize) -> Option<Vec<Sample>> {
        let Some(last) = self.historian.latest(tag) else {
            return self.live.recent(tag, limit);
        };
        let to = last.ts;
        let mut span = RECENT_LOOKBACK_NS;
        loop {
            let from = to.saturating_sub(span);
            let points = self.historian.range(tag, from, to);
            if points.len() >= limit || span >= RECENT_LOOKBACK_MAX_NS {
                let skip = points.len().saturating_sub(limit);
                return Some(points.into_iter().skip(skip).map(sample).collect());
            }
            span = span.saturating_mul(8);
        }
    }

    fn window(&self) -> usize {
        self.live.window()
    }

    fn range(
        &self,
        tag: &TagPath,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<Sample>, mw_web::QueryError> {
        if from_ns >= to_ns {
            return Err(mw_web::QueryError::InvalidRange { from_ns, to_ns });
        }
        let points = self.historian.range_half_open(tag, from_ns, to_ns);
        Ok(points.into_iter().take(limit).map(sample).collect())
    }

    fn aggregate(
        &self,
        tag: &TagPath,
        from_ns: i64,
        to_ns: i64,
        step_ns: i64,
        aggregate: mw_web::Aggregate,
    ) -> Result<Vec<mw_web::AggregatePoint>, mw_web::QueryError> {
        use mw_historian::Agg;
        use mw_web::Aggregate as A;
        if from_ns >= to_ns {
            return Err(mw_web::QueryError::InvalidRange { from_ns, to_ns });
        }
        if step_ns <= 0 {
            return Err(mw_web::QueryError::InvalidStep { step_ns });
        }
        let agg = match aggregate {
            A::Min => Agg::Min,
            A::Max => Agg::Max,
            A::Avg => Agg::Avg,
            A::Sum => Agg::Sum,
            A::Count => Agg::Count,
            A::First => Agg::First,
            A::Last => Agg::Last,
            A::Twa => Agg::Twa,
        };
        Ok(self
            .historian
            .aggregate(tag, from_ns, to_ns, step_ns, agg)
            .into_iter()
            .map(|b| mw_web::AggregatePoint {
                start_ns: b.start,
                value: b.value,
                count: b.count,
            })
            .collect())
    }

    fn paths(&self) -> Vec<TagPath> {
        let mut all: Vec<TagPath> = self.live.latest_all().into_iter().map(|s| s.tag).collect();
        all.extend(self.historian.tags());
        all.sort();
        all.dedup();
        all
    }
}

/// HTTP writes into the pipeline: checked by [`millwright::ingest::TagKinds`], sent with an
/// end-to-end acknowledgement, answered once every durable sink (the historian) committed.
pub struct BusIngest {
    pub publisher: mw_bus::Publisher,
    pub kinds: millwright::ingest::TagKinds,
    pub historian: Historian,
}

impl mw_web::Ingest for BusIngest {
    fn write(&self, samples: Vec<Sample>) -> mw_web::IngestFuture<'_> {
        Box::pin(async move {
            let created = self
                .kinds
                .admit(&samples, |t| self.historian.latest(t).map(|p| p.value))
                .map_err(|r| mw_web::IngestError::Rejected {
                    index: r.index,
                    message: r.message,
                })?;
            let n = samples.len();
            let rx = self
                .publisher
                .send_with_ack(mw_bus::Batch::from_samples(samples))
                .await
                .map_err(|_| mw_web::IngestError::Closed)?;
            match rx.outcome().await {
                mw_bus::AckOutcome::Committed { sinks } if sinks > 0 => Ok(mw_web::IngestReceipt {
                    samples: n,
                    created_tags: created,
                }),
                mw_bus::AckOutcome::Committed { .. } => Err(mw_web::IngestError::NotDurable(
                    "no durable sink took the samples".into(),
                )),
                mw_bus::AckOutcome::Dropped { sink, reason }
                | mw_bus::AckOutcome::Failed { sink, reason } => {
                    Err(mw_web::IngestError::NotDurable(format!("{sink}: {reason}")))
                }
            }
        })
    }
}

/// The demo's simulator and its clock. The simulator runs `speed` times faster than the wall
/// clock from `wall_start_ns` on (its own clock starts at the same instant), so a simulator time
/// `sim_s` happened at wall time `wall_start_ns + sim_s / speed` — the time base of the tags.
pub struct SimFaults {
    pub plant: Arc<Mutex<mw_sim::Plant>>,
    pub wall_start_ns: i64,
    pub speed: f64,
}

impl SimFaults {
    /// Wall-clock ns of a simulator time.
    fn wall_ns(&self, sim_s: f64) -> i64 {
        self.wall_start_ns + (sim_s / self.speed * 1e9) as i64
    }

    fn info(&self, f: mw_sim::FaultRecord) -> FaultInfo {
        FaultInfo {
            id: f.id.0,
            kind: f.kind.to_string(),
            asset: f.asset,
            point: f.point,
            origin: f.origin.as_str().to_owned(),
            active: f.active,
            start_ns: f.start_ns,
            end_ns: f.end_ns,
            start_s: f.start_s,
            end_s: f.end_s,
            wall_start_ns: self.wall_ns(f.start_s),
            wall_end_ns: self.wall_ns(f.end_s),
        }
    }

    fn plant(&self) -> std::sync::MutexGuard<'_, mw_sim::Plant> {
        self.plant.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl mw_web::FaultControl for SimFaults {
    fn inject(&self, spec: FaultSpec) -> Result<FaultInfo, String> {
        let kind: mw_sim::FaultKind = spec.kind.parse().map_err(|e| format!("{e}"))?;
        let mut plant = self.plant();
        let id = plant
            .inject(mw_sim::FaultRequest {
                asset: spec.asset,
                kind,
                duration_s: spec.duration_s,
                point: spec.point,
            })
            .map_err(|e| e.to_string())?;
        // `inject` records the fault at once; a missing record would be a simulator bug.
        let rec = plant.faults().into_iter().find(|f| f.id == id);
        drop(plant);
        rec.map(|r| self.info(r))
            .ok_or_else(|| format!("fault {id} was started but the simulator does not list it"))
    }

    fn list(&self) -> Vec<FaultInfo> {
        let faults = self.plant().faults();
        faults.into_iter().map(|f| self.info(f)).collect()
    }
}

/// The HTTP API's view of the live detectors.
pub struct DetectorsApi(pub Arc<mw_analytics_live::Control>);

impl mw_web::DetectorControl for DetectorsApi {
    fn list(&self) -> Vec<mw_web::DetectorInfo> {
        self.0
            .list()
            .into_iter()
            .map(|d| mw_web::DetectorInfo {
                asset: d.asset,
                kind: d.kind,
                inputs: d.inputs,
                score_tag: d.score_tag,
                flag_tag: d.flag_tag,
                contributors_tag: d.contributors_tag,
                state: mw_web::DetectorState {
                    warming_up: d.state.warming_up,
                    warmup_rows: d.state.warmup_rows,
                    warmup_rows_left: d.state.warmup_rows_left,
                    warmup_seconds_left: d.state.warmup_seconds_left,
                    unstable: d.state.unstable,
                    score: d.state.score,
                    anomalous: d.state.anomalous,
                    last_onset_ns: d.state.last_onset_ns,
                    contributors: d.state.contributors,
                    missing: d.state.missing,
                },
            })
            .collect()
    }

    fn relearn(&self, asset: &str) -> usize {
        self.0.relearn(asset)
    }
}

/// The HTTP API's view of the alarm engine: a plain translation of `mw-alarms`' types into the
/// seam's (mw-web names no `mw-alarms` type).
pub struct AlarmsApi(pub mw_alarms::AlarmControl);

fn web_state(s: mw_alarms::State) -> mw_web::AlarmState {
    use mw_alarms::State as S;
    use mw_web::AlarmState as W;
    match s {
        S::Normal => W::Normal,
        S::UnackActive => W::UnackActive,
        S::AckActive => W::AckActive,
        S::RtnUnack => W::RtnUnack,
        S::Shelved => W::Shelved,
        S::Suppressed => W::Suppressed,
        S::OutOfService => W::OutOfService,
    }
}

fn web_priority(p: mw_alarms::Priority) -> mw_web::AlarmPriority {
    use mw_alarms::Priority as P;
    use mw_web::AlarmPriority as W;
    match p {
        P::Critical => W::Critical,
        P::High => W::High,
        P::Medium => W::Medium,
        P::Low => W::Low,
    }
}

fn web_view(a: mw_alarms::AlarmInfo) -> mw_web::AlarmView {
    mw_web::AlarmView {
        id: a.id,
        tag: a.tag,
        asset: a.asset,
        area: a.area,
        kind: a.kind.to_owned(),
        priority: web_priority(a.priority),
        state: web_state(a.state),
        condition: a.condition,
        value: a.value,
        message: a.message,
        raised_at_ns: a.raised_at,
        shelved_until_ns: a.shelved_until,
    }
}

fn web_change(t: mw_alarms::Transition) -> mw_web::AlarmChange {
    mw_web::AlarmChange {
        seq: t.seq,
        alarm: t.alarm,
        ts_ns: t.ts,
        from: web_state(t.from),
        to: web_state(t.to),
        value: t.value,
        message: t.message,
        priority: web_priority(t.priority),
        tag: t.tag,
        asset: t.asset,
        area: t.area,
        kind: t.kind.to_owned(),
        action: t.action.to_owned(),
        user: t.user,
        comment: t.comment,
    }
}

impl mw_web::AlarmApi for AlarmsApi {
    fn active(&self) -> Vec<mw_web::AlarmView> {
        self.0.active().into_iter().map(web_view).collect()
    }

    fn all(&self) -> Vec<mw_web::AlarmView> {
        self.0.all().into_iter().map(web_view).collect()
    }

    fn history(
        &self,
        limit: usize,
        since_ns: Option<i64>,
        alarm: Option<&str>,
    ) -> Vec<mw_web::AlarmRecordView> {
        self.0
            .history(limit, since_ns, alarm)
            .into_iter()
            .map(|r| mw_web::AlarmRecordView {
                ts_ns: r.ts,
                alarm: r.alarm,
                area: r.area,
                priority: r.priority,
                from: web_state(r.from),
                to: web_state(r.to),
                value: r.value,
                action: r.action,
                user: r.user,
                comment: r.comment,
            })
            .collect()
    }

    fn act(
        &self,
        id: &str,
        action: mw_web::AlarmAction,
        user: &str,
        comment: &str,
    ) -> Result<mw_web::AlarmChange, mw_web::AlarmActionError> {
        use mw_alarms::{Action as A, ActionError as E};
        use mw_web::{AlarmAction as W, AlarmActionError as R};
        let action = match action {
            W::Acknowledge => A::Acknowledge,
            W::Shelve(d) => A::Shelve(d),
            W::Unshelve => A::Unshelve,
            W::OutOfService => A::OutOfService,
            W::ReturnToService => A::ReturnToService,
            W::ResetLatched => A::ResetLatched,
        };
        self.0
            .perform(id, action, user, comment)
            .map(web_change)
            .map_err(|e| {
                let m = e.to_string();
                match e {
                    E::UnknownAlarm { .. } => R::UnknownAlarm(m),
                    E::Refused { .. } => R::Refused(m),
                    E::Invalid { .. } => R::Invalid(m),
                    E::Journal { .. } => R::Failed(m),
                }
            })
    }

    fn kpis(&self, window_ns: i64) -> mw_web::AlarmKpis {
        let k = self.0.kpis(window_ns);
        mw_web::AlarmKpis {
            per_area_per_10min: k.per_area_per_10min.into_iter().collect(),
            peak_per_10min: k.peak_per_10min.into_iter().collect(),
            flood_percent: k.flood_percent.into_iter().collect(),
            standing: k.standing,
            stale: k.stale,
            shelved: k.shelved,
            chattering: k.chattering,
            fleeting: k.fleeting,
            top10: k.top10,
            records: self.0.history_len(),
        }
    }

    fn subscribe(&self) -> mw_web::AlarmFeed {
        use tokio::sync::broadcast::error::RecvError;
        let rx = self.0.subscribe();
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(t) => Some((mw_web::AlarmFeedItem::Change(Box::new(web_change(t))), rx)),
                Err(RecvError::Lagged(n)) => Some((mw_web::AlarmFeedItem::Lagged(n), rx)),
                Err(RecvError::Closed) => None,
            }
        }))
    }
}

/// The audit trail in `DATA_DIR/audit/` as the API reads it.
pub struct AuditFile(pub std::path::PathBuf);

impl mw_web::AuditLog for AuditFile {
    fn recent(&self, limit: usize) -> Result<Vec<mw_security::audit::AuditRecord>, String> {
        mw_security::audit::read_recent(&self.0, limit).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use mw_web::FaultControl;

    use super::*;

    #[test]
    fn faults_carry_wall_clock_times_at_the_simulator_speed() {
        let sim = SimFaults {
            plant: Arc::new(Mutex::new(mw_sim::Plant::new(mw_sim::SimConfig::default()))),
            wall_start_ns: 1_000_000_000_000,
            speed: 10.0,
        };
        sim.plant().step(20.0);
        let spec = |kind: &str| FaultSpec {
            asset: "gd1".into(),
            kind: kind.into(),
            duration_s: 60.0,
            point: None,
        };
        let f = sim.inject(spec("gas_release")).unwrap();
        assert_eq!(
            (f.id, f.origin.as_str(), f.active),
            (1, "api", true),
            "{f:?}"
        );
        assert_eq!(f.asset, "acme/plant1/utilities/compressor_house/gd1");
        assert_eq!((f.start_s, f.end_s), (20.0, 80.0));
        // 20 s and 80 s of simulator time at 10x are 2 s and 8 s of wall time
        assert_eq!(f.wall_start_ns, 1_002_000_000_000);
        assert_eq!(f.wall_end_ns, 1_008_000_000_000);
        assert_eq!(sim.list(), vec![f]);

        let err = sim.inject(spec("meteor")).unwrap_err();
        assert!(
            err.starts_with("unknown fault kind \"meteor\" (expected one of: gas_release"),
            "{err}"
        );
        let mut bad = spec("leak");
        bad.asset = "nowhere".into();
        assert!(
            sim.inject(bad)
                .unwrap_err()
                .starts_with("unknown asset \"nowhere\"")
        );
        assert_eq!(sim.list().len(), 1, "refused faults are not recorded");
    }
}
