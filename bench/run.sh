#!/usr/bin/env bash
# The benchmark suite: msctl and the bundled stack measured side by side with a reference in
# the same run, on this machine, reported as ratios. Writes BENCHMARKS.md (machine, date,
# commit, every section's table) and prints the same tables as it goes.
#
#   bench/run.sh                 # every section (about 25 minutes from a fresh clone on 2 cores)
#   BENCH_QUICK=1 bench/run.sh   # every section, shortened (a smoke run of the scripts)
#   bench/run.sh 2 3             # only these sections (1..6)
#
# Sections:
#   1 stack start      msctl up vs docker-compose up, cold / warm / no-op (bench/stack-start.py)
#   2 gateway          direct vs nginx vs the msctl gateway; CPU per request (bench/gateway.sh)
#   3 load generator   msctl's load phase vs wrk on the same endpoint (bench/loadgen.sh)
#   4 order saga       orders/s placed -> confirmed, p50/p99 at a fixed rate (bench/orders.py)
#   5 recovery         kill -> ejection, heal -> routed again, breaker open (bench/recovery.py)
#   6 msctl itself     CPU and memory of msctl dash and of a load phase (bench/msctl-usage.py)
# Sections 4-6 run against a stack the script brings up as project msctl-bench (ephemeral
# ports, removed with its volumes at the end). Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
started=$(date +%s)
stamp() { echo "[$(($(date +%s) - started))s] $*"; }

sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(1 2 3 4 5 6)
want() { local s; for s in "${sections[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# Host tools: msctl's own prerequisites, then the references (Debian's nginx and wrk; the
# docker-compose of this machine) and tmux for the dashboard.
scripts/install-deps.sh
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v tmux >/dev/null || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
  stamp "installing ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

target="${CARGO_TARGET_DIR:-$root/target}"
export MSCTL="$target/release/msctl"
# msctl here; the services through `msctl images build`; each section builds the examples it
# runs (bench/gateway.sh, bench/loadgen.sh).
stamp "== cargo build --release -p msctl"
cargo build --release --quiet -p msctl

stamp "== msctl images build"
"$MSCTL" images build

out_dir=$(mktemp -d /tmp/msctl-bench.XXXXXX)
project=msctl-bench
cleanup() {
  "$MSCTL" --project "$project" chaos heal >/dev/null 2>&1 || true
  "$MSCTL" --project "$project" down --volumes >/dev/null 2>&1 || true
}
trap cleanup EXIT

status=0
run_section() { # number script...
  local n=$1; shift
  want "$n" || return 0
  stamp "== section $n: $*"
  if ! BENCH_MD="$out_dir/$n.md" "$@"; then
    echo "section $n failed: $*" >&2
    printf '## Section %s\n\nFailed in this run: `%s` exited non-zero; see its output.\n' "$n" "$*" >"$out_dir/$n.md"
    status=1
  fi
}

run_section 1 python3 bench/stack-start.py
run_section 2 bench/gateway.sh
run_section 3 bench/loadgen.sh
if want 4 || want 5 || want 6; then
  stamp "== msctl up (project $project) for sections 4-6"
  "$MSCTL" --project "$project" up
  export MSCTL_PROJECT="$project"
  run_section 4 python3 bench/orders.py
  run_section 5 python3 bench/recovery.py
  run_section 6 python3 bench/msctl-usage.py
fi

# BENCHMARKS.md: what ran, where, then the sections in order.
elapsed=$(($(date +%s) - started))
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
cpu=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
{
  echo "# Benchmarks"
  echo
  echo "Written by \`bench/run.sh\` ($( [ -n "${BENCH_QUICK:-}" ] && echo "BENCH_QUICK=1, shortened runs" || echo "full runs")); every figure"
  echo "below comes from that one run, each measured back to back with its reference."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $commit"
  echo "- machine: $(nproc) cores ($cpu), $mem, Linux $(uname -r), Docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"
  echo "- load average when the run ended: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- sections run: ${sections[*]}; wall time of the whole run: $((elapsed / 60)) min $((elapsed % 60)) s"
  echo
  for n in 1 2 3 4 5 6; do
    if [ -f "$out_dir/$n.md" ]; then
      cat "$out_dir/$n.md"
      echo
    fi
  done
  if [ -f bench/notes/findings.md ]; then
    cat bench/notes/findings.md
  fi
} >BENCHMARKS.md
stamp "wrote BENCHMARKS.md (exit $status)"
exit $status
