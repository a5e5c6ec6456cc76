#!/usr/bin/env bash
# millwright central (mw-central), one replica, release build, against local nats-server -js and
# victoria-metrics started by the benchmark on loopback ports, in one run:
#   * peer: the same samples imported straight into VictoriaMetrics (/api/v1/import, same body, batch per request);
#   * central: the samples published first in the uplink's format, then consumed (fetch, import, ack each)
#     until the consumer's ack floor reaches the last one; the points in VictoriaMetrics are counted;
#   prints both rates and the ratio central / peer.
#
#   bash bench/central.sh                    # 200 000 samples, batch 500
#   bash bench/central.sh --samples 1000000 --batch 1000
#   bash bench/central.sh --smoke            # 5 000 samples (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/sbin/nats-server ] && [ -x /usr/bin/victoria-metrics ] || {
  echo "nats-server or victoria-metrics is not installed (scripts/setup-test-env.sh installs them)" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"
cargo run --release -q -p mw-central --example central_bench -- "$@"
