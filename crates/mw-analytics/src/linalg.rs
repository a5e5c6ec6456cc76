//! The little linear algebra PCA needs: covariance and a symmetric eigendecomposition
//! (cyclic Jacobi). Matrices are dense, row-major `Vec<f64>` of `d × d`.

/// Mean vector and covariance (divisor `n`) of `rows`, each of length `d`.
pub(crate) fn mean_cov(rows: &[Vec<f64>], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; d];
    let mut cov = vec![0.0; d * d];
    if rows.is_empty() {
        return (mean, cov);
    }
    let n = rows.len() as f64;
    for r in rows {
        for (m, x) in mean.iter_mut().zip(r) {
            *m += x / n;
        }
    }
    let mut c = vec![0.0; d];
    for r in rows {
        for (ci, (x, m)) in c.iter_mut().zip(r.iter().zip(&mean)) {
            *ci = x - m;
        }
        for i in 0..d {
            let ci = c[i];
            for j in i..d {
                cov[i * d + j] += ci * c[j];
            }
        }
    }
    for i in 0..d {
        for j in i..d {
            let v = cov[i * d + j] / n;
            cov[i * d + j] = v;
            cov[j * d + i] = v;
        }
    }
    (mean, cov)
}

/// Eigen-decomposition of the symmetric `d × d` matrix `a`.
///
/// Returns eigenvalues in descending order and the matching unit eigenvectors as the
/// *rows* of a `d × d` matrix. Cyclic Jacobi: robust and accurate for the small `d`
/// (tens of variables) an asset has; O(d³) per sweep, at most 64 sweeps.
pub(crate) fn sym_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    let total: f64 = m.iter().map(|x| x * x).sum::<f64>();
    for _sweep in 0..64 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * d + j].powi(2))
            .sum();
        if off.is_nan() || off <= 1e-30 * total.max(1e-300) {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = m[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let app = m[p * d + p];
                let aqq = m[q * d + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let mkp = m[k * d + p];
                    let mkq = m[k * d + q];
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + q] = s * mkp + c * mkq;
                }
                for k in 0..d {
                    let mpk = m[p * d + k];
                    let mqk = m[q * d + k];
                    m[p * d + k] = c * mpk - s * mqk;
                    m[q * d + k] = s * mpk + c * mqk;
                }
                for k in 0..d {
                    let vkp = v[k * d + p];
                    let vkq = v[k * d + q];
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut idx: Vec<usize> = (0..d).collect();
    idx.sort_by(|&i, &j| m[j * d + j].total_cmp(&m[i * d + i]));
    let values: Vec<f64> = idx.iter().map(|&i| m[i * d + i]).collect();
    let mut vectors = vec![0.0; d * d];
    for (r, &i) in idx.iter().enumerate() {
        for k in 0..d {
            vectors[r * d + k] = v[k * d + i];
        }
    }
    (values, vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_reconstructs_matrix() {
        let d = 4;
        let a = vec![
            4.0, 1.0, 0.5, 0.0, 1.0, 3.0, 0.2, 0.1, 0.5, 0.2, 2.0, 0.3, 0.0, 0.1, 0.3, 1.0,
        ];
        let (vals, vecs) = sym_eigen(&a, d);
        assert!(vals.windows(2).all(|w| w[0] >= w[1]));
        for i in 0..d {
            for j in 0..d {
                let r: f64 = (0..d)
                    .map(|k| vecs[k * d + i] * vals[k] * vecs[k * d + j])
                    .sum();
                assert!((r - a[i * d + j]).abs() < 1e-10, "({i},{j}) {r}");
            }
        }
        let trace: f64 = vals.iter().sum();
        assert!((trace - 10.0).abs() < 1e-10);
    }

    #[test]
    fn covariance_of_known_rows() {
        let rows = vec![vec![1.0, 2.0], vec![3.0, 6.0]];
        let (m, c) = mean_cov(&rows, 2);
        assert_eq!(m, vec![2.0, 4.0]);
        assert_eq!(c, vec![1.0, 2.0, 2.0, 4.0]);
    }
}
