#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then checks
# formatting, lints, builds, runs the tests and validates every conf/*.yaml.
# Stops at the first failing step with a non-zero exit.
#
# Usage: tests/run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# The tests start s3s-fs and promtool: they must be found on PATH, and cargo
# installs s3s-fs here.
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
    *":$CARGO_BIN:"*) ;;
    *) export PATH="$CARGO_BIN:$PATH" ;;
esac
fmt_args=()
if [[ "${CI:-}" == true ]]; then
    export CARGO_TERM_COLOR=never
    fmt_args=(-- --color never)
fi

suite_start=$SECONDS
steps_done=()
current=""

on_exit() {
    local rc=$?
    local elapsed=$((SECONDS - suite_start))
    if [[ $rc -ne 0 ]]; then
        echo
        echo "tests/run.sh: FAILED at step '${current:-start}' (exit $rc) after ${elapsed}s; passed before it: ${steps_done[*]:-none}"
    fi
    exit "$rc"
}
trap on_exit EXIT

# step NAME COMMAND...: prints the step, runs it, records it. A shell
# function as COMMAND is shown as its $label.
step() {
    current=$1
    shift
    local start=$SECONDS shown="$*"
    if [[ "$(type -t "$1")" == function ]]; then
        shown=${label:-$1}
    fi
    echo
    echo "==> $current: $shown"
    "$@"
    echo "==> $current: ok ($((SECONDS - start))s)"
    steps_done+=("$current")
}

step setup bash deploy/setup.sh build s3 promtool test-tools browser fleet conformance

step fmt cargo fmt --check "${fmt_args[@]+"${fmt_args[@]}"}"
step clippy cargo clippy --all-targets --locked -- -D warnings
step build cargo build --locked --bins

metadata=$(cargo metadata --format-version 1 --no-deps --locked)
has_lib=$(python3 -c '
import json, sys
meta = json.load(sys.stdin)
kinds = {k for p in meta["packages"] for t in p["targets"] for k in t["kind"]}
print("yes" if "lib" in kinds else "no")' <<<"$metadata")

if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doctests; they run first so that the last test
    # summary printed is the main one.
    if [[ "$has_lib" == yes ]]; then
        step doctests cargo test --locked --doc
    fi
    step tests cargo nextest run --locked --no-fail-fast
else
    echo
    echo "(cargo-nextest not found: running the tests, doctests included, with cargo test)"
    step tests cargo test --locked --no-fail-fast
fi

target_dir=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' <<<"$metadata")
node="$target_dir/debug/cdn-node"

# The example configurations read their secrets from the environment: give
# them dummy values (the HMAC secret must be at least 32 bytes).
check_confs() {
    local confs=(conf/*.yaml)
    if [[ ! -e "${confs[0]}" ]]; then
        echo "no conf/*.yaml to check"
        return 0
    fi
    local conf
    for conf in "${confs[@]}"; do
        env CDN_NODE_HMAC_SECRET=dummy-hmac-secret-for-config-checks-only-0123456789 \
            AWS_ACCESS_KEY_ID=AKIDUMMYCONFIGCHECK0 \
            AWS_SECRET_ACCESS_KEY=dummy-secret-access-key-for-config-checks \
            "$node" check -c "$conf"
    done
}
label="cdn-node check -c on each conf/*.yaml, with dummy secrets"
step conf-check check_confs

echo
echo "tests/run.sh: OK, all ${#steps_done[@]} steps passed in $((SECONDS - suite_start))s: ${steps_done[*]}"
