#!/usr/bin/env bash
# Load benchmark: cdn-node against nginx proxy_cache, both serving cache hits
# on loopback, side by side in one run.
#
# Usage: benches/load.sh
#
#   DURATION=10      seconds of each 1 KiB and 10 MiB run
#   ROUNDS=3         runs per server of the 1 KiB, 10 MiB and warm-range
#                    scenarios, alternating which server goes first (QUICK: 1):
#                    on a shared machine, load that comes and goes then falls
#                    on both servers alike
#   RATE_PERCENT=40  also run the 1 KiB hits open loop at this % of nginx's
#                    closed-loop rate (off when not given; the client is one
#                    thread on the same cores: on two cores it keeps up with
#                    about 20,000 req/s, not with 70 % of nginx's rate)
#   MEM_DURATION=20  seconds of the large-object memory scenario
#   QUICK=1          smoke run: 2 s scenarios, a 256 MiB large object
#   SEEK_REPS=3      cold seeks per offset and server (QUICK: 2)
#   RANGE_SEED=1     seed of the random ranges (each wrk thread adds its number)
#   ACCESS_LOG=true  cdn-node's log.access_stdout (true, the shipped default,
#                    writes one JSON line per request to a file; or false);
#                    nginx proxy_cache logs each request too (buffered) or not
#   KEEP=1           keep the scratch folder's objects and caches afterwards
#   MEMORY_OBJECT_MAX=16MiB  cdn-node's cache.memory_object_max_size: 16MiB
#                    serves the 10 MiB object from memory (as Varnish's malloc
#                    storage does); 64KiB (the shipped default) from disk
#   SCENARIOS=small,medium,manifest,seek,large,ranges
#                    the scenarios to run, comma-separated, always in this
#                    order (default: all six);
#                    e.g. SCENARIOS=seek,ranges for the slice figures only
#
# What runs, all on 127.0.0.1 with free ports: s3s-fs (checks SigV4) as
# cdn-node's origin; cdn-node with its disk cache, verifying an HS256 token on
# every request; a plain nginx serving the same files; nginx proxy_cache (on
# disk) in front of it, checking no token. Each scenario's object is cached by
# both just before the scenario runs, then wrk loads each in turn: 1 KiB hits
# (wrk -t2 -c50; with RATE_PERCENT also open loop at that % of nginx's rate
# with benches/pop/client, for the latency at equal load) and 10 MiB hits
# (-c8; Varnish with malloc storage in front of the same origin as a third
# server). Then the large object, which cdn-node
# keeps in slices (above its slice_threshold, plain GETs included): cold seeks
# (a 1 MiB range at 0, 10, 50 and 90 % of an object neither cache holds: time
# to first byte and total, against the time of one 4 MiB slice GET from
# s3s-fs), the whole object with 200 clients while the servers' memory is
# sampled, and warm random 1 MiB ranges (wrk -t2 -c8) against nginx with the
# slice module (a second server block of the nginx cache). The manifest
# scenario is cdn-node's alone (nginx has no token propagation): hits on an
# HLS master playlist (6 renditions) and on a 100-segment media playlist,
# each given the request's token in every URI, against 1 KiB hits and hits
# on a plain object as large as the media playlist's answer (the bytes'
# cost without the rewrite), in rotating order (wrk -t2 -c50). Each run
# prints the server's CPU and wrk's own: on loopback the client shares the
# cores, and what a server leaves it to do (a receive from page-cache
# fragments after `sendfile`) shows there.
#
# Installs what is missing (wrk, nginx, Varnish, s3s-fs; as root or with sudo), builds
# the release binary, works in target/load/ and stops every process it
# started when it ends, fails or is interrupted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
HERE="$ROOT/benches/load"

# The command as typed, with the settings given to it.
COMMAND="benches/load.sh"
for v in RATE_PERCENT MEMORY_OBJECT_MAX SCENARIOS ACCESS_LOG RANGE_SEED SEEK_REPS MEM_DURATION DURATION ROUNDS QUICK; do
    if [[ -n "${!v:-}" ]]; then COMMAND="$v=${!v} $COMMAND"; fi
done

QUICK=${QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
    DURATION=${DURATION:-2}
    MEM_DURATION=${MEM_DURATION:-2}
    SEEK_REPS=${SEEK_REPS:-2}
    ROUNDS=${ROUNDS:-1}
    LARGE_MIB=256
else
    DURATION=${DURATION:-10}
    MEM_DURATION=${MEM_DURATION:-20}
    SEEK_REPS=${SEEK_REPS:-3}
    ROUNDS=${ROUNDS:-3}
    LARGE_MIB=1024
fi
ACCESS_LOG=${ACCESS_LOG:-true}
RANGE_SEED=${RANGE_SEED:-1}
KEEP=${KEEP:-0}
SCENARIOS=${SCENARIOS:-small,medium,manifest,seek,large,ranges}
RATE_PERCENT=${RATE_PERCENT:-}
BUCKET=videos

[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || { echo "load: DURATION must be a whole number of seconds" >&2; exit 2; }
[[ "$MEM_DURATION" =~ ^[1-9][0-9]*$ ]] || { echo "load: MEM_DURATION must be a whole number of seconds" >&2; exit 2; }
[[ "$SEEK_REPS" =~ ^[1-9][0-9]*$ ]] || { echo "load: SEEK_REPS must be a whole number" >&2; exit 2; }
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "load: ROUNDS must be a whole number" >&2; exit 2; }
[[ "$RANGE_SEED" =~ ^[0-9]+$ ]] || { echo "load: RANGE_SEED must be a whole number" >&2; exit 2; }
[[ -z "$RATE_PERCENT" || "$RATE_PERCENT" =~ ^[1-9][0-9]?$ ]] || { echo "load: RATE_PERCENT must be a whole number from 1 to 99" >&2; exit 2; }
[[ "$ACCESS_LOG" == true || "$ACCESS_LOG" == false ]] || { echo "load: ACCESS_LOG must be true or false" >&2; exit 2; }
IFS=, read -r -a chosen <<<"$SCENARIOS"
for s in "${chosen[@]}"; do
    case "$s" in
        small | medium | manifest | large | seek | ranges) ;;
        *) echo "load: SCENARIOS: unknown scenario '$s' (small, medium, manifest, seek, large, ranges)" >&2; exit 2 ;;
    esac
done
# wants SCENARIO: whether SCENARIO was chosen.
wants() { [[ ",$SCENARIOS," == *",$1,"* ]]; }

BENCH=load
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at start: $LOAD_START"

# --- what is needed -------------------------------------------------------

need wrk=wrk nginx=nginx-light curl=curl python3=python3
if wants medium; then need varnishd=varnish; fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
bash "$ROOT/deploy/setup.sh" build s3
build_node

# --- clean-up ---------------------------------------------------------------

bench_cleanup() {
    if [[ "$KEEP" != 1 && -d "$SCRATCH" ]]; then
        # The objects and caches are large; the logs and results stay.
        rm -rf "$SCRATCH/objects" "$SCRATCH/node/cache" "$SCRATCH/nginx-cache/cache" \
            "$SCRATCH/nginx-cache/slice-cache" "$SCRATCH/check.bin" "$SCRATCH/seek.bin" "$SCRATCH/seek.want"
    fi
}

# --- scratch folder, objects and secrets ----------------------------------

scratch load
OBJECTS="$SCRATCH/objects"
mkdir -p "$OBJECTS/$BUCKET/bench"

if ((LARGE_MIB >= 1024)); then
    LARGE_LABEL="$((LARGE_MIB / 1024)) GiB"
    LARGE_NAME="$((LARGE_MIB / 1024))g.bin"
else
    LARGE_LABEL="$LARGE_MIB MiB"
    LARGE_NAME="${LARGE_MIB}m.bin"
fi
SMALL=bench/1k.bin
MEDIUM=bench/10m.bin
LARGE="bench/$LARGE_NAME"

say "writing the test objects (1 KiB, 10 MiB, $LARGE_LABEL of random bytes)"
head -c 1024 /dev/urandom >"$OBJECTS/$BUCKET/$SMALL"
head -c $((10 * 1024 * 1024)) /dev/urandom >"$OBJECTS/$BUCKET/$MEDIUM"
# A master playlist of six renditions, and a media playlist of 100
# two-second segments with a key and an init map.
MASTER=bench/hls/master.m3u8
MANIFEST=bench/hls/index.m3u8
mkdir -p "$OBJECTS/$BUCKET/bench/hls"
{
    printf '#EXTM3U\n#EXT-X-VERSION:6\n'
    for height in 1080 720 540 480 360 240; do
        printf '#EXT-X-STREAM-INF:BANDWIDTH=%d,RESOLUTION=%dx%d,CODECS="avc1.4d401f,mp4a.40.2"\n%dp/index.m3u8\n' \
            "$((height * 4000))" "$((height * 16 / 9))" "$height" "$height"
    done
} >"$OBJECTS/$BUCKET/$MASTER"
{
    printf '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n'
    printf '#EXT-X-KEY:METHOD=AES-128,URI="key.bin"\n#EXT-X-MAP:URI="init.mp4"\n'
    for ((i = 1; i <= 100; i++)); do printf '#EXTINF:2.000,\nseg-%05d.m4s\n' "$i"; done
    printf '#EXT-X-ENDLIST\n'
} >"$OBJECTS/$BUCKET/$MANIFEST"
dd if=/dev/urandom of="$OBJECTS/$BUCKET/$LARGE" bs=1M count="$LARGE_MIB" status=none

# The range scenarios want objects neither cache has seen: hard links of the
# large object under other paths (no extra disk). bench/range/ for the warm
# random ranges; bench/seek/REP-PCT/ for each cold seek, so every one is cold
# for both caches whatever a purge or a background fill leaves behind.
SEEK_PERCENTS=(0 10 50 90)
RANGE_KEY="bench/range/$LARGE_NAME"
mkdir -p "$OBJECTS/$BUCKET/bench/range"
ln "$OBJECTS/$BUCKET/$LARGE" "$OBJECTS/$BUCKET/$RANGE_KEY"
for ((rep = 1; rep <= SEEK_REPS; rep++)); do
    for pct in "${SEEK_PERCENTS[@]}"; do
        mkdir -p "$OBJECTS/$BUCKET/bench/seek/$rep-$pct"
        ln "$OBJECTS/$BUCKET/$LARGE" "$OBJECTS/$BUCKET/bench/seek/$rep-$pct/$LARGE_NAME"
    done
done

# s3s-fs hashes a whole file for its ETag on every GET and HEAD, Range GETs
# included, unless the object has a stored ETag (as objects PUT through it
# have, and as S3 always does). Without one, each 4 MiB slice cdn-node fetches
# of the large object would cost an MD5 of all of it: store the ETags.
python3 - "$OBJECTS" "$BUCKET" <<'EOF'
import base64, hashlib, json, os, sys
root, bucket = sys.argv[1], sys.argv[2]
b64 = lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")
digests = {}
for folder, _, files in os.walk(os.path.join(root, bucket)):
    for name in files:
        path = os.path.join(folder, name)
        inode = os.stat(path).st_ino
        if inode not in digests:
            h = hashlib.md5()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            digests[inode] = h.hexdigest()
        key = os.path.relpath(path, os.path.join(root, bucket))
        with open(os.path.join(root, f".bucket-{b64(bucket)}.object-{b64(key)}.internal.json"), "w") as f:
            json.dump({"e_tag": digests[inode]}, f)
EOF

bench_secrets

read -r S3_PORT NODE_PORT ADMIN_PORT ORIGIN_PORT NGINX_PORT SLICE_PORT VARNISH_PORT < <(choose_ports 127.0.0.1 0 0 0 0 0 0 0)
[[ -n "${VARNISH_PORT:-}" ]] || die "could not choose ports"

# Caches large enough for every object three times over: cdn-node holds the
# large object in slices under two paths (plain GETs and ranges), nginx's
# slice server has a cache of this size of its own.
CACHE_MIB=$((3 * (LARGE_MIB + 64)))

# --- the origins and the two caches ---------------------------------------

start_s3 127.0.0.1 "$S3_PORT" "$OBJECTS" "$SCRATCH/s3s-fs.log" "$READY_SECONDS"

# stdout is the access log; stderr the node's own log.
start_node "$SCRATCH/node/access.log" "$HERE/cdn-node.yaml.in" ORIGIN_PORT="$S3_PORT" BUCKET="$BUCKET" \
    MAX_SIZE="${CACHE_MIB}MiB" MAX_OBJECT_SIZE="${CACHE_MIB}MiB" ACCESS_LOG="$ACCESS_LOG" \
    MEMORY_OBJECT_MAX="${MEMORY_OBJECT_MAX:-16MiB}"

start_nginx "nginx origin" "$HERE/nginx-origin.conf.in" "$SCRATCH/nginx-origin" "$ORIGIN_PORT" \
    ROOT="$OBJECTS/$BUCKET"

# The cache logs each request when cdn-node does, so both do the same work.
if [[ "$ACCESS_LOG" == true ]]; then
    NGINX_ACCESS_LOG="access_log $SCRATCH/nginx-cache/logs/access.log bench buffer=64k flush=1s;"
else
    NGINX_ACCESS_LOG="access_log off;"
fi
start_nginx "nginx proxy_cache" "$HERE/nginx-cache.conf.in" "$SCRATCH/nginx-cache" "$NGINX_PORT" \
    SLICE_PORT="$SLICE_PORT" ORIGIN_PORT="$ORIGIN_PORT" MAX_SIZE="${CACHE_MIB}m" \
    ACCESS_LOG_DIRECTIVE="$NGINX_ACCESS_LOG"
NGINX_PID=$STARTED_PID

# Varnish (10 MiB scenario): malloc storage as large as nginx's cache, one
# thread pool per CPU, in the foreground under its own working folder.
if wants medium; then
    start_varnish "$VARNISH_PORT" "$CACHE_MIB"
fi

TOKEN=$(mint_token "$SCRATCH/hmac-secret" bench load 86400) || exit 1

node_url() { printf 'http://127.0.0.1:%s/%s?jwt=%s' "$NODE_PORT" "$1" "$TOKEN"; }
# nginx gets the same request line, token included; it ignores it.
nginx_url() { printf 'http://127.0.0.1:%s/%s?jwt=%s' "$NGINX_PORT" "$1" "$TOKEN"; }
varnish_url() { printf 'http://127.0.0.1:%s/%s?jwt=%s' "$VARNISH_PORT" "$1" "$TOKEN"; }
nginx_slice_url() { printf 'http://127.0.0.1:%s/%s?jwt=%s' "$SLICE_PORT" "$1" "$TOKEN"; }

# --- warming --------------------------------------------------------------

# warm NAME URL HEADER FILE: one request fills the cache; the next must be a
# hit, carrying the exact bytes of FILE.
warm() {
    local name=$1 url=$2 header=$3 file=$4
    local code status="" i
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 600 "$url") || code=000
    [[ "$code" == 200 ]] || die "$name: the first GET of ${file##*/} answered $code"
    # A fill becomes a hit once its body is on disk: allow it a moment.
    for ((i = 0; i < 50; i++)); do
        if curl -sS --max-time 600 -D "$SCRATCH/check.head" "$url" | cmp -s - "$file"; then
            status=$(tr -d '\r' <"$SCRATCH/check.head" | awk -v h="$header:" \
                'tolower($1) == tolower(h) { print $2 }')
            [[ "$status" == HIT ]] && break
        else
            die "$name: the second GET of ${file##*/} did not return its bytes"
        fi
        sleep 0.2
    done
    [[ "$status" == HIT ]] || die "$name: ${file##*/} is not served as a hit ($header: ${status:-none})"
    say "$name: ${file##*/} cached ($header: HIT, bytes identical)"
}

code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NODE_PORT/$SMALL") || code=000
[[ "$code" == 401 ]] || die "cdn-node answered $code without a token, not 401"
# warm_both KEY: KEY cached by both servers, then on disk. Each scenario warms
# its own object just before it runs, so that no measurement follows the
# writing of another scenario's (a gigabyte per server for the large one:
# the machine stays slower for a while after that, even once it is synced).
warm_both() {
    warm cdn-node "$(node_url "$1")" X-Cache "$OBJECTS/$BUCKET/$1"
    warm nginx "$(nginx_url "$1")" X-Cache-Status "$OBJECTS/$BUCKET/$1"
    rm -f "$SCRATCH/check.head"
    # nginx leaves its cache files to the kernel's writeback (cdn-node syncs
    # each object as it commits it): flush them now, so that no measurement
    # shares the CPUs with the writing out of what was just cached.
    sync
}

# --- measuring ------------------------------------------------------------

RESULTS="$SCRATCH/results.txt"
: >"$RESULTS"

nginx_workers() { pgrep -P "$NGINX_PID" -f 'worker process' | tr '\n' ' ' || true; }
# Varnish's manager process and its cache child (which serves).
varnish_pids() { echo "$VARNISH_PID $(pgrep -P "$VARNISH_PID" | tr '\n' ' ')"; }

server_label() {
    case "$1" in
        node) echo cdn-node ;;
        nginx-slice) echo 'nginx slice 1m' ;;
        varnish) echo 'Varnish malloc' ;;
        *) echo 'nginx proxy_cache' ;;
    esac
}

rss_kib() {
    local total=0 pid kib
    for pid in "$@"; do
        kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || kib=0
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

# measure SCENARIO SERVER URL WRK_ARGS... : one wrk run, its figures and the
# server's CPU time appended to RESULTS; with MEMORY=1 the server's RSS is
# sampled throughout.
measure() {
    local scenario=$1 server=$2 url=$3
    shift 3
    local pids sampler="" peak_file="$SCRATCH/$scenario-$server.rss" extra=""
    case "$server" in
        node) pids=$NODE_PID ;;
        varnish) pids=$(varnish_pids) ;;
        *) pids=$(nginx_workers) ;;
    esac
    # shellcheck disable=SC2086
    kill -0 $pids 2>/dev/null || die "$server is not running"
    if [[ "${MEMORY:-0}" == 1 ]]; then
        # shellcheck disable=SC2086
        extra="idle_kib=$(rss_kib $pids)"
        # shellcheck disable=SC2086
        bash "$HERE/rss-peak.sh" "$peak_file" $pids &
        sampler=$!
        STARTED+=("$sampler TERM")
    fi
    local cpu_before cpu_after log="$SCRATCH/wrk-$scenario-$server.txt"
    local script_args=()
    # WRK_SCRIPT_ARGS: words for the script, after the URL and "--".
    if [[ -n "${WRK_SCRIPT_ARGS:-}" ]]; then read -r -a script_args <<<"-- $WRK_SCRIPT_ARGS"; fi
    # shellcheck disable=SC2086
    cpu_before=$(cpu_seconds $pids)
    # The client's own CPU time too: on loopback what a server leaves the
    # client to do (its receive) is paid on the same cores.
    local TIMEFORMAT='%U %S' client_cpu
    client_cpu=$({ time wrk "$@" --latency -s "${WRK_SCRIPT:-$HERE/wrk-result.lua}" "$url" "${script_args[@]}" \
        >"$log" 2>&1; } 2>&1) || { cat "$log" >&2; die "wrk failed against $server"; }
    # shellcheck disable=SC2086
    cpu_after=$(cpu_seconds $pids)
    if [[ -n "$sampler" ]]; then
        stop_pid "$sampler" TERM
        unset 'STARTED[${#STARTED[@]}-1]'
        extra="$extra peak_kib=$(cat "$peak_file")"
    fi
    local line
    line=$(grep '^wrk-result ' "$log") || { cat "$log" >&2; die "wrk printed no result against $server"; }
    echo "scenario=$scenario server=$server ${line#wrk-result } $extra" \
        "cpu_s=$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN { printf "%.2f", b - a }')" \
        "client_cpu_s=$(awk -v t="$client_cpu" 'BEGIN { split(t, f, " "); printf "%.2f", f[1] + f[2] }')" >>"$RESULTS"
    # shellcheck disable=SC2086
    kill -0 $pids 2>/dev/null || die "$server exited during the run (see ${SCRATCH#"$ROOT"/}/)"
    printf '  %-18s %s\n' "$(server_label "$server")" \
        "$(python3 "$HERE/summary.py" run "$RESULTS" "$scenario" "$server")"
}

# The servers of a round in turn, the first going second in the next round.
round_order() {
    local round=$1
    shift
    local servers=("$@") n=$#
    local i
    for ((i = 0; i < n; i++)); do
        printf '%s ' "${servers[(i + round - 1) % n]}"
    done
}

# scenario SCENARIO KEY TITLE WRK_ARGS...: ROUNDS runs per server (ROUNDS=1
# in the environment of the call for one).
scenario() {
    local scenario=$1 key=$2 title=$3 round server servers=(nginx node)
    shift 3
    if [[ "$scenario" == medium ]]; then servers+=(varnish); fi
    say "$title: wrk $* --latency, $ROUNDS round(s)"
    for ((round = 1; round <= ROUNDS; round++)); do
        for server in $(round_order "$round" "${servers[@]}"); do
            measure "$scenario" "$server" "$("${server}_url" "$key")" "$@"
        done
    done
    python3 "$HERE/summary.py" pair "$RESULTS" "$scenario"
}

SMALL_ARGS=(-t2 -c50 "-d${DURATION}s")
MEDIUM_ARGS=(-t2 -c8 "-d${DURATION}s")
LARGE_ARGS=(-t2 -c200 "-d${MEM_DURATION}s" --timeout "$((MEM_DURATION + 10))s")

# small_at_rate: the 1 KiB hits again, open loop at RATE_PERCENT % of
# nginx's closed-loop rate above (benches/pop/client: each request sent at
# its time on an idle kept-alive connection or a new one, its latency
# counted from then): the servers' latency at one and the same load, which
# wrk's closed loop, each server at its own saturation, does not give.
small_at_rate() {
    say "building the open-loop client (release)"
    cargo build --release --locked --manifest-path "$ROOT/benches/pop/client/Cargo.toml" \
        --target-dir "$TARGET_DIR/pop-client" >"$SCRATCH/client-build.log" 2>&1 ||
        { cat "$SCRATCH/client-build.log" >&2; die "the open-loop client did not build"; }
    local client="$TARGET_DIR/pop-client/release/pop-client" trace="$SCRATCH/small-trace.txt"
    printf '/%s\n' "$SMALL" >"$trace"
    local rate
    rate=$(awk -v p="$RATE_PERCENT" '$1 == "scenario=small" && $2 == "server=nginx" {
            for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] += kv[2] }
        } END { if (v["duration_us"] > 0) printf "%d", v["requests"] / v["duration_us"] * 1e6 * p / 100 }' "$RESULTS")
    [[ -n "$rate" ]] || die "no nginx 1 KiB run to take the rate from"
    say "1 KiB hits at $rate req/s ($RATE_PERCENT % of nginx's rate), open loop, ${DURATION} s, $ROUNDS round(s)"
    local round server port line
    for ((round = 1; round <= ROUNDS; round++)); do
        for server in $(round_order "$round" nginx node); do
            if [[ "$server" == node ]]; then port=$NODE_PORT; else port=$NGINX_PORT; fi
            line=$("$client" --addr "127.0.0.1:$port" --trace "$trace" --query "jwt=$TOKEN" \
                --duration "$DURATION" --rate "$rate" 2>>"$SCRATCH/client-errors.log" | grep '^pop-result ') ||
                die "the open-loop client failed against $server (see ${SCRATCH#"$ROOT"/}/client-errors.log)"
            echo "scenario=small-rate server=$server rate=$rate ${line#pop-result }" >>"$RESULTS"
            printf '  %-18s %s\n' "$(server_label "$server")" \
                "$(python3 "$HERE/summary.py" run "$RESULTS" small-rate "$server")"
        done
    done
    python3 "$HERE/summary.py" pair "$RESULTS" small-rate
}

if wants small; then
    echo
    warm_both "$SMALL"
    scenario small "$SMALL" "1 KiB hits" "${SMALL_ARGS[@]}"
    if [[ -n "$RATE_PERCENT" ]]; then
        echo
        small_at_rate
    fi
fi
if wants medium; then
    echo
    warm_both "$MEDIUM"
    warm varnish "$(varnish_url "$MEDIUM")" X-Cache "$OBJECTS/$BUCKET/$MEDIUM"
    scenario medium "$MEDIUM" "10 MiB hits" "${MEDIUM_ARGS[@]}"
fi
if wants manifest; then
    echo
    # A hit answers each playlist with the token in every one of its URIs.
    for key in "$MASTER:6" "$MANIFEST:102"; do
        for attempt in fill hit; do
            curl -sS --max-time 60 -D "$SCRATCH/check.head" -o "$SCRATCH/manifest.body" \
                "$(node_url "${key%:*}")" || die "cdn-node: the $attempt GET of ${key%:*} failed"
        done
        tr -d '\r' <"$SCRATCH/check.head" | grep -qi '^x-cache: HIT' || die "cdn-node: ${key%:*} is not a hit"
        uris=$(grep -c "jwt=$TOKEN" "$SCRATCH/manifest.body") || uris=0
        ((uris == ${key#*:})) || die "cdn-node: $uris of the ${key#*:} URIs of ${key%:*} carry the token"
        say "cdn-node: ${key%:*} cached, its ${key#*:} URIs given the token ($(wc -c <"$SCRATCH/manifest.body") bytes)"
    done
    # A plain object as large as the media playlist's answer: what the
    # bytes alone cost, the rewrite left out.
    SIZED=bench/sized.bin
    head -c "$(wc -c <"$SCRATCH/manifest.body")" /dev/urandom >"$OBJECTS/$BUCKET/$SIZED"
    warm cdn-node "$(node_url "$SMALL")" X-Cache "$OBJECTS/$BUCKET/$SMALL"
    warm cdn-node "$(node_url "$SIZED")" X-Cache "$OBJECTS/$BUCKET/$SIZED"
    say "manifest hits against 1 KiB hits: wrk ${SMALL_ARGS[*]} --latency, $ROUNDS round(s)"
    order=(plain master media sized)
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((i = 0; i < 4; i++)); do
            which=${order[(round + i) % 4]}
            case "$which" in
                plain) key=$SMALL ;;
                master) key=$MASTER ;;
                sized) key=$SIZED ;;
                *) key=$MANIFEST ;;
            esac
            measure "manifest-$which" node "$(node_url "$key")" "${SMALL_ARGS[@]}"
        done
    done
    python3 "$HERE/summary.py" manifest "$RESULTS"
fi

# --- ranges of the large object ---------------------------------------------

SLICE_BYTES=$((4 * 1024 * 1024)) # cdn-node's default cache.slice_size
SEEK_BYTES=$((1024 * 1024))
LARGE_BYTES=$((LARGE_MIB * 1024 * 1024))
SEEKS="$SCRATCH/seeks.txt"
: >"$SEEKS"

# Waits until cdn-node's slice fetches, read-ahead included, are over: the
# next measurement must not share the CPUs with the last one's tail.
node_settle() {
    local deadline=$((SECONDS + 30)) last="" now="" stable=0 busy
    while ((SECONDS < deadline)); do
        busy=$(metric_sum cdn_node_slice_fetches_in_progress)
        now="$busy $(metric_sum cdn_node_origin_range_requests_total)"
        if [[ "$now" == "$last" ]]; then stable=$((stable + 1)); else stable=0; fi
        if ((stable >= 3 && busy == 0)); then return 0; fi
        last=$now
        sleep 0.25
    done
    say "WARNING: cdn-node's slice fetches did not settle within 30 s (fetches under way, range GETs: $now)"
}

# The file nginx keeps KEY's cached response in (levels=1:2, key $uri).
nginx_cache_file() {
    local h
    h=$(printf '/%s' "$1" | md5sum | cut -c1-32)
    printf '%s/%s/%s/%s' "$SCRATCH/nginx-cache/cache" "${h:31:1}" "${h:29:2}" "$h"
}

# Waits until nginx's cache folder stops growing (a fill it goes on with
# after the client's range is sent), then says how much of KEY it stored
# and deletes that copy, keeping the disk use of the scenario bounded.
nginx_settle() {
    local key=$1 deadline=$((SECONDS + 120)) last="" now stable=0 file size=0
    while ((SECONDS < deadline)); do
        now=$(du -sb "$SCRATCH/nginx-cache/cache" | cut -f1)
        if [[ "$now" == "$last" ]]; then stable=$((stable + 1)); else stable=0; fi
        ((stable >= 3)) && break
        last=$now
        sleep 0.25
    done
    ((stable >= 3)) || say "WARNING: nginx's cache folder still grew after 120 s"
    file=$(nginx_cache_file "$key")
    if [[ -f "$file" ]]; then
        size=$(stat -c %s "$file")
        rm -f "$file"
    fi
    NGINX_STORED=$size
}

purge_node() {
    local answer
    answer=$(curl -fsS --max-time 30 -X POST -H "Authorization: Bearer $(cat "$SCRATCH/admin-token")" \
        "http://127.0.0.1:$ADMIN_PORT/purge?prefix=$1") || die "cdn-node refused POST /purge?prefix=$1"
    PURGED=$(sed -n 's/.*"purged":\([0-9]*\).*/\1/p' <<<"$answer")
}

# seek_once SERVER URL FIRST LENGTH PCT REP [CURL_ARGS...]: one timed range
# GET, checked byte for byte, appended to SEEKS.
seek_once() {
    local server=$1 url=$2 first=$3 len=$4 pct=$5 rep=$6
    shift 6
    local out code size ttfb total correct=no
    out=$(curl -sS "$@" --max-time 600 -o "$SCRATCH/seek.bin" \
        -H "Range: bytes=$first-$((first + len - 1))" \
        -w '%{http_code} %{size_download} %{time_starttransfer} %{time_total}' "$url") || out="000 0 0 0"
    read -r code size ttfb total <<<"$out"
    dd if="$OBJECTS/$BUCKET/$LARGE" of="$SCRATCH/seek.want" bs=1M iflag=skip_bytes,count_bytes \
        skip="$first" count="$len" status=none
    if [[ "$code" == 206 ]] && cmp -s "$SCRATCH/seek.bin" "$SCRATCH/seek.want"; then correct=yes; fi
    SEEK_LINE="server=$server pct=$pct rep=$rep offset=$first length=$len code=$code bytes=$size ttfb_s=$ttfb total_s=$total correct=$correct"
    printf '  %-18s %2s %% rep %s: %s, %s bytes, TTFB %6.1f ms, total %7.1f ms%s\n' \
        "$(server_label "$server")" "$pct" "$rep" "$code" "$size" \
        "$(awk -v t="$ttfb" 'BEGIN { print t * 1000 }')" "$(awk -v t="$total" 'BEGIN { print t * 1000 }')" \
        "$([[ $correct == yes ]] || echo ', WRONG BYTES OR STATUS')"
}

if wants seek; then
    echo
    say "cold seeks into $LARGE_LABEL: a 1 MiB range at ${SEEK_PERCENTS[*]} % of an object neither cache holds," \
        "$SEEK_REPS repetitions (cdn-node purged before each, a new path each time for both)"
    for ((rep = 1; rep <= SEEK_REPS; rep++)); do
        # The reference: one slice of cdn-node's size straight from its origin
        # (signed, as the node asks), and from the plain nginx origin.
        # A cold seek costs cdn-node a HEAD and then the slice: time the HEAD too.
        key="bench/seek/$rep-0/$LARGE_NAME"
        s3_signed=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY"
            -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
        read -r code ttfb total < <(curl -sS -I "${s3_signed[@]}" --max-time 60 -o /dev/null \
            -w '%{http_code} %{time_starttransfer} %{time_total}\n' "http://127.0.0.1:$S3_PORT/$BUCKET/$key" ||
            echo "000 0 0")
        echo "server=s3-head pct=0 rep=$rep code=$code ttfb_s=$ttfb total_s=$total correct=$([[ $code == 200 ]] && echo yes || echo no)" >>"$SEEKS"
        seek_once s3 "http://127.0.0.1:$S3_PORT/$BUCKET/$key" 0 "$SLICE_BYTES" 0 "$rep" "${s3_signed[@]}"
        echo "$SEEK_LINE" >>"$SEEKS"
        seek_once origin "http://127.0.0.1:$ORIGIN_PORT/$key" 0 "$SLICE_BYTES" 0 "$rep"
        echo "$SEEK_LINE" >>"$SEEKS"
        for pct in "${SEEK_PERCENTS[@]}"; do
            key="bench/seek/$rep-$pct/$LARGE_NAME"
            # 1 MiB aligned, so cdn-node's slice and nginx's file offsets agree.
            first=$((LARGE_BYTES * pct / 100 / SEEK_BYTES * SEEK_BYTES))
            seek_once nginx "$(nginx_url "$key")" "$first" "$SEEK_BYTES" "$pct" "$rep"
            nginx_settle "$key"
            echo "$SEEK_LINE nginx_stored=$NGINX_STORED" >>"$SEEKS"
            # nginx's gigabyte, written and deleted: on disk before cdn-node's turn.
            sync
            purge_node /bench/seek/
            seek_once node "$(node_url "$key")" "$first" "$SEEK_BYTES" "$pct" "$rep"
            echo "$SEEK_LINE purged_before=$PURGED" >>"$SEEKS"
            node_settle
        done
    done
    purge_node /bench/seek/
    node_settle
    echo
    BENCH_LARGE_BYTES=$LARGE_BYTES BENCH_SLICE_BYTES=$SLICE_BYTES python3 "$HERE/summary.py" seeks "$SEEKS"
fi
# After the cold seeks, which it used to precede: right after 200 clients
# read the large object, the first cold seeks met stalls of 10-30 ms that
# came from the machine, not the server (none when the seeks run alone).
if wants large; then
    echo
    warm_both "$LARGE"
    # One run each: this one is about the node's peak memory.
    MEMORY=1 ROUNDS=1 scenario large "$LARGE" "$LARGE_LABEL hits, 200 clients, memory sampled every 200 ms" "${LARGE_ARGS[@]}"
fi

# warm_ranges NAME URL: reads the whole object through a cache in 16 MiB
# ranges, in order; together they must be the object's bytes.
warm_ranges() {
    local name=$1 url=$2 chunk=$((16 * 1024 * 1024)) first
    for ((first = 0; first < LARGE_BYTES; first += chunk)); do
        curl -fsS --max-time 600 -H "Range: bytes=$first-$((first + chunk - 1))" "$url" || exit 1
    done | cmp -s - "$OBJECTS/$BUCKET/$LARGE" ||
        die "$name: $LARGE_LABEL read in 16 MiB ranges did not return the object's bytes"
}

# probe_hit NAME URL HEADER: a 1 MiB range in the middle must be a hit with
# the right bytes.
probe_hit() {
    local name=$1 url=$2 header=$3 first=$((LARGE_BYTES / 2 + SEEK_BYTES)) status="" i
    dd if="$OBJECTS/$BUCKET/$LARGE" of="$SCRATCH/seek.want" bs=1M iflag=skip_bytes,count_bytes \
        skip="$first" count="$SEEK_BYTES" status=none
    for ((i = 0; i < 50; i++)); do
        curl -sS --max-time 60 -D "$SCRATCH/check.head" -o "$SCRATCH/seek.bin" \
            -H "Range: bytes=$first-$((first + SEEK_BYTES - 1))" "$url" || true
        cmp -s "$SCRATCH/seek.bin" "$SCRATCH/seek.want" || die "$name: a 1 MiB range of the warm object has wrong bytes"
        status=$(tr -d '\r' <"$SCRATCH/check.head" | awk -v h="$header:" 'tolower($1) == tolower(h) { print $2 }')
        [[ "$status" == HIT ]] && break
        sleep 0.2
    done
    [[ "$status" == HIT ]] || die "$name: a 1 MiB range of the warm object is not a hit ($header: ${status:-none})"
}

RANGE_ARGS=(-t2 -c8 "-d${DURATION}s")
if wants ranges; then
    echo
    say "warming the range object: $LARGE_LABEL read once through each cache in 16 MiB ranges, in order"
    warm_start=$SECONDS
    warm_ranges "nginx slice 1m" "$(nginx_slice_url "$RANGE_KEY")"
    say "nginx slice 1m: warm in $((SECONDS - warm_start)) s"
    probe_hit "nginx slice 1m" "$(nginx_slice_url "$RANGE_KEY")" X-Cache-Status
    warm_start=$SECONDS
    warm_ranges cdn-node "$(node_url "$RANGE_KEY")"
    say "cdn-node: warm in $((SECONDS - warm_start)) s"
    node_settle
    probe_hit cdn-node "$(node_url "$RANGE_KEY")" X-Cache
    rm -f "$SCRATCH/check.head"

    say "warm random 1 MiB ranges of $LARGE_LABEL: wrk ${RANGE_ARGS[*]} --latency -s random-range.lua (seed $RANGE_SEED)"
    export WRK_SCRIPT="$HERE/random-range.lua" WRK_SCRIPT_ARGS="$LARGE_BYTES $SEEK_BYTES $RANGE_SEED"
    range_gets=0
    for ((round = 1; round <= ROUNDS; round++)); do
        for server in $(round_order "$round" nginx-slice node); do
            if [[ "$server" == node ]]; then
                before=$(metric_sum cdn_node_origin_range_requests_total)
                measure ranges node "$(node_url "$RANGE_KEY")" "${RANGE_ARGS[@]}"
                range_gets=$((range_gets + $(metric_sum cdn_node_origin_range_requests_total) - before))
            else
                measure ranges nginx-slice "$(nginx_slice_url "$RANGE_KEY")" "${RANGE_ARGS[@]}"
            fi
        done
    done
    unset WRK_SCRIPT WRK_SCRIPT_ARGS
    echo "scenario=ranges-origin server=node range_gets=$range_gets" >>"$RESULTS"
    python3 "$HERE/summary.py" pair "$RESULTS" ranges
fi

# --- summary --------------------------------------------------------------

# The node promises tokens never reach its logs: check its own log too.
leaks=$(grep -c -F "$TOKEN" "$SCRATCH/node/cdn-node.log" || true)
if [[ "$leaks" != 0 ]]; then
    say "WARNING: $leaks lines of cdn-node's error log (stderr) hold the full token," \
        "e.g. \"$(grep -F "$TOKEN" "$SCRATCH/node/cdn-node.log" | sed 's/\x1b\[[0-9;]*m//g' | head -1 |
            sed -E 's/.*(Fail[^,]*|ERROR[^:]*).*(GET [^ ]*jwt=.{10}).*/\1 ... \2/')...\""
fi
leaks=$(grep -c -F "$TOKEN" "$SCRATCH/node/access.log" || true)
[[ "$leaks" == 0 ]] || say "WARNING: $leaks lines of cdn-node's access log hold the full token"

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at end: $LOAD_END"

export BENCH_NPROC BENCH_CPU BENCH_KERNEL BENCH_DATE BENCH_LOAD_START BENCH_LOAD_END \
    BENCH_COMMAND BENCH_NODE_VERSION BENCH_NGINX_VERSION BENCH_WRK_VERSION BENCH_ACCESS_LOG \
    BENCH_SMALL_ARGS BENCH_MEDIUM_ARGS BENCH_LARGE_ARGS BENCH_LARGE_LABEL BENCH_RANGE_ARGS \
    BENCH_SEEK_REPS BENCH_LARGE_BYTES BENCH_SLICE_BYTES BENCH_ROUNDS BENCH_RATE_PERCENT
BENCH_NPROC=$(nproc)
BENCH_CPU=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
BENCH_KERNEL=$(uname -sr)
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
BENCH_LOAD_START=$LOAD_START
BENCH_LOAD_END=$LOAD_END
BENCH_COMMAND=$COMMAND
BENCH_NODE_VERSION=$("$NODE" --version | awk '{ print $NF }')
if commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    BENCH_NODE_VERSION="$BENCH_NODE_VERSION ($commit)"
fi
BENCH_NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
BENCH_WRK_VERSION=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $1, $2 }')
BENCH_ACCESS_LOG=$ACCESS_LOG
BENCH_SMALL_ARGS="wrk ${SMALL_ARGS[*]}"
BENCH_MEDIUM_ARGS="wrk ${MEDIUM_ARGS[*]}"
BENCH_LARGE_ARGS="wrk ${LARGE_ARGS[*]}"
BENCH_LARGE_LABEL=$LARGE_LABEL
BENCH_RANGE_ARGS="wrk ${RANGE_ARGS[*]}"
BENCH_SEEK_REPS=$SEEK_REPS
BENCH_ROUNDS=$ROUNDS
BENCH_RATE_PERCENT=$RATE_PERCENT
BENCH_LARGE_BYTES=$LARGE_BYTES
BENCH_SLICE_BYTES=$SLICE_BYTES

echo
echo "## Summary (paste into BENCHMARKS.md)"
echo
python3 "$HERE/summary.py" table "$RESULTS" "$SEEKS"
completed
