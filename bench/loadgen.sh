#!/usr/bin/env bash
# Benchmark section 3, "loadgen": the scenario engine's load generator (closed model, one
# connection per virtual user) against wrk on the same trivial endpoint, in the same run.
# scenarios/examples/vs_wrk.rs starts a one-thread axum server on 127.0.0.1:0, warms up,
# then runs wrk -t1 and the load generator (one-thread runtime) for the same duration and
# connection count; this script runs it at each connection count and tabulates.
#
#   bench/loadgen.sh                     # 8 and 32 connections, 10 s each (~1 min after the build)
#   BENCH_QUICK=1 bench/loadgen.sh       # 3 s each
#   BENCH_MD=out.md bench/loadgen.sh     # also append a Markdown section to out.md
#
# Other knobs: DURATION (seconds per run), LOADGEN_CONNECTIONS (e.g. "8 32 64").
set -euo pipefail

cd "$(dirname "$0")/.."
SELF=bench/loadgen.sh
die() { echo "$SELF: $*" >&2; exit 1; }
trap 'echo "$SELF: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

if [ "${BENCH_QUICK:-0}" = 1 ]; then DURATION=${DURATION:-3}; else DURATION=${DURATION:-10}; fi
CONNS=(${LOADGEN_CONNECTIONS:-8 32})
for v in "$DURATION" "${CONNS[@]}"; do
  [[ $v =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] || die "DURATION and LOADGEN_CONNECTIONS must be positive integers, not '$v'"
done

if ! command -v wrk >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "wrk is not installed; install the Debian package 'wrk'"
  echo "installing wrk with apt-get ..." >&2
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }; } >/dev/null 2>&1 ||
    die "cannot install the Debian package 'wrk'; install it by hand"
fi

echo "building (release) ..." >&2
cargo build --release -q -p msctl-scenarios --example vs_wrk || die "cargo build of the vs_wrk example failed"
VS_WRK=${CARGO_TARGET_DIR:-target}/release/examples/vs_wrk

OUT=$(mktemp -d /tmp/msctl-bench-loadgen.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for c in "${CONNS[@]}"; do
  "$VS_WRK" "$DURATION" "$c" --json >"$OUT/$c.json" 2>"$OUT/$c.err" ||
    { cat "$OUT/$c.err" >&2; die "vs_wrk failed at $c connections (message above)"; }
done

# vs_wrk prints one flat-ish JSON object; pick "tool":{... "key":n ...} without jq.
val() { # file tool key
  sed -n "s/.*\"$2\":{\([^}]*\)}.*/\1/p" "$1" | grep -o "\"$3\":[-0-9.eE+]*" | cut -d: -f2 |
    awk '{ if ($1 + 0 == int($1 + 0) && $1 !~ /[.eE]/) print $1; else printf "%.2f", $1 + 0 }'
}
ROWS=()
RATIO_LINES=()
MD_ROWS=()
for c in "${CONNS[@]}"; do
  f=$OUT/$c.json
  wr=$(val "$f" wrk rps | cut -d. -f1)
  mr=$(val "$f" msctl rps | cut -d. -f1)
  [ -n "$wr" ] && [ -n "$mr" ] || { cat "$f" >&2; die "cannot read vs_wrk's output"; }
  ratio=$(awk -v a="$mr" -v b="$wr" 'BEGIN { printf "%.2f", a / b }')
  ROWS+=("$(printf '%6s %10s %8s %8s %7s %10s %8s %8s %7s %6s' "$c" \
    "$wr" "$(val "$f" wrk p50_ms)" "$(val "$f" wrk p99_ms)" "$(val "$f" wrk errors)" \
    "$mr" "$(val "$f" msctl p50_ms)" "$(val "$f" msctl p99_ms)" "$(val "$f" msctl errors)" "$ratio")")
  MD_ROWS+=("| $c | $wr | $(val "$f" wrk p50_ms) | $(val "$f" wrk p99_ms) | $(val "$f" wrk errors) | $mr | $(val "$f" msctl p50_ms) | $(val "$f" msctl p99_ms) | $(val "$f" msctl errors) | $ratio |")
  RATIO_LINES+=("at $c connections: load generator req/s = $ratio × wrk")
done
CONTEXT="release build, 127.0.0.1, $(nproc) cores, server and each client on one thread, load average before: $LOAD_BEFORE"

echo
echo "== loadgen: scenario load generator vs wrk, GET /health of a one-thread axum server, ${DURATION}s per tool =="
echo "$CONTEXT"
echo
printf '%6s %10s %8s %8s %7s %10s %8s %8s %7s %6s\n' conns "wrk req/s" "p50 ms" "p99 ms" errors "msctl r/s" "p50 ms" "p99 ms" errors ratio
for r in "${ROWS[@]}"; do echo "$r"; done
echo
for r in "${RATIO_LINES[@]}"; do echo "  $r"; done

if [ -n "${BENCH_MD:-}" ]; then
  {
    echo "## 3. Load generator vs wrk"
    echo
    echo "wrk -t1 and the scenario engine's load generator (closed model, one-thread runtime) take turns for ${DURATION}s each at the same connection count against the same one-thread axum server answering GET /health ($CONTEXT)."
    echo
    echo "| connections | wrk req/s | wrk p50 ms | wrk p99 ms | wrk errors | load generator req/s | p50 ms | p99 ms | errors | ratio |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for r in "${MD_ROWS[@]}"; do echo "$r"; done
    echo
    for r in "${RATIO_LINES[@]}"; do echo "- $r"; done
    echo
  } >>"$BENCH_MD"
  echo
  echo "Markdown section appended to $BENCH_MD"
fi
