use std::sync::{Arc, RwLock};

/// Connection state of one source (a device or a listener).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// Not yet attempted.
    Starting,
    /// Connected and polling / receiving.
    Up,
    /// Disconnected or failing; the reason is the last error.
    Down(String),
}

/// Status of one source, as shown by `/ready` and the web UI.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceStatus {
    pub component: String,
    pub instance: String,
    pub state: SourceState,
    /// Completed poll cycles (successful or not).
    pub cycles: u64,
    /// Last cycle's duration in seconds.
    pub last_latency_s: Option<f64>,
}

/// Registry of every source's status. `all_polling()` is true once every registered source has
/// completed at least one poll cycle (whatever its outcome) — that is what `/ready` reports.
#[derive(Clone, Default)]
pub struct SourceRegistry {
    inner: Arc<RwLock<Vec<SourceStatus>>>,
}

/// A source's handle to report its own status.
#[derive(Clone)]
pub struct SourceHandle {
    registry: SourceRegistry,
    index: usize,
}

impl SourceRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&self, component: &str, instance: &str) -> SourceHandle {
        let mut v = self.inner.write().unwrap_or_else(|e| e.into_inner());
        v.push(SourceStatus {
            component: component.to_owned(),
            instance: instance.to_owned(),
            state: SourceState::Starting,
            cycles: 0,
            last_latency_s: None,
        });
        SourceHandle {
            registry: self.clone(),
            index: v.len() - 1,
        }
    }

    pub fn snapshot(&self) -> Vec<SourceStatus> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// True when at least one source is registered and all have completed a cycle.
    pub fn all_polling(&self) -> bool {
        let v = self.inner.read().unwrap_or_else(|e| e.into_inner());
        !v.is_empty() && v.iter().all(|s| s.cycles > 0)
    }
}

impl SourceHandle {
    fn update(&self, f: impl FnOnce(&mut SourceStatus)) {
        let mut v = self
            .registry
            .inner
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(s) = v.get_mut(self.index) {
            f(s);
        }
    }

    /// Records one finished cycle.
    pub fn cycle_done(&self, latency_s: f64) {
        self.update(|s| {
            s.cycles += 1;
            s.last_latency_s = Some(latency_s);
        });
    }

    pub fn set_state(&self, state: SourceState) {
        self.update(|s| s.state = state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_source_cycled() {
        let r = SourceRegistry::new();
        assert!(!r.all_polling(), "no sources: not ready");
        let a = r.register("modbus", "a");
        let b = r.register("modbus", "b");
        a.cycle_done(0.01);
        assert!(!r.all_polling());
        b.set_state(SourceState::Down("connection refused".into()));
        b.cycle_done(0.5);
        assert!(r.all_polling());
        let snap = r.snapshot();
        assert_eq!(
            snap[1].state,
            SourceState::Down("connection refused".into())
        );
        assert_eq!(snap[0].last_latency_s, Some(0.01));
    }
}
