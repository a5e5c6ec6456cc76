#!/usr/bin/env bash
# Disk buffer (mw-buffer) on the real file system, release build:
#   * append throughput: sync=always (1 thread; 4 threads sharing fsyncs; batches of 100) and
#     sync=interval (1 s);
#   * bytes on disk per record for a 40-byte payload;
#   * read + ack drain rate of 1,000,000 buffered records (ack_through per batch, ack per record).
#
#   bash bench/buffer.sh           # full
#   bash bench/buffer.sh --smoke   # small counts (CI)
#   MW_BENCH_DIR=/mnt/disk bash bench/buffer.sh   # another file system than the temp dir
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"
cargo run --release -q -p mw-buffer --example buffer_bench -- "$@"
