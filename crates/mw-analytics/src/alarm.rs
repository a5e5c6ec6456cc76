//! Persistence and hysteresis: turns per-row threshold exceedances into an alarm state.

/// Alarm logic shared by all detectors (causal; O(1) memory).
///
/// * **raise** when at least `k` of the last `n` rows exceeded the threshold, or when a
///   single row exceeds it by the factor `instant` (a spike must not need company);
/// * **hold** while exceedances continue, and **release** after `release` consecutive rows
///   below the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlarmRule {
    /// Exceedances needed in the window to raise. Default 3.
    pub k: u32,
    /// Window length in rows, `k ≤ n ≤ 64`. Default 5.
    pub n: u32,
    /// A row with `statistic ≥ instant · threshold` raises on its own. Default 2.0
    /// (`f64::INFINITY` disables).
    pub instant: f64,
    /// Consecutive quiet rows needed to release a raised alarm. Default 5.
    pub release: u32,
}

impl Default for AlarmRule {
    fn default() -> Self {
        Self {
            k: 3,
            n: 5,
            instant: 2.0,
            release: 5,
        }
    }
}

/// Running state of an [`AlarmRule`].
#[derive(Debug, Clone)]
pub(crate) struct AlarmState {
    rule: AlarmRule,
    mask: u64,
    history: u64,
    on: bool,
    quiet: u32,
}

impl AlarmState {
    pub(crate) fn new(rule: AlarmRule) -> Self {
        let n = rule.n.clamp(1, 64);
        let k = rule.k.clamp(1, n);
        let rule = AlarmRule {
            k,
            n,
            release: rule.release.max(1),
            ..rule
        };
        let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        Self {
            rule,
            mask,
            history: 0,
            on: false,
            quiet: 0,
        }
    }

    /// Feeds one row's `ratio = statistic / threshold`; returns whether the alarm is on.
    pub(crate) fn step(&mut self, ratio: f64) -> bool {
        let exceed = ratio >= 1.0;
        self.history = ((self.history << 1) | u64::from(exceed)) & self.mask;
        if self.on {
            if exceed {
                self.quiet = 0;
            } else {
                self.quiet += 1;
                if self.quiet >= self.rule.release {
                    self.on = false;
                    self.history = 0;
                }
            }
        } else if self.history.count_ones() >= self.rule.k || ratio >= self.rule.instant {
            self.on = true;
            self.quiet = 0;
        }
        self.on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rule: AlarmRule, ratios: &[f64]) -> Vec<bool> {
        let mut s = AlarmState::new(rule);
        ratios.iter().map(|&r| s.step(r)).collect()
    }

    #[test]
    fn needs_k_of_n_then_releases() {
        let rule = AlarmRule {
            k: 2,
            n: 3,
            instant: f64::INFINITY,
            release: 2,
        };
        let out = run(rule, &[1.5, 0.0, 0.0, 1.5, 0.0, 1.5, 1.5, 0.0, 0.0, 0.0]);
        assert_eq!(
            out,
            [
                false, false, false, false, false, true, true, true, false, false
            ]
        );
    }

    #[test]
    fn a_large_single_exceedance_raises_at_once() {
        let rule = AlarmRule {
            k: 3,
            n: 5,
            instant: 2.0,
            release: 1,
        };
        assert_eq!(run(rule, &[0.1, 2.5, 0.1]), [false, true, false]);
    }

    #[test]
    fn isolated_small_exceedances_never_raise() {
        let rule = AlarmRule::default();
        let ratios: Vec<f64> = (0..100)
            .map(|i| if i % 3 == 0 { 1.2 } else { 0.5 })
            .collect();
        assert!(run(rule, &ratios).iter().all(|on| !on));
    }
}
