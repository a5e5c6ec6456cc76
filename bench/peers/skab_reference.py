"""Reference anomaly detectors for bench/backtest.sh, run on the same SKAB files as `millwright backtest`.

Same protocol as ours: per file, fit on the first WARMUP rows (not scored), score the rest pointwise,
confusion summed over all files. Two peers:
  * iforest: scikit-learn's IsolationForest (random_state=0), threshold = 99th percentile of warm-up scores;
  * t2q:     PCA T² and Q (SPE) with NumPy, 85 % variance kept, thresholds = 99th percentile of warm-up
             statistics, anomalous if either exceeds (the classic "T²+Q" row of the SKAB leaderboard).
Prints one line per detector: F1, FAR, MAR, and detector time (fit + score, not CSV parsing).
"""
import sys
import time

import numpy as np

WARMUP = 400


def load(path):
    with open(path) as f:
        header = f.readline().strip().split(";")
        rows = [line.strip().split(";") for line in f if line.strip()]
    cols = [i for i, h in enumerate(header) if h not in ("datetime", "anomaly", "changepoint")]
    x = np.array([[float(r[i]) for i in cols] for r in rows])
    y = np.array([float(r[header.index("anomaly")]) > 0.5 for r in rows])
    return x, y


def iforest(train, test):
    from sklearn.ensemble import IsolationForest

    m = IsolationForest(random_state=0).fit(train)
    thr = np.percentile(-m.score_samples(train), 99)
    return -m.score_samples(test) > thr


def t2q(train, test):
    mu, sd = train.mean(0), train.std(0) + 1e-12
    z = (train - mu) / sd
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    var = s**2 / (len(z) - 1)
    k = int(np.searchsorted(np.cumsum(var) / var.sum(), 0.85) + 1)
    p, lam = vt[:k].T, var[:k]

    def stats(a):
        za = (a - mu) / sd
        t = za @ p
        t2 = (t**2 / lam).sum(1)
        q = ((za - t @ p.T) ** 2).sum(1)
        return t2, q

    t2_tr, q_tr = stats(train)
    t2, q = stats(test)
    return (t2 > np.percentile(t2_tr, 99)) | (q > np.percentile(q_tr, 99))


def main(files):
    for name, fn in (("iforest", iforest), ("t2q", t2q)):
        tp = fp = tn = fn_ = rows = 0
        secs = 0.0
        for path in files:
            x, y = load(path)
            t0 = time.perf_counter()
            flags = fn(x[:WARMUP], x[WARMUP:])
            secs += time.perf_counter() - t0
            lab = y[WARMUP:]
            tp += int((flags & lab).sum())
            fp += int((flags & ~lab).sum())
            tn += int((~flags & ~lab).sum())
            fn_ += int((~flags & lab).sum())
            rows += len(x)
        prec = tp / max(tp + fp, 1)
        rec = tp / max(tp + fn_, 1)
        f1 = 2 * prec * rec / max(prec + rec, 1e-12)
        far, mar = 100 * fp / max(fp + tn, 1), 100 * fn_ / max(fn_ + tp, 1)
        print(f"SKAB peer {name:>8}            : F1 {f1:.3f}  FAR {far:5.2f} %  MAR {mar:5.2f} %  "
              f"({1000 * secs:.0f} ms detector time, {rows} rows)")


if __name__ == "__main__":
    main(sys.argv[1:])
