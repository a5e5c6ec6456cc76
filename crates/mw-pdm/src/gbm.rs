//! Gradient-boosted regression trees (squared loss), histogram-based: every feature is cut into at most 256
//! quantile bins once, and split finding scans per-node histograms, built for the smaller child and obtained by
//! subtraction for the larger one. Trees grow best-first (leaf-wise) up to `max_leaves`.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Hyper-parameters of the boosted ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbmParams {
    /// Number of trees.
    pub n_trees: usize,
    /// Shrinkage applied to every tree.
    pub learning_rate: f64,
    /// Leaves per tree (best-first growth).
    pub max_leaves: usize,
    /// Depth limit per tree.
    pub max_depth: usize,
    /// Minimum training rows in a leaf.
    pub min_leaf: usize,
    /// L2 penalty on leaf values.
    pub lambda: f64,
    /// Fraction of rows drawn (without replacement) for each tree.
    pub subsample: f64,
    /// Fraction of features drawn for each tree.
    pub colsample: f64,
}

impl Default for GbmParams {
    fn default() -> Self {
        GbmParams {
            n_trees: 400,
            learning_rate: 0.05,
            max_leaves: 24,
            max_depth: 6,
            min_leaf: 40,
            lambda: 1.0,
            subsample: 0.7,
            colsample: 0.6,
        }
    }
}

/// One regression tree as parallel arrays. Node `i` is a leaf if `feature[i] < 0` (its value is `value[i]`);
/// otherwise rows with `x[feature[i]] <= value[i]` go to `left[i]`, the others to `right[i]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tree {
    feature: Vec<i32>,
    value: Vec<f64>,
    left: Vec<u32>,
    right: Vec<u32>,
}

impl Tree {
    pub(crate) fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            let f = self.feature[i];
            if f < 0 {
                return self.value[i];
            }
            // NaN (never produced from validated input) goes right.
            i = if x[f as usize] <= self.value[i] {
                self.left[i]
            } else {
                self.right[i]
            } as usize;
        }
    }

    fn validate(&self, n_features: usize) -> bool {
        let n = self.feature.len();
        n > 0
            && self.value.len() == n
            && self.left.len() == n
            && self.right.len() == n
            && (0..n).all(|i| {
                self.feature[i] < 0
                    || ((self.feature[i] as usize) < n_features
                        && (self.left[i] as usize) > i
                        && (self.left[i] as usize) < n
                        && (self.right[i] as usize) > i
                        && (self.right[i] as usize) < n)
            })
    }
}

/// A fitted ensemble: `base + Σ tree(x)` (shrinkage is folded into the leaf values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Gbm {
    pub base: f64,
    pub trees: Vec<Tree>,
}

impl Gbm {
    pub(crate) fn predict(&self, x: &[f64]) -> f64 {
        self.base + self.trees.iter().map(|t| t.predict(x)).sum::<f64>()
    }

    /// Structural check after loading: every child index points forward and inside the tree, every feature
    /// index exists. Guarantees `predict` cannot index out of bounds or loop.
    pub(crate) fn validate(&self, n_features: usize) -> bool {
        self.base.is_finite() && self.trees.iter().all(|t| t.validate(n_features))
    }
}

/// Training matrix cut into bins, column-major.
struct Binned {
    n: usize,
    bins: Vec<u8>,
    edges: Vec<Vec<f64>>,
}

impl Binned {
    fn new(x: &[f64], n: usize, nf: usize) -> Binned {
        let mut bins = vec![0u8; n * nf];
        let mut edges = Vec::with_capacity(nf);
        let stride = n.div_ceil(50_000).max(1);
        let mut col = Vec::with_capacity(n / stride + 1);
        for f in 0..nf {
            col.clear();
            col.extend((0..n).step_by(stride).map(|i| x[i * nf + f]));
            col.sort_by(f64::total_cmp);
            col.dedup();
            let e: Vec<f64> = if col.len() <= 256 {
                col[..col.len().saturating_sub(1)].to_vec()
            } else {
                let mut e: Vec<f64> = Vec::with_capacity(255);
                for q in 1..256 {
                    let v = col[q * col.len() / 256];
                    if e.last().is_none_or(|&l| v > l) {
                        e.push(v);
                    }
                }
                e
            };
            for i in 0..n {
                bins[f * n + i] = e.partition_point(|&b| b < x[i * nf + f]) as u8;
            }
            edges.push(e);
        }
        Binned { n, bins, edges }
    }

    fn col(&self, f: usize) -> &[u8] {
        &self.bins[f * self.n..(f + 1) * self.n]
    }
}

#[derive(Clone, Copy)]
struct Split {
    gain: f64,
    /// Index into the tree's feature subset.
    fi: usize,
    bin: u8,
}

struct Open {
    start: usize,
    end: usize,
    depth: usize,
    node: usize,
    sum: f64,
    hist: Hist,
    split: Option<Split>,
}

/// Per-node histogram over the tree's feature subset: gradient sums and counts, 256 slots per feature.
#[derive(Clone)]
struct Hist {
    g: Vec<f64>,
    c: Vec<u32>,
}

/// Fits `y ≈ f(x)` for a row-major `x` of `nf` features; `progress` is called after every tree.
pub(crate) fn fit(
    x: &[f64],
    nf: usize,
    y: &[f64],
    p: &GbmParams,
    seed: u64,
    progress: &mut dyn FnMut(),
) -> Gbm {
    let n = y.len();
    debug_assert_eq!(x.len(), n * nf);
    let base = if n == 0 {
        0.0
    } else {
        y.iter().sum::<f64>() / n as f64
    };
    let mut model = Gbm {
        base,
        trees: Vec::with_capacity(p.n_trees),
    };
    if n == 0 || nf == 0 {
        return model;
    }
    let data = Binned::new(x, n, nf);
    let mut pred = vec![base; n];
    let mut grad = vec![0.0; n];
    let mut rng = Rng::new(seed, 0x67_626d);
    let n_rows = ((n as f64 * p.subsample.clamp(0.0, 1.0)).round() as usize).clamp(1, n);
    let n_feats = ((nf as f64 * p.colsample.clamp(0.0, 1.0)).round() as usize).clamp(1, nf);
    let mut all_rows: Vec<u32> = (0..n as u32).collect();
    let mut all_feats: Vec<usize> = (0..nf).collect();
    let mut rows = Vec::with_capacity(n);
    let mut scratch = Vec::with_capacity(n);
    for _ in 0..p.n_trees {
        for i in 0..n {
            grad[i] = y[i] - pred[i];
        }
        // Partial Fisher–Yates: the first n_rows of all_rows are a uniform sample.
        for i in 0..n_rows {
            let j = i + rng.below(n - i);
            all_rows.swap(i, j);
        }
        rows.clear();
        rows.extend_from_slice(&all_rows[..n_rows]);
        rows.sort_unstable();
        for i in 0..n_feats {
            let j = i + rng.below(nf - i);
            all_feats.swap(i, j);
        }
        let mut feats = all_feats[..n_feats].to_vec();
        feats.sort_unstable();
        let (tree, bins) = grow(&data, &grad, &mut rows, &mut scratch, &feats, p);
        for (i, pr) in pred.iter_mut().enumerate() {
            *pr += predict_binned(&tree, &bins, &data, i);
        }
        model.trees.push(tree);
        progress();
    }
    model
}

fn predict_binned(t: &Tree, split_bins: &[u8], data: &Binned, row: usize) -> f64 {
    let mut i = 0;
    loop {
        let f = t.feature[i];
        if f < 0 {
            return t.value[i];
        }
        i = if data.bins[f as usize * data.n + row] <= split_bins[i] {
            t.left[i]
        } else {
            t.right[i]
        } as usize;
    }
}

/// Grows one tree on `rows`; returns the tree and, per node, the bin threshold of its split.
fn grow(
    data: &Binned,
    grad: &[f64],
    rows: &mut [u32],
    scratch: &mut Vec<u32>,
    feats: &[usize],
    p: &GbmParams,
) -> (Tree, Vec<u8>) {
    let mut t = Tree {
        feature: vec![-1],
        value: vec![0.0],
        left: vec![0],
        right: vec![0],
    };
    let mut split_bins = vec![0u8];
    let sum: f64 = rows.iter().map(|&r| grad[r as usize]).sum();
    let hist = build_hist(data, grad, rows, feats);
    let mut open = vec![Open {
        start: 0,
        end: rows.len(),
        depth: 0,
        node: 0,
        sum,
        hist,
        split: None,
    }];
    open[0].split = best_split(&open[0], data, feats, p);
    let mut leaves = 1;
    while leaves < p.max_leaves.max(1) {
        let Some(k) = open
            .iter()
            .enumerate()
            .filter_map(|(k, o)| o.split.map(|s| (k, s.gain)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(k, _)| k)
        else {
            break;
        };
        let parent = open.swap_remove(k);
        let Some(s) = parent.split else { break };
        let f = feats[s.fi];
        let col = data.col(f);
        // Stable partition of the parent's rows: left (bin <= s.bin) first.
        scratch.clear();
        let seg = &mut rows[parent.start..parent.end];
        let mut w = 0;
        for i in 0..seg.len() {
            let r = seg[i];
            if col[r as usize] <= s.bin {
                seg[w] = r;
                w += 1;
            } else {
                scratch.push(r);
            }
        }
        seg[w..].copy_from_slice(scratch);
        let mid = parent.start + w;
        let left_sum: f64 = rows[parent.start..mid]
            .iter()
            .map(|&r| grad[r as usize])
            .sum();
        let (l, r) = (t.feature.len(), t.feature.len() + 1);
        t.feature[parent.node] = f as i32;
        t.value[parent.node] = data.edges[f][s.bin as usize];
        t.left[parent.node] = l as u32;
        t.right[parent.node] = r as u32;
        split_bins[parent.node] = s.bin;
        for _ in 0..2 {
            t.feature.push(-1);
            t.value.push(0.0);
            t.left.push(0);
            t.right.push(0);
            split_bins.push(0);
        }
        let left_small = mid - parent.start <= parent.end - mid;
        let small = if left_small {
            (parent.start, mid)
        } else {
            (mid, parent.end)
        };
        let small_hist = build_hist(data, grad, &rows[small.0..small.1], feats);
        let mut big_hist = parent.hist;
        for (b, s) in big_hist.g.iter_mut().zip(&small_hist.g) {
            *b -= s;
        }
        for (b, s) in big_hist.c.iter_mut().zip(&small_hist.c) {
            *b -= s;
        }
        let (lh, rh) = if left_small {
            (small_hist, big_hist)
        } else {
            (big_hist, small_hist)
        };
        let depth = parent.depth + 1;
        for (start, end, node, sum, hist) in [
            (parent.start, mid, l, left_sum, lh),
            (mid, parent.end, r, parent.sum - left_sum, rh),
        ] {
            let mut o = Open {
                start,
                end,
                depth,
                node,
                sum,
                hist,
                split: None,
            };
            if depth < p.max_depth {
                o.split = best_split(&o, data, feats, p);
            }
            open.push(o);
        }
        leaves += 1;
    }
    // Leaf values from the final partition.
    fn leaf_value(sum: f64, n: usize, p: &GbmParams) -> f64 {
        p.learning_rate * sum / (n as f64 + p.lambda)
    }
    for o in &open {
        t.value[o.node] = leaf_value(o.sum, o.end - o.start, p);
    }
    (t, split_bins)
}

fn build_hist(data: &Binned, grad: &[f64], rows: &[u32], feats: &[usize]) -> Hist {
    let mut h = Hist {
        g: vec![0.0; feats.len() * 256],
        c: vec![0; feats.len() * 256],
    };
    let gs: Vec<f64> = rows.iter().map(|&r| grad[r as usize]).collect();
    for (fi, &f) in feats.iter().enumerate() {
        let col = data.col(f);
        let hg = &mut h.g[fi * 256..(fi + 1) * 256];
        let hc = &mut h.c[fi * 256..(fi + 1) * 256];
        for (&r, &g) in rows.iter().zip(&gs) {
            let b = col[r as usize] as usize;
            hg[b] += g;
            hc[b] += 1;
        }
    }
    h
}

fn best_split(o: &Open, data: &Binned, feats: &[usize], p: &GbmParams) -> Option<Split> {
    let n = o.end - o.start;
    if n < 2 * p.min_leaf.max(1) {
        return None;
    }
    let parent_score = o.sum * o.sum / (n as f64 + p.lambda);
    let mut best: Option<Split> = None;
    for (fi, &f) in feats.iter().enumerate() {
        let nb = data.edges[f].len() + 1;
        let hg = &o.hist.g[fi * 256..fi * 256 + nb];
        let hc = &o.hist.c[fi * 256..fi * 256 + nb];
        let (mut gl, mut nl) = (0.0, 0usize);
        for b in 0..nb - 1 {
            gl += hg[b];
            nl += hc[b] as usize;
            if nl < p.min_leaf.max(1) {
                continue;
            }
            let nr = n - nl;
            if nr < p.min_leaf.max(1) {
                break;
            }
            let gr = o.sum - gl;
            let gain =
                gl * gl / (nl as f64 + p.lambda) + gr * gr / (nr as f64 + p.lambda) - parent_score;
            if gain > 1e-12 && best.is_none_or(|s| gain > s.gain) {
                best = Some(Split {
                    gain,
                    fi,
                    bin: b as u8,
                });
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = Rng::new(seed, 1);
        let mut x = Vec::with_capacity(n * 4);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let a = rng.uniform() * 4.0 - 2.0;
            let b = rng.uniform() * 4.0 - 2.0;
            let c = rng.uniform();
            let d = (rng.uniform() * 3.0).floor(); // categorical-like
            x.extend([a, b, c, d]);
            y.push((a * 1.5).sin() * 3.0 + b * b + if d == 1.0 { 2.0 } else { 0.0 }); // c is irrelevant
        }
        (x, y)
    }

    #[test]
    fn boosting_fits_a_known_function() {
        let (x, y) = synthetic(3000, 1);
        let p = GbmParams {
            n_trees: 150,
            learning_rate: 0.1,
            min_leaf: 10,
            ..GbmParams::default()
        };
        let m = fit(&x, 4, &y, &p, 7, &mut || {});
        let (xt, yt) = synthetic(1000, 2);
        let var = {
            let m = yt.iter().sum::<f64>() / yt.len() as f64;
            yt.iter().map(|v| (v - m).powi(2)).sum::<f64>() / yt.len() as f64
        };
        let mse = yt
            .iter()
            .enumerate()
            .map(|(i, v)| (m.predict(&xt[i * 4..i * 4 + 4]) - v).powi(2))
            .sum::<f64>()
            / yt.len() as f64;
        // Noise-free target: the ensemble must explain nearly all of its variance on fresh points.
        assert!(mse < 0.03 * var, "mse {mse} vs variance {var}");
        assert!(m.validate(4));
    }

    #[test]
    fn single_tree_finds_a_step() {
        let x: Vec<f64> = (0..200).map(|i| i as f64).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|&v| if v <= 120.0 { 1.0 } else { 5.0 })
            .collect();
        let p = GbmParams {
            n_trees: 1,
            learning_rate: 1.0,
            max_leaves: 2,
            min_leaf: 1,
            lambda: 0.0,
            subsample: 1.0,
            colsample: 1.0,
            ..GbmParams::default()
        };
        let m = fit(&x, 1, &y, &p, 0, &mut || {});
        assert_eq!(m.trees[0].feature, vec![0, -1, -1]);
        assert_eq!(m.trees[0].value[0], 120.0);
        assert!((m.predict(&[120.0]) - 1.0).abs() < 1e-9);
        assert!((m.predict(&[120.5]) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn same_seed_same_model_other_seed_other_model() {
        let (x, y) = synthetic(800, 3);
        let p = GbmParams {
            n_trees: 20,
            ..GbmParams::default()
        };
        let a = fit(&x, 4, &y, &p, 11, &mut || {});
        let b = fit(&x, 4, &y, &p, 11, &mut || {});
        let c = fit(&x, 4, &y, &p, 12, &mut || {});
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn corrupt_tree_is_rejected() {
        let t = Tree {
            feature: vec![0],
            value: vec![1.0],
            left: vec![0],
            right: vec![0],
        };
        assert!(
            !Gbm {
                base: 0.0,
                trees: vec![t]
            }
            .validate(1)
        );
        let t = Tree {
            feature: vec![3, -1, -1],
            value: vec![1.0; 3],
            left: vec![1, 0, 0],
            right: vec![2, 0, 0],
        };
        assert!(
            !Gbm {
                base: 0.0,
                trees: vec![t.clone()]
            }
            .validate(3)
        );
        assert!(
            Gbm {
                base: 0.0,
                trees: vec![t]
            }
            .validate(4)
        );
    }
}
