#!/usr/bin/env python3
"""Candidate univariate detectors for issue 14 item 3, as NumPy prototypes scored on NAB the way
bench/nab.sh scores `millwright backtest` (alarm onsets, nab_score.py's score_detections, NAB's
corpus normalization, the same tuning / held-out split). Used to choose the design of the Rust
`auto`; not a runtime dependency.

    $VENV/bin/python bench/peers/nab_candidates.py   # needs numpy, scipy, pandas; ../shared

Candidates (each causal, warm-up 400 rows, no labels):
  spot-residual  seasonal per-phase median (rolling median if no period in the warm-up)
                 residual, robust EW scale, SPOT threshold (GPD, risk 1e-4), hold 5 quiet rows
  spot-refractory the same with 20 quiet rows and no new onset for 400 rows after an alarm
  bocpd          Adams & MacKay Bayesian online change-point detection, Normal-Gamma model on
                 the warm-up-standardized series, hazard 1/250 (and 1/1000), run length
                 truncated at 200; alarm while P(run length < 5) >= 0.5
"""
import json, math, os, statistics, sys
import numpy as np
from scipy.special import gammaln

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "shared")
NAB = os.path.join(SHARED, "datasets", "nab")
sys.path.insert(0, os.path.join(SHARED, "tools"))
import collections, bisect

def detect_period(xs, max_period, min_acf=0.3):
    n = len(xs); max_lag = min(max_period, n // 2)
    if max_lag < 3: return None
    i = np.arange(n); x = np.asarray(xs, float)
    A = np.vstack([i - i.mean(), np.ones(n)]).T
    coef = np.linalg.lstsq(A, x - x.mean(), rcond=None)[0]
    r = x - x.mean() - coef[0] * (i - i.mean())
    var = (r * r).sum()
    if not var > 0: return None
    acf = np.array([(r[:n - l] * r[l:]).sum() / var if l < n else 0 for l in range(max_lag + 2)])
    peaks = []; lowest = math.inf
    for lag in range(1, max_lag + 1):
        lowest = min(lowest, acf[lag - 1], acf[lag])
        if lag >= 2 and acf[lag] >= acf[lag - 1] and acf[lag] >= acf[lag + 1] and acf[lag] >= min_acf and acf[lag] - lowest >= 0.2:
            peaks.append((lag, acf[lag]))
    if not peaks: return None
    best = max(p[1] for p in peaks)
    return next(p[0] for p in peaks if p[1] >= 0.9 * best)

def gpd_fit(exc):
    """Method-of-moments GPD (xi, sigma) on excesses; xi clipped to [-0.5, 0.5]."""
    exc = np.asarray(exc)
    if len(exc) < 5: return 0.0, max(float(np.mean(exc)) if len(exc) else 1.0, 1e-9)
    m = exc.mean(); v = exc.var()
    if v <= 0: return 0.0, max(m, 1e-9)
    xi = 0.5 * (1 - m * m / v)
    xi = min(max(xi, -0.5), 0.5)
    sigma = 0.5 * m * (m * m / v + 1)
    return xi, max(sigma, 1e-9)

def gpd_quantile(t, xi, sigma, q, n, nt):
    r = q * n / max(nt, 1)
    if abs(xi) < 1e-6: return t - sigma * math.log(r)
    return t + sigma / xi * (r ** (-xi) - 1)

class RollMed:
    def __init__(s, w): s.w = w; s.q = collections.deque(); s.srt = []
    def push(s, x):
        if len(s.q) == s.w:
            o = s.q.popleft(); del s.srt[bisect.bisect_left(s.srt, o)]
        s.q.append(x); bisect.insort(s.srt, x)
    def med(s):
        n = len(s.srt)
        return s.srt[n // 2] if n % 2 else 0.5 * (s.srt[n // 2 - 1] + s.srt[n // 2])

def spot_detector(level_w=64, scale_alpha=1/256, init_q=0.98, risk=1e-4, hold_k=0.0, release=5,
                  seasonal=True, cycles=3, warm=400, refractory=0, max_peaks=2000, use_scale=True,
                  clip=4.0, two_sided=True, cusum=False, cusum_k=0.5, cusum_h=None):
    def run(v, t):
        n = len(v); flags = np.zeros(n, bool)
        W = min(warm, n)
        xs = v[:W]
        p = detect_period(xs, W // 2) if seasonal else None
        # baseline
        lvl = RollMed(level_w)
        slots = [collections.deque(maxlen=cycles) for _ in range(p)] if p else None
        def predict(i):
            if slots is not None:
                sl = slots[i % p]
                if not sl: return None
                return sorted(sl)[len(sl) // 2]
            if not lvl.q: return None
            return lvl.med()
        def push(i, x):
            if slots is not None: slots[i % p].append(x)
            lvl.push(x)
        # warm-up replay
        res = []
        for i in range(W):
            b = predict(i)
            if b is not None: res.append(v[i] - b)
            push(i, v[i])
        res = np.array(res) if res else np.zeros(1)
        s0 = max(np.median(np.abs(res)) * 1.4826, np.std(res) * 0.1, 1e-9 + 1e-6 * abs(np.median(xs)))
        scale = s0
        zs = np.abs(res) / s0
        tq = np.quantile(zs, init_q)
        peaks = collections.deque((zs[zs > tq] - tq).tolist(), maxlen=max_peaks)
        nobs = len(zs)
        xi, sg = gpd_fit(list(peaks))
        zq = max(gpd_quantile(tq, xi, sg, risk, nobs, len(peaks)), 3.0)
        on = False; quiet = 0; since = 10**9; refit = 0
        cu_hi = cu_lo = 0.0
        for i in range(W, n):
            x = v[i]
            b = predict(i)
            r = x - b if b is not None else 0.0
            z = abs(r) / scale if use_scale else abs(r) / s0
            stat = z / zq
            if cusum:
                zz = r / scale
                cu_hi = max(0.0, cu_hi + zz - cusum_k); cu_lo = max(0.0, cu_lo - zz - cusum_k)
                h = cusum_h
                stat = max(stat, max(cu_hi, cu_lo) / h)
            since += 1
            if on:
                if stat >= hold_k and z > tq: quiet = 0
                else:
                    quiet += 1
                    if quiet >= release: on = False; since = 0
            elif stat >= 1.0 and since >= refractory:
                on = True; quiet = 0
            flags[i] = on
            if not on and stat < 1.0:
                nobs += 1
                if z > tq:
                    peaks.append(z - tq); refit += 1
                    if refit >= 10:
                        xi, sg = gpd_fit(list(peaks)); refit = 0
                        zq = max(gpd_quantile(tq, xi, sg, risk, nobs, len(peaks)), 3.0)
            # scale update with clipped residual
            if use_scale:
                scale += scale_alpha * (min(abs(r), clip * scale) * 1.0 / 0.7979 * 0.7979 - scale * 0.7979) / 0.7979 if False else 0
                scale = (1 - scale_alpha) * scale + scale_alpha * min(abs(r), clip * scale) * 1.2533
                scale = max(scale, 0.05 * s0)
            push(i, x)
        return flags
    return run



def bocpd(hazard=1/250, rmax=200, warm=400, thr=0.5, short=5, release=10):
    def run(v, t):
        n = len(v); flags = np.zeros(n, bool); W = min(warm, n)
        med = np.median(v[:W]); s = np.median(np.abs(v[:W] - med)) * 1.4826
        if not s > 0: s = np.std(v[:W]) or 1.0
        x = (v - med) / s
        mu0, k0, a0, b0 = 0.0, 1.0, 1.0, 1.0
        R = np.array([1.0]); mu = np.array([mu0]); k = np.array([k0]); a = np.array([a0]); b = np.array([b0])
        on = False; quiet = 0
        H = hazard
        for i in range(n):
            xi = x[i]
            # student-t predictive
            df = 2 * a; sc2 = b * (k + 1) / (a * k)
            lp = gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * np.log(np.pi * df * sc2) - (df + 1) / 2 * np.log1p((xi - mu) ** 2 / (df * sc2))
            pp = np.exp(lp - lp.max())
            g = R * pp * (1 - H); cp = (R * pp * H).sum()
            Rn = np.concatenate([[cp], g]); Rn /= Rn.sum()
            mun = np.concatenate([[mu0], (k * mu + xi) / (k + 1)])
            bn = np.concatenate([[b0], b + k * (xi - mu) ** 2 / (2 * (k + 1))])
            kn = np.concatenate([[k0], k + 1]); an = np.concatenate([[a0], a + 0.5])
            if len(Rn) > rmax:
                Rn = Rn[:rmax]; Rn /= Rn.sum(); mun = mun[:rmax]; bn = bn[:rmax]; kn = kn[:rmax]; an = an[:rmax]
            R, mu, b, k, a = Rn, mun, bn, kn, an
            if i < W: continue
            pshort = R[:short].sum()
            if on:
                if pshort >= thr: quiet = 0
                else:
                    quiet += 1
                    if quiet >= release: on = False
            elif pshort >= thr: on = True; quiet = 0
            flags[i] = on
        return flags
    return run


def split_of(keys):
    by_cat = {}
    for k in sorted(keys):
        by_cat.setdefault(k.split("/")[0], []).append(k)
    return {k: ("tune" if i % 2 == 0 else "held-out") for ks in by_cat.values() for i, k in enumerate(ks)}


def onsets(flags):
    f = np.asarray(flags).astype(bool)
    o = f.copy()
    o[1:] = f[1:] & ~f[:-1]
    return o.astype(int).tolist()


def total(rs):
    raw = sum(r["raw"] for r in rs); null = sum(r["null"] for r in rs); perf = sum(r["perfect"] for r in rs)
    return 100 * (raw - null) / (perf - null)


def main():
    if not os.path.isdir(NAB):
        print(f"nab_candidates.py: {NAB} not found; skipping")
        return
    import pandas as pd
    import nab_score
    keys = sorted(json.load(open(os.path.join(NAB, "combined_windows.json"))))
    half = split_of(keys)
    data = {}
    for k in keys:
        _, wins = nab_score.load_file_and_windows(NAB, k)
        data[k] = (pd.read_csv(os.path.join(NAB, os.path.basename(k)))["value"].to_numpy(float), wins)
    candidates = {
        "spot-residual": spot_detector(),
        "spot-refractory": spot_detector(release=20, refractory=400),
        "bocpd h=1/250": bocpd(),
        "bocpd h=1/1000": bocpd(hazard=1 / 1000),
    }
    for name, det in candidates.items():
        res = {k: nab_score.score_detections(onsets(det(v, None)), w) for k, (v, w) in data.items()}
        parts = []
        for label, ks in (("tuning", [k for k in keys if half[k] == "tune"]),
                          ("held-out", [k for k in keys if half[k] == "held-out"]), ("whole", keys)):
            rs = [res[k] for k in ks]
            parts.append(f"{label} {total(rs):5.1f}")
        med = statistics.median(r["normalized"] for r in res.values() if r["n_windows"])
        print(f"{name:16} " + "  ".join(parts) + f"  per-file median {med:5.1f}  caught "
              f"{sum(r['tp'] for r in res.values())}/{sum(r['n_windows'] for r in res.values())}  "
              f"FP onsets {sum(r['fp'] for r in res.values())}", flush=True)


if __name__ == "__main__":
    main()
