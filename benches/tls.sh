#!/usr/bin/env bash
# HTTPS benchmark: cdn-node against nginx proxy_cache, both terminating TLS
# with the same self-signed certificates on loopback, side by side in one
# run, in alternating order; for 10 MiB hits also against Varnish (malloc
# storage) behind hitch, as Varnish is served over HTTPS.
#
# Usage: benches/tls.sh
#
#   DURATION=8       seconds of each hit run (h1, h2, large)
#   HS_SECONDS=8     seconds of each new-connection run (full, resumed)
#   HS_CLIENTS=4     client processes of the new-connection runs
#   ROUNDS=3         runs per server and scenario, alternating which server
#                    goes first (QUICK: 1)
#   QUICK=1          smoke run: 2 s runs, one round
#   ACCESS_LOG=true  cdn-node's log.access_stdout (to a file); nginx logs
#                    each request too (buffered), or neither does (false)
#   SCENARIOS=h1,h2,large,full,resumed   the scenarios, comma-separated,
#                    always run in this order
#   KEYS=ecdsa,rsa   the certificates of the new-connection scenarios
#
# Scenarios, all on one 1 KiB object both servers hold (the token in every
# URL: cdn-node checks it, nginx ignores it):
#   h1       HTTP/1.1 over TLS: wrk -t2 -c50 (kept-alive connections)
#   h2       HTTP/2: h2load -c50 -m10 -t2 (ten streams in flight on each)
#   full     new connections, each a full TLS 1.3 handshake (no session
#            offered) and one HTTP/1.0 GET: HS_CLIENTS `openssl s_time -new`
#            processes at once
#   resumed  the same with `s_time -reuse`: each connection offers the
#            session (ticket) of the previous one; the share s_time reports
#            resumed is printed
# and one on a 10 MiB object in the same bucket, with a third server:
#   large    HTTP/1.1 over TLS: wrk -t2 -c8 (as benches/load.sh's 10 MiB
#            hits), against cdn-node, nginx and Varnish with malloc storage
#            behind hitch (TLS terminated by hitch, handed to a PROXY
#            listener of Varnish with a PROXY v2 header); Varnish's CPU time
#            is its own plus hitch's
# h1, h2 and large run on the ECDSA P-256 listener (the certificate does not
# matter on kept-alive connections); full and resumed on each of KEYS.
#
# For each run it prints the rate, the server's CPU time (utime + stime from
# /proc) and operations per CPU-second (for large also bytes per second
# and per CPU-second); at the end, each scenario's cdn-node / nginx (and
# cdn-node / Varnish) ratios over the rounds. Installs what is missing (wrk,
# nginx, h2load, openssl, Varnish and hitch for large; as root or with
# sudo), builds the release binary, works in target/tls/ and stops every
# process it started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
HERE="$ROOT/benches/tls"

COMMAND="benches/tls.sh"
for v in KEYS SCENARIOS ACCESS_LOG HS_CLIENTS HS_SECONDS DURATION ROUNDS QUICK; do
    if [[ -n "${!v:-}" ]]; then COMMAND="$v=${!v} $COMMAND"; fi
done

QUICK=${QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
    DURATION=${DURATION:-2}
    HS_SECONDS=${HS_SECONDS:-2}
    ROUNDS=${ROUNDS:-1}
else
    DURATION=${DURATION:-8}
    HS_SECONDS=${HS_SECONDS:-8}
    ROUNDS=${ROUNDS:-3}
fi
HS_CLIENTS=${HS_CLIENTS:-4}
ACCESS_LOG=${ACCESS_LOG:-true}
SCENARIOS=${SCENARIOS:-h1,h2,large,full,resumed}
KEYS=${KEYS:-ecdsa,rsa}
BUCKET=videos

for v in DURATION HS_SECONDS HS_CLIENTS ROUNDS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "tls: $v must be a whole number" >&2; exit 2; }
done
[[ "$ACCESS_LOG" == true || "$ACCESS_LOG" == false ]] || { echo "tls: ACCESS_LOG must be true or false" >&2; exit 2; }
IFS=, read -r -a chosen <<<"$SCENARIOS"
for s in "${chosen[@]}"; do
    case "$s" in
        h1 | h2 | large | full | resumed) ;;
        *) echo "tls: SCENARIOS: unknown scenario '$s' (h1, h2, large, full, resumed)" >&2; exit 2 ;;
    esac
done
IFS=, read -r -a keys <<<"$KEYS"
for k in "${keys[@]}"; do
    case "$k" in
        rsa | ecdsa) ;;
        *) echo "tls: KEYS: unknown key '$k' (rsa, ecdsa)" >&2; exit 2 ;;
    esac
done
wants() { [[ ",$SCENARIOS," == *",$1,"* ]]; }

BENCH=tls
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at start: $LOAD_START"

need wrk=wrk nginx=nginx-light curl=curl python3=python3 h2load=nghttp2-client openssl=openssl
if wants large; then need varnishd=varnish hitch=hitch; fi
bash "$ROOT/deploy/setup.sh" build s3
build_node

# --- objects, certificates, secrets ------------------------------------------

scratch tls
OBJECTS="$SCRATCH/objects"
CERTS="$SCRATCH/certs"
mkdir -p "$OBJECTS/$BUCKET/bench" "$CERTS"
SMALL=bench/1k.bin
LARGE=bench/10m.bin
head -c 1024 /dev/urandom >"$OBJECTS/$BUCKET/$SMALL"
objects=("$SMALL")
if wants large; then
    head -c $((10 * 1024 * 1024)) /dev/urandom >"$OBJECTS/$BUCKET/$LARGE"
    objects+=("$LARGE")
fi
python3 - "$OBJECTS" "$BUCKET" "${objects[@]}" <<'PY'
import base64, hashlib, json, os, sys
root, bucket = sys.argv[1:3]
b64 = lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")
for key in sys.argv[3:]:
    with open(os.path.join(root, bucket, key), "rb") as f:
        etag = hashlib.md5(f.read()).hexdigest()
    with open(os.path.join(root, f".bucket-{b64(bucket)}.object-{b64(key)}.internal.json"), "w") as f:
        json.dump({"e_tag": etag}, f)
PY

say "making the self-signed certificates (RSA-2048, ECDSA P-256)"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$CERTS/rsa.key" -out "$CERTS/rsa.crt" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -keyout "$CERTS/ecdsa.key" -out "$CERTS/ecdsa.crt" 2>/dev/null

bench_secrets
read -r S3_PORT NODE_PORT ADMIN_PORT ORIGIN_PORT NGINX_PORT NODE_RSA NODE_ECDSA NGINX_RSA NGINX_ECDSA \
    VARNISH_PORT VARNISH_PROXY HITCH_PORT < <(choose_ports 127.0.0.1 0 0 0 0 0 0 0 0 0 0 0 0)
[[ -n "${HITCH_PORT:-}" ]] || die "could not choose ports"

# --- servers --------------------------------------------------------------

start_s3 127.0.0.1 "$S3_PORT" "$OBJECTS" "$SCRATCH/s3s-fs.log" "$READY_SECONDS"
start_node "$SCRATCH/node/access.log" "$HERE/cdn-node.yaml.in" ORIGIN_PORT="$S3_PORT" BUCKET="$BUCKET" \
    RSA_PORT="$NODE_RSA" ECDSA_PORT="$NODE_ECDSA" CERTS="$CERTS" ACCESS_LOG="$ACCESS_LOG"
start_nginx "nginx origin" "$ROOT/benches/load/nginx-origin.conf.in" "$SCRATCH/nginx-origin" "$ORIGIN_PORT" \
    ROOT="$OBJECTS/$BUCKET"
if [[ "$ACCESS_LOG" == true ]]; then
    NGINX_ACCESS_LOG="access_log $SCRATCH/nginx-cache/logs/access.log bench buffer=64k flush=1s;"
else
    NGINX_ACCESS_LOG="access_log off;"
fi
start_nginx "nginx proxy_cache" "$HERE/nginx-cache.conf.in" "$SCRATCH/nginx-cache" "$NGINX_PORT" \
    ORIGIN_PORT="$ORIGIN_PORT" RSA_PORT="$NGINX_RSA" ECDSA_PORT="$NGINX_ECDSA" CERTS="$CERTS" \
    ACCESS_LOG_DIRECTIVE="$NGINX_ACCESS_LOG"
NGINX_PID=$STARTED_PID

# Any HTTP answer over TLS (the certificate not checked) means its server is up.
http_answers_tls() {
    local code
    code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)
    [[ "$code" =~ ^[1-5][0-9][0-9]$ ]]
}

# Varnish (large): malloc storage as large as the others' caches, one thread
# pool per CPU, a plain listener (the readiness check) and a PROXY one for
# hitch, which terminates TLS with the ECDSA certificate and key in one PEM.
if wants large; then
    start_varnish "$VARNISH_PORT" 256 "127.0.0.1:$VARNISH_PROXY,PROXY"
    (umask 077 && cat "$CERTS/ecdsa.key" "$CERTS/ecdsa.crt" >"$CERTS/ecdsa.pem")
    # Started as root, hitch insists on a user to become once it has read the
    # PEM and bound its port.
    user="# (not started as root: hitch keeps this user)"
    if [[ $(id -u) -eq 0 ]]; then user='user = "nobody"'; fi
    render "$HERE/hitch.conf.in" "$SCRATCH/hitch.conf" PORT="$HITCH_PORT" BACKEND_PORT="$VARNISH_PROXY" \
        PEM="$CERTS/ecdsa.pem" USER_DIRECTIVE="$user"
    hitch --test --config="$SCRATCH/hitch.conf" >"$SCRATCH/hitch.log" 2>&1 ||
        { cat "$SCRATCH/hitch.log" >&2; die "hitch refused $SCRATCH/hitch.conf"; }
    start hitch TERM "$SCRATCH/hitch.log" "$SCRATCH/hitch.log" hitch --config="$SCRATCH/hitch.conf"
    HITCH_PID=$STARTED_PID
    wait_for hitch "$HITCH_PID" "$READY_SECONDS" "$SCRATCH/hitch.log" http_answers_tls "https://127.0.0.1:$HITCH_PORT/"
fi

TOKEN=$(mint_token "$SCRATCH/hmac-secret" bench tls 86400) || exit 1
PATH_Q="/$SMALL?jwt=$TOKEN"

# port SERVER KEY: the HTTPS port of SERVER (node, nginx, varnish: hitch)
# with KEY's certificate (hitch has the ECDSA one only).
port() {
    case "$1-$2" in
        node-rsa) echo "$NODE_RSA" ;;
        node-ecdsa) echo "$NODE_ECDSA" ;;
        nginx-rsa) echo "$NGINX_RSA" ;;
        varnish-*) echo "$HITCH_PORT" ;;
        *) echo "$NGINX_ECDSA" ;;
    esac
}

# until_hit WHAT HEADER URL FILE CURL_ARGS...: GETs URL (with CURL_ARGS)
# until HEADER says HIT, at most 50 times 0.2 s apart, each answer checked
# byte for byte against FILE; WHAT names it in a failure.
until_hit() {
    local what=$1 header=$2 url=$3 file=$4 status="" i
    shift 4
    for ((i = 0; i < 50; i++)); do
        curl -sS -k "$@" --max-time 120 -D "$SCRATCH/check.head" "$url" |
            cmp -s - "$file" || die "$what: not the object's bytes"
        status=$(tr -d '\r' <"$SCRATCH/check.head" | awk -v h="$header:" 'tolower($1) == tolower(h) { print $2 }')
        [[ "$status" == HIT ]] && return 0
        sleep 0.2
    done
    die "$what: not served as a hit ($header: ${status:-none})"
}

# warm SERVER HEADER: the object cached, then served as a hit over HTTPS on
# both certificates, byte-identical, over HTTP/1.1 and HTTP/2.
warm() {
    local server=$1 header=$2 key version
    for key in ecdsa rsa; do
        for version in --http1.1 --http2; do
            until_hit "$server ($key, $version)" "$header" "https://127.0.0.1:$(port "$server" "$key")$PATH_Q" \
                "$OBJECTS/$BUCKET/$SMALL" "$version"
        done
    done
    say "$server: the 1 KiB object is a hit over HTTPS (both certificates, HTTP/1.1 and HTTP/2)"
}
warm node X-Cache
warm nginx X-Cache-Status

# warm_large SERVER HEADER: the 10 MiB object cached, then served as a hit
# over HTTPS (HTTP/1.1, ECDSA), byte-identical; prints the protocol and
# cipher the server chooses for a client with OpenSSL's defaults (as wrk's).
warm_large() {
    local server=$1 header=$2 url code negotiated
    url="https://127.0.0.1:$(port "$server" ecdsa)/$LARGE?jwt=$TOKEN"
    code=$(curl -sS -k --http1.1 -o /dev/null -w '%{http_code}' --max-time 120 "$url") || code=000
    [[ "$code" == 200 ]] || die "$server: the first GET of the 10 MiB object answered $code"
    until_hit "$server (10 MiB)" "$header" "$url" "$OBJECTS/$BUCKET/$LARGE" --http1.1
    negotiated=$(openssl s_client -connect "127.0.0.1:$(port "$server" ecdsa)" -brief </dev/null 2>&1 |
        awk -F': ' '/^(Protocol version|Ciphersuite|Server Temp Key):/ { printf "%s%s", sep, $2; sep = ", " }')
    say "$server: the 10 MiB object is a hit over HTTPS ($negotiated)"
}
if wants large; then
    warm_large node X-Cache
    warm_large nginx X-Cache-Status
    warm_large varnish X-Cache
fi
sync

# --- measuring ------------------------------------------------------------

RESULTS="$SCRATCH/results.txt"
LARGE_RESULTS="$SCRATCH/results-large.txt"
: >"$RESULTS"
: >"$LARGE_RESULTS"

# server_pids SERVER: the processes whose CPU time is the server's: cdn-node;
# nginx's workers; Varnish's manager and cache child with hitch's master and
# workers (the cost of Varnish over HTTPS).
server_pids() {
    case "$1" in
        node) echo "$NODE_PID" ;;
        nginx) pgrep -P "$NGINX_PID" -f 'worker process' | tr '\n' ' ' ;;
        varnish) echo "$VARNISH_PID $(pgrep -P "$VARNISH_PID" | tr '\n' ' ') $HITCH_PID $(pgrep -P "$HITCH_PID" | tr '\n' ' ')" ;;
    esac
}

# connections MODE PORT LOG: HS_CLIENTS `openssl s_time` processes at once
# for HS_SECONDS, each opening one connection after another with one
# HTTP/1.0 GET on each; `-new` (MODE full) offers no session, `-reuse`
# (resumed) the one from its previous connection. Prints `ops= seconds=
# resumed= failed=`: connections, wall-clock time, the ones s_time reports
# as resumed ('r'), and processes that failed.
connections() {
    local mode=$1 port=$2 log=$3 flag=-new i pids=() failed=0 start end
    [[ "$mode" == resumed ]] && flag=-reuse
    start=$(date +%s.%N)
    for ((i = 1; i <= HS_CLIENTS; i++)); do
        openssl s_time -connect "127.0.0.1:$port" "$flag" -time "$HS_SECONDS" -www "$PATH_Q" \
            >"$log.$i" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
    end=$(date +%s.%N)
    cat "$log".* >"$log"
    rm -f "$log".*
    awk -v start="$start" -v end="$end" -v failed="$failed" '
        / connections in [0-9.]+ real seconds/ { n += $1 }
        /^[r*t3]+$/ { r += gsub(/r/, "r") }
        END { printf "ops=%d seconds=%.3f resumed=%d failed=%d", n, end - start, r, failed }' "$log"
}

# run SCENARIO SERVER KEY: one run; appends `scenario= server= key= ops=
# seconds= cpu_s= [bytes=] [resumed= failed=]` to RESULTS (large to
# LARGE_RESULTS) and prints it.
run() {
    local scenario=$1 server=$2 key=$3 pids before after log="$SCRATCH/$1-$2-$3.txt" line url connections
    url="https://127.0.0.1:$(port "$server" "$key")$PATH_Q"
    if [[ "$scenario" == large ]]; then url="https://127.0.0.1:$(port "$server" "$key")/$LARGE?jwt=$TOKEN"; fi
    pids=$(server_pids "$server")
    # shellcheck disable=SC2086
    before=$(cpu_seconds $pids)
    case "$scenario" in
        h1 | large)
            if [[ "$scenario" == h1 ]]; then connections=-c50; else connections=-c8; fi
            wrk -t2 "$connections" "-d${DURATION}s" -s "$ROOT/benches/load/wrk-result.lua" "$url" >"$log" 2>&1 ||
                { cat "$log" >&2; die "wrk failed against $server"; }
            line=$(awk -v scenario="$scenario" '/^wrk-result / {
                for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                errors = v["err_connect"] + v["err_read"] + v["err_write"] + v["err_status"] + v["err_timeout"]
                printf "ops=%d seconds=%.3f failed=%d", v["requests"], v["duration_us"] / 1e6, errors
                if (scenario == "large") printf " bytes=%.0f", v["bytes"] }' "$log")
            ;;
        h2)
            h2load -c50 -m10 -t2 -D "$DURATION" "$url" >"$log" 2>&1 ||
                { cat "$log" >&2; die "h2load failed against $server"; }
            grep -q 'Application protocol: h2' "$log" || die "h2load did not negotiate h2 with $server"
            line=$(awk '/^requests:/ { ok = $8; failed = $10 + $12 }
                /^finished in/ { secs = $3; sub(/s,$/, "", secs) }
                END { printf "ops=%d seconds=%.3f failed=%d", ok, secs, failed }' "$log")
            ;;
        full | resumed)
            line=$(connections "$scenario" "$(port "$server" "$key")" "$log")
            ;;
    esac
    # shellcheck disable=SC2086
    after=$(cpu_seconds $pids)
    [[ "$line" == ops=* ]] || { cat "$log" >&2; die "no result from the $scenario run against $server"; }
    line="scenario=$scenario server=$server key=$key $line cpu_s=$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.2f", b - a }')"
    # shellcheck disable=SC2086
    kill -0 $pids 2>/dev/null || die "$server exited during the run"
    if [[ "$scenario" == large ]]; then
        echo "$line" >>"$LARGE_RESULTS"
        printf '  %-7s %s\n' "$server" "$(python3 "$HERE/summary.py" large-run "$line")"
    else
        echo "$line" >>"$RESULTS"
        printf '  %-7s %s\n' "$server" "$(python3 "$HERE/summary.py" run "$line")"
    fi
}

# scenario SCENARIO KEY: ROUNDS runs per server, the order rotating: the
# first server of a round goes last in the next.
scenario() {
    local round server servers=(nginx node) i n
    [[ "$1" == large ]] && servers+=(varnish)
    n=${#servers[@]}
    say "$1 ($2): $ROUNDS round(s)"
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((i = 0; i < n; i++)); do
            server=${servers[(i + round - 1) % n]}
            run "$1" "$server" "$2"
        done
    done
}

wants h1 && scenario h1 ecdsa
wants h2 && scenario h2 ecdsa
wants large && scenario large ecdsa
for k in "${keys[@]}"; do
    wants full && scenario full "$k"
    wants resumed && scenario resumed "$k"
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "$COMMAND"
echo "$(machine_line); load average $LOAD_START at start, $LOAD_END at the end"
if [[ -s "$RESULTS" ]]; then python3 "$HERE/summary.py" table "$RESULTS"; fi
if [[ -s "$LARGE_RESULTS" ]]; then
    [[ -s "$RESULTS" ]] && echo
    python3 "$HERE/summary.py" large-table "$LARGE_RESULTS"
fi
completed
