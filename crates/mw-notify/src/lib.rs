//! Alarm notifications (issue 11, item 8): alarm transitions from the bus become JSON
//! notifications to webhooks (HTTP POST with retries, backoff and jitter, optional HMAC-SHA256
//! signature) and MQTT topics (QoS 1), rate-limited and deduplicated per target, and escalated
//! when an alarm stays unacknowledged past a configured time.
//!
//! * [`config`]: the `[notify]` section (`[[notify.webhook]]`, `[[notify.mqtt]]`,
//!   `[[notify.escalation]]`);
//! * [`policy`]: the pure core (filters, dedup, token buckets, escalation timers; time passed
//!   in);
//! * [`queue`]: a target's bounded queue, critical notifications first;
//! * [`webhook`], [`mqtt`]: delivery;
//! * [`sink`]: the bus sink and the delivery tasks; [`NotifyComponent`] registers it all.
//!
//! Only the alarm engine's events are read (`AlarmTransition`); this crate never changes an
//! alarm's state and knows nothing of the alarm configuration.

pub mod config;
pub mod mqtt;
pub mod policy;
pub mod queue;
pub mod sink;
pub mod webhook;

use mw_bus::{BuildError, Component, Parts};
use mw_config::{Config, Section};

pub use config::NotifySection;
pub use sink::{Clock, ManualClock, NotifySink, SystemClock};

/// The notification component: one [`NotifySink`] when `[notify]` has a target.
pub struct NotifyComponent;

impl Component for NotifyComponent {
    fn name(&self) -> &'static str {
        "notify"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(config::Checker)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        let Some(section) = cfg.section::<NotifySection>() else {
            return Ok(());
        };
        if section.targets.is_empty() {
            return Ok(());
        }
        let sink = NotifySink::build(
            section,
            &cfg.site.name,
            cfg.pipeline.sink_capacity,
            Box::new(SystemClock),
        )
        .map_err(|message| BuildError {
            component: "notify",
            message,
        })?;
        parts.add_sink(Box::new(sink));
        Ok(())
    }
}
