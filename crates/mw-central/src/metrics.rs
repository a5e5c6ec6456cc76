//! Central's metrics, labelled `component="central"`, `instance=STREAM`.

use metrics::{counter, gauge};

pub struct Metrics;

impl Metrics {
    pub fn received(&self, stream: &str, n: u64, redelivered: u64) {
        counter!("mw_received_messages_total", "component" => "central", "instance" => stream.to_owned()).increment(n);
        counter!("mw_central_redelivered_total", "component" => "central", "instance" => stream.to_owned()).increment(redelivered);
    }

    pub fn written_samples(&self, stream: &str, n: u64) {
        counter!("mw_sent_samples_total", "component" => "central", "instance" => stream.to_owned(), "sink" => "victoriametrics").increment(n);
    }

    pub fn written_events(&self, stream: &str, new: u64, duplicates: u64) {
        counter!("mw_central_written_events_total", "component" => "central", "instance" => stream.to_owned()).increment(new);
        counter!("mw_central_duplicate_events_total", "component" => "central", "instance" => stream.to_owned()).increment(duplicates);
    }

    pub fn discarded(&self, stream: &str, reason: &'static str, n: u64) {
        counter!("mw_discarded_messages_total", "component" => "central", "instance" => stream.to_owned(), "reason" => reason).increment(n);
    }

    pub fn error(&self, stream: &str, stage: &'static str, error_type: &'static str) {
        counter!("mw_errors_total", "component" => "central", "instance" => stream.to_owned(), "stage" => stage, "error_type" => error_type).increment(1);
    }

    pub fn lag(&self, stream: &str, pending: u64, ack_pending: u64, redelivered: u64) {
        let i = stream.to_owned();
        gauge!("mw_central_pending_messages", "component" => "central", "instance" => i.clone())
            .set(pending as f64);
        gauge!("mw_central_ack_pending_messages", "component" => "central", "instance" => i.clone()).set(ack_pending as f64);
        gauge!("mw_central_redelivering_messages", "component" => "central", "instance" => i)
            .set(redelivered as f64);
    }
}
