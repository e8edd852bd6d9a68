#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, one after
# another, then minimises each target's corpus.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      SECONDS defaults to 600
#
# Needs a nightly toolchain and cargo-fuzz. New inputs are kept in
# fuzz/corpus/TARGET (the seeds in fuzz/seeds/TARGET are read, never
# written); a crash leaves its input in fuzz/artifacts/TARGET and makes the
# script exit 1 once every target has run. FUZZ_SANITIZER picks the
# sanitizer (default none: the crate has no unsafe code of its own, and
# without one a target runs about twice as many inputs a second).
set -euo pipefail

seconds=${1:-600}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "fuzz/run.sh: SECONDS must be a whole number above 0, not '$seconds'" >&2
    exit 2
fi
cd "$(dirname "$0")"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz/run.sh: no nightly toolchain; install one with: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz" >&2
    exit 2
fi

build=(--sanitizer "${FUZZ_SANITIZER:-none}" --codegen-units 16)
if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build "${build[@]}"

summary=()
failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "seeds/$target"
    log=$(mktemp)
    echo "== $target: ${seconds} s"
    set +e
    cargo +nightly fuzz run "${build[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        2>&1 | tee "$log" | grep -E '^#[0-9]+.*(pulse|DONE)|^Done|^stat::|panicked|ERROR|SUMMARY'
    status=${PIPESTATUS[0]}
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rm -f "$log"
    if ((status != 0)); then
        failed+=("$target")
        summary+=("$target: FAILED (exit $status), input in fuzz/artifacts/$target")
        continue
    fi
    # Edges only, not hit counts: the corpus kept is a few hundred inputs.
    cargo +nightly fuzz cmin "${build[@]}" "$target" "corpus/$target" -- -use_counters=0 \
        >/dev/null 2>&1
    files=$(find "corpus/$target" -type f | wc -l)
    bytes=$(du -sb "corpus/$target" | cut -f1)
    summary+=("$target: ${seconds} s, ${execs:-?} runs, ${rate:-?}/s, corpus ${files} files ${bytes} bytes")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
    echo "fuzz/run.sh: crashes in: ${failed[*]}" >&2
    exit 1
fi
