#!/usr/bin/env bash
# Uplink (mw-uplink) against a local nats-server -js, release build, in one run:
#   * raw: async-nats publishes N JetStream messages of the uplink's size and headers (Nats-Msg-Id),
#     256 PubAcks outstanding — what `nats bench js pub` measures, in-process;
#   * uplink: N samples buffered first (mw-buffer, sync = always, 1000 per append), then the
#     forwarder drains the backlog into another stream with the same window;
#   prints both rates and the ratio uplink / raw.
#
#   bash bench/uplink.sh                  # 200 000 records
#   bash bench/uplink.sh --records 1000000
#   bash bench/uplink.sh --smoke          # 5 000 records (CI)
#   MW_BENCH_DIR=/mnt/disk bash bench/uplink.sh   # another file system than the temp dir
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || {
  echo "nats-server is not installed (scripts/setup-test-env.sh installs it)" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"
cargo run --release -q -p mw-uplink --example uplink_bench -- "$@"
