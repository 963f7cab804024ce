#!/usr/bin/env bash
# Benchmark section 2, "gateway": the msctl gateway against nginx as a reverse proxy in front
# of the same upstream, and against the upstream alone, side by side in one run.
#
# Host processes only, release builds, 127.0.0.1 only: the registry, a kit-based upstream
# (services/gateway/examples/bench_upstream.rs) registered as product-service, the gateway
# (GATEWAY_RATE_LIMIT_RPS=0) and nginx (its own config in a temp dir, `daemon off`, not the
# system service). Three targets, GET /api/v1/products/1 (a public route):
#   (a) fixed concurrency: wrk -t2 -c32 -d10s --latency → req/s, p50, p99, non-2xx;
#   (b) fixed arrival rate below saturation (default 2000 req/s, capped at half the slowest
#       target's wrk req/s): the scenario engine's load generator in open-model mode
#       (scenarios/examples/rate_probe.rs), the same meter for every target;
#   (c) CPU per request of each process (utime+stime from /proc/<pid>/stat, before and
#       after each run, divided by the requests completed): the gateway, nginx (master and
#       workers) and the upstream, under (a) and under (b).
#
#   bench/gateway.sh                     # full run (~2 min after the build)
#   BENCH_QUICK=1 bench/gateway.sh       # 3 s per run, for development
#   BENCH_MD=out.md bench/gateway.sh     # also append a Markdown section to out.md
#
# Other knobs: DURATION (seconds per run), RATE (req/s of (b)), CONNECTIONS, THREADS,
# BASE_PORT (four consecutive ports from it, default 18500), KEEP_LOGS=1, and
# BENCH_BIN_DIR: a directory holding registry, gateway and bench_upstream binaries to measure
# instead of building them (e.g. a copy of an earlier build, for before/after figures).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SELF=bench/gateway.sh
die() { echo "$SELF: $*" >&2; exit 1; }
trap 'echo "$SELF: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

if [ "${BENCH_QUICK:-0}" = 1 ]; then DURATION=${DURATION:-3}; else DURATION=${DURATION:-10}; fi
WARMUP=1
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
RATE=${RATE:-2000}
BASE_PORT=${BASE_PORT:-18500}
REG_PORT=$BASE_PORT
UP_PORT=$((BASE_PORT + 1))
GW_PORT=$((BASE_PORT + 2))
NGX_PORT=$((BASE_PORT + 3))
ROUTE=/api/v1/products/1
for v in DURATION CONNECTIONS THREADS RATE BASE_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "$v must be a positive integer, not '${!v}'"
done

# --- tools ------------------------------------------------------------------------------
need() { # command debian-package
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "$1 is not installed; install the Debian package '$2' (apt-get install $2)"
  echo "installing $2 with apt-get ..." >&2
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; }; } >/dev/null 2>&1 ||
    die "cannot install the Debian package '$2'; install it by hand"
  command -v "$1" >/dev/null 2>&1 || die "'$2' is installed but $1 is not on PATH"
}
export PATH=$PATH:/usr/sbin:/sbin
need wrk wrk
need nginx nginx
need curl curl

# Nothing may already listen on our ports (a stale run, another service).
for p in "$REG_PORT" "$UP_PORT" "$GW_PORT" "$NGX_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    die "port $p on 127.0.0.1 is already in use; set BASE_PORT to a free range (uses $REG_PORT-$NGX_PORT)"
  fi
done

echo "building (release) ..." >&2
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  for b in registry gateway bench_upstream; do
    [ -x "$BENCH_BIN_DIR/$b" ] || die "BENCH_BIN_DIR=$BENCH_BIN_DIR has no executable $b"
  done
  REGISTRY_BIN=$BENCH_BIN_DIR/registry GATEWAY_BIN=$BENCH_BIN_DIR/gateway UPSTREAM_BIN=$BENCH_BIN_DIR/bench_upstream
else
  cargo build --release -q -p registry -p gateway --bin registry --bin gateway --example bench_upstream ||
    die "cargo build of registry/gateway/bench_upstream failed"
  REGISTRY_BIN=$BIN/registry GATEWAY_BIN=$BIN/gateway UPSTREAM_BIN=$BIN/examples/bench_upstream
fi
cargo build --release -q -p msctl-scenarios --example rate_probe ||
  die "cargo build of the rate_probe example failed"

# --- processes --------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/msctl-bench-gateway.XXXXXX)
chmod 755 "$WORK" # nginx workers run as another user
PIDS=()
NGX_PID=
cleanup() {
  local rc=$?
  trap - ERR
  [ -n "$NGX_PID" ] && kill -TERM "$NGX_PID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" = 0 ] && [ "${KEEP_LOGS:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "$SELF: logs kept in $WORK" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # name command... (in the background, output to $WORK/name.log)
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  eval "PID_${name//-/_}=$!"
}

wait_200() { # name url pid
  local i code
  for i in $(seq 1 150); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$2" || true)
    [ "$code" = 200 ] && return 0
    kill -0 "$3" 2>/dev/null || { tail -n 20 "$WORK/$1.log" >&2; die "$1 exited during start (log above)"; }
    sleep 0.1
  done
  tail -n 20 "$WORK/$1.log" >&2
  die "$1 did not answer 200 on $2 within 15s (last status $code; log above)"
}

export RUST_LOG=${RUST_LOG:-warn}
export JWT_SECRET=bench-secret-0123456789abcdef
kit=(BIND_HOST=127.0.0.1 ADVERTISE_HOST=127.0.0.1 "REGISTRY_URL=http://127.0.0.1:$REG_PORT")
start registry env BIND_HOST=127.0.0.1 PORT="$REG_PORT" "$REGISTRY_BIN"
wait_200 registry "http://127.0.0.1:$REG_PORT/health" "$PID_registry"
start upstream env "${kit[@]}" SERVICE_NAME=product-service PORT="$UP_PORT" "$UPSTREAM_BIN"
start gateway env "${kit[@]}" PORT="$GW_PORT" GATEWAY_RATE_LIMIT_RPS=0 "$GATEWAY_BIN"
wait_200 upstream "http://127.0.0.1:$UP_PORT/health" "$PID_upstream"

# nginx gets as many workers as the gateway has runtime threads (tokio: one per core).
WORKERS=$(nproc)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
# Generated by $SELF: a reverse proxy to the bench upstream, tuned like a production one.
daemon off;
worker_processes $WORKERS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 65s;
    upstream product_service {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / {
            proxy_pass http://product_service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
nginx -t -q -e "$WORK/nginx/error.log" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx.log" 2>&1 ||
  { cat "$WORK/nginx.log" >&2; die "nginx rejected the generated config $WORK/nginx/nginx.conf"; }
nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx.log" 2>&1 &
NGX_PID=$!

wait_200 gateway "http://127.0.0.1:$GW_PORT$ROUTE" "$PID_gateway"
wait_200 nginx "http://127.0.0.1:$NGX_PORT$ROUTE" "$NGX_PID"

children_of() { # pid → its child pids (from /proc, no procps needed)
  local f line rest state ppid
  for f in /proc/[0-9]*/stat; do
    line=$(cat "$f" 2>/dev/null) || continue
    rest=${line##*) }
    read -r state ppid _ <<<"$rest"
    if [ "$ppid" = "$1" ]; then f=${f#/proc/}; echo "${f%/stat}"; fi
  done
}
NGX_PIDS="$NGX_PID $(children_of "$NGX_PID" | tr '\n' ' ')"
[ "$(echo "$NGX_PIDS" | wc -w)" -gt 1 ] || die "nginx started no worker processes (see $WORK/nginx/error.log)"

CLK_TCK=$(getconf CLK_TCK)
ticks() { # pids... → utime+stime summed, in clock ticks
  local sum=0 p line rest
  for p in "$@"; do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || die "process $p is gone (see the logs in $WORK)"
    rest=${line##*) }
    # After "pid (comm) ": state is field 1, utime field 12, stime field 13.
    sum=$((sum + $(awk '{print $12 + $13}' <<<"$rest")))
  done
  echo "$sum"
}
us_per_req() { # ticks requests → µs of CPU per request
  awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "n/a" }'
}

TARGETS=(direct nginx gateway)
declare -A URL=(
  [direct]="http://127.0.0.1:$UP_PORT$ROUTE"
  [nginx]="http://127.0.0.1:$NGX_PORT$ROUTE"
  [gateway]="http://127.0.0.1:$GW_PORT$ROUTE"
)
declare -A NAME=([direct]="upstream (direct)" [nginx]="nginx" [gateway]="msctl gateway")
declare -A PROXY_PIDS=([direct]="" [nginx]="$NGX_PIDS" [gateway]="$PID_gateway")
declare -A R # results, keyed "target.metric"

to_ms() { # wrk duration (812.00us, 1.20ms, 2.01s) → ms
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1;
    if (f < 0 || v == "") print "nan"; else printf "%.2f", n * f }'
}

measure() { # phase target command... — runs the command with CPU accounting around it
  local phase=$1 t=$2
  shift 2
  local p0 u0 p1 u1
  p0=$( [ -n "${PROXY_PIDS[$t]}" ] && ticks ${PROXY_PIDS[$t]} || echo 0)
  u0=$(ticks "$PID_upstream")
  "$@" >"$WORK/$phase-$t.out" 2>"$WORK/$phase-$t.err" ||
    { cat "$WORK/$phase-$t.err" >&2; die "$phase run against ${NAME[$t]} failed (${URL[$t]})"; }
  p1=$( [ -n "${PROXY_PIDS[$t]}" ] && ticks ${PROXY_PIDS[$t]} || echo 0)
  u1=$(ticks "$PID_upstream")
  R[$phase.$t.proxy_ticks]=$((p1 - p0))
  R[$phase.$t.up_ticks]=$((u1 - u0))
}

# --- (a) fixed concurrency ------------------------------------------------------------------
for t in "${TARGETS[@]}"; do
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "${URL[$t]}" >/dev/null 2>&1 ||
    die "wrk warm-up against ${NAME[$t]} failed (${URL[$t]})"
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for t in "${TARGETS[@]}"; do
  measure wrk "$t" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${URL[$t]}"
  out=$WORK/wrk-$t.out
  R[wrk.$t.requests]=$(awk '/ requests in / {print $1}' "$out")
  R[wrk.$t.rps]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  R[wrk.$t.p50]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  R[wrk.$t.p99]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
  sock=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
  R[wrk.$t.non2xx]=${non2xx:-0}
  R[wrk.$t.sockerr]=${sock:-0}
  [ -n "${R[wrk.$t.requests]}" ] && [ "${R[wrk.$t.requests]}" -gt 0 ] ||
    { cat "$out" >&2; die "wrk completed no request against ${NAME[$t]} (output above)"; }
  R[wrk.$t.proxy_cpu]=$(us_per_req "${R[wrk.$t.proxy_ticks]}" "${R[wrk.$t.requests]}")
  R[wrk.$t.up_cpu]=$(us_per_req "${R[wrk.$t.up_ticks]}" "${R[wrk.$t.requests]}")
done

# --- (b) fixed arrival rate -----------------------------------------------------------------
slowest=$(for t in "${TARGETS[@]}"; do echo "${R[wrk.$t.rps]}"; done | sort -n | head -1)
cap=$((slowest / 2 / 100 * 100))
RATE_NOTE=""
if [ "$cap" -lt "$RATE" ]; then
  RATE_NOTE=" (capped from $RATE at half the slowest target's wrk req/s)"
  RATE=$((cap > 100 ? cap : 100))
fi
json_num() { # key file → number
  grep -o "\"$1\":[-0-9.eE+]*" "$2" | head -1 | cut -d: -f2 | awk '{printf "%.2f", $1 + 0}'
}
for t in "${TARGETS[@]}"; do
  measure rate "$t" "$BIN/examples/rate_probe" "${URL[$t]}" "$RATE" "$DURATION"
  out=$WORK/rate-$t.out
  R[rate.$t.requests]=$(grep -o '"requests":[0-9]*' "$out" | cut -d: -f2)
  [ -n "${R[rate.$t.requests]}" ] || { cat "$out" >&2; die "cannot read rate_probe's output"; }
  for k in achieved_rps p50_ms p95_ms p99_ms; do R[rate.$t.$k]=$(json_num "$k" "$out"); done
  R[rate.$t.errors]=$(grep -o '"errors":[0-9]*' "$out" | cut -d: -f2)
  R[rate.$t.dropped]=$(grep -o '"dropped":[0-9]*' "$out" | cut -d: -f2)
  R[rate.$t.proxy_cpu]=$(us_per_req "${R[rate.$t.proxy_ticks]}" "${R[rate.$t.requests]}")
  R[rate.$t.up_cpu]=$(us_per_req "${R[rate.$t.up_ticks]}" "${R[rate.$t.requests]}")
done

# --- report ---------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "n/a") printf "%.2f", a / b; else print "n/a" }'; }
dash() { [ -z "${PROXY_PIDS[$1]}" ] && echo "-" || echo "$2"; }
HEADER_A=$(printf '%-18s %9s %8s %8s %8s %13s %13s' target req/s "p50 ms" "p99 ms" non-2xx "proxy µs/req" "upstr µs/req")
HEADER_B=$(printf '%-18s %9s %8s %8s %8s %7s %8s %13s %13s' target "got/s" "p50 ms" "p95 ms" "p99 ms" errors dropped "proxy µs/req" "upstr µs/req")
row_a() {
  printf '%-18s %9s %8s %8s %8s %13s %13s\n' "${NAME[$1]}" "${R[wrk.$1.rps]}" "${R[wrk.$1.p50]}" \
    "${R[wrk.$1.p99]}" "$((R[wrk.$1.non2xx] + R[wrk.$1.sockerr]))" \
    "$(dash "$1" "${R[wrk.$1.proxy_cpu]}")" "${R[wrk.$1.up_cpu]}"
}
row_b() {
  printf '%-18s %9s %8s %8s %8s %7s %8s %13s %13s\n' "${NAME[$1]}" "${R[rate.$1.achieved_rps]}" \
    "${R[rate.$1.p50_ms]}" "${R[rate.$1.p95_ms]}" "${R[rate.$1.p99_ms]}" "${R[rate.$1.errors]}" \
    "${R[rate.$1.dropped]}" "$(dash "$1" "${R[rate.$1.proxy_cpu]}")" "${R[rate.$1.up_cpu]}"
}
RATIOS=(
  "gateway req/s = $(ratio "${R[wrk.gateway.rps]}" "${R[wrk.nginx.rps]}") × nginx, $(ratio "${R[wrk.gateway.rps]}" "${R[wrk.direct.rps]}") × direct (nginx = $(ratio "${R[wrk.nginx.rps]}" "${R[wrk.direct.rps]}") × direct)"
  "gateway p99 under wrk = $(ratio "${R[wrk.gateway.p99]}" "${R[wrk.nginx.p99]}") × nginx"
  "gateway CPU/request under wrk = $(ratio "${R[wrk.gateway.proxy_cpu]}" "${R[wrk.nginx.proxy_cpu]}") × nginx (${R[wrk.gateway.proxy_cpu]} vs ${R[wrk.nginx.proxy_cpu]} µs)"
  "gateway CPU/request at $RATE req/s = $(ratio "${R[rate.gateway.proxy_cpu]}" "${R[rate.nginx.proxy_cpu]}") × nginx (${R[rate.gateway.proxy_cpu]} vs ${R[rate.nginx.proxy_cpu]} µs)"
  "gateway p50 / p99 at $RATE req/s = $(ratio "${R[rate.gateway.p50_ms]}" "${R[rate.nginx.p50_ms]}") / $(ratio "${R[rate.gateway.p99_ms]}" "${R[rate.nginx.p99_ms]}") × nginx"
)
CONTEXT="release builds${BENCH_BIN_DIR:+ from $BENCH_BIN_DIR}, 127.0.0.1, $(nproc) cores, nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') with $WORKERS workers, load average before: $LOAD_BEFORE"

echo
echo "== gateway: msctl gateway vs nginx vs the upstream alone, GET $ROUTE =="
echo "$CONTEXT"
echo
echo "(a) wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency; CPU from /proc/<pid>/stat (utime+stime) per completed request"
echo "$HEADER_A"
for t in "${TARGETS[@]}"; do row_a "$t"; done
echo
echo "(b) open model, $RATE req/s for ${DURATION}s$RATE_NOTE (scenario load generator: rate_probe)"
echo "$HEADER_B"
for t in "${TARGETS[@]}"; do row_b "$t"; done
echo
for r in "${RATIOS[@]}"; do echo "  $r"; done

if [ -n "${BENCH_MD:-}" ]; then
  {
    echo "## 2. Gateway vs nginx"
    echo
    echo "The same kit-based upstream measured directly, behind nginx ($WORKERS workers, keepalive upstream) and behind the msctl gateway, back to back in one run: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s for throughput, the scenario load generator at a fixed $RATE req/s$RATE_NOTE for latency below saturation, and each process's utime+stime from /proc per completed request for CPU cost ($CONTEXT)."
    echo
    echo "| target | wrk req/s | p50 ms | p99 ms | non-2xx + socket errors | proxy CPU µs/req | upstream CPU µs/req |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for t in "${TARGETS[@]}"; do
      echo "| ${NAME[$t]} | ${R[wrk.$t.rps]} | ${R[wrk.$t.p50]} | ${R[wrk.$t.p99]} | $((R[wrk.$t.non2xx] + R[wrk.$t.sockerr])) | $(dash "$t" "${R[wrk.$t.proxy_cpu]}") | ${R[wrk.$t.up_cpu]} |"
    done
    echo
    echo "| target @ $RATE req/s | achieved req/s | p50 ms | p95 ms | p99 ms | errors | dropped | proxy CPU µs/req | upstream CPU µs/req |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for t in "${TARGETS[@]}"; do
      echo "| ${NAME[$t]} | ${R[rate.$t.achieved_rps]} | ${R[rate.$t.p50_ms]} | ${R[rate.$t.p95_ms]} | ${R[rate.$t.p99_ms]} | ${R[rate.$t.errors]} | ${R[rate.$t.dropped]} | $(dash "$t" "${R[rate.$t.proxy_cpu]}") | ${R[rate.$t.up_cpu]} |"
    done
    echo
    for r in "${RATIOS[@]}"; do echo "- $r"; done
    echo
  } >>"$BENCH_MD"
  echo
  echo "Markdown section appended to $BENCH_MD"
fi
