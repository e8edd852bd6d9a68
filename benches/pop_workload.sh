#!/usr/bin/env bash
# PoP workload: cdn-node against nginx proxy_cache on a video PoP's traffic,
# a catalogue larger than either cache, requests with Zipf popularity.
#
# Usage: benches/pop_workload.sh
#
#   POP_OBJECTS=50000  objects in the catalogue (scale it down on a small
#                      machine: the disk budget and the warm-up follow it)
#   MP4_MIB=1024       size of each MP4 (one per 5,000 objects, at least two)
#   ZIPFS=0.8,1.0      Zipf exponents, one run each, caches empty at each start
#   WARM=POP_OBJECTS   requests played before measuring (32 connections)
#   SAT_SECONDS=20     seconds of the saturation run (closed loop, 32 connections)
#   RATE_SECONDS=20    seconds of the fixed-rate run (open loop)
#   RATE_PERCENT=70    its rate, in % of nginx's saturation rate
#   KEEP=1             keep the caches and objects afterwards
#   NODE_MAX_SIZE_MIB  cdn-node's max_size in MiB instead of the shared budget
#                      (nginx's cache runs past its max_size under load: the
#                      table shows the disk each used; this compares the two
#                      at the space nginx actually used)
#   NODE_SENDFILE=false  cdn-node's cache.sendfile (default true: whole disk
#                      hits sent from the page cache with sendfile; false:
#                      read and written, to compare the two)
#   CACHE_ROOT=DIR     both caches' folders under DIR (a filesystem mounted
#                      there) instead of the scratch folder: the file system
#                      matters, each object being one or two files created
#                      and deleted (BENCHMARKS.md shows how to make one)
#
# The catalogue (benches/pop/trace.py): HLS-like segments of 0.5-2 MiB,
# playlist-sized objects of 2-20 KiB, MP4s read as 2 MiB ranges; sparse
# files, so they take no disk. Both caches get a disk budget (max_size) of a
# third of the catalogue's bytes; cdn-node has memory_size 64 MiB, nginx the
# kernel's page cache. Both fetch from one plain nginx origin (cdn-node with
# path-style S3 URLs, signed; the origin ignores the signature), which logs
# the bytes it sends to each: origin bytes per client byte, and the byte hit
# ratio as 1 minus that, count everything a cache fetched (read-ahead and
# slices included) against everything its clients received.
#
# Per Zipf exponent, for each server in turn (the first going second at the
# next exponent): WARM requests, then a saturation run of SAT_SECONDS (the
# client, benches/pop/client, on 32 kept-alive connections), then an
# open-loop run at RATE_PERCENT % of nginx's saturation rate (each request
# sent at its time whatever the server does; latency counted from then).
# Each server plays the same trace from its start; durations are fixed, so
# how far into it a server gets depends on its speed.
#
# The scratch folder (target/pop/) keeps the catalogue, the traces and the
# origin's logs afterwards: benches/pop/origin_log.py breaks a log down
# per object class and request kind, benches/pop/bounds.py gives the byte
# hit ratios an exact LRU, an exact LFU and the best static choice reach on
# a trace, and `cargo bench --bench policy_replay` the one cdn-node's own
# eviction policy reaches on it (offline, without a server).
#
# Installs what is missing (nginx, curl, python3; as root or with sudo),
# builds the release binary and the client, works in target/pop/ and stops
# every process it started when it ends, fails or is interrupted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
HERE="$ROOT/benches/pop"

COMMAND="benches/pop_workload.sh"
for v in CACHE_ROOT NODE_MAX_SIZE_MIB NODE_SENDFILE KEEP RATE_PERCENT RATE_SECONDS SAT_SECONDS WARM ZIPFS MP4_MIB POP_OBJECTS; do
    if [[ -n "${!v:-}" ]]; then COMMAND="$v=${!v} $COMMAND"; fi
done
POP_OBJECTS=${POP_OBJECTS:-50000}
MP4_MIB=${MP4_MIB:-1024}
ZIPFS=${ZIPFS:-0.8,1.0}
WARM=${WARM:-$POP_OBJECTS}
SAT_SECONDS=${SAT_SECONDS:-20}
RATE_SECONDS=${RATE_SECONDS:-20}
RATE_PERCENT=${RATE_PERCENT:-70}
KEEP=${KEEP:-0}
for v in POP_OBJECTS MP4_MIB WARM SAT_SECONDS RATE_SECONDS RATE_PERCENT; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "pop: $v must be a whole number above 0" >&2; exit 2; }
done
[[ "${NODE_MAX_SIZE_MIB:-1}" =~ ^[1-9][0-9]*$ ]] || { echo "pop: NODE_MAX_SIZE_MIB must be a whole number above 0" >&2; exit 2; }
NODE_SENDFILE=${NODE_SENDFILE:-true}
[[ "$NODE_SENDFILE" == true || "$NODE_SENDFILE" == false ]] || { echo "pop: NODE_SENDFILE must be true or false" >&2; exit 2; }
if [[ -n "${CACHE_ROOT:-}" ]]; then
    [[ -d "$CACHE_ROOT" && -w "$CACHE_ROOT" ]] || { echo "pop: CACHE_ROOT: '$CACHE_ROOT' is not a writable folder" >&2; exit 2; }
    CACHE_ROOT=$(cd "$CACHE_ROOT" && pwd)
fi
IFS=, read -r -a zipfs <<<"$ZIPFS"
for z in "${zipfs[@]}"; do
    [[ "$z" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "pop: ZIPFS: '$z' is not a number" >&2; exit 2; }
done
BUCKET=videos
CONNECTIONS=32
SEED=1

BENCH=pop
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at start: $LOAD_START"
need nginx=nginx-light curl=curl python3=python3
bash "$ROOT/deploy/setup.sh" build s3
build_node
say "building the client (release)"
cargo build --release --locked --manifest-path "$HERE/client/Cargo.toml" --target-dir "$TARGET_DIR/pop-client"
CLIENT="$TARGET_DIR/pop-client/release/pop-client"

# cache_dir NAME: the folder of NAME's cache.
cache_dir() {
    local root=${CACHES:-$SCRATCH}
    if [[ $1 == node ]]; then echo "$root/node-cache"; else echo "$root/nginx-cache"; fi
}

# cache_fs: the file system the caches are on (for ext4, whether it has a
# journal: without one, ext4 looks past recently deleted inodes when it
# makes a file, which costs each new file more).
cache_fs() {
    local fs dev journal
    fs=$(stat -f -c %T "$CACHES")
    if [[ $fs == ext2/ext3 ]]; then
        fs=$(findmnt -T "$CACHES" -no FSTYPE 2>/dev/null || echo ext)
        dev=$(basename "$(findmnt -T "$CACHES" -no SOURCE 2>/dev/null)")
        journal=$(cat "/sys/fs/ext4/$dev/journal_task" 2>/dev/null || true)
        case "$journal" in
            "<none>") fs="$fs without a journal" ;;
            "") ;;
            *) fs="$fs with a journal" ;;
        esac
    fi
    echo "$fs"
}

bench_cleanup() {
    if [[ "$KEEP" != 1 && -d "$SCRATCH" ]]; then
        rm -rf "$SCRATCH/objects" "$(cache_dir node)" "$(cache_dir nginx)"
    fi
}
scratch pop
CACHES=${CACHE_ROOT:-$SCRATCH}
OBJECTS="$SCRATCH/objects"
mkdir -p "$OBJECTS/$BUCKET"

# --- the catalogue and the traces -----------------------------------------

python3 "$HERE/trace.py" catalogue "$SCRATCH" "$POP_OBJECTS" "$MP4_MIB" "$SEED"
python3 "$HERE/trace.py" files "$SCRATCH" "$OBJECTS/$BUCKET"
CATALOGUE_BYTES=$(awk -F'\t' '{ s += $2 } END { printf "%.0f", s }' "$SCRATCH/catalogue.tsv")
BUDGET_MIB=$((CATALOGUE_BYTES / 3 / 1048576))
# Enough lines for the warm-up and a fast server's runs; the client wraps round.
REQUESTS=$((WARM + 3000 * (SAT_SECONDS + RATE_SECONDS)))
for z in "${zipfs[@]}"; do
    python3 "$HERE/trace.py" trace "$SCRATCH" "$z" "$REQUESTS" "$SEED"
done
SCALE="catalogue of $POP_OBJECTS objects, $((CATALOGUE_BYTES / 1048576)) MiB ($(grep -c '\.mp4' "$SCRATCH/catalogue.tsv") MP4s of $MP4_MIB MiB); max_size ${BUDGET_MIB} MiB each"
if [[ -n "${NODE_MAX_SIZE_MIB:-}" ]]; then SCALE="$SCALE (cdn-node: $NODE_MAX_SIZE_MIB MiB)"; fi
if ((POP_OBJECTS < 50000)); then SCALE="$SCALE (scaled down from the 50,000 objects of the full workload)"; fi
SCALE="$SCALE; caches on $(cache_fs)"
say "$SCALE"

bench_secrets
read -r NODE_PORT ADMIN_PORT ORIGIN_PORT NGINX_SIDE_PORT NGINX_PORT < <(choose_ports 127.0.0.1 0 0 0 0 0)
[[ -n "${NGINX_PORT:-}" ]] || die "could not choose ports"

start_nginx "nginx origin" "$HERE/nginx-origin.conf.in" "$SCRATCH/origin" "$ORIGIN_PORT" \
    NGINX_SIDE_PORT="$NGINX_SIDE_PORT" ROOT="$OBJECTS" BUCKET="$BUCKET"
TOKEN=$(mint_token "$SCRATCH/hmac-secret" bench pop 86400) || exit 1

# start_server NAME: the cache NAME (node or nginx) started with an empty
# cache; sets PID_node or PID_nginx.
start_server() {
    if [[ $1 == node ]]; then
        rm -rf "$(cache_dir node)"
        start_node "$SCRATCH/node/access.log" "$HERE/cdn-node.yaml.in" ORIGIN_PORT="$ORIGIN_PORT" \
            BUCKET="$BUCKET" MAX_SIZE="${NODE_MAX_SIZE_MIB:-$BUDGET_MIB}MiB" CACHE="$(cache_dir node)" \
            SENDFILE="$NODE_SENDFILE"
        PID_node=$NODE_PID
    else
        rm -rf "$(cache_dir nginx)"
        start_nginx "nginx proxy_cache" "$HERE/nginx-cache.conf.in" "$SCRATCH/nginx-cache" "$NGINX_PORT" \
            ORIGIN_PORT="$NGINX_SIDE_PORT" MAX_SIZE="${BUDGET_MIB}m" CACHE="$(cache_dir nginx)"
        PID_nginx=$STARTED_PID
    fi
}

# stop_servers: both caches stopped, and no longer in STARTED.
stop_servers() {
    stop_pid "$PID_node" INT
    stop_pid "$PID_nginx" TERM
    local kept=() entry
    for entry in "${STARTED[@]}"; do
        [[ "${entry%% *}" == "$PID_node" || "${entry%% *}" == "$PID_nginx" ]] || kept+=("$entry")
    done
    STARTED=("${kept[@]}")
}

# server_pids NAME: the processes whose CPU time is NAME's: cdn-node; nginx's
# master, workers, cache manager and loader.
server_pids() {
    if [[ $1 == node ]]; then echo "$PID_node"; else echo "$PID_nginx $(pgrep -P "$PID_nginx" | tr '\n' ' ')"; fi
}

# origin_bytes NAME: the bytes the origin has sent to NAME's side so far.
origin_bytes() {
    awk '{ s += $2 } END { printf "%.0f", s }' "$SCRATCH/origin/$1-side.log"
}

# play NAME ZIPF PHASE ARGS...: one client run against NAME, from where its
# last run stopped in the trace; the result line, with the phase, the origin
# bytes fetched meanwhile, the server's CPU seconds and the disk space its
# cache used (sampled each second: mean and peak, MiB), appended to RESULTS
# and kept in RESULT.
RESULTS="$SCRATCH/results.txt"
: >"$RESULTS"
declare -A SKIP
play() {
    local name=$1 zipf=$2 phase=$3 port before taken pids cpu_before cpu_after sampler
    local disk="$SCRATCH/disk-$name-$phase.txt"
    shift 3
    : >"$disk"
    bash "$HERE/disk-use.sh" "$(cache_dir "$name")" "$disk" &
    sampler=$!
    STARTED+=("$sampler TERM")
    if [[ $name == node ]]; then port=$NODE_PORT; else port=$NGINX_PORT; fi
    before=$(origin_bytes "$name")
    pids=$(server_pids "$name")
    # shellcheck disable=SC2086
    cpu_before=$(cpu_seconds $pids)
    echo "$name $phase:" >>"$SCRATCH/client-errors.log"
    RESULT=$("$CLIENT" --addr "127.0.0.1:$port" --trace "$SCRATCH/trace-$zipf.txt" --query "jwt=$TOKEN" \
        --skip "${SKIP[$name]}" "$@" 2>>"$SCRATCH/client-errors.log") || die "the client failed against $name"
    # shellcheck disable=SC2086
    cpu_after=$(cpu_seconds $pids)
    stop_pid "$sampler" TERM
    unset 'STARTED[${#STARTED[@]}-1]'
    # The origin's log line of a fetch is written when it ends.
    sleep 1
    taken=$(field "$RESULT" taken)
    SKIP[$name]=$((SKIP[$name] + taken))
    RESULT="zipf=$zipf server=$name phase=$phase ${RESULT#pop-result } origin_bytes=$(($(origin_bytes "$name") - before))"
    RESULT="$RESULT cpu_s=$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN { printf "%.2f", b - a }')"
    RESULT="$RESULT $(awk '{ s += $1; n++; if ($1 > m) m = $1 } END { printf "disk_samples=%d disk_mean_mib=%.0f disk_peak_mib=%.0f", n, n ? s / n / 1024 : 0, m / 1024 }' "$disk")"
    echo "$RESULT" >>"$RESULTS"
    say "  $name $phase: $(rate_of "$RESULT") req/s, p50 $(ms "$(field "$RESULT" p50_us)") ms," \
        "p99 $(ms "$(field "$RESULT" p99_us)") ms (hits $(ms "$(field "$RESULT" p99_hit_us)")," \
        "misses $(ms "$(field "$RESULT" p99_miss_us)"): $(field "$RESULT" misses) of them)," \
        "errors $(field "$RESULT" errors)," \
        "not 200/206 $(field "$RESULT" not_ok), dropped $(field "$RESULT" dropped), cpu $(field "$RESULT" cpu_s) s," \
        "disk $(field "$RESULT" disk_mean_mib) MiB mean, $(field "$RESULT" disk_peak_mib) peak"
}

field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
rate_of() { awk -v n="$(field "$1" requests)" -v us="$(field "$1" duration_us)" 'BEGIN { printf "%.0f", n * 1e6 / us }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }

# --- the runs -------------------------------------------------------------

index=0
for zipf in "${zipfs[@]}"; do
    index=$((index + 1))
    if ((index % 2)); then order=(nginx node); else order=(node nginx); fi
    echo
    say "Zipf $zipf: both caches empty; ${order[*]} in turn"
    start_server node
    start_server nginx
    SKIP=([node]=0 [nginx]=0)
    for name in "${order[@]}"; do
        play "$name" "$zipf" warm --connections "$CONNECTIONS" --requests "$WARM" --duration 3600
    done
    declare -A SAT
    for name in "${order[@]}"; do
        play "$name" "$zipf" saturation --connections "$CONNECTIONS" --duration "$SAT_SECONDS"
        SAT[$name]=$(rate_of "$RESULT")
    done
    rate=$((SAT[nginx] * RATE_PERCENT / 100))
    ((rate >= 1)) || rate=1
    for name in "${order[@]}"; do
        play "$name" "$zipf" "rate-$rate" --rate "$rate" --duration "$RATE_SECONDS"
    done
    stop_servers
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "## PoP workload ($COMMAND)"
echo
echo "$(machine_line); load average $LOAD_START at the start, $LOAD_END at the end."
echo "$SCALE; memory_size 64 MiB (cdn-node); the client: benches/pop/client."
echo
python3 "$HERE/summary.py" "$RESULTS" "$RATE_PERCENT"
completed
