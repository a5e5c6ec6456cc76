use std::collections::HashMap;

use mw_model::{DeadbandFilter, Sample, TagPath};

/// A synchronous stage between ingress and fan-out. It must be cheap (it runs on the bus task)
/// and must keep per-tag order. It may drop or add samples.
pub trait Processor: Send + 'static {
    fn process(&mut self, batch: Vec<Sample>) -> Vec<Sample>;
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
    fn process(&mut self, mut batch: Vec<Sample>) -> Vec<Sample> {
        let before = batch.len();
        batch.retain(|s| match self.thresholds.get(&s.tag) {
            Some(&t) => self.filter.pass(&s.tag, &s.value, s.quality.is_good(), t),
            None => true,
        });
        let dropped = before - batch.len();
        if dropped > 0 {
            metrics::counter!("mw_discarded_samples_total", "component" => "deadband", "instance" => "bus",
                "reason" => "deadband")
            .increment(dropped as u64);
        }
        batch
    }
}
