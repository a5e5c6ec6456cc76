#!/usr/bin/env bash
# Footprint of `millwright demo` (release build): stripped binary size, cold start to /ready,
# idle RSS after the pipeline has settled. Side by side, the same figures for Mosquitto when it is
# installed (a small C daemon most plants already trust at the edge) give a reference ratio for RSS.
#
#   bash bench/footprint.sh            # 5 cold starts, 10 s settle
#   bash bench/footprint.sh --smoke    # 1 start, 2 s settle (CI)
#
# Prints one line per metric plus a Markdown row for docs/BENCHMARKS.md. No thresholds: numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"

runs=5; settle=10
if [ "${1:-}" = "--smoke" ]; then runs=1; settle=2; fi

cargo build --release -q -p millwright
bin="$CARGO_TARGET_DIR/release/millwright"
size=$(stat -c %s "$bin")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
now_ms() { date +%s%3N; }

tmp=$(mktemp -d); pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

ready_ms=()
rss_kb=0
for i in $(seq 1 "$runs"); do
  hp=$(free_port); mp=$(free_port)
  t0=$(now_ms)
  "$bin" demo --http "127.0.0.1:$hp" --modbus "127.0.0.1:$mp" --data-dir "$tmp/data" --fault-interval 0 \
    >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  ok=""
  for _ in $(seq 1 2000); do
    # /ready is authenticated like every route but /health: use the run's token from the Login: line
    tok=$(sed -n 's/^Login: .*token=//p' "$tmp/out" 2>/dev/null || true)
    if [ -n "$tok" ] && curl -fsS -o /dev/null -H "Authorization: Bearer $tok" \
      "http://127.0.0.1:$hp/ready" 2>/dev/null; then ok=1; break; fi
    sleep 0.005
  done
  t1=$(now_ms)
  [ -n "$ok" ] || { echo "demo did not become ready; stderr:"; cat "$tmp/err"; exit 1; }
  ready_ms+=($((t1 - t0)))
  if [ "$i" -eq "$runs" ]; then
    sleep "$settle"
    rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
  fi
  kill -TERM "$pid"; wait "$pid" || true; pid=""
done
sorted=$(printf '%s\n' "${ready_ms[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')

mosq_rss="n/a"
if command -v mosquitto >/dev/null; then
  mp=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$mp" >"$tmp/mosq.conf"
  mosquitto -c "$tmp/mosq.conf" >/dev/null 2>&1 &
  pid=$!
  sleep "$settle"
  mosq_rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
fi

echo "binary size (stripped):   $((size / 1024 / 1024)) MiB ($size bytes)   goal <= 30 MiB"
echo "cold start to /ready:     median ${median} ms over $runs run(s) (includes curl polling at 5 ms)   goal <= 300 ms"
echo "idle RSS after ${settle} s:     $((rss_kb / 1024)) MiB ($rss_kb kB)   goal <= 30 MiB"
echo "mosquitto idle RSS:       ${mosq_rss} kB (reference)"
echo
echo "| $(date -u +%F) | $(nproc) cores | $((size / 1024)) KiB | ${median} ms | ${rss_kb} kB | ${mosq_rss} kB | bash bench/footprint.sh${1:+ $1} |"
