//! Small statistics kit shared by the detectors: order statistics, robust location and
//! scale, a rolling median/MAD window and an exponentially weighted mean/variance.
//!
//! Everything here works on finite `f64`s; callers filter NaN before pushing.

use std::collections::VecDeque;

/// Consistency constant: `1.4826 · MAD` estimates σ for Gaussian data.
pub(crate) const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;

/// Linear-interpolated quantile of an ascending slice (`q` in `[0, 1]`); `NaN` if empty.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let frac = pos - lo as f64;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// Sorts a copy of the finite values of `data`.
pub(crate) fn sorted_finite(data: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = data.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Median of the finite values of `data` (`NaN` if none).
pub(crate) fn median(data: &[f64]) -> f64 {
    quantile_sorted(&sorted_finite(data), 0.5)
}

/// Robust location and scale of a sample: the median and a σ-consistent spread.
///
/// The spread is `1.4826·MAD`; when more than half of the values are identical (quantised
/// sensors, MAD = 0) it falls back to the standard deviation, and finally to
/// `scale_floor(median)` so that the result is always strictly positive and finite.
pub(crate) fn robust_center_scale(data: &[f64]) -> (f64, f64) {
    let sorted = sorted_finite(data);
    if sorted.is_empty() {
        return (0.0, 1.0);
    }
    let med = quantile_sorted(&sorted, 0.5);
    let mut dev: Vec<f64> = sorted.iter().map(|x| (x - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = quantile_sorted(&dev, 0.5) * MAD_TO_SIGMA;
    let floor = scale_floor(med);
    let scale = if mad > floor {
        mad
    } else {
        let sd = std_dev(&sorted);
        if sd > floor { sd } else { floor }
    };
    (med, scale)
}

/// Smallest scale the detectors accept for a variable centred at `center`: a relative
/// 1e-6 (or an absolute 1e-9 near zero), so a constant warm-up never divides by zero.
pub(crate) fn scale_floor(center: f64) -> f64 {
    (center.abs() * 1e-6).max(1e-9)
}

/// Population standard deviation (`0` for fewer than two values).
pub(crate) fn std_dev(data: &[f64]) -> f64 {
    if data.len() < 2 {
        return 0.0;
    }
    let n = data.len() as f64;
    let mean = data.iter().sum::<f64>() / n;
    (data.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
}

/// `k`-th smallest (0-based) element of the union of two ascending slices, in
/// `O(log(a.len() + b.len()))`. Requires `k < a.len() + b.len()`.
fn kth_of_two(mut a: &[f64], mut b: &[f64], mut k: usize) -> f64 {
    loop {
        if a.is_empty() {
            return b[k];
        }
        if b.is_empty() {
            return a[k];
        }
        if k == 0 {
            return a[0].min(b[0]);
        }
        // Take about k/2 elements from one side; discard the smaller block.
        let i = (k / 2).min(a.len() - 1);
        let j = (k / 2).min(b.len() - 1);
        if a[i] <= b[j] {
            a = &a[i + 1..];
            k -= i + 1;
        } else {
            b = &b[j + 1..];
            k -= j + 1;
        }
    }
}

/// A sliding window of the last `capacity` finite values with O(1) median and
/// O(log w) MAD. Memory: two `Vec`s of `capacity` `f64`s.
#[derive(Debug, Clone)]
pub(crate) struct RollingWindow {
    capacity: usize,
    order: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl RollingWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            order: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Adds a finite value, evicting the oldest one when full. Non-finite values are ignored.
    pub(crate) fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            let pos = self.sorted.partition_point(|v| v.total_cmp(&old).is_lt());
            if pos < self.sorted.len() {
                self.sorted.remove(pos);
            }
        }
        self.order.push_back(x);
        let pos = self.sorted.partition_point(|v| v.total_cmp(&x).is_le());
        self.sorted.insert(pos, x);
    }

    pub(crate) fn median(&self) -> f64 {
        quantile_sorted(&self.sorted, 0.5)
    }

    /// Adds `d` to every value in the window (order is kept).
    pub(crate) fn shift(&mut self, d: f64) {
        self.order.iter_mut().for_each(|v| *v += d);
        self.sorted.iter_mut().for_each(|v| *v += d);
    }

    /// Median absolute deviation from `center` (not scaled to σ). `NaN` if empty.
    pub(crate) fn mad_around(&self, center: f64) -> f64 {
        let n = self.sorted.len();
        if n == 0 {
            return f64::NAN;
        }
        let split = self.sorted.partition_point(|v| *v < center);
        // Deviations on each side, both ascending (left side read backwards).
        let left: Vec<f64> = self.sorted[..split]
            .iter()
            .rev()
            .map(|v| center - v)
            .collect();
        let right = &self.sorted[split..];
        let dev_right: Vec<f64> = right.iter().map(|v| v - center).collect();
        if n % 2 == 1 {
            kth_of_two(&left, &dev_right, n / 2)
        } else {
            0.5 * (kth_of_two(&left, &dev_right, n / 2 - 1) + kth_of_two(&left, &dev_right, n / 2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_mad(v: &[f64]) -> f64 {
        let m = median(v);
        let d: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
        median(&d)
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 4.0);
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert!(quantile_sorted(&[], 0.5).is_nan());
    }

    #[test]
    fn rolling_window_matches_brute_force() {
        let mut w = RollingWindow::new(7);
        let mut all = Vec::new();
        let mut x = 0.3_f64;
        for i in 0..200 {
            // A deterministic, jumpy sequence with ties.
            x = (x * 3.7 + i as f64 * 0.11).fract();
            let v = (x * 10.0).round() / 2.0;
            w.push(v);
            all.push(v);
            let start = all.len().saturating_sub(7);
            let win = &all[start..];
            assert_eq!(w.len(), win.len());
            assert_eq!(w.median(), median(win));
            let m = w.median();
            assert!((w.mad_around(m) - brute_mad(win)).abs() < 1e-12, "at {i}");
        }
    }

    #[test]
    fn robust_scale_falls_back_for_quantised_data() {
        let mut v = vec![32.0; 90];
        v.extend([33.0; 10]);
        let (c, s) = robust_center_scale(&v);
        assert_eq!(c, 32.0);
        assert!((s - 0.3).abs() < 1e-9, "{s}");
        let (c, s) = robust_center_scale(&[5.0; 10]);
        assert_eq!(c, 5.0);
        assert!(s > 0.0 && s < 1e-4);
    }
}
