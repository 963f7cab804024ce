#!/usr/bin/env bash
# Gateway overhead on loopback: the same wrk load against an upstream directly and through
# the gateway, side by side in one run, with release builds. Bounded: each wrk run lasts
# $DURATION (default 10s). Only 127.0.0.1 is used.
#
#   services/bench/gateway.sh            # defaults: 2 threads, 32 connections, 10s per run
#   DURATION=5s CONNECTIONS=16 services/bench/gateway.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
BASE_PORT=${BASE_PORT:-18500}
REG_PORT=$BASE_PORT
UP_PORT=$((BASE_PORT + 1))
UP2_PORT=$((BASE_PORT + 2))
GW_PORT=$((BASE_PORT + 3))
export JWT_SECRET=bench-secret-0123456789abcdef
export RUST_LOG=${RUST_LOG:-warn}

command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 2; }
cargo build --release -q -p registry -p gateway --example bench_upstream --example mint_token
BIN=target/release

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_health() {
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "service on port $1 did not become healthy" >&2; exit 1
}

BIND_HOST=127.0.0.1 PORT=$REG_PORT $BIN/registry >/tmp/msctl-bench-registry.log 2>&1 & PIDS+=($!)
wait_health "$REG_PORT"
common=(BIND_HOST=127.0.0.1 ADVERTISE_HOST=127.0.0.1 REGISTRY_URL=http://127.0.0.1:$REG_PORT)
env "${common[@]}" SERVICE_NAME=product-service PORT=$UP_PORT $BIN/examples/bench_upstream >/tmp/msctl-bench-up1.log 2>&1 & PIDS+=($!)
env "${common[@]}" SERVICE_NAME=order-service PORT=$UP2_PORT $BIN/examples/bench_upstream >/tmp/msctl-bench-up2.log 2>&1 & PIDS+=($!)
env "${common[@]}" PORT=$GW_PORT GATEWAY_RATE_LIMIT_RPS=0 $BIN/gateway >/tmp/msctl-bench-gateway.log 2>&1 & PIDS+=($!)
wait_health "$UP_PORT"; wait_health "$UP2_PORT"; wait_health "$GW_PORT"
TOKEN=$($BIN/examples/mint_token bench-user)
# Wait until the gateway routes to both upstreams.
for _ in $(seq 1 100); do
  a=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW_PORT/api/v1/products/1")
  b=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GW_PORT/api/v1/orders/1")
  [ "$a" = 200 ] && [ "$b" = 200 ] && break
  sleep 0.1
done

run() { # name url [header]
  local name=$1 url=$2; shift 2
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")
  local p50 p99 rps non2xx
  p50=$(awk '/^ +50%/ {print $2}' <<<"$out")
  p99=$(awk '/^ +99%/ {print $2}' <<<"$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-34s p50 %-9s p99 %-9s req/s %-10s non-2xx %s\n' "$name" "$p50" "$p99" "$rps" "${non2xx:-0}"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, release builds, 127.0.0.1; $(nproc) cores; load average before: $(cut -d" " -f1-3 /proc/loadavg)"
run "direct upstream GET /api/v1/products/1" "http://127.0.0.1:$UP_PORT/api/v1/products/1"
run "gateway GET /api/v1/products/1 (public)" "http://127.0.0.1:$GW_PORT/api/v1/products/1"
run "direct upstream GET /api/v1/orders/1" "http://127.0.0.1:$UP2_PORT/api/v1/orders/1"
run "gateway GET /api/v1/orders/1 (JWT)" "http://127.0.0.1:$GW_PORT/api/v1/orders/1" -H "Authorization: Bearer $TOKEN"
