#!/usr/bin/env bash
# Bus throughput, before and after the component contracts, in one run: one publisher, 1 or 4
# sinks, batches of 100 samples, with and without end-to-end acknowledgements (ack mode: every
# sink durable, up to 256 acks in flight). The previous bus (commit e04bb45, samples only, no
# acks) is built from a git worktree with bench/bus/baseline.rs as its example.
#
#   bash bench/bus.sh            # 3 runs x 3 s per case (median); paced 100k samples/s, 3 x 10 s
#   bash bench/bus.sh --smoke    # new bus only, 1 s per case (CI)
#
# Reports samples/s, and at a paced 100k samples/s the CPU seconds per million samples (the cost
# of acknowledgements at that rate). No thresholds: numbers, for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"
BASE_COMMIT=e04bb45
smoke=""; runs=3; secs=3; paced=10
if [ "${1:-}" = "--smoke" ]; then smoke=1; runs=1; secs=1; paced=1; fi

cargo build --release -q -p mw-bus --example bus_throughput
new="$CARGO_TARGET_DIR/release/examples/bus_throughput"

base=""
tmp=$(mktemp -d)
cleanup() {
  if [ -d "$tmp/base" ]; then git worktree remove --force "$tmp/base" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
if [ -z "$smoke" ]; then
  if git cat-file -e "$BASE_COMMIT^{commit}" 2>/dev/null; then
    git worktree add --detach -q "$tmp/base" "$BASE_COMMIT"
    mkdir -p "$tmp/base/crates/mw-bus/examples"
    cp bench/bus/baseline.rs "$tmp/base/crates/mw-bus/examples/baseline.rs"
    (cd "$tmp/base" && CARGO_TARGET_DIR="$HOME/.cache/millwright/target-bus-baseline" \
      cargo build --release -q -p mw-bus --example baseline)
    base="$HOME/.cache/millwright/target-bus-baseline/release/examples/baseline"
  else
    echo "note: baseline commit $BASE_COMMIT is not in this clone (shallow?); measuring the new bus only" >&2
  fi
fi

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# throughput: interleave baseline and new runs so drift hits both alike
declare -A tput
for sinks in 1 4; do
  for r in $(seq 1 "$runs"); do
    if [ -n "$base" ]; then tput[base,$sinks]+="$("$base" "$sinks" 100 "$secs" | field samples_per_s) "; fi
    for acks in 0 1; do
      tput[new,$sinks,$acks]+="$("$new" "$sinks" "$acks" 100 "$secs" | field samples_per_s) "
    done
  done
done
med() { printf '%s\n' $1 | median; }

# CPU at a paced 100k samples/s
declare -A cpu
for sinks in 1 4; do
  for r in $(seq 1 "$runs"); do
    if [ -n "$base" ]; then cpu[base,$sinks]+="$("$base" "$sinks" 100 "$paced" 100000 | field cpu_per_msample) "; fi
    for acks in 0 1; do
      cpu[new,$sinks,$acks]+="$("$new" "$sinks" "$acks" 100 "$paced" 100000 | field cpu_per_msample) "
    done
  done
done

echo
echo "machine: $(nproc) cores, $(uname -m); $(date -u +%Y-%m-%d); runs=$runs x ${secs}s (median); paced: $runs x ${paced}s (median)"
echo "CPU s per M samples at 100k samples/s x 10 = % of one core at that rate"
echo
echo "| sinks | before (samples/s) | after, no acks | after, acks | after/before | acks/no acks | CPU s per M samples at 100k/s: before / after / after+acks |"
echo "|---|---|---|---|---|---|---|"
for sinks in 1 4; do
  b=$( [ -n "$base" ] && med "${tput[base,$sinks]}" || echo "-")
  n0=$(med "${tput[new,$sinks,0]}"); n1=$(med "${tput[new,$sinks,1]}")
  ratio=$( [ "$b" != "-" ] && awk -v a="$n0" -v b="$b" 'BEGIN{printf "%.2f", a/b}' || echo "-")
  ackr=$(awk -v a="$n1" -v b="$n0" 'BEGIN{printf "%.2f", a/b}')
  cb=$( [ -n "$base" ] && med "${cpu[base,$sinks]}" || echo "-")
  c0=$(med "${cpu[new,$sinks,0]}"); c1=$(med "${cpu[new,$sinks,1]}")
  printf "| %s | %s | %s | %s | %s | %s | %s / %s / %s |\n" "$sinks" \
    "$( [ "$b" != "-" ] && printf '%.2fM' "$(awk -v x="$b" 'BEGIN{print x/1e6}')" || echo -)" \
    "$(printf '%.2fM' "$(awk -v x="$n0" 'BEGIN{print x/1e6}')")" \
    "$(printf '%.2fM' "$(awk -v x="$n1" 'BEGIN{print x/1e6}')")" \
    "$ratio" "$ackr" "$cb" "$c0" "$c1"
done
