#!/usr/bin/env bash
# The fidelity suite: for each seeded bug of bench/fidelity/bugs.toml, boot the stack with
# the bug built into the components it lives in, and see which of three stages catches it:
#
#   smoke    scenario run smoke order-saga breaker-trip saga-crash-recovery
#   catalog  scenario run --all
#   explore  explore --seed --runs --duration --shrink --report --html
#
# A stage "caught" the bug when it exits 1 (a check failed), "missed" it on 0, and is an
# "error" on anything else (2 usage, 3 engine, 124 the stage's timeout). Every bug runs under
# its own project `fid-<bug>` with its own image `msctl/services:<bug>`, and is torn down
# (`down --volumes`) whatever happened; a bug that fails to boot does not stop the others.
#
#   scripts/fidelity.sh                       every bug
#   scripts/fidelity.sh stock-lost-update ... only these (name or crate/feature)
#   scripts/fidelity.sh --list                the bugs, one per line
#
# Environment:
#   MSCTL            msctl binary (target/release/msctl)
#   OUT              results folder (fidelity-results); <OUT>/<bug>/ per bug, <OUT>/summary.md
#   SEED RUNS DURATION   explore's --seed (1), --runs (2), --duration (90s)
#   STAGES           which stages run ("smoke catalog explore"); the others read "not run"
#   CATALOG_SCENARIOS  the catalog stage's scenarios, names or paths split on spaces
#                    (default --all: the whole catalog)
#   CATALOG_REPEAT   run them N times on the one stack (default 1); the stage then reads
#                    "caught k/N", a reproduction rate, with catalog-<i>.json per run
#   SHRINK=0         explore without --shrink (faster; no minimal scenario)
#   EXPLORE_ARGS     more explore flags, split on spaces (e.g. "--max-candidates 12")
#   REPLAY=0         no replay: by default a caught bug's failing seed is explored once more
#                    (no shrink), to see that the replay fails the same checker
#   UP_BUILD=1       boot with `up --build` (forces every image, infrastructure included,
#                    to rebuild) instead of `images build` (rebuilds what changed: the bug's
#                    services image) followed by `up`
#   BUILD_TIMEOUT UP_TIMEOUT SEED_TIMEOUT SMOKE_TIMEOUT CATALOG_TIMEOUT EXPLORE_TIMEOUT
#   DOWN_TIMEOUT     per-stage bounds (timeout(1) durations; defaults below)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bugs_file="$repo/bench/fidelity/bugs.toml"
# MSCTL relative to the current folder; the default relative to the repository.
msctl="${MSCTL:-$repo/target/release/msctl}"
case "$msctl" in
  /*) ;;
  */*) msctl="$(pwd)/$msctl" ;;
  *) msctl="$(command -v "$msctl" || echo "$msctl")" ;;
esac
out="${OUT:-fidelity-results}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
seed="${SEED:-1}"
runs="${RUNS:-2}"
duration="${DURATION:-90s}"
stages=" ${STAGES:-smoke catalog explore} "
shrink_flag=(--shrink)
[ "${SHRINK:-1}" = 0 ] && shrink_flag=()
read -r -a explore_args <<<"${EXPLORE_ARGS:-}"
build_timeout="${BUILD_TIMEOUT:-60m}"
up_timeout="${UP_TIMEOUT:-15m}"
seed_timeout="${SEED_TIMEOUT:-5m}"
smoke_timeout="${SMOKE_TIMEOUT:-20m}"
catalog_timeout="${CATALOG_TIMEOUT:-60m}"
read -r -a catalog_what <<<"${CATALOG_SCENARIOS:---all}"
catalog_repeat="${CATALOG_REPEAT:-1}"
case "$catalog_repeat" in '' | *[!0-9]* | 0) echo "fidelity: CATALOG_REPEAT must be a whole number of runs" >&2; exit 2 ;; esac
explore_timeout="${EXPLORE_TIMEOUT:-90m}"
down_timeout="${DOWN_TIMEOUT:-5m}"

started=$(date +%s)
stamp() { echo "[$(($(date +%s) - started))s] $*"; }

# One line per bug: name, feature, class, components (comma-separated), tab-separated.
list_bugs() {
  awk '
    function flush() {
      if (name != "") print name "\t" feature "\t" class "\t" comps
      name = ""; feature = ""; class = ""; comps = ""
    }
    function value(line,   v) {
      v = line
      sub(/^[^=]*=[ \t]*"/, "", v)
      sub(/"[ \t]*$/, "", v)
      return v
    }
    /^\[\[bug\]\][ \t]*$/ { flush(); next }
    /^name[ \t]*=/ { name = value($0); next }
    /^feature[ \t]*=/ { feature = value($0); next }
    /^class[ \t]*=/ { class = value($0); next }
    /^components[ \t]*=/ {
      c = $0
      sub(/^[^[]*\[/, "", c)
      sub(/\][ \t]*$/, "", c)
      gsub(/[" \t]/, "", c)
      comps = c
      next
    }
    END { flush() }
  ' "$bugs_file"
}

# The repository's stack.toml made to live in $1 (as cli/tests/msctl_test_e2e.rs's
# broken_stack does): paths absolute, the services image built from the repository, an
# extra image $2 with the same binaries and feature $3, and components $4 (comma-separated)
# running it. The catalog is linked in so that scenario names and --all resolve.
write_stack() {
  local dir="$1" image="$2" feature="$3" comps="$4"
  awk -v r="$repo" -v image="$image" -v feature="$feature" -v comps=",$comps," '
    function lit(s, a, b,   i, o) {
      o = ""
      while ((i = index(s, a)) > 0) { o = o substr(s, 1, i - 1) b; s = substr(s, i + length(a)) }
      return o s
    }
    {
      line = $0
      line = lit(line, "recipe = \"fixtures/", "recipe = \"" r "/fixtures/")
      line = lit(line, "file = \"fixtures/", "file = \"" r "/fixtures/")
      if (line ~ /^\[/) {
        in_services = (line == "[images.\"msctl/services:dev\"]")
        comp = ""
        if (line ~ /^\[components\.[^]]+\]/) {
          comp = line
          sub(/^\[components\./, "", comp)
          sub(/\].*$/, "", comp)
          done = 0
        }
      }
      if (in_services && collecting == 0 && index(line, "binaries = [") == 1) {
        rest = substr(line, length("binaries = [") + 1)
        collecting = 1
        if (index(rest, "]") > 0) {
          binaries = substr(rest, 1, index(rest, "]") - 1)
          collecting = 2
        } else {
          binaries = rest
        }
      } else if (collecting == 1) {
        if (index(line, "]") > 0) {
          binaries = binaries "\n" substr(line, 1, index(line, "]") - 1)
          collecting = 2
        } else {
          binaries = binaries "\n" line
        }
      }
      if (comp != "" && !done && index(comps, "," comp ",") > 0 \
          && index(line, "image = \"msctl/services:dev\"") == 1) {
        line = lit(line, "image = \"msctl/services:dev\"", "image = \"" image "\"")
        done = 1
        rewired[comp] = 1
      }
      print line
      if (line == "[images.\"msctl/services:dev\"]") print "workspace = \"" r "\""
    }
    END {
      if (collecting != 2) { print "fidelity: stack.toml: no binaries list in the services image" > "/dev/stderr"; exit 1 }
      n = split(substr(comps, 2, length(comps) - 2), want, ",")
      for (i = 1; i <= n; i++) if (!(want[i] in rewired)) {
        print "fidelity: stack.toml: component " want[i] " does not run msctl/services:dev" > "/dev/stderr"; exit 1
      }
      print ""
      print "[images.\"" image "\"]"
      print "binaries = [" binaries "]"
      print "features = [\"" feature "\"]"
      print "workspace = \"" r "\""
    }
  ' "$repo/stack.toml" >"$dir/stack.toml" || return 1
  ln -s "$repo/scenarios" "$dir/scenarios"
}

# Run a stage under its timeout; its output goes to $log. Prints the exit code.
run_stage() {
  local limit="$1" log="$2"
  shift 2
  local rc=0
  {
    echo "\$ msctl $*"
    timeout -k 30s "$limit" "$msctl" "$@"
  } >"$log" 2>&1 || rc=$?
  echo "$rc"
}

# The shrunk scenario named in an explore JSON report, if any.
shrunk_file() {
  if command -v jq >/dev/null 2>&1; then
    jq -r '.shrink.scenario_file // empty' "$1" 2>/dev/null || true
  else
    python3 -c 'import json,sys; s=(json.load(open(sys.argv[1])).get("shrink") or {}); print(s.get("scenario_file") or "")' "$1" 2>/dev/null || true
  fi
}

# One figure of an explore JSON report (see explore/src/report/model.rs), or "-":
#   failing_seed  seed of the first failing run
#   failed        checkers the first failing run failed, comma-separated
#   run_s         wall time of the first run
#   shrink        "faults B→A, params P → Q, N candidates in S s, reproduced K/R"
report_field() {
  python3 - "$1" "$2" <<'PY' 2>/dev/null || echo "-"
import json, sys
r = json.load(open(sys.argv[1]))
what = sys.argv[2]
runs = r.get("runs") or []
bad = [x for x in runs if not x.get("passed")]
if what == "failing_seed":
    print(bad[0]["seed"] if bad else r.get("seed", 1))
elif what == "failed":
    print(",".join(v["checker"] for v in (bad[0]["verdicts"] if bad else []) if not v["passed"]) or "-")
elif what == "run_s":
    print(f'{runs[0]["seconds"]:.0f}' if runs else "-")
elif what == "shrink":
    s = r.get("shrink")
    if not s:
        print("-")
    else:
        print(f'{s["checker"]}: faults {s["events_before"]}→{s["events_after"]}, '
              f'{s["params_before"]} → {s["params_after"]}, {s["candidates"]} candidates in '
              f'{s["seconds"]:.0f} s, reproduced {s["reproduced"]}/{s["reproduction_runs"]}')
PY
}

verdict() {
  case "$1" in
    0) echo "missed" ;;
    1) echo "caught" ;;
    124 | 137) echo "error (timeout)" ;;
    skipped) echo "skipped" ;;
    *) echo "error (exit $1)" ;;
  esac
}

if [ "${1:-}" = "--list" ]; then
  list_bugs | cut -f1,2
  exit 0
fi
if [ ! -x "$msctl" ]; then
  echo "fidelity: no msctl binary at $msctl; build it (cargo build --release -p msctl) or set MSCTL" >&2
  exit 2
fi

all="$(list_bugs)"
selected=""
if [ "$#" -eq 0 ]; then
  selected="$all"
else
  for want in "$@"; do
    line="$(printf '%s\n' "$all" | awk -F '\t' -v w="$want" '$1 == w || $2 == w' | head -n 1)"
    if [ -z "$line" ]; then
      echo "fidelity: no bug $want in $bugs_file; known: $(printf '%s\n' "$all" | cut -f1 | tr '\n' ' ')" >&2
      exit 2
    fi
    selected="$selected$line"$'\n'
  done
fi

current_project=""
current_file=""
current_tmp=""
teardown() {
  if [ -n "$current_project" ]; then
    timeout -k 30s "$down_timeout" "$msctl" --file "$current_file" --project "$current_project" \
      down --volumes >>"$out/$current_bug/down.log" 2>&1 || true
  fi
  if [ -n "$current_tmp" ]; then rm -rf "$current_tmp"; fi
  current_project=""
  current_tmp=""
}
trap 'teardown; exit 130' INT TERM

rows=""
while IFS=$'\t' read -r bug feature class comps; do
  [ -n "$bug" ] || continue
  dir="$out/$bug"
  rm -rf "$dir"
  mkdir -p "$dir"
  stamp "== $bug ($feature in $comps)"
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/fidelity-$bug.XXXXXX")"
  current_tmp="$tmp"
  current_bug="$bug"
  smoke="skipped" catalog="skipped" explore="skipped" shrunk="-"
  if ! write_stack "$tmp" "msctl/services:$bug" "$feature" "$comps" 2>"$dir/stack.err"; then
    stamp "   cannot write the stack file: $(cat "$dir/stack.err")"
    rows="$rows| $bug | $class | error (stack file) | error (stack file) | error (stack file) | - | - |"$'\n'
    teardown
    continue
  fi
  cp "$tmp/stack.toml" "$dir/stack.toml"
  file="$tmp/stack.toml"
  project="fid-$bug"
  current_project="$project"
  current_file="$file"
  cd "$tmp"
  m=(--file "$file" --project "$project")

  booted=1
  rc=$(run_stage 2m "$dir/config.log" "${m[@]}" config check)
  if [ "$rc" != 0 ]; then
    stamp "   config check: exit $rc (see $dir/config.log)"
    booted=0
  fi
  if [ "$booted" = 1 ] && [ "${UP_BUILD:-0}" != 1 ]; then
    rc=$(run_stage "$build_timeout" "$dir/build.log" "${m[@]}" images build)
    stamp "   images build: exit $rc"
    [ "$rc" = 0 ] || booted=0
  fi
  if [ "$booted" = 1 ]; then
    up=(up --timeout "$up_timeout")
    if [ "${UP_BUILD:-0}" = 1 ]; then up+=(--build); fi
    # The bound covers the build that `up --build` does, too.
    rc=$(run_stage "$build_timeout" "$dir/up.log" "${m[@]}" "${up[@]}")
    stamp "   up: exit $rc"
    [ "$rc" = 0 ] || booted=0
  fi
  if [ "$booted" = 1 ]; then
    rc=$(run_stage "$seed_timeout" "$dir/seed.log" "${m[@]}" seed)
    stamp "   seed: exit $rc"
    [ "$rc" = 0 ] || booted=0
  fi

  if [ "$booted" = 1 ]; then
    catalog_dir="$repo/scenarios/catalog"
    smoke="not run"; catalog="not run"; explore="not run"
    if [[ "$stages" == *" smoke "* ]]; then
    rc=$(run_stage "$smoke_timeout" "$dir/smoke.log" "${m[@]}" scenario run \
      "$catalog_dir/smoke.toml" "$catalog_dir/order-saga.toml" \
      "$catalog_dir/breaker-trip.toml" "$catalog_dir/saga-crash-recovery.toml" \
      --report "$dir/smoke.json" --junit "$dir/smoke.xml")
    smoke="$(verdict "$rc")"
    stamp "   smoke: $smoke"
    fi

    if [[ "$stages" == *" catalog "* ]]; then
    if [ "$catalog_repeat" = 1 ]; then
      rc=$(run_stage "$catalog_timeout" "$dir/catalog.log" "${m[@]}" scenario run "${catalog_what[@]}" \
        --report "$dir/catalog.json" --junit "$dir/catalog.xml")
      catalog="$(verdict "$rc")"
    else
      # A reproduction rate: the same scenarios N times on the one stack, each run's
      # report kept; "caught k/N" counts the runs that failed a check.
      caught=0 errors=0
      for i in $(seq 1 "$catalog_repeat"); do
        rc=$(run_stage "$catalog_timeout" "$dir/catalog-$i.log" "${m[@]}" scenario run "${catalog_what[@]}" \
          --report "$dir/catalog-$i.json")
        stamp "   catalog run $i of $catalog_repeat: $(verdict "$rc")"
        case "$rc" in 0) ;; 1) caught=$((caught + 1)) ;; *) errors=$((errors + 1)) ;; esac
      done
      catalog="caught $caught/$catalog_repeat"
      [ "$errors" = 0 ] || catalog="$catalog ($errors error)"
    fi
    stamp "   catalog: $catalog"
    fi

    if [[ "$stages" == *" explore "* ]]; then
    rc=$(run_stage "$explore_timeout" "$dir/explore.log" "${m[@]}" explore \
      --seed "$seed" --runs "$runs" --duration "$duration" "${shrink_flag[@]}" "${explore_args[@]}" \
      --report "$dir/explore.json" --html "$dir/explore.html")
    explore="$(verdict "$rc")"
    stamp "   explore: $explore"
    if [ "$rc" = 1 ] && [ "${REPLAY:-1}" != 0 ] && [ -s "$dir/explore.json" ]; then
      replay_seed="$(report_field "$dir/explore.json" failing_seed)"
      rc=$(run_stage "$explore_timeout" "$dir/replay.log" "${m[@]}" explore \
        --seed "$replay_seed" --runs 1 --duration "$duration" "${explore_args[@]}" \
        --report "$dir/replay.json")
      stamp "   replay of seed $replay_seed: $(verdict "$rc")"
    fi
    fi
    if [ -s "$dir/explore.json" ]; then
      path="$(shrunk_file "$dir/explore.json")"
      if [ -n "$path" ]; then
        case "$path" in /*) ;; *) path="$tmp/$path" ;; esac
        if [ -f "$path" ]; then
          cp "$path" "$dir/shrunk.toml"
          shrunk="$dir/shrunk.toml"
        else
          shrunk="$path (not found)"
        fi
      fi
    fi
  else
    smoke="error (boot)" catalog="error (boot)" explore="error (boot)"
  fi

  cd "$repo"
  teardown
  stamp "   down"
  printf 'bug\t%s\nfeature\t%s\nclass\t%s\ncomponents\t%s\nsmoke\t%s\ncatalog\t%s\nexplore\t%s\nshrunk\t%s\n' \
    "$bug" "$feature" "$class" "$comps" "$smoke" "$catalog" "$explore" "$shrunk" >"$dir/result.tsv"
  details="-"
  if [ -s "$dir/explore.json" ]; then
    details="run $(report_field "$dir/explore.json" run_s) s, failed $(report_field "$dir/explore.json" failed); shrink $(report_field "$dir/explore.json" shrink)"
    if [ -s "$dir/replay.json" ]; then
      details="$details; replay failed $(report_field "$dir/replay.json" failed)"
    fi
  fi
  printf 'details\t%s\n' "$details" >>"$dir/result.tsv"
  rows="$rows| $bug | $class | $smoke | $catalog | $explore | $details | $shrunk |"$'\n'
done <<<"$selected"

{
  echo "| bug | class | smoke | catalog | explore | explore details | shrunk scenario file |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  printf '%s' "$rows"
} | tee "$out/summary.md"
stamp "results in $out (summary.md, <bug>/result.tsv, logs and reports per stage)"
