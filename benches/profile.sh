#!/usr/bin/env bash
# Profiles cdn-node under one of the benchmarks' loads: a build with frame
# pointers, `perf record -g` on the node while the load runs against it,
# and the stacks folded into a flame graph.
#
# Usage: benches/profile.sh WHAT
#
#   WHAT    hit    1 KiB hits over plain HTTP/1.1 (load.sh, SCENARIOS=small)
#           media  media playlist hits, each given the token (load.sh,
#                  SCENARIOS=manifest)
#           https  1 KiB hits over HTTPS, HTTP/1.1 (tls.sh, SCENARIOS=h1)
#           h2     1 KiB hits over HTTPS, HTTP/2 (tls.sh, SCENARIOS=h2)
#           pop    the PoP workload's saturation run (pop_workload.sh,
#                  POP_OBJECTS=3000 ZIPFS=0.8)
#   RECORD_SECONDS=5  how long perf records, from WARM_SECONDS=2 into the
#                  node's run
#   FREQUENCY=999  samples per second
#
# The bench runs as it always does, one round, long enough for the
# recording, and is stopped once perf is done (its figures are not the
# point: perf slows the node). Only the node is recorded, and only while
# the load generator (wrk, h2load, the PoP client) sends to it: the
# generator's target port is looked up among the listening sockets.
#
# Writes, in target/profile/: WHAT.perf.data, WHAT.folded (one line per
# distinct stack with its sample count), WHAT.svg (the flame graph: open it
# in a browser) and WHAT.top.txt (the functions with the most samples, by
# their own time and with their callees). The build has its own target
# folder (target/profile-build: the first one takes several minutes).
# Installs perf and inferno when missing (apt-get as root or with sudo;
# cargo install).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LIB_NAME=profile
# shellcheck source=deploy/lib.sh
source "$ROOT/deploy/lib.sh"

WHAT=${1:-}
RECORD_SECONDS=${RECORD_SECONDS:-5}
WARM_SECONDS=${WARM_SECONDS:-2}
FREQUENCY=${FREQUENCY:-999}
[[ "$RECORD_SECONDS" =~ ^[1-9][0-9]*$ ]] || die "RECORD_SECONDS must be a whole number of seconds"
[[ "$WARM_SECONDS" =~ ^[0-9]+$ ]] || die "WARM_SECONDS must be a whole number of seconds"
[[ "$FREQUENCY" =~ ^[1-9][0-9]*$ ]] || die "FREQUENCY must be a whole number of samples per second"

# Long enough for the warm-up and the recording, with room to spare.
RUN_SECONDS=$((WARM_SECONDS + RECORD_SECONDS + 5))
# For each WHAT: the bench and its settings, the load generator, and what
# its command line must hold (the run of the right object or phase).
case "$WHAT" in
    hit)
        BENCH_CMD=(env SCENARIOS=small ROUNDS=1 DURATION="$RUN_SECONDS" bash benches/load.sh)
        CLIENT=wrk PATTERN='/1k\.bin' ;;
    media)
        BENCH_CMD=(env SCENARIOS=manifest ROUNDS=1 DURATION="$RUN_SECONDS" bash benches/load.sh)
        CLIENT=wrk PATTERN='/index\.m3u8' ;;
    https)
        BENCH_CMD=(env SCENARIOS=h1 ROUNDS=1 DURATION="$RUN_SECONDS" bash benches/tls.sh)
        CLIENT=wrk PATTERN='https://' ;;
    h2)
        BENCH_CMD=(env SCENARIOS=h2 ROUNDS=1 DURATION="$RUN_SECONDS" bash benches/tls.sh)
        CLIENT=h2load PATTERN='https://' ;;
    pop)
        BENCH_CMD=(env POP_OBJECTS=3000 ZIPFS=0.8 SAT_SECONDS="$RUN_SECONDS" RATE_SECONDS=2
            bash benches/pop_workload.sh)
        CLIENT=pop-client PATTERN='--connections [0-9]+ --duration' ;;
    *)
        echo "usage: benches/profile.sh hit|media|https|h2|pop (see the head of this file)" >&2
        exit 2 ;;
esac

OUT="$ROOT/target/profile"
BUILD_DIR="$ROOT/target/profile-build"
mkdir -p "$OUT"

# --- tools --------------------------------------------------------------------

install_missing() {
    local missing=()
    command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
    command -v ss >/dev/null 2>&1 || missing+=(iproute2)
    if [[ ${#missing[@]} -gt 0 ]]; then
        say "installing ${missing[*]}"
        local sudo=()
        [[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
        export DEBIAN_FRONTEND=noninteractive
        "${sudo[@]}" apt-get -q install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
            "${sudo[@]}" apt-get -q update >/dev/null
            "${sudo[@]}" apt-get -q install -y --no-install-recommends "${missing[@]}" >/dev/null
        }
    fi
    if ! command -v inferno-flamegraph >/dev/null 2>&1; then
        say "installing inferno (cargo install)"
        cargo install --locked --quiet inferno
    fi
}

# --- finding the node under load ---------------------------------------------

# The port the load generator PID sends to: its URL's, or the PoP
# client's --addr.
target_port() {
    local args
    args=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ "$args" =~ $PATTERN ]] || return 1
    if [[ "$args" =~ https?://[^/:\ ]+:([0-9]+)/ ]]; then
        echo "${BASH_REMATCH[1]}"
    elif [[ "$args" =~ --addr\ [^:\ ]+:([0-9]+) ]]; then
        echo "${BASH_REMATCH[1]}"
    else
        return 1
    fi
}

# The cdn-node process listening on PORT, if that is what listens there.
node_on() {
    local pid
    pid=$(ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == cdn-node ]] || return 1
    echo "$pid"
}

# The node the wanted load runs against, once it does.
node_under_load() {
    local client port node
    for client in $(pgrep -x "$CLIENT" || true); do
        port=$(target_port "$client") || continue
        node=$(node_on "$port") || continue
        echo "$node"
        return 0
    done
    return 1
}

# --- the run -----------------------------------------------------------------

BENCH_PID=
# Stops the bench and the load generator it waits on (its process group,
# the bench's own session): the bench's exit trap then stops the servers it
# started.
stop_bench() {
    [[ -n "$BENCH_PID" ]] || return 0
    kill -TERM -- "-$BENCH_PID" 2>/dev/null || true
    # Stopping its servers gracefully takes the bench a while.
    STOP_SECONDS=120 stop_pid "$BENCH_PID" TERM bench
    BENCH_PID=
    # Had it been killed: what it started runs from its scratch folder.
    if pkill -TERM -f "$BUILD_DIR/" 2>/dev/null; then
        say "stopped what the bench left running"
    fi
}
trap stop_bench EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

install_missing
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
LOG="$OUT/$WHAT.bench.log"
say "running ${BENCH_CMD[*]} with a frame-pointer build (its output: target/profile/$WHAT.bench.log)"
CARGO_TARGET_DIR="$BUILD_DIR" RUSTFLAGS="${RUSTFLAGS:-} -C force-frame-pointers=yes" \
    setsid "${BENCH_CMD[@]}" </dev/null >"$LOG" 2>&1 &
BENCH_PID=$!

# The first build takes several minutes; the bench's set-up some more.
deadline=$((SECONDS + 3600))
node=
until node=$(node_under_load); do
    kill -0 "$BENCH_PID" 2>/dev/null || { tail -20 "$LOG" >&2; die "the bench ended before its load ran against cdn-node"; }
    ((SECONDS < deadline)) || die "no $CLIENT load against cdn-node within an hour"
    sleep 0.2
done
sleep "$WARM_SECONDS"
say "recording cdn-node (pid $node) for $RECORD_SECONDS s"
DATA="$OUT/$WHAT.perf.data"
perf record -g -F "$FREQUENCY" -p "$node" -o "$DATA" -- sleep "$RECORD_SECONDS" 2>"$OUT/$WHAT.perf.log" ||
    { cat "$OUT/$WHAT.perf.log" >&2; die "perf record failed"; }
stop_bench

say "folding the stacks"
perf script -i "$DATA" 2>/dev/null | inferno-collapse-perf >"$OUT/$WHAT.folded"
[[ -s "$OUT/$WHAT.folded" ]] || die "perf recorded no stack"
inferno-flamegraph --title "cdn-node, $WHAT: $CPU, $COMMIT" <"$OUT/$WHAT.folded" >"$OUT/$WHAT.svg"
{
    echo "# cdn-node, $WHAT: $CPU, commit $COMMIT, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# ${BENCH_CMD[*]}; perf record -g -F $FREQUENCY for $RECORD_SECONDS s"
    echo
    echo "## by their own time"
    perf report -i "$DATA" --no-children --sort sym --stdio -g none --percent-limit 0.5 2>/dev/null |
        grep -v '^#' | grep -v '^$'
    echo
    echo "## with their callees"
    perf report -i "$DATA" --children --sort sym --stdio -g none --percent-limit 3 2>/dev/null |
        grep -v '^#' | grep -v '^$'
} >"$OUT/$WHAT.top.txt"
samples=$(perf report -i "$DATA" --stdio 2>/dev/null | sed -n 's/^# Samples: //p' | head -1)
say "${samples:-no samples}: target/profile/$WHAT.svg (flame graph), $WHAT.top.txt, $WHAT.folded"
