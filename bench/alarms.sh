#!/usr/bin/env bash
# Alarm benchmarks (issue #11), numbers only (no thresholds):
#
#  (a) sample arrival -> alarm on the SSE stream, through the real binary: `millwright run`
#      polls a minimal Modbus TCP server (bench/peers/alarm_latency.py) every 10 ms; 20 tags with a
#      critical `hi` alarm each flip across the limit every 40 ms; the script reads
#      /api/v1/alarms/stream and takes arrival - ts_ns (the causing sample's receive timestamp)
#      per transition, p50/p99/max over N alarms. Includes the bus, the engine, the journal's
#      fsync per batch with transitions, the broadcast, the SSE route and loopback TCP.
#  (b) evaluation throughput: 100,000 tags x 4 limit alarms (hi/hihi/lo/lolo, plus the automatic
#      bad-quality alarm each), batches of 10,000 samples, samples/s through the engine on one
#      core (crates/mw-alarms/examples/eval_latency.rs, pinned with taskset when present).
#
#   bash bench/alarms.sh           # 10,000 alarms; 100,000 tags, 200 batches (2 M samples)
#   bash bench/alarms.sh --smoke   # 200 alarms; 10,000 tags, 20 batches (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"

alarms=10000; tags=100000; batches=200
if [ "${1:-}" = "--smoke" ]; then alarms=200; tags=10000; batches=20; fi

cargo build --release -q -p millwright
cargo build --release -q -p mw-alarms --example eval_latency
mw="$CARGO_TARGET_DIR/release/millwright"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

token=$("$mw" token create --role viewer --expires 1h --name bench --data-dir "$tmp" 2>&1 | tr ' ' '\n' | grep '^mw_' | head -1)
[ -n "$token" ] || { echo "could not create an API token" >&2; exit 1; }
echo "== (a) sample arrival -> SSE, real binary, $alarms alarms"
lat=$(python3 bench/peers/alarm_latency.py "$mw" "$tmp" "$token" --alarms "$alarms")
echo "$lat"

echo "== (b) evaluation throughput, $tags tags x 4 alarms, one core"
pin=""; command -v taskset >/dev/null && pin="taskset -c 0"
$pin "$CARGO_TARGET_DIR/release/examples/eval_latency" --tags "$tags" --batch 10000 --batches "$batches"

echo "date: $(date -u +%F), machine: $(nproc) cores, $(uname -m)"
