#!/usr/bin/env bash
# Soak: cdn-node under mixed traffic at about 80 % of its saturation for ten
# minutes, on loopback, checking that nothing drifts.
#
# Usage: benches/soak.sh
#
#   DURATION=600   seconds of the paced run
#   LOAD=80        the paced run's rate, in % of the measured saturation
#   SAT_SECONDS=15 seconds of the saturation run before it, and of the
#                  calibration run between them
#   WARMUP=60      seconds of the paced run left out of the growth checks
#   WINDOW=60      seconds averaged at each end of the growth checks
#   QUICK=1        smoke run: DURATION=60, SAT_SECONDS=5, WARMUP=20, WINDOW=15
#
# What runs, all on 127.0.0.1 with free ports: s3s-fs (checks SigV4) as the
# origin, and cdn-node with a 64 MiB disk cache (benches/load/'s
# configuration), its access log written (to /dev/null). The traffic is five
# classes, one wrk each (benches/soak/class.lua), side by side:
#
#   hit       GETs of 32 hot 16 KiB objects                  200
#   miss      GETs over a catalogue of 400 objects of 256 KiB
#             (100 MiB: larger than the cache)               200
#   range     random 64 KiB ranges of a 4 MiB object          206
#   notoken   GETs without a token                           401
#   badtoken  GETs with a token whose signature is wrong     401
#
# First all five run unpaced for SAT_SECONDS: each class's rate is its
# saturation share. Each then runs paced at LOAD % of that rate: a
# connection waits a fixed time after each answer, so a calibration run of
# SAT_SECONDS measures what the pacing gives under this load, and the
# connections are scaled to make up for the time answers take. Then the
# soak: DURATION seconds, while the script purges (admin API: a hot object,
# or a tenth of the catalogue by prefix) every 10 s and sends SIGHUP (reload
# of keys and denylist) every 60 s, and samples the node's RSS, open file
# descriptors and cache size (/proc and /metrics) every 10 s.
#
# Passes when: every answer had its class's status (no socket error either),
# every purge answered 200 and every reload left the node running; RSS and
# open descriptors grew less than 10 % from the first WINDOW after warm-up
# to the last one; the cache stayed within max_size in every sample (plus
# the fills that may be committing when a sample is taken: an object is
# committed before the eviction it causes) and on disk at the end; the
# node's log has no panic. It prints a summary and
# exits 1 when a criterion failed.
#
# Installs what is missing (wrk, curl, python3, s3s-fs; as root or with
# sudo), builds the release binary, works in target/soak/ and stops every
# process it started when it ends, fails or is interrupted.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
HERE="$ROOT/benches/soak"

COMMAND="benches/soak.sh"
for v in QUICK WINDOW WARMUP SAT_SECONDS LOAD DURATION; do
    if [[ -n "${!v:-}" ]]; then COMMAND="$v=${!v} $COMMAND"; fi
done

QUICK=${QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
    DURATION=${DURATION:-60}
    SAT_SECONDS=${SAT_SECONDS:-5}
    WARMUP=${WARMUP:-20}
    WINDOW=${WINDOW:-15}
else
    DURATION=${DURATION:-600}
    SAT_SECONDS=${SAT_SECONDS:-15}
    WARMUP=${WARMUP:-60}
    WINDOW=${WINDOW:-60}
fi
LOAD=${LOAD:-80}
for v in DURATION SAT_SECONDS WARMUP WINDOW LOAD; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "soak: $v must be a whole number above 0" >&2; exit 2; }
done
((LOAD <= 100)) || { echo "soak: LOAD is a percentage of saturation: at most 100" >&2; exit 2; }
((WARMUP + 2 * WINDOW <= DURATION)) ||
    { echo "soak: DURATION must leave two WINDOWs after WARMUP (the growth checks compare them)" >&2; exit 2; }

BUCKET=videos
MAX_SIZE_MIB=64
HOT=32
HOT_BYTES=16384
CATALOGUE=400
CATALOGUE_BYTES=262144
RANGE_BYTES=$((4 * 1024 * 1024))
SAMPLE_SECONDS=10
PURGE_SECONDS=10
HUP_SECONDS=60
# Connections of each class in the saturation run.
declare -A SAT_CONNECTIONS=([hit]=32 [miss]=16 [range]=8 [notoken]=4 [badtoken]=4)
CLASSES=(hit miss range notoken badtoken)
# A paced connection waits at least this long between requests (wrk keeps
# whole milliseconds: the calibration makes up for the rounding). Fewer
# connections, each with a shorter pause, cost the machine less.
MIN_PACE_MS=10

BENCH=soak
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at start: $LOAD_START"

need wrk=wrk curl=curl python3=python3
bash "$ROOT/deploy/setup.sh" build s3
build_node

# The objects and the cache are large; the logs and results stay.
bench_cleanup() { if [[ -d "$SCRATCH" ]]; then rm -rf "$SCRATCH/objects" "$SCRATCH/node/cache"; fi; }

# --- scratch folder, objects and secrets ----------------------------------

scratch soak
OBJECTS="$SCRATCH/objects"
mkdir -p "$OBJECTS/$BUCKET/soak/hot" "$OBJECTS/$BUCKET/soak/cat"

say "writing the objects ($HOT hot of $((HOT_BYTES / 1024)) KiB, $CATALOGUE of $((CATALOGUE_BYTES / 1024)) KiB, one of $((RANGE_BYTES / 1048576)) MiB)"
python3 - "$OBJECTS/$BUCKET/soak" "$HOT" "$HOT_BYTES" "$CATALOGUE" "$CATALOGUE_BYTES" "$RANGE_BYTES" <<'EOF'
import os, sys
base, hot, hot_bytes, cat, cat_bytes, range_bytes = sys.argv[1], *map(int, sys.argv[2:])
for i in range(hot):
    with open(f"{base}/hot/h{i}.bin", "wb") as f:
        f.write(os.urandom(hot_bytes))
for i in range(cat):
    with open(f"{base}/cat/c{i}.bin", "wb") as f:
        f.write(os.urandom(cat_bytes))
with open(f"{base}/range.bin", "wb") as f:
    f.write(os.urandom(range_bytes))
EOF

bench_secrets

read -r S3_PORT NODE_PORT ADMIN_PORT < <(choose_ports 127.0.0.1 0 0 0)
[[ -n "${ADMIN_PORT:-}" ]] || die "could not choose ports"

# --- the origin and the node ----------------------------------------------

start_s3 127.0.0.1 "$S3_PORT" "$OBJECTS" "$SCRATCH/s3s-fs.log" "$READY_SECONDS"

# stdout is the access log: written, not kept (ten minutes of it is gigabytes).
start_node /dev/null "$LOAD_DIR/cdn-node.yaml.in" ORIGIN_PORT="$S3_PORT" BUCKET="$BUCKET" \
    MAX_SIZE="${MAX_SIZE_MIB}MiB" MAX_OBJECT_SIZE="${MAX_SIZE_MIB}MiB" ACCESS_LOG=true \
    MEMORY_OBJECT_MAX=16MiB

TOKEN=$(mint_token "$SCRATCH/hmac-secret" bench soak 86400) || exit 1
# The same token with another signature: refused (bad_signature).
SIGNATURE=${TOKEN##*.}
if [[ "${SIGNATURE:0:1}" == A ]]; then FIRST=B; else FIRST=A; fi
BAD_TOKEN="${TOKEN%.*}.$FIRST${SIGNATURE:1}"

# Each class: expected status, path (%d: a random number below the count),
# count, and the size of the object whose ranges it asks (0: no range).
declare -A EXPECT=([hit]=200 [miss]=200 [range]=206 [notoken]=401 [badtoken]=401)
declare -A TARGET_PATH=(
    [hit]="/soak/hot/h%d.bin?jwt=$TOKEN"
    [miss]="/soak/cat/c%d.bin?jwt=$TOKEN"
    [range]="/soak/range.bin?jwt=$TOKEN"
    [notoken]="/soak/hot/h%d.bin"
    [badtoken]="/soak/hot/h%d.bin?jwt=$BAD_TOKEN"
)
declare -A COUNT=([hit]=$HOT [miss]=$CATALOGUE [range]=1 [notoken]=$HOT [badtoken]=$HOT)
declare -A RANGE_OF=([hit]=0 [miss]=0 [range]=$RANGE_BYTES [notoken]=0 [badtoken]=0)

# Every hot object and the range object cached before anything is measured.
for ((i = 0; i < HOT; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NODE_PORT/soak/hot/h$i.bin?jwt=$TOKEN") || code=000
    [[ "$code" == 200 ]] || die "warming soak/hot/h$i.bin answered $code"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NODE_PORT/soak/range.bin?jwt=$TOKEN") || code=000
[[ "$code" == 200 ]] || die "warming soak/range.bin answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NODE_PORT/soak/hot/h0.bin?jwt=$BAD_TOKEN") || code=000
[[ "$code" == 401 ]] || die "a bad token answered $code, not 401"

# run_classes PHASE SECONDS: one wrk per class, side by side, each with its
# CONNECTIONS and PACE (ms; 0: unpaced); results in PHASE-CLASS.txt.
declare -A CONNECTIONS PACE
run_classes() {
    local phase=$1 seconds=$2 class pids=() before=${#STARTED[@]}
    for class in "${CLASSES[@]}"; do
        local pace_env=()
        if ((PACE[$class] > 0)); then pace_env=("SOAK_PACE_MS=${PACE[$class]}"); fi
        env "${pace_env[@]}" wrk -t1 "-c${CONNECTIONS[$class]}" "-d${seconds}s" --timeout 10s \
            -s "$HERE/class.lua" "http://127.0.0.1:$NODE_PORT/" -- \
            "$class" "${EXPECT[$class]}" "${TARGET_PATH[$class]}" "${COUNT[$class]}" \
            "${RANGE_OF[$class]}" "$RANDOM" >"$SCRATCH/$phase-$class.txt" 2>&1 &
        pids+=($!)
        STARTED+=("$! TERM")
    done
    local pid failed=0
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=1
    done
    STARTED=("${STARTED[@]:0:before}")
    if ((failed)); then
        for class in "${CLASSES[@]}"; do show_log "$SCRATCH/$phase-$class.txt"; done
        die "wrk failed in the $phase run"
    fi
}

# field FILE NAME: a NAME=VALUE field of FILE's soak-result line.
field() {
    local line
    line=$(grep '^soak-result ' "$1") || { cat "$1" >&2; die "no result in ${1#"$ROOT"/}"; }
    tr ' ' '\n' <<<"$line" | sed -n "s/^$2=//p"
}

# --- saturation -----------------------------------------------------------

say "saturation: the five classes unpaced for ${SAT_SECONDS}s"
for class in "${CLASSES[@]}"; do
    CONNECTIONS[$class]=${SAT_CONNECTIONS[$class]}
    PACE[$class]=0
done
run_classes saturation "$SAT_SECONDS"
declare -A SAT_RATE TARGET_RATE
SAT_TOTAL=0
for class in "${CLASSES[@]}"; do
    file="$SCRATCH/saturation-$class.txt"
    SAT_RATE[$class]=$(awk -v n="$(field "$file" requests)" -v us="$(field "$file" duration_us)" \
        'BEGIN { printf "%.0f", n * 1e6 / us }')
    SAT_TOTAL=$((SAT_TOTAL + SAT_RATE[$class]))
    # The paced rate, the connections that make it with at least MIN_PACE_MS
    # between a connection's requests, and that pause.
    TARGET_RATE[$class]=$(((SAT_RATE[$class] * LOAD + 50) / 100))
    ((TARGET_RATE[$class] >= 1)) || TARGET_RATE[$class]=1
    CONNECTIONS[$class]=$(((TARGET_RATE[$class] * MIN_PACE_MS + 999) / 1000))
    PACE[$class]=$(((CONNECTIONS[$class] * 1000 + TARGET_RATE[$class] / 2) / TARGET_RATE[$class]))
    say "  $class: ${SAT_RATE[$class]} req/s unpaced; paced at ${TARGET_RATE[$class]} req/s (${CONNECTIONS[$class]} connections, ${PACE[$class]} ms apart)"
done
say "saturation: $SAT_TOTAL req/s in all; the soak runs at $LOAD % of it"

# Each answer's own time adds to a connection's pause: what the pacing
# gives is measured, and the connections scaled to the target (at most
# three times as many).
say "calibration: the paced classes for ${SAT_SECONDS}s"
run_classes calibration "$SAT_SECONDS"
for class in "${CLASSES[@]}"; do
    file="$SCRATCH/calibration-$class.txt"
    got=$(awk -v n="$(field "$file" requests)" -v us="$(field "$file" duration_us)" \
        'BEGIN { printf "%.0f", n * 1e6 / us }')
    ((got >= 1)) || got=1
    scaled=$(((CONNECTIONS[$class] * TARGET_RATE[$class] + got / 2) / got))
    ((scaled <= 3 * CONNECTIONS[$class])) || scaled=$((3 * CONNECTIONS[$class]))
    ((scaled >= 1)) || scaled=1
    say "  $class: $got req/s with ${CONNECTIONS[$class]} connections; $scaled for ${TARGET_RATE[$class]} req/s"
    CONNECTIONS[$class]=$scaled
done

# --- the soak -------------------------------------------------------------

SAMPLES="$SCRATCH/samples.tsv"
EVENTS="$SCRATCH/events.txt"
: >"$EVENTS"
metric() {
    awk -v name="$2" '$1 == name { print $2; found = 1; exit } END { if (!found) print "nan" }' <<<"$1"
}

# Every SAMPLE_SECONDS: seconds since the start, RSS (KiB), open file
# descriptors, stored bytes, max bytes.
sampler() {
    local started=$SECONDS metrics rss fds
    printf 'seconds\trss_kib\tfds\tstored_bytes\tmax_bytes\n' >"$SAMPLES"
    while kill -0 "$NODE_PID" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$NODE_PID/status" 2>/dev/null) || rss=nan
        fds=$(find "/proc/$NODE_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) || fds=nan
        metrics=$(curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics") || metrics=""
        printf '%s\t%s\t%s\t%s\t%s\n' "$((SECONDS - started))" "$rss" "$fds" \
            "$(metric "$metrics" cdn_node_cache_stored_bytes)" \
            "$(metric "$metrics" cdn_node_cache_max_bytes)" >>"$SAMPLES"
        sleep "$SAMPLE_SECONDS"
    done
}

# Every PURGE_SECONDS a purge (a hot object, or a tenth of the catalogue by
# prefix, in turn), every HUP_SECONDS a SIGHUP; each outcome in EVENTS.
operator() {
    local started=$SECONDS next_hup=$HUP_SECONDS n=0 query code body
    while kill -0 "$NODE_PID" 2>/dev/null; do
        sleep "$PURGE_SECONDS"
        n=$((n + 1))
        if ((n % 2)); then
            query="path=/soak/hot/h$((RANDOM % HOT)).bin"
        else
            query="prefix=/soak/cat/c$((RANDOM % 10))"
        fi
        body=$(curl -s -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -w ' %{http_code}' \
            --max-time 10 "http://127.0.0.1:$ADMIN_PORT/purge?$query") || body="- 000"
        code=${body##* }
        if [[ "$code" == 200 && "$body" == '{"purged":'* ]]; then
            echo "purge ok $query ${body% *}" >>"$EVENTS"
        else
            echo "purge failed $query $body" >>"$EVENTS"
        fi
        if ((SECONDS - started >= next_hup)); then
            next_hup=$((next_hup + HUP_SECONDS))
            if kill -HUP "$NODE_PID" 2>/dev/null && sleep 1 && kill -0 "$NODE_PID" 2>/dev/null; then
                echo "hup ok" >>"$EVENTS"
            else
                echo "hup failed" >>"$EVENTS"
            fi
        fi
    done
}

say "soak: ${DURATION}s at $LOAD % of saturation, purges every ${PURGE_SECONDS}s, SIGHUP every ${HUP_SECONDS}s"
sampler &
SAMPLER_PID=$!
STARTED+=("$SAMPLER_PID TERM")
operator &
OPERATOR_PID=$!
STARTED+=("$OPERATOR_PID TERM")
CPU_START=$(awk '{ print $14 + $15 }' "/proc/$NODE_PID/stat")
run_classes soak "$DURATION"
CPU_END=$(awk '{ print $14 + $15 }' "/proc/$NODE_PID/stat" 2>/dev/null) || CPU_END=$CPU_START
stop_pid "$OPERATOR_PID" TERM
stop_pid "$SAMPLER_PID" TERM
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the verdict ----------------------------------------------------------

failures=()
node_alive=yes
kill -0 "$NODE_PID" 2>/dev/null || { node_alive=no; failures+=("the node exited"); }
if grep -q panicked "$SCRATCH/node/cdn-node.log"; then
    failures+=("the node's log has a panic")
fi
# The files of the stored objects (bodies and meta files), as max_size
# counts them.
disk_bytes=$(find "$SCRATCH/node/cache/objects" -type f -printf '%s\n' | awk '{ n += $1 } END { printf "%.0f", n }')
((disk_bytes <= MAX_SIZE_MIB * 1048576)) ||
    failures+=("the cache's objects take $disk_bytes bytes on disk, over max_size")
# A sample may catch fills committed and not yet followed by their
# eviction: one object per miss connection at most.
ALLOWANCE=$((CONNECTIONS[miss] * CATALOGUE_BYTES))

printf '\n'
say "summary ($COMMAND; $(date -u +%Y-%m-%d); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs)"
say "load average at start $LOAD_START, at the end $LOAD_END"
printf '\n| class | expected | paced rate (req/s) | achieved (req/s) | answers | unexpected | socket errors | p50 | p99 |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
total_requests=0
for class in "${CLASSES[@]}"; do
    file="$SCRATCH/soak-$class.txt"
    requests=$(field "$file" requests)
    unexpected=$(field "$file" unexpected)
    errors=$(($(field "$file" err_connect) + $(field "$file" err_read) + $(field "$file" err_write) + $(field "$file" err_timeout)))
    achieved=$(awk -v n="$requests" -v us="$(field "$file" duration_us)" 'BEGIN { printf "%.0f", n * 1e6 / us }')
    total_requests=$((total_requests + requests))
    printf '| %s | %s | %s | %s | %s | %s | %s | %.1f ms | %.1f ms |\n' "$class" "${EXPECT[$class]}" \
        "${TARGET_RATE[$class]}" "$achieved" "$requests" "$unexpected" "$errors" \
        "$(awk -v v="$(field "$file" p50_us)" 'BEGIN { print v / 1000 }')" \
        "$(awk -v v="$(field "$file" p99_us)" 'BEGIN { print v / 1000 }')"
    ((unexpected == 0)) || failures+=("$class: $unexpected unexpected statuses ($(field "$file" statuses))")
    ((errors == 0)) || failures+=("$class: $errors socket errors")
done
purges_ok=$(grep -c '^purge ok' "$EVENTS" || true)
purges_failed=$(grep -c '^purge failed' "$EVENTS" || true)
hups_ok=$(grep -c '^hup ok' "$EVENTS" || true)
hups_failed=$(grep -c '^hup failed' "$EVENTS" || true)
((purges_failed == 0)) || failures+=("$purges_failed purges failed: $(grep -m1 '^purge failed' "$EVENTS")")
((hups_failed == 0)) || failures+=("$hups_failed reloads failed")
((purges_ok > 0)) || failures+=("no purge ran")

# Growth: the mean of the first WINDOW after warm-up against the mean of the
# last WINDOW; the cache size against max_size in every sample.
read -r rss_first rss_last fds_first fds_last stored_max max_bytes over samples < <(
    awk -F'\t' -v warm="$WARMUP" -v end="$DURATION" -v win="$WINDOW" -v allow="$ALLOWANCE" '
        NR == 1 { next }
        { n++ }
        $1 >= warm && $1 < warm + win { r1 += $2; f1 += $3; c1++ }
        $1 >= end - win && $1 <= end { r2 += $2; f2 += $3; c2++ }
        $4 != "nan" && $4 + 0 > smax { smax = $4 + 0 }
        $5 != "nan" { mb = $5 + 0 }
        $4 != "nan" && $5 != "nan" && $4 + 0 > $5 + allow { over++ }
        END {
            printf "%.0f %.0f %.0f %.0f %.0f %.0f %d %d\n",
                c1 ? r1 / c1 : 0, c2 ? r2 / c2 : 0, c1 ? f1 / c1 : 0, c2 ? f2 / c2 : 0,
                smax, mb, over, n
        }' "$SAMPLES")
growth() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%+.1f", (b - a) * 100 / a; else print "nan" }'; }
rss_growth=$(growth "$rss_first" "$rss_last")
fds_growth=$(growth "$fds_first" "$fds_last")
awk -v g="$rss_growth" 'BEGIN { exit !(g != "nan" && g < 10) }' ||
    failures+=("RSS grew $rss_growth % (${rss_first} KiB to ${rss_last} KiB)")
awk -v g="$fds_growth" 'BEGIN { exit !(g != "nan" && g < 10) }' ||
    failures+=("open descriptors grew $fds_growth % ($fds_first to $fds_last)")
((over == 0)) || failures+=("the cache was over max_size (plus $ALLOWANCE bytes of fills) in $over samples")

cpu_seconds=$(awk -v a="$CPU_START" -v b="$CPU_END" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", (b - a) / hz }')
printf '\n| check | figure |\n|---|---|\n'
printf '| saturation (unpaced, %s s) | %s req/s |\n' "$SAT_SECONDS" "$SAT_TOTAL"
printf '| soak | %s s, %s requests, %s req/s (%s %% of saturation) |\n' "$DURATION" "$total_requests" \
    "$(awk -v n="$total_requests" -v s="$DURATION" 'BEGIN { printf "%.0f", n / s }')" \
    "$(awk -v n="$total_requests" -v s="$DURATION" -v t="$SAT_TOTAL" 'BEGIN { printf "%.0f", n * 100 / s / t }')"
printf '| node CPU during the soak | %s s of %s s |\n' "$cpu_seconds" "$DURATION"
printf '| RSS, mean of the first %s s after warm-up → of the last %s s | %s MiB → %s MiB (%s %%) |\n' "$WINDOW" "$WINDOW" \
    "$(awk -v k="$rss_first" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v k="$rss_last" 'BEGIN { printf "%.1f", k / 1024 }')" "$rss_growth"
printf '| open file descriptors, same windows | %s → %s (%s %%) |\n' "$fds_first" "$fds_last" "$fds_growth"
printf '| cache: largest stored / max_size | %s MiB / %s MiB (over it plus %s MiB of fills committing in %s of %s samples) |\n' \
    "$(awk -v b="$stored_max" 'BEGIN { printf "%.1f", b / 1048576 }')" \
    "$(awk -v b="$max_bytes" 'BEGIN { printf "%.0f", b / 1048576 }')" \
    "$(awk -v b="$ALLOWANCE" 'BEGIN { printf "%.1f", b / 1048576 }')" "$over" "$samples"
printf '| cache objects on disk at the end (files) | %s MiB |\n' "$(awk -v b="$disk_bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
printf '| purges / SIGHUP reloads | %s ok, %s failed / %s ok, %s failed |\n' \
    "$purges_ok" "$purges_failed" "$hups_ok" "$hups_failed"
printf '| node running at the end, no panic | %s |\n' "$node_alive"
printf '\n'

completed
if ((${#failures[@]} > 0)); then
    say "FAILED:"
    printf '  - %s\n' "${failures[@]}"
    exit 1
fi
say "passed: every criterion met. Samples and wrk output: ${SCRATCH#"$ROOT"/}/"
