#!/usr/bin/env bash
# Tennessee Eastman detection, side by side on the same runs (issue 14 item 4):
#   * the multivariate `auto` (and `pca`) through the library: crates/mw-analytics/examples/tep.rs;
#   * the textbook PCA T² (and T² or Q) with 99 % limits: bench/peers/tep_pca.py (NumPy/SciPy).
# Runs (both sides): d00.dat in 5 blocks of 100 rows; the run for fault k warms up / fits on the
# 400 normal rows outside block (k-1) mod 5, scores the held-out block (false alarms), then the
# 480 rows of dNN.dat (detection rate, first-detection delay = index of the first flagged row).
# Totals over the 18 detectable faults (3, 9, 15 excluded) and over the odd / even halves.
#
#   bash bench/tep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"
MW_VENV="${MW_VENV:-$HOME/.cache/millwright/venv}"
tep=../shared/datasets/tep
[ -f "$tep/d00.dat" ] || { echo "bench/tep.sh: $tep not found; nothing to do"; exit 0; }
cargo build --release -q -p mw-analytics --example tep
[ -x "$MW_VENV/bin/python" ] || python3 -m venv "$MW_VENV"
"$MW_VENV/bin/python" -c 'import numpy, scipy' 2>/dev/null || "$MW_VENV/bin/pip" install -q numpy scipy
echo "== millwright auto"
"$CARGO_TARGET_DIR/release/examples/tep" auto
echo "== millwright pca"
"$CARGO_TARGET_DIR/release/examples/tep" pca | tail -4
echo "== textbook PCA (peer)"
"$MW_VENV/bin/python" bench/peers/tep_pca.py "$tep"
