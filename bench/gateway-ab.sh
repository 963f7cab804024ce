#!/usr/bin/env bash
# A/B of two gateway builds: the gateway's CPU time per request under the same wrk load, in
# alternating rounds against one registry and one upstream, so that a machine that drifts
# during the run affects both sides alike. Used to decide whether a gateway change helps
# (bench/notes/gateway-profile.md); bench/gateway.sh is the comparison with nginx.
#
#   bench/gateway-ab.sh DIR_A DIR_B [ROUNDS]
#
# DIR_A and DIR_B each hold a `gateway` binary; registry and bench_upstream come from DIR_A
# (`cargo build --release -p registry -p gateway --example bench_upstream`, then copy
# target/release/{registry,gateway} and target/release/examples/bench_upstream). ROUNDS
# defaults to 5; each round runs A then B, 2 s warm-up and 8 s measured each.
# Prints one line per run and the medians. Traffic goes to 127.0.0.1 only.
set -euo pipefail
SELF=bench/gateway-ab.sh
die() { echo "$SELF: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: $SELF DIR_A DIR_B [ROUNDS]"
A=$1 B=$2 ROUNDS=${3:-5}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
for f in "$A/registry" "$A/bench_upstream" "$A/gateway" "$B/gateway"; do
  [ -x "$f" ] || die "no executable $f"
done
command -v wrk >/dev/null || die "wrk is not installed (Debian package 'wrk'; bench/run.sh installs it)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REG=$(free_port) UP=$(free_port) GW=$(free_port)
WORK=$(mktemp -d /tmp/msctl-gateway-ab.XXXXXX)
export RUST_LOG=warn JWT_SECRET=bench-secret-0123456789abcdef
kit=(BIND_HOST=127.0.0.1 ADVERTISE_HOST=127.0.0.1 "REGISTRY_URL=http://127.0.0.1:$REG")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_200() { # url
  local i
  for i in $(seq 1 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)" = 200 ] && return 0
    sleep 0.1
  done
  die "$1 did not answer 200 within 15 s (logs in $WORK)"
}

env BIND_HOST=127.0.0.1 PORT="$REG" "$A/registry" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
wait_200 "http://127.0.0.1:$REG/health"
env "${kit[@]}" SERVICE_NAME=product-service PORT="$UP" "$A/bench_upstream" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_200 "http://127.0.0.1:$UP/health"

tick=$(getconf CLK_TCK)
url="http://127.0.0.1:$GW/api/v1/products/1"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
results=()
for round in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    dir=$A; [ "$side" = B ] && dir=$B
    env "${kit[@]}" PORT="$GW" GATEWAY_RATE_LIMIT_RPS=0 "$dir/gateway" >"$WORK/gateway-$side.log" 2>&1 &
    g=$!
    wait_200 "$url"
    wrk -t2 -c32 -d2s "$url" >/dev/null
    c0=$(cpu "$g")
    out=$(wrk -t2 -c32 -d8s "$url")
    c1=$(cpu "$g")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$g/status")
    kill "$g"
    wait "$g" 2>/dev/null || true
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    us=$(awk -v c=$((c1 - c0)) -v t="$tick" -v n="$n" 'BEGIN { printf "%.1f", c / t * 1e6 / n }')
    printf 'round %d  %s  %8s req/s  %6s µs CPU/request  peak RSS %5.1f MB\n' \
      "$round" "$side" "$rps" "$us" "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')"
    results+=("$side $us $rps")
  done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for side in A B; do
  us=$(printf '%s\n' "${results[@]}" | awk -v s="$side" '$1 == s { print $2 }' | median)
  rps=$(printf '%s\n' "${results[@]}" | awk -v s="$side" '$1 == s { print $3 }' | median)
  echo "median $side: $us µs CPU/request, $rps req/s"
done
