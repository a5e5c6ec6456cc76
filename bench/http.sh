#!/usr/bin/env bash
# HTTPS vs plain HTTP against our own serving layer (mw_web::serve_with), in one run on loopback:
# the same router served twice by `crates/mw-web/examples/bench_server.rs` (release build), once
# plain and once with TLS (rustls + ring, a CA made by rcgen at start).
#
#   * TLS handshake time: curl on fresh connections, time_appconnect - time_connect (median);
#   * per-request latency and throughput on kept-alive connections: wrk, GET /health;
#   * throughput with a new connection per request (`Connection: close`), so every request pays
#     the TCP (and TLS) handshake: wrk;
#   * authenticated vs unauthenticated throughput (plain HTTP, kept-alive): wrk, GET /api/v1/whoami
#     anonymous (401), with the process's login token and with a stored API token.
#
#   bash bench/http.sh            # 200 handshakes, 10 s per wrk run
#   bash bench/http.sh --smoke    # 10 handshakes, 1 s per wrk run (CI)
#
# Needs curl and wrk (`apt-get install -y wrk`). Prints one line per figure, ratios HTTPS / HTTP,
# and a Markdown row for docs/BENCHMARKS.md. No thresholds: numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/millwright/target}"

handshakes=200; dur=10; conns=16
if [ "${1:-}" = "--smoke" ]; then handshakes=10; dur=1; conns=4; fi
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is required (apt-get install -y wrk)" >&2; exit 1; }

cargo build --release -q -p mw-web --example bench_server
bin="$CARGO_TARGET_DIR/release/examples/bench_server"

tmp=$(mktemp -d); pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin" "$tmp" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 500); do [ -s "$tmp/ports" ] && break; sleep 0.01; done
[ -s "$tmp/ports" ] || { echo "bench_server did not start: $(cat "$tmp/err")" >&2; exit 1; }
read -r plain_port tls_port <"$tmp/ports"
plain="http://127.0.0.1:$plain_port"
tls="https://127.0.0.1:$tls_port"
curl -fsS -o /dev/null "$plain/health"
curl -fsS -o /dev/null --cacert "$tmp/ca.pem" "$tls/health"

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# Fresh connections with curl: handshake = appconnect - connect; total = the whole request.
for i in $(seq 1 "$handshakes"); do
  curl -fsS -o /dev/null --cacert "$tmp/ca.pem" -w '%{time_connect} %{time_appconnect} %{time_total}\n' "$tls/health"
done >"$tmp/tls_curl"
for i in $(seq 1 "$handshakes"); do
  curl -fsS -o /dev/null -w '%{time_connect} %{time_total}\n' "$plain/health"
done >"$tmp/plain_curl"
hs_ms=$(awk '{printf "%.3f\n", ($2-$1)*1000}' "$tmp/tls_curl" | median)
tls_fresh_ms=$(awk '{printf "%.3f\n", $3*1000}' "$tmp/tls_curl" | median)
plain_fresh_ms=$(awk '{printf "%.3f\n", $2*1000}' "$tmp/plain_curl" | median)

# wrk: "Requests/sec: N" and, with --latency, "50% Xus|ms", "99% …"; normalised to ms.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000} printf "%.3f\n", v}'; }
run_wrk() { # URL [extra args] -> "rps p50_ms p99_ms" (path: $path, default /health)
  local url=$1; shift
  wrk -t2 -c"$conns" -d"${dur}s" --latency "$@" "$url${path:-/health}" >"$tmp/wrk"
  local rps p50 p99
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$tmp/wrk")
  p50=$(awk '$1=="50%" {print $2}' "$tmp/wrk" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' "$tmp/wrk" | to_ms)
  if grep -q "Non-2xx" "$tmp/wrk"; then echo "wrk saw non-2xx answers:" >&2; cat "$tmp/wrk" >&2; exit 1; fi
  echo "$rps $p50 $p99"
}
read -r plain_rps plain_p50 plain_p99 <<<"$(run_wrk "$plain")"
read -r tls_rps tls_p50 tls_p99 <<<"$(run_wrk "$tls")"
read -r plain_close_rps _ _ <<<"$(run_wrk "$plain" -H "Connection: close")"
read -r tls_close_rps _ _ <<<"$(run_wrk "$tls" -H "Connection: close")"

# Authenticated vs unauthenticated, plain HTTP, kept-alive, same route (/api/v1/whoami answers 401
# JSON without credentials, 200 JSON with them): anonymous, the process's login token (`Bearer
# bench`, a constant-time compare) and a stored API token (LocalAuthenticator: a stat of
# tokens.json, SHA-256 of the secret, lookup). wrk counts the 401s as non-2xx, so the anonymous
# run is checked separately.
api_token=$(cat "$tmp/token")
anon_wrk() {
  wrk -t2 -c"$conns" -d"${dur}s" "$plain/api/v1/whoami" >"$tmp/wrk"
  awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$tmp/wrk"
}
anon_rps=$(anon_wrk)
grep -q "Non-2xx or 3xx responses" "$tmp/wrk" || { echo "anonymous whoami was not refused:" >&2; cat "$tmp/wrk" >&2; exit 1; }
read -r login_rps _ _ <<<"$(path=/api/v1/whoami run_wrk "$plain" -H "Authorization: Bearer bench")"
read -r stored_rps stored_p50 _ <<<"$(path=/api/v1/whoami run_wrk "$plain" -H "Authorization: Bearer $api_token")"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.2f\n", a / b }'; }
echo "TLS handshake (curl, median of $handshakes): $hs_ms ms"
echo "fresh connection + GET /health (curl, median): HTTPS $tls_fresh_ms ms, HTTP $plain_fresh_ms ms (ratio $(ratio "$tls_fresh_ms" "$plain_fresh_ms"))"
echo "kept-alive (wrk -t2 -c$conns, ${dur}s): HTTP $plain_rps req/s p50 $plain_p50 ms p99 $plain_p99 ms; HTTPS $tls_rps req/s p50 $tls_p50 ms p99 $tls_p99 ms (throughput ratio $(ratio "$tls_rps" "$plain_rps"))"
echo "new connection per request (wrk, Connection: close): HTTP $plain_close_rps req/s; HTTPS $tls_close_rps req/s (ratio $(ratio "$tls_close_rps" "$plain_close_rps"))"
echo
echo "| $(date -u +%F) | $(nproc) cores | $hs_ms ms | $tls_fresh_ms / $plain_fresh_ms ms | $plain_rps / $tls_rps ($(ratio "$tls_rps" "$plain_rps")) | $plain_p50 / $tls_p50 ms | $plain_p99 / $tls_p99 ms | $plain_close_rps / $tls_close_rps ($(ratio "$tls_close_rps" "$plain_close_rps")) | \`bash bench/http.sh$([ "${1:-}" = "--smoke" ] && echo " --smoke")\` |"
echo "authenticated vs not (wrk -t2 -c$conns, ${dur}s, HTTP, GET /api/v1/whoami): anonymous (401) $anon_rps req/s; login token $login_rps req/s (ratio $(ratio "$login_rps" "$anon_rps")); stored API token $stored_rps req/s p50 $stored_p50 ms (ratio $(ratio "$stored_rps" "$anon_rps"))"
echo "| $(date -u +%F) | $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) | $anon_rps | $login_rps ($(ratio "$login_rps" "$anon_rps")) | $stored_rps ($(ratio "$stored_rps" "$anon_rps")) | \`bash bench/http.sh$([ "${1:-}" = "--smoke" ] && echo " --smoke")\` |"
