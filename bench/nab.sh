#!/usr/bin/env bash
# NAB corpus score of `millwright backtest` (issue 14), scoring alarm ONSETS, no threshold sweep.
#
#   bash bench/nab.sh                    # detector auto, default warm-up
#   bash bench/nab.sh --detector mad     # any other backtest detector
#   MW_BIN=/path/to/millwright bash bench/nab.sh   # score another binary (e.g. main's, for before/after)
#
# For every file listed in NAB's combined_windows.json: `millwright backtest --input F --output D`,
# then bench/nab_corpus.py turns is_anomaly into onsets (first row of each flagged run) and scores
# each file with ../shared/tools/nab_score.py unchanged. Prints the corpus score (raw scores summed,
# normalized once), the per-category table, and the tuning / held-out halves (split described in
# bench/nab_corpus.py: alternate files by name within each category).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=../shared
nab="$shared/datasets/nab"
scorer="$shared/tools/nab_score.py"
if [ ! -d "$nab" ] || [ ! -f "$scorer" ]; then
  echo "bench/nab.sh: $nab or $scorer not found (../shared is absent); skipping"
  exit 0
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"
MW_VENV="${MW_VENV:-$HOME/.cache/millwright/venv}"
py="$MW_VENV/bin/python"
[ -x "$py" ] || py=python3
if ! "$py" -c 'import pandas' 2>/dev/null; then
  echo "bench/nab.sh: the scorer needs pandas; install it with: $MW_VENV/bin/pip install pandas"
  exit 1
fi
bin="${MW_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release -q -p millwright --bin millwright
  bin="$CARGO_TARGET_DIR/release/millwright"
fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mapfile -t keys < <("$py" -c 'import json, sys; print("\n".join(sorted(json.load(open(sys.argv[1])))))' "$nab/combined_windows.json")
s=$(date +%s%N)
for k in "${keys[@]}"; do
  f="$nab/$(basename "$k")"
  "$bin" backtest --input "$f" --output "$tmp/$(basename "$k")" "$@" > /dev/null
done
e=$(date +%s%N)
echo "NAB: ${#keys[@]} files through $bin backtest $* in $(( (e - s) / 1000000 )) ms"
"$py" bench/nab_corpus.py --data-dir "$nab" --det-dir "$tmp" --scorer "$scorer" ${NAB_JSON:+--json "$NAB_JSON"}
