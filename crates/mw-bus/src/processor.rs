use std::collections::HashMap;

use mw_model::{DeadbandFilter, TagPath};

use crate::{Batch, BuildError, Component, Parts};

/// A synchronous stage between ingress and fan-out: it sees every batch, in order, and may drop
/// or change samples, and emit samples and events of its own (derived tags, alarm transitions)
/// by appending them to the batch.
///
/// An implementation must:
/// * be **cheap and never block** — it runs on the bus task, so a slow processor slows every
///   sink (heavy work belongs in a sink of its own);
/// * **keep order**: append what it emits after what caused it, never reorder the samples of a
///   tag;
/// * be **bounded**: its state grows with the configuration (tags, detectors), not with time;
/// * **on disconnect** of a source it sees bad-quality samples, not silence: it must treat them
///   as "unknown", never as a normal value;
/// * **on overload** it does nothing special: backpressure happens before it (ingress) and
///   after it (sink queues);
/// * **on restart** it starts from its configuration (a processor that learns, e.g. an anomaly
///   detector, warms up again and says so in the quality of what it emits).
///
/// A batch it empties entirely is not forwarded (its acknowledgement, if any, is committed:
/// nothing was left to keep).
pub trait Processor: Send + 'static {
    fn process(&mut self, batch: &mut Batch);
}

/// Report-by-exception: drops numeric samples whose change since the last passed value is
/// within the tag's deadband. Tags without a threshold pass unchanged.
#[derive(Default)]
pub struct DeadbandProcessor {
    thresholds: HashMap<TagPath, f64>,
    filter: DeadbandFilter,
}

impl DeadbandProcessor {
    pub fn set_threshold(&mut self, tag: TagPath, threshold: f64) {
        self.thresholds.insert(tag, threshold);
    }

    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }
}

impl Processor for DeadbandProcessor {
    fn process(&mut self, batch: &mut Batch) {
        if self.thresholds.is_empty() {
            return;
        }
        let before = batch.samples.len();
        batch.samples.retain(|s| match self.thresholds.get(&s.tag) {
            Some(&t) => self.filter.pass(&s.tag, &s.value, s.quality.is_good(), t),
            None => true,
        });
        let dropped = before - batch.samples.len();
        if dropped > 0 {
            metrics::counter!("mw_discarded_samples_total", "component" => "deadband", "instance" => "bus",
                "reason" => "deadband")
            .increment(dropped as u64);
        }
    }
}

/// Report-by-exception as a component: one [`DeadbandProcessor`] over every tag of the config
/// with a deadband (none is added when no tag has one). List it after the components whose
/// processors must see every sample (analytics).
pub struct DeadbandComponent;

impl Component for DeadbandComponent {
    fn name(&self) -> &'static str {
        "deadband"
    }

    fn build(&self, cfg: &mw_config::Config, parts: &mut Parts) -> Result<(), BuildError> {
        let mut deadband = DeadbandProcessor::default();
        for t in cfg.tags.iter().chain(&cfg.published) {
            if let Some(th) = t.deadband_threshold() {
                deadband.set_threshold(t.path.clone(), th);
            }
        }
        if !deadband.is_empty() {
            parts.add_processor(Box::new(deadband));
        }
        Ok(())
    }
}
