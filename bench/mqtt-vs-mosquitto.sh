#!/usr/bin/env bash
# Millwright's embedded MQTT broker against Mosquitto (Debian's), in one run, on loopback,
# driven by the same Rust load generator (crates/mw-mqtt/examples/mqtt_loadgen.rs, MQTT 3.1.1,
# plain TCP). Both brokers run side by side, anonymous, without persistence, each with its
# defaults except Mosquitto's `max_queued_messages 0` (its default queue of 1,000 acknowledges
# QoS 1 publishes and then drops them; 0 is unlimited) and Millwright's max_connections
# (20,000, for the idle case).
#
#   * saturation: fan-in (4 publishers → 1 subscriber of bench/#) and fan-out (1 publisher → 8
#     subscribers), QoS 0 and 1, 64 B and 1 KiB payloads: msg/s delivered, lost, broker CPU
#     seconds and peak RSS during the case. p50/p99 under saturation measure queue depth, not
#     the broker, and are printed only for completeness;
#   * latency at a fixed rate below saturation: 10,000 msg/s fan-in of 64 B, QoS 0 and 1:
#     p50/p99/max end to end (send time in the payload, measured by the subscriber);
#   * idle connections: 1,000 and 10,000 held connections, broker RSS growth per connection.
#
# Each saturation and latency case runs `--reps` times (default 3), alternating brokers; the
# median run by msg/s (by p99 for latency) is reported. The load generator shares the 2 cores
# with the broker under test, as on the edge box.
#
#   bash bench/mqtt-vs-mosquitto.sh            # ~4 minutes
#   bash bench/mqtt-vs-mosquitto.sh --smoke    # small counts, one rep, 1k idle only
#   bash bench/mqtt-vs-mosquitto.sh --only idle   # only the idle cases (1k and 10k)
#   bash bench/mqtt-vs-mosquitto.sh --only latency  # only the paced latency cases
#
# `MW_BIN=path LOADGEN=path` use built binaries instead of `cargo build --release`. Needs
# mosquitto, jq and python3. Prints one line per figure and Markdown rows for
# docs/BENCHMARKS.md. No thresholds: numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"

reps=3; scale=1; idle_max=10000; only=all
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) reps=1; scale=10; idle_max=1000 ;;
    --reps) reps=$2; shift ;;
    --only) only=$2; shift
      case "$only" in idle|latency|saturation) ;; *) echo "--only idle|latency|saturation" >&2; exit 2 ;; esac ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
for c in mosquitto jq python3; do
  command -v "$c" >/dev/null || { echo "$c is required (mosquitto: apt-get install -y mosquitto)" >&2; exit 1; }
done
if [ -z "${MW_BIN:-}" ]; then
  cargo build --release -q -p millwright
  MW_BIN="$CARGO_TARGET_DIR/release/millwright"
fi
if [ -z "${LOADGEN:-}" ]; then
  cargo build --release -q -p mw-mqtt --example mqtt_loadgen
  LOADGEN="$CARGO_TARGET_DIR/release/examples/mqtt_loadgen"
fi
# 10k idle connections need 10k descriptors in the generator and in each broker
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle_max + 100)) ]; then
  echo "ulimit -n is $(ulimit -n): the idle case is limited to $(( $(ulimit -n) - 100 )) connections" >&2
  idle_max=$(( $(ulimit -n) - 100 ))
fi

tmp=$(mktemp -d); mq_pid=""; mw_pid=""
cleanup() {
  for p in $mq_pid $mw_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14+$15)/hz}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
wait_port() {
  for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; exit 1
}

mq_port=$(free_port); mw_port=$(free_port)
start_brokers() {
  for p in $mq_pid $mw_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  cat >"$tmp/mosquitto.conf" <<EOF
listener $mq_port 127.0.0.1
allow_anonymous true
max_queued_messages 0
persistence false
log_dest none
EOF
  mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
  mq_pid=$!
  rm -rf "$tmp/mw"
  cat >"$tmp/millwright.toml" <<EOF
[site]
name = "bench"
data_dir = "$tmp/mw"
[http]
address = "127.0.0.1:0"
[mqtt.broker]
address = "127.0.0.1:$mw_port"
anonymous = true
max_connections = 20000
EOF
  RUST_LOG=warn "$MW_BIN" run --config "$tmp/millwright.toml" >"$tmp/millwright.log" 2>&1 &
  mw_pid=$!
  wait_port "$mq_port"; wait_port "$mw_port"
}

# run_case BROKER PID PORT ARGS... → JSON of the load generator plus cpu_s and peak_rss_mb
run_case() {
  local pid=$2 port=$3; shift 3
  local c0 peak=0 r out
  c0=$(cpu_s "$pid")
  "$LOADGEN" --port "$port" "$@" >"$tmp/out.json" &
  local lg=$!
  while kill -0 "$lg" 2>/dev/null; do
    r=$(rss_kb "$pid"); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.05
  done
  wait "$lg" || { echo "load generator failed against $1: $*" >&2; exit 1; }
  out=$(cat "$tmp/out.json")
  jq -c --arg cpu "$(echo "$(cpu_s "$pid") - $c0" | bc -l)" --arg rss "$peak" \
    '. + {cpu_s: ($cpu|tonumber), peak_rss_mb: (($rss|tonumber)/1024*10|round/10)}' <<<"$out"
}

# case NAME SORTKEY ARGS...: reps × both brokers, prints the median run of each and a row
rows=()
bench_case() {
  local name=$1 key=$2; shift 2
  : >"$tmp/mq.jsonl"; : >"$tmp/mw.jsonl"
  for _ in $(seq "$reps"); do
    run_case mosquitto "$mq_pid" "$mq_port" "$@" >>"$tmp/mq.jsonl"
    run_case millwright "$mw_pid" "$mw_port" "$@" >>"$tmp/mw.jsonl"
  done
  local mq mw
  mq=$(jq -s -c "sort_by(.$key) | .[length/2|floor]" "$tmp/mq.jsonl")
  mw=$(jq -s -c "sort_by(.$key) | .[length/2|floor]" "$tmp/mw.jsonl")
  echo "$name  mosquitto  $mq"
  echo "$name  millwright $mw"
  rows+=("$(jq -r -n --argjson a "$mq" --argjson b "$mw" --arg n "$name" \
    '"| \($n) | \($a.msg_per_s) | \($b.msg_per_s) | \(($b.msg_per_s/$a.msg_per_s*100|round)/100)× | \($a.lost) / \($b.lost) | \($a.p50_us) / \($b.p50_us) | \($a.p99_us) / \($b.p99_us) | \($a.cpu_s) / \($b.cpu_s) | \($a.peak_rss_mb) / \($b.peak_rss_mb) |"')")
}

n() { echo $(( $1 / scale )); }
start_brokers
echo "mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}') on $mq_port, millwright on $mw_port; $reps rep(s)"
if [ "$only" = all ] || [ "$only" = saturation ]; then
bench_case "fan-in 4→1 QoS 0 64 B"    msg_per_s fanin  --pubs 4 --qos 0 --size 64   --count "$(n 250000)"
bench_case "fan-in 4→1 QoS 1 64 B"    msg_per_s fanin  --pubs 4 --qos 1 --size 64   --count "$(n 100000)"
bench_case "fan-in 4→1 QoS 0 1 KiB"   msg_per_s fanin  --pubs 4 --qos 0 --size 1024 --count "$(n 100000)"
bench_case "fan-in 4→1 QoS 1 1 KiB"   msg_per_s fanin  --pubs 4 --qos 1 --size 1024 --count "$(n 50000)"
bench_case "fan-out 1→8 QoS 0 64 B"   msg_per_s fanout --subs 8 --qos 0 --size 64   --count "$(n 100000)"
bench_case "fan-out 1→8 QoS 1 64 B"   msg_per_s fanout --subs 8 --qos 1 --size 64   --count "$(n 50000)"
bench_case "fan-out 1→8 QoS 0 1 KiB"  msg_per_s fanout --subs 8 --qos 0 --size 1024 --count "$(n 50000)"
bench_case "fan-out 1→8 QoS 1 1 KiB"  msg_per_s fanout --subs 8 --qos 1 --size 1024 --count "$(n 25000)"
fi
if [ "$only" = all ] || [ "$only" = latency ]; then
bench_case "paced 10k msg/s QoS 0 64 B" p99_us fanin --pubs 4 --qos 0 --size 64 --count "$(n 25000)" --rate 10000
bench_case "paced 10k msg/s QoS 1 64 B" p99_us fanin --pubs 4 --qos 1 --size 64 --count "$(n 25000)" --rate 10000
fi

# idle connections on fresh brokers
idle_rows=()
idle_list="1000"; [ "$idle_max" -gt 1000 ] && idle_list="1000 $idle_max"
[ "$only" = all ] || [ "$only" = idle ] || idle_list=""
for conns in $idle_list; do
  [ "$conns" -gt "$idle_max" ] && continue
  start_brokers
  line="| $conns idle connections |"
  for b in mosquitto millwright; do
    if [ $b = mosquitto ]; then pid=$mq_pid; port=$mq_port; else pid=$mw_pid; port=$mw_port; fi
    r0=$(rss_kb "$pid")
    : >"$tmp/idle.json"
    "$LOADGEN" --port "$port" idle --conns "$conns" --hold 60 >"$tmp/idle.json" &
    lg=$!
    # the generator prints once every connection has its CONNACK
    for _ in $(seq 600); do [ -s "$tmp/idle.json" ] && break; sleep 0.1; done
    [ -s "$tmp/idle.json" ] || { echo "$b: $conns connections not established in 60 s" >&2; exit 1; }
    sleep 1
    r1=$(rss_kb "$pid")
    kill "$lg"; wait "$lg" 2>/dev/null || true
    connected=$(jq .connected "$tmp/idle.json")
    per=$(echo "($r1 - $r0) * 1024 / $connected" | bc)
    echo "idle $conns  $b  connected $connected in $(jq .seconds "$tmp/idle.json") s, RSS $((r0/1024)) → $((r1/1024)) MiB, $per B per connection"
    line="$line $((r1/1024)) MiB, $per B/conn |"
  done
  idle_rows+=("$line")
done

echo
echo "$(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $reps rep(s)"
echo "| case | Mosquitto msg/s | Millwright msg/s | ratio | lost (Mq / Mw) | p50 µs (Mq / Mw) | p99 µs (Mq / Mw) | broker CPU s (Mq / Mw) | peak RSS MiB (Mq / Mw) |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "| idle | Mosquitto | Millwright |"
echo "|---|---|---|"
printf '%s\n' "${idle_rows[@]}"
