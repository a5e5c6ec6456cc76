//! Pointwise detection metrics.

/// Pointwise confusion counts (predicted = the detector's `anomalous`, actual = the label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// Alarm on an anomalous row.
    pub tp: u64,
    /// Alarm on a normal row.
    pub fp: u64,
    /// No alarm on a normal row.
    pub tn: u64,
    /// No alarm on an anomalous row.
    pub fn_: u64,
}

impl Confusion {
    /// Counts one row.
    pub fn add(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, false) => self.tn += 1,
            (false, true) => self.fn_ += 1,
        }
    }

    /// Adds another confusion (e.g. to sum over files).
    pub fn merge(&mut self, other: &Confusion) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.tn += other.tn;
        self.fn_ += other.fn_;
    }

    /// The metrics of these counts.
    pub fn metrics(&self) -> Metrics {
        Metrics::from_counts(self.tp, self.fp, self.tn, self.fn_)
    }
}

/// Precision, recall, F1, false-alarm rate and missed-alarm rate, as fractions in `[0, 1]`.
///
/// A ratio whose denominator is zero is reported as 0 (e.g. precision when nothing was
/// flagged, FAR when no row was normal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// False-alarm rate FP / (FP + TN).
    pub far: f64,
    /// Missed-alarm rate FN / (FN + TP).
    pub mar: f64,
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives.
    pub fn_: u64,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Metrics {
    /// Metrics from raw counts.
    pub fn from_counts(tp: u64, fp: u64, tn: u64, fn_: u64) -> Self {
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            f1,
            far: ratio(fp, fp + tn),
            mar: ratio(fn_, fn_ + tp),
            tp,
            fp,
            tn,
            fn_,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_counts() {
        let m = Metrics::from_counts(6, 2, 10, 4);
        assert_eq!(m.precision, 0.75);
        assert_eq!(m.recall, 0.6);
        assert!((m.f1 - 2.0 * 0.75 * 0.6 / 1.35).abs() < 1e-12);
        assert_eq!(m.far, 2.0 / 12.0);
        assert_eq!(m.mar, 0.4);
    }

    #[test]
    fn empty_counts_are_zero_not_nan() {
        let m = Confusion::default().metrics();
        assert_eq!(
            (m.precision, m.recall, m.f1, m.far, m.mar),
            (0.0, 0.0, 0.0, 0.0, 0.0)
        );
    }
}
