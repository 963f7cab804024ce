#!/usr/bin/env bash
# The one test command: formatting, lints, then every unit, property, integration and
# end-to-end test of the workspace (the end-to-end ones drive the real Docker engine).
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== msctl images build (base image offline when nothing can be pulled)"
cargo run --quiet -p msctl -- images build

echo "== cargo test"
status=0
log="$(mktemp)"
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?

# Shared test infrastructure (stack::testing) is left running between local runs for
# speed; remove it here so a test run leaves the engine as it found it.
cargo run --quiet -p msctl -- --project msctl-test down --volumes >/dev/null 2>&1 || true

passed=$(grep -Eo '^test result: .*' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .*' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
exit $status
