//! Data-driven thresholds and the mapping from a raw statistic to a score in `[0, 1]`.

use crate::stats::{quantile_sorted, sorted_finite};

/// How a detector turns the statistics it saw during warm-up into an alarm threshold.
///
/// The threshold is a tail extrapolation of the warm-up distribution:
/// `q_hi + margin · (q_hi − q_mid)` where `q_hi` is the `quantile` and `q_mid` the median
/// of the calibration statistics, never below `floor`. For a Gaussian |z| with the
/// defaults (0.99, 1.0) this lands at ≈ 4.5σ (tail probability ≈ 7·10⁻⁶ per row); for a
/// χ² with 8 degrees of freedom at ≈ 33 (≈ 6·10⁻⁵).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdRule {
    /// High quantile of the warm-up statistics, in `(0.5, 1)`. Default 0.99.
    pub quantile: f64,
    /// Extrapolation factor applied to the `q_hi − median` spread. Default 1.0.
    pub margin: f64,
}

impl Default for ThresholdRule {
    fn default() -> Self {
        Self {
            quantile: 0.99,
            margin: 1.0,
        }
    }
}

impl ThresholdRule {
    /// The threshold for these calibration statistics (non-finite ones are ignored),
    /// at least `floor` (which must be `> 0`).
    pub(crate) fn threshold(&self, calibration: &[f64], floor: f64) -> f64 {
        let sorted = sorted_finite(calibration);
        if sorted.is_empty() {
            return floor;
        }
        let hi = quantile_sorted(&sorted, self.quantile);
        let mid = quantile_sorted(&sorted, 0.5);
        let thr = hi + self.margin * (hi - mid).max(0.0);
        if thr.is_finite() && thr > floor {
            thr
        } else {
            floor
        }
    }
}

/// Maps `ratio = statistic / threshold` (≥ 0) to a score in `[0, 1]`: `ratio / (1 + ratio)`,
/// so the threshold itself scores 0.5, twice the threshold 0.67 and ten times 0.91.
/// NaN maps to 0, +∞ to 1.
pub(crate) fn ratio_to_score(ratio: f64) -> f64 {
    if ratio.is_nan() || ratio <= 0.0 {
        0.0
    } else if ratio.is_infinite() {
        1.0
    } else {
        (ratio / (1.0 + ratio)).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_extrapolates_the_tail() {
        let cal: Vec<f64> = (0..=100).map(f64::from).collect();
        // q99 = 99, median = 50 → 99 + 49
        assert_eq!(ThresholdRule::default().threshold(&cal, 1.0), 148.0);
        assert_eq!(ThresholdRule::default().threshold(&[], 2.0), 2.0);
        assert_eq!(ThresholdRule::default().threshold(&[0.0; 10], 2.0), 2.0);
    }

    #[test]
    fn score_mapping() {
        assert_eq!(ratio_to_score(1.0), 0.5);
        assert_eq!(ratio_to_score(0.0), 0.0);
        assert_eq!(ratio_to_score(f64::NAN), 0.0);
        assert_eq!(ratio_to_score(f64::INFINITY), 1.0);
        assert!(ratio_to_score(1e300) <= 1.0);
    }
}
