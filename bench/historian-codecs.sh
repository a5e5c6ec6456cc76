#!/usr/bin/env bash
# Bytes per point and throughput of the historian's block codecs (mw_historian::block) on the
# shared real datasets (SKAB, C-MAPSS, NAB, Tennessee Eastman) and a TSBS-iot-like synthetic
# fleet, per value codec (best pick, without pco, Gorilla, decimal, pco, raw) — a markdown table
# for docs/BENCHMARKS.md.
#
#   bench/historian-codecs.sh [BLOCK_POINTS...]     # default: 1024 8640
#
# Datasets from ../shared/datasets (DATASETS=... to override). Release build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
datasets="${DATASETS:-$root/../shared/datasets}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1024 8640)
cargo build --release -q -p mw-historian --example codecs
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/codecs"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for n in "${sizes[@]}"; do
    echo
    "$bin" "$datasets" "$n"
done
