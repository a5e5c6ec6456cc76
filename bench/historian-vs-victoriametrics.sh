#!/usr/bin/env bash
# Millwright's historian against VictoriaMetrics (Debian's victoria-metrics), in one run, on
# loopback, fed the same TSBS-iot-like InfluxDB line protocol (bench/peers/lp_gen.py: trucks
# with 7 fields each, 10 s readings with gaps and outages, one day) over HTTP by the same client
# (curl, 5000 lines per body, 4 bodies in flight). Durability differs and is stated beside every
# ingest figure: Millwright (default `fsync = "always"`) answers a body once it is fsynced;
# VictoriaMetrics answers once it is buffered in memory.
#
#   * ingest: points/s over the whole load, server CPU seconds per million points, peak RSS;
#   * disk: bytes per point after a clean stop (Millwright flushes, compacts into day partitions
#     and computes rollups; VictoriaMetrics flushes its in-memory parts), and for
#     VictoriaMetrics again after a restart and /internal/force_merge;
#   * queries after a restart (median of 20 curl runs, ms): (a) the raw points of one series
#     over the day, (b) 1-hour averages over the day of the 1001 series of one fleet, (c) the
#     latest value of every series. Each answer is checked (point and series counts) first.
#
#   bash bench/historian-vs-victoriametrics.sh                       # ~1000 series, 1 day @ 10 s
#   bash bench/historian-vs-victoriametrics.sh --series 10000 --points 360
#   bash bench/historian-vs-victoriametrics.sh --smoke               # 70 series, 600 readings
#
# The load ends at midnight UTC two days back, so Millwright's day partitions have ended and are
# compacted at the stop. `MW_BIN=path` uses a built binary instead of `cargo build --release`.
# Needs curl, bc, python3 and victoria-metrics (`apt-get install -y victoria-metrics`). Prints
# one line per figure and a Markdown row for docs/BENCHMARKS.md. No thresholds: numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"

series=1000; points=8640; step=10; lines=5000; par=4; runs=20
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) series=70; points=600; runs=3 ;;
    --series) series=$2; shift ;;
    --points) points=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
trucks=$(( series / 7 ))
for c in curl bc python3 victoria-metrics; do
  command -v "$c" >/dev/null || { echo "$c is required (victoria-metrics: apt-get install -y victoria-metrics)" >&2; exit 1; }
done

if [ -z "${MW_BIN:-}" ]; then
  cargo build --release -q -p millwright
  MW_BIN="$CARGO_TARGET_DIR/release/millwright"
fi

tmp=$(mktemp -d); mw_pid=""; vm_pid=""
cleanup() {
  for p in $mw_pid $vm_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14+$15)/hz}' "/proc/$1/stat"; }
hwm_mb() { awk '/VmHWM/ {printf "%.1f\n", $2/1024}' "/proc/$1/status"; }
wait_http() { # URL [header] : until it answers at all
  for _ in $(seq 1 600); do curl -s -o /dev/null ${2:+-H "$2"} "$1" && return 0; sleep 0.05; done
  echo "no answer from $1" >&2; exit 1
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }

# ---- the load ---------------------------------------------------------------------------------
now=$(date +%s)
end=$(( (now / 86400 - 1) * 86400 ))   # midnight UTC yesterday: the load's days have ended
mkdir -p "$tmp/load"
read -r chunks nlines total < <(python3 bench/peers/lp_gen.py "$trucks" "$points" "$step" "$end" "$lines" "$tmp/load")
start_s=$(( end - points * step ))
lp_bytes=$(cat "$tmp/load"/*.lp | wc -c)
echo "load: $trucks trucks x 7 fields = $(( trucks * 7 )) series, $points readings @ ${step} s (with gaps): $total points, $nlines lines in $chunks bodies ($(( lp_bytes / 1024 / 1024 )) MiB)"

ingest() { # URL HEADER -> seconds
  local t0 t1
  t0=$(date +%s.%N)
  ls "$tmp/load"/*.lp | xargs -P "$par" -I{} curl -fsS -o /dev/null -H "$2" \
    -H 'Content-Type: text/plain; charset=utf-8' --data-binary @{} "$1"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

# ---- Millwright -------------------------------------------------------------------------------
mw_dir="$tmp/mw"; mkdir -p "$mw_dir"
token=$("$MW_BIN" token create --role engineer --expires 1d --name bench --data-dir "$mw_dir" 2>&1 | tr ' ' '\n' | grep '^mw_' | head -1)
cat >"$mw_dir/millwright.toml" <<EOF
[site]
name = "historian bench"
data_dir = "$mw_dir"

[http]
address = "127.0.0.1:0"

[historian]
fsync = "always"
EOF
start_mw() {
  "$MW_BIN" run --config "$mw_dir/millwright.toml" >"$tmp/mw.out" 2>"$tmp/mw.err" &
  mw_pid=$!
  for _ in $(seq 1 600); do grep -q 'web UI at http://' "$tmp/mw.out" "$tmp/mw.err" 2>/dev/null && break; sleep 0.05; done
  mw_url=$(grep -ho 'http://127.0.0.1:[0-9]*' "$tmp/mw.out" "$tmp/mw.err" | head -1)
  [ -n "$mw_url" ] || { echo "millwright did not start: $(cat "$tmp/mw.err")" >&2; exit 1; }
  wait_http "$mw_url/health" "Authorization: Bearer $token"
}
start_mw
c0=$(cpu_s "$mw_pid")
mw_ingest_s=$(ingest "$mw_url/api/v2/write?precision=ns" "Authorization: Token $token")
mw_cpu=$(echo "$(cpu_s "$mw_pid") - $c0" | bc -l)
mw_rss=$(hwm_mb "$mw_pid")
stop "$mw_pid"; mw_pid=""
mw_bytes=$(du -sb "$mw_dir/historian" | cut -f1)
mw_parts=$(cd "$mw_dir/historian" && for d in *; do [ -e "$d" ] && printf '%s %s B/pt, ' "$d" "$(echo "$(du -sb "$d" | cut -f1) / $total" | bc -l | xargs printf '%.3f')"; done)

# ---- VictoriaMetrics --------------------------------------------------------------------------
vm_port=$(free_port); vm_url="http://127.0.0.1:$vm_port"
start_vm() {
  victoria-metrics -storageDataPath "$tmp/vm" -httpListenAddr "127.0.0.1:$vm_port" -retentionPeriod 1y \
    -search.latencyOffset 0s >"$tmp/vm.log" 2>&1 &
  vm_pid=$!
  wait_http "$vm_url/health"
}
start_vm
c0=$(cpu_s "$vm_pid")
vm_ingest_s=$(ingest "$vm_url/write?precision=ns" "X-Bench: 1")
vm_cpu=$(echo "$(cpu_s "$vm_pid") - $c0" | bc -l)
vm_rss=$(hwm_mb "$vm_pid")
stop "$vm_pid"; vm_pid=""
vm_bytes=$(du -sb "$tmp/vm" | cut -f1)
start_vm
curl -fsS -o /dev/null "$vm_url/internal/force_merge" || echo "note: /internal/force_merge refused" >&2
sleep 5
vm_merged_bytes=$(du -sb "$tmp/vm" | cut -f1)

# ---- queries (VictoriaMetrics is up again; Millwright restarted) -------------------------------
start_mw
qtime() { # URL [header] -> median ms of $runs runs; fails on an HTTP error
  for _ in $(seq 1 "$runs"); do
    curl -fsS -o /dev/null ${2:+-H "$2"} -w '%{time_total}\n' "$1"
  done | awk '{printf "%.3f\n", $1*1000}' | median
}
auth="Authorization: Bearer $token"
from_ns="${start_s}000000000"; to_ns="${end}000000000"
mw_qa="$mw_url/api/v1/query?tag=readings/f0/truck_00001/velocity&from=$from_ns&to=$to_ns"
vm_qa="$vm_url/api/v1/export?match[]=readings_velocity%7Btruck%3D%22truck_00001%22%7D&start=$start_s&end=$(( end - 1 ))"
mw_qb="$mw_url/api/v1/query?tag=readings/f0/**&from=$from_ns&to=$to_ns&agg=avg&step=1h"
vm_qb="$vm_url/api/v1/query_range?query=avg_over_time(%7B__name__%3D~%22readings_.*%22%2Cfleet%3D%22f0%22%7D%5B1h%5D)&start=$(( start_s + 3600 ))&end=$end&step=3600"
mw_qc="$mw_url/api/v1/latest?tag=readings/**"
vm_qc="$vm_url/api/v1/query?query=last_over_time(%7B__name__%3D~%22readings_.*%22%7D%5B3d%5D)&time=$end"
# check that both answer with the data before timing them
mw_pts=$(curl -fsS -H "$auth" "$mw_qa" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))')
vm_pts=$(curl -fsS "$vm_qa" | python3 -c 'import json,sys; print(sum(len(json.loads(l)["values"]) for l in sys.stdin if l.strip()))')
mw_nb=$(curl -fsS -H "$auth" "$mw_qb" | python3 -c 'import json,sys; s=json.load(sys.stdin)["series"]; print(len(s), sum(len(x["points"]) for x in s))')
vm_nb=$(curl -fsS "$vm_qb" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(len(r), sum(len(x["values"]) for x in r))')
mw_n=$(curl -fsS -H "$auth" "$mw_qc" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["points"]))')
vm_n=$(curl -fsS "$vm_qc" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))')
echo "check (a) raw points of one series: millwright $mw_pts, victoria-metrics $vm_pts"
echo "check (b) series and buckets:       millwright $mw_nb, victoria-metrics $vm_nb"
echo "check (c) latest, series:           millwright $mw_n, victoria-metrics $vm_n"

mw_a=$(qtime "$mw_qa" "$auth"); vm_a=$(qtime "$vm_qa")
mw_b=$(qtime "$mw_qb" "$auth"); vm_b=$(qtime "$vm_qb")
mw_c=$(qtime "$mw_qc" "$auth"); vm_c=$(qtime "$vm_qc")

r() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
mw_rate=$(echo "$total / $mw_ingest_s" | bc -l | xargs printf '%.0f')
vm_rate=$(echo "$total / $vm_ingest_s" | bc -l | xargs printf '%.0f')
mw_bpp=$(echo "$mw_bytes / $total" | bc -l | xargs printf '%.3f')
vm_bpp=$(echo "$vm_bytes / $total" | bc -l | xargs printf '%.3f')
vm_mbpp=$(echo "$vm_merged_bytes / $total" | bc -l | xargs printf '%.3f')
mw_cpm=$(echo "$mw_cpu * 1000000 / $total" | bc -l | xargs printf '%.2f')
vm_cpm=$(echo "$vm_cpu * 1000000 / $total" | bc -l | xargs printf '%.2f')

echo
echo "ingest points/s:        millwright $mw_rate (fsync before ack)   victoria-metrics $vm_rate (ack before disk)   ratio $(r "$mw_rate" "$vm_rate")"
echo "CPU s per M points:     millwright $mw_cpm   victoria-metrics $vm_cpm   ratio $(r "$mw_cpm" "$vm_cpm")"
echo "peak RSS MiB:           millwright $mw_rss   victoria-metrics $vm_rss"
echo "bytes/point on disk:    millwright $mw_bpp   victoria-metrics $vm_bpp (after force_merge $vm_mbpp)   ratio $(r "$mw_bpp" "$vm_bpp")"
echo "  millwright by directory: ${mw_parts%, }"
echo "(a) 1 day raw, ms:       millwright $mw_a   victoria-metrics $vm_a"
echo "(b) 1 h avg x 1001, ms: millwright $mw_b   victoria-metrics $vm_b"
echo "(c) latest of all, ms:  millwright $mw_c   victoria-metrics $vm_c"
echo
echo "| $(date -u +%F) | $(( trucks * 7 )) x $points | $mw_rate / $vm_rate | $mw_cpm / $vm_cpm | $mw_bpp / $vm_bpp ($vm_mbpp merged) | $mw_a / $vm_a | $mw_b / $vm_b | $mw_c / $vm_c |"
