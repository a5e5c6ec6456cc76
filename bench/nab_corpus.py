#!/usr/bin/env python3
"""Score a directory of `millwright backtest` outputs on the NAB corpus (used by bench/nab.sh).

    nab_corpus.py --data-dir NAB --det-dir DIR --scorer nab_score.py [--raw-flags]

DIR holds one backtest output per data file (same base name). By default `is_anomaly` is
turned into alarm ONSETS (the first row of each run of 1s) before scoring, because NAB counts
every flagged row outside a window as a false positive and an operator sees onsets. Each
file is scored by running ../shared/tools/nab_score.py on it, unchanged. The corpus figure
is NAB's: raw, null and perfect summed over the files, normalized once.

Split (fixed, by name, no randomness): within each NAB category the files sorted by name are
numbered 0, 1, 2, ...; even numbers form the TUNING half (where parameters were chosen), odd
numbers the HELD-OUT half.
"""
import argparse, csv, json, os, statistics, subprocess, sys, tempfile


def split_of(keys):
    by_cat = {}
    for k in sorted(keys):
        by_cat.setdefault(k.split("/")[0], []).append(k)
    return {k: ("tune" if i % 2 == 0 else "held-out") for ks in by_cat.values() for i, k in enumerate(ks)}


def onsets(src, dst):
    with open(src, newline="") as f, open(dst, "w", newline="") as g:
        r, w = csv.reader(f), csv.writer(g)
        head = next(r)
        w.writerow(head)
        j = head.index("is_anomaly")
        prev = 0
        for row in r:
            cur = 1 if row[j].strip() == "1" else 0
            row[j] = "1" if cur and not prev else "0"
            prev = cur
            w.writerow(row)


def total(rows):
    """NAB's corpus normalization: files without windows add their (false-positive) raw score."""
    raw, null, perf = (sum(r[k] for r in rows) for k in ("raw", "null", "perfect"))
    return 100.0 * (raw - null) / (perf - null) if perf != null else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--det-dir", required=True)
    ap.add_argument("--scorer", required=True)
    ap.add_argument("--raw-flags", action="store_true", help="score is_anomaly as written (every flagged row)")
    ap.add_argument("--json", help="write per-file results here")
    a = ap.parse_args()
    keys = list(json.load(open(os.path.join(a.data_dir, "combined_windows.json"))))
    half = split_of(keys)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in sorted(keys):
            name = os.path.basename(k)
            det = os.path.join(a.det_dir, name)
            if not a.raw_flags:
                onsets(det, os.path.join(tmp, name))
                det = os.path.join(tmp, name)
            out = subprocess.run([sys.executable, a.scorer, "--data-dir", a.data_dir, "--file", k,
                                  "--detections", det], capture_output=True, text=True, check=True).stdout
            r = json.loads(out)
            r["key"], r["category"], r["half"] = k, k.split("/")[0], half[k]
            results.append(r)
    if a.json:
        json.dump(results, open(a.json, "w"), indent=1)
    print(f"{'category':24} {'files':>5} {'windows':>7} {'caught':>6} {'FP onsets':>9} {'raw':>8} {'normalized':>10}")
    for cat in sorted({r["category"] for r in results}):
        rs = [r for r in results if r["category"] == cat]
        print(f"{cat:24} {len(rs):5d} {sum(r['n_windows'] for r in rs):7d} {sum(r['tp'] for r in rs):6d} "
              f"{sum(r['fp'] for r in rs):9d} {sum(r['raw'] for r in rs):8.2f} {total(rs):10.1f}")
    for label, rs in (("tuning half", [r for r in results if r["half"] == "tune"]),
                      ("held-out half", [r for r in results if r["half"] == "held-out"]),
                      ("whole corpus", results)):
        med = statistics.median(r["normalized"] for r in rs if r["n_windows"])
        print(f"{label:14}: normalized {total(rs):5.1f}  per-file median {med:5.1f}  files {len(rs)}  "
              f"windows {sum(r['n_windows'] for r in rs)} caught {sum(r['tp'] for r in rs)}  "
              f"FP onsets {sum(r['fp'] for r in rs)}")


if __name__ == "__main__":
    main()
