//! A live remaining-useful-life estimate that does not cry wolf: [`TrendRul`]'s trend fit, published only when
//! the indicator moves towards its threshold with statistical significance, capped at a horizon, and changed at a
//! bounded rate unless the fit's band no longer contains it (docs/pdm.md "Live RUL").

use crate::trend::{TrendFit, TrendRul};

/// What a [`LiveRul`] publishes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveEstimate {
    pub state: RulState,
    /// The published estimate, in the samples' time unit; equal to the horizon in [`RulState::Beyond`].
    pub rul: f64,
    /// Lower end of the band (≤ `rul`).
    pub lower: f64,
    /// Upper end of the band (≥ `rul`); infinite when the trend cannot rule out that the threshold is never
    /// reached (always so in [`RulState::Beyond`]).
    pub upper: f64,
    /// The trend fit of this sample, before the horizon and the smoothing; the trend is significant when
    /// `fit.slope_t` is at least `significance`.
    pub fit: TrendFit,
}

/// Whether the estimate is a number or "beyond the horizon".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulState {
    /// The indicator does not move towards the threshold significantly, or the estimate (after the rate limit) is
    /// at or beyond the horizon: no failure is expected within the horizon.
    Beyond,
    /// A finite estimate below the horizon.
    Estimate,
}

/// Settings of a [`LiveRul`]; times in the samples' time unit (seconds in Millwright).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveOptions {
    /// Longest RUL that is published as a number (default 30 days).
    pub horizon: f64,
    /// The slope must be this many standard errors above 0 before an estimate is published (default 6: the
    /// trend is tested with every sample over overlapping windows, so a test at 4 standard errors passed by
    /// chance once in three simulated days of a flat indicator; real noise also has heavier tails).
    pub significance: f64,
    /// Besides counting down with time, the published estimate follows the fit's estimate with this time constant,
    /// as a fraction of the time the window spans (default 0.25: a quarter of the window renewed).
    pub smoothing: f64,
    /// Samples needed before anything is published (default 30, at most the window).
    pub min_samples: usize,
    /// The published band is at least this fraction of the estimate wide on each side (default 0.1): the fit's
    /// band covers noise, not an error in the trend's shape (docs/pdm.md "Live RUL").
    pub shape_margin: f64,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            horizon: 30.0 * 86_400.0,
            significance: 6.0,
            smoothing: 0.25,
            min_samples: 30,
            shape_margin: 0.1,
        }
    }
}

/// Online RUL for one live asset. Memory: that of its [`TrendRul`] plus a few floats.
///
/// With every sample: the trend is fitted ([`TrendRul::fit_trend`]). The *target* is the fit's estimate when the
/// slope is at least `significance` standard errors towards the threshold and the estimate is below the horizon,
/// else the horizon. The published estimate starts at the horizon; each sample counts it down by the time that
/// passed, then moves it towards the target by the fraction `1 − exp(−Δt / τ)`, τ = `smoothing` × the window's
/// time span (a first-order lag: noise in the fit is damped, a lasting change is followed within a few τ); if the
/// fit's band no longer contains it, it is moved to the nearest end of the band at once (below the band's lower
/// end always; above its upper end only with a significant trend, the band being open-ended otherwise).
/// It is kept in [0, horizon]; at the horizon the state is [`RulState::Beyond`].
#[derive(Debug, Clone)]
pub struct LiveRul {
    trend: TrendRul,
    opt: LiveOptions,
    /// (time, published estimate) of the last sample.
    published: Option<(f64, f64)>,
}

impl LiveRul {
    /// `trend`: the configured fit (threshold, window, baseline, direction).
    pub fn new(trend: TrendRul, opt: LiveOptions) -> LiveRul {
        let mut opt = opt;
        if !(opt.horizon.is_finite() && opt.horizon > 0.0) {
            opt.horizon = LiveOptions::default().horizon;
        }
        if !(opt.smoothing.is_finite() && opt.smoothing >= 0.0) {
            opt.smoothing = LiveOptions::default().smoothing;
        }
        if !opt.significance.is_finite() {
            opt.significance = LiveOptions::default().significance;
        }
        LiveRul {
            trend,
            opt,
            published: None,
        }
    }

    pub fn options(&self) -> &LiveOptions {
        &self.opt
    }

    /// Forgets the history (after a repair): the next estimate starts at the horizon again.
    pub fn reset(&mut self) {
        self.trend.reset();
        self.published = None;
    }

    /// Adds a sample at `t` and returns what to publish; `None` while fewer than `min_samples` samples are held
    /// and for a rejected sample (non-finite, or `t` not after the previous sample).
    pub fn update(&mut self, t: f64, value: f64) -> Option<LiveEstimate> {
        let fit = self.trend.fit_trend(t, value)?;
        if self.trend.len() < self.opt.min_samples.min(self.trend.window()) {
            return None;
        }
        let h = self.opt.horizon;
        let significant = fit.slope_t >= self.opt.significance;
        let target = if significant { fit.rul.min(h) } else { h };
        let (prev_t, prev) = self.published.unwrap_or((t, h));
        let dt = (t - prev_t).max(0.0);
        // Counting down only applies to a number; "beyond the horizon" stays there.
        let aged = if prev >= h { h } else { (prev - dt).max(0.0) };
        let tau = self.opt.smoothing * self.trend.span();
        let follow = if tau > 0.0 {
            1.0 - (-dt / tau).exp()
        } else {
            1.0
        };
        let mut p = aged + (target - aged) * follow;
        // Outside the band: to its nearest end at once. Without a significant trend the band has no upper end.
        if significant && p > fit.upper {
            p = fit.upper;
        }
        if p < fit.lower {
            p = fit.lower;
        }
        // Back at the horizon once the lag has (all but) closed the gap to it.
        let p = if target >= h && p >= 0.999 * h {
            h
        } else {
            p.clamp(0.0, h)
        };
        self.published = Some((t, p));
        let beyond = p >= h;
        let m = self.opt.shape_margin.clamp(0.0, 1.0);
        Some(LiveEstimate {
            state: if beyond {
                RulState::Beyond
            } else {
                RulState::Estimate
            },
            rul: p,
            lower: fit.lower.min(p * (1.0 - m)),
            upper: if beyond {
                f64::INFINITY
            } else {
                fit.upper.max(p * (1.0 + m))
            },
            fit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn normal(rng: &mut Rng) -> f64 {
        (0..12).map(|_| rng.uniform()).sum::<f64>() - 6.0
    }

    fn live(window: usize) -> LiveRul {
        LiveRul::new(
            TrendRul::new(3.0, window).only(crate::TrendKind::Linear),
            LiveOptions {
                horizon: 10_000.0,
                ..LiveOptions::default()
            },
        )
    }

    #[test]
    fn a_flat_noisy_indicator_is_beyond_the_horizon() {
        let mut rng = Rng::new(11, 12);
        let mut l = live(100);
        let mut n = 0;
        for i in 0..20_000 {
            if let Some(e) = l.update(i as f64, 1.0 + 0.05 * normal(&mut rng)) {
                assert_eq!(e.state, RulState::Beyond, "{i}: {e:?}");
                assert_eq!((e.rul, e.upper), (10_000.0, f64::INFINITY));
                assert!(e.lower <= e.rul);
                n += 1;
            }
        }
        assert_eq!(n, 20_000 - 29, "published from the 30th sample on");
    }

    #[test]
    fn a_clear_trend_is_followed_smoothly_within_its_band() {
        // v = 1 + 0.001 t (+ noise), threshold 3: failure at t = 2000.
        let mut rng = Rng::new(13, 14);
        let mut l = live(200);
        let mut last: Option<LiveEstimate> = None;
        let mut first = None;
        for i in 0..1900 {
            let t = i as f64;
            let Some(e) = l.update(t, 1.0 + 0.001 * t + 0.01 * normal(&mut rng)) else {
                continue;
            };
            if e.state == RulState::Estimate {
                first.get_or_insert(t);
                let truth = 2000.0 - t;
                if t > 600.0 {
                    assert!((e.rul - truth).abs() < 0.05 * truth + 5.0, "{t}: {e:?}");
                    assert!(e.lower <= truth && truth <= e.upper, "{t}: {e:?}");
                    // Counting down by one per step, give or take the smoothed correction and the band's edge
                    // (noise moves it a little from sample to sample).
                    let p = last.unwrap();
                    assert!(
                        (e.rul - (p.rul - 1.0)).abs() < 0.005 * p.rul + 1.0,
                        "{t}: {p:?} -> {e:?}"
                    );
                }
            }
            last = Some(e);
        }
        assert!(first.is_some_and(|t| t < 200.0), "estimate from {first:?}");
    }

    #[test]
    fn back_beyond_the_horizon_once_the_trend_stops_and_after_a_reset() {
        let mut l = live(100);
        let mut v = 1.0;
        let mut t = 0.0;
        let mut state = None;
        for _ in 0..400 {
            v += 0.002;
            t += 1.0;
            state = l.update(t, v).map(|e| e.state);
        }
        assert_eq!(state, Some(RulState::Estimate));
        let mut back = None;
        for i in 0..2000 {
            t += 1.0;
            let e = l.update(t, v + 0.001 * ((i % 7) as f64 - 3.0)).unwrap();
            if e.state == RulState::Beyond {
                back = Some(i);
                break;
            }
        }
        // The window (100 s) has to forget the rise, then the lag (τ = 25 s) closes on the horizon.
        assert!(back.is_some_and(|i| i < 600), "back after {back:?} samples");
        assert_eq!(l.update(t, v), None, "time not advancing is rejected");
        assert_eq!(l.update(t + 1.0, f64::NAN), None);
        l.reset();
        for i in 0..29 {
            assert_eq!(
                l.update(t + 2.0 + i as f64, v),
                None,
                "too few samples again"
            );
        }
    }
}
