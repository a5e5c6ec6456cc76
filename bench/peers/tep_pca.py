"""Textbook PCA T² (and Q) on the Tennessee Eastman runs of bench/tep.sh — the peer.

Same runs as crates/mw-analytics/tests/tep_runs/mod.rs: d00.dat in 5 blocks of 100 rows; the
run for fault k fits on the 400 rows outside block (k-1) mod 5, then scores the held-out block
(false alarms) and dNN.dat (480 faulty rows). Textbook model (Chiang, Russell & Braatz 2001):
mean/std standardization from the fitting rows, principal components explaining 90 % of the
variance, T² limit a(n-1)(n+1)/(n(n-a)) F(0.99; a, n-a), Q limit Jackson-Mudholkar at 99 %;
every sample above the limit is an alarm (no persistence). Delay = index of the first flagged
faulty row (0 = the first row after the fault's onset).

    python bench/peers/tep_pca.py ../shared/datasets/tep
"""
import sys
from pathlib import Path

import numpy as np
from scipy import stats

FOLDS, BLOCK, UNDETECTABLE = 5, 100, {3, 9, 15}


def fit(x, explained=0.9, alpha=0.99):
    mu, sd = x.mean(0), x.std(0, ddof=1)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    n = len(z)
    vals, vecs = np.linalg.eigh(np.cov(z, rowvar=False))
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    a = int(np.searchsorted(np.cumsum(vals) / vals.sum(), explained) + 1)
    t2_lim = a * (n - 1) * (n + 1) / (n * (n - a)) * stats.f.ppf(alpha, a, n - a)
    th = [np.sum(vals[a:] ** i) for i in (1, 2, 3)]
    h0 = 1 - 2 * th[0] * th[2] / (3 * th[1] ** 2)
    c = stats.norm.ppf(alpha)
    q_lim = th[0] * (c * np.sqrt(2 * th[1] * h0**2) / th[0] + 1 + th[1] * h0 * (h0 - 1) / th[0] ** 2) ** (1 / h0)
    return mu, sd, vecs[:, :a], vals[:a], t2_lim, q_lim


def score(model, x):
    mu, sd, p, lam, t2_lim, q_lim = model
    z = (x - mu) / sd
    t = z @ p
    t2 = np.sum(t**2 / lam, 1)
    q = np.sum((z - t @ p.T) ** 2, 1)
    return t2 > t2_lim, (t2 > t2_lim) | (q > q_lim)


def main():
    d = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/tep")
    normal = np.loadtxt(d / "d00.dat").T
    faults = [np.loadtxt(d / f"d{k:02d}.dat") for k in range(1, 22)]
    models, far = [], {"T2": 0, "T2|Q": 0}
    for f in range(FOLDS):
        keep = np.r_[0 : f * BLOCK, (f + 1) * BLOCK : len(normal)]
        m = fit(normal[keep])
        models.append(m)
        t2, tq = score(m, normal[f * BLOCK : (f + 1) * BLOCK])
        far["T2"] += int(t2.sum())
        far["T2|Q"] += int(tq.sum())
    res = {"T2": [], "T2|Q": []}
    for k in range(1, 22):
        t2, tq = score(models[(k - 1) % FOLDS], faults[k - 1])
        for name, flags in (("T2", t2), ("T2|Q", tq)):
            hit = np.flatnonzero(flags)
            res[name].append((k, int(flags.sum()), len(flags), int(hit[0]) if len(hit) else None))
    print("fault  T2 detected  delay   T2|Q detected  delay")
    for (k, a, n, da), (_, b, _, db) in zip(res["T2"], res["T2|Q"]):
        note = "  (undetectable)" if k in UNDETECTABLE else ""
        print(f"{k:>5}  {100*a/n:>9.1f} %  {str(da):>5}   {100*b/n:>11.1f} %  {str(db):>5}{note}")
    det = [k for k in range(1, 22) if k not in UNDETECTABLE]
    for name in ("T2", "T2|Q"):
        print(f"textbook PCA {name}: false alarms {far[name]} of {FOLDS*BLOCK} normal rows = {100*far[name]/(FOLDS*BLOCK):.2f} %")
        for label, sel in (("detectable (18)", det), ("odd (8)", [k for k in det if k % 2]), ("even (10)", [k for k in det if k % 2 == 0])):
            rows = [r for r in res[name] if r[0] in sel]
            rate = sum(r[1] for r in rows) / sum(r[2] for r in rows)
            delays = [r[3] if r[3] is not None else r[2] for r in rows]
            delay, median = np.mean(delays), np.median(delays)
            missed = sum(r[3] is None for r in rows)
            print(f"textbook PCA {name} {label:<16} detected {100*rate:.1f} %  mean delay {delay:.1f} samples  median {median:.1f}  never detected {missed}")


if __name__ == "__main__":
    main()
