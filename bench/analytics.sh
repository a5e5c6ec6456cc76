#!/usr/bin/env bash
# Anomaly-detection backtest, side by side on the same files in one run:
#   * quality on SKAB (34 files, 400-row warm-up, pointwise F1 / false-alarm / missed-alarm rates):
#     `millwright backtest --detector auto` vs scikit-learn IsolationForest and a NumPy PCA T²+Q;
#   * throughput (rows/s) of `millwright backtest` on a synthetic 1-variable and 8-variable CSV
#     (whole command: CSV parse + detector + CSV write);
#   * live memory per detector / per input tag (RSS growth over N detectors with full windows);
#   * RUL: `millwright pdm train` time on C-MAPSS FD001 (all units).
#
#   bash bench/analytics.sh           # full
#   bash bench/analytics.sh --smoke   # 4 SKAB files, 20k synthetic rows, 50 detectors (CI)
#   MW_BASELINE_BIN=/path/to/old/millwright bash bench/analytics.sh
#       # also times that binary on the same synthetic files, interleaved with ours (3 runs each,
#       # best of 3), and prints the ratio: for "throughput must not fall" checks across commits
#
# Needs ../shared/datasets/skab; the Python peers go into the test venv (numpy, scikit-learn).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"
MW_VENV="${MW_VENV:-$HOME/.cache/millwright/venv}"
smoke=""; [ "${1:-}" = "--smoke" ] && smoke=1

skab=../shared/datasets/skab
[ -d "$skab" ] || { echo "bench/backtest.sh: $skab not found; nothing to do"; exit 0; }
cargo build --release -q -p millwright --bin millwright --example live_memory
bin="$CARGO_TARGET_DIR/release/millwright"
[ -x "$MW_VENV/bin/python" ] || python3 -m venv "$MW_VENV"
"$MW_VENV/bin/python" -c 'import numpy, sklearn' 2>/dev/null || "$MW_VENV/bin/pip" install -q numpy scikit-learn

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mapfile -t files < <(ls "$skab"/valve1/*.csv "$skab"/valve2/*.csv "$skab"/other/*.csv)
[ -n "$smoke" ] && files=("${files[@]:0:4}")

# --- quality on SKAB: ours
tp=0; fp=0; tn=0; fn=0; rows=0
t0=$(date +%s%N)
for f in "${files[@]}"; do
  out=$("$bin" backtest --input "$f" --output "$tmp/out.csv" --labels anomaly --warmup 400)
  read -r a b c d < <(echo "$out" | sed -n 's/.*TP \([0-9]*\) FP \([0-9]*\) TN \([0-9]*\) FN \([0-9]*\).*/\1 \2 \3 \4/p')
  tp=$((tp + a)); fp=$((fp + b)); tn=$((tn + c)); fn=$((fn + d))
  rows=$((rows + $(wc -l < "$f") - 1))
done
t1=$(date +%s%N)
python3 - "$tp" "$fp" "$tn" "$fn" "$rows" "$(( (t1 - t0) / 1000000 ))" "${#files[@]}" <<'PY'
import sys
tp, fp, tn, fn, rows, ms, n = map(int, sys.argv[1:])
p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
f1 = 2 * p * r / max(p + r, 1e-12)
print(f"SKAB ({n} files, {rows} rows)  millwright auto : F1 {f1:.3f}  FAR {100*fp/max(fp+tn,1):5.2f} %  MAR {100*fn/max(fn+tp,1):5.2f} %  ({ms} ms for {n} processes, incl. start-up)")
PY
# --- quality on SKAB: peers
"$MW_VENV/bin/python" bench/peers/skab_reference.py "${files[@]}"

# --- throughput on synthetic data
n=1000000; [ -n "$smoke" ] && n=20000
for vars in 1 8; do
  python3 - "$n" "$vars" > "$tmp/syn.csv" <<'PY'
import math, random, sys
n, k = int(sys.argv[1]), int(sys.argv[2])
random.seed(1)
print("timestamp," + ",".join(f"x{i}" for i in range(k)))
t0 = 1_700_000_000
for i in range(n):
    base = math.sin(i / 50.0)
    print(f"{t0 + i}," + ",".join(f"{base + 0.1 * j + random.gauss(0, 0.05):.5f}" for j in range(k)))
PY
  if [ -n "${MW_BASELINE_BIN:-}" ]; then
    best_new=0; best_old=0
    for _ in 1 2 3; do
      for which in old new; do
        b="$bin"; [ "$which" = old ] && b="$MW_BASELINE_BIN"
        s=$(date +%s%N)
        "$b" backtest --input "$tmp/syn.csv" --output "$tmp/out-$which.csv" > /dev/null
        e=$(date +%s%N)
        r=$(( n * 1000000000 / (e - s) ))
        if [ "$which" = old ]; then [ "$r" -gt "$best_old" ] && best_old=$r; else [ "$r" -gt "$best_new" ] && best_new=$r; fi
      done
    done
    cmp -s "$tmp/out-old.csv" "$tmp/out-new.csv" && same="identical output" || same="output differs"
    python3 -c "import sys; o, w, k = map(int, sys.argv[1:4]); print(f'throughput {k}-variate, best of 3: this build {w} rows/s, baseline {o} rows/s, ratio {w / o:.2f} ({sys.argv[4]})')" \
      "$best_old" "$best_new" "$vars" "$same"
  else
    s=$(date +%s%N)
    "$bin" backtest --input "$tmp/syn.csv" --output "$tmp/out.csv" > /dev/null
    e=$(date +%s%N)
    echo "throughput ${vars}-variate: $n rows in $(( (e - s) / 1000000 )) ms = $(( n * 1000000000 / (e - s) )) rows/s ($(( n * vars * 1000000000 / (e - s) )) samples/s)"
  fi
done

# --- live memory per detector
m=500; [ -n "$smoke" ] && m=50
for kv in "auto 1" "auto 8" "mad 1" "ewma 1" "pca 8"; do
  # shellcheck disable=SC2086
  "$CARGO_TARGET_DIR/release/examples/live_memory" "$m" $kv
done

# --- RUL training time on FD001
fd=../shared/datasets/cmapss/train_FD001.txt
if [ -f "$fd" ] && [ -z "$smoke" ]; then
  s=$(date +%s%N)
  "$bin" pdm train --format cmapss --input "$fd" --model "$tmp/fd001.json" 2>&1 | tail -1
  e=$(date +%s%N)
  echo "pdm train FD001 (all units, 4-fold CV band): $(( (e - s) / 1000000 )) ms wall"
fi
