#!/usr/bin/env bash
# Runs the example PoP on this machine: a local S3 server (s3s-fs) holding
# the sample video, a shield in front of it and three edges in front of the
# shield, each node with its configuration from deploy/pop/. Checks that the
# edges see each other, that the video comes through every edge with one S3
# request, and that a purge reaches every node; then prints what to try.
#
# Usage: deploy/pop/run.sh [start]   install what is missing, build, (re)start
#        deploy/pop/run.sh stop      stop the four nodes and the S3 server
#        deploy/pop/run.sh status    per node: objects stored, GETs sent to S3,
#                                    requests passed on to the PoP and the shield
#
# Everything it makes lives in .run/pop/ at the top of the repository:
# copies of the configurations, the secret files they name (random, mode
# 600), the caches, the S3 server's files, pid files and logs. Running it
# again stops the previous processes and starts afresh with new secrets.
#
# Addresses, as the configurations give them (the script reads them there,
# and stops naming any that is taken):
#   node     clients           admin             peers
#   edge-1   127.0.0.1:8181    127.0.0.1:9181    127.0.0.1:8090
#   edge-2   127.0.0.2:8182    127.0.0.2:9182    127.0.0.2:8090
#   edge-3   127.0.0.3:8183    127.0.0.3:9183    127.0.0.3:8090
#   shield   127.0.0.10:8190   127.0.0.10:9190   127.0.0.10:8090
#   s3s-fs   127.0.0.20:9000 (the shield's origin)
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

CALLER_DIR=$PWD
LIB_NAME=pop
STOP_SECONDS=10
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"

POP="$ROOT/deploy/pop"
RUN="$ROOT/.run/pop"
SAMPLE="$ROOT/deploy/sample/lecture-01.mp4"
KEY=courses/101/lecture-01.mp4
REGION=us-east-1
EDGES=(edge-1 edge-2 edge-3)
NODES=(shield "${EDGES[@]}")
S3_READY_SECONDS=30
NODE_READY_SECONDS=60
RING_READY_SECONDS=30

# --- stopping -------------------------------------------------------------

stop_all() {
    local node
    for node in "${EDGES[@]}" shield; do
        # Pingora exits at once on SIGINT (SIGTERM would wait out a grace period).
        stop_pidfile "$RUN/$node.pid" cdn-node INT
    done
    stop_pidfile "$RUN/s3s-fs.pid" s3s-fs TERM
}

# --- reading the configurations -------------------------------------------

# The value of KEY in the top-level SECTION of a deploy/pop file, quotes and
# a one-element list's brackets removed: `yaml_value edge-1 admin listen`.
# Enough for these files; not a YAML parser.
yaml_value() {
    local file="$POP/$1.yaml" value
    value=$(awk -v section="$2" -v key="$3" '
        /^[^ #]/ { inside = ($0 ~ "^" section ":") }
        inside && $0 ~ "^  " key ":" {
            sub("^  " key ":[ ]*", "")
            sub(/[ ]+#.*$/, "")
            gsub(/[]["]/, "")
            print
            exit
        }' "$file")
    [[ -n "$value" ]] || die "no $2.$3 in $file"
    printf '%s' "$value"
}

declare -A CLIENT ADMIN PEER
for node in "${NODES[@]}"; do
    CLIENT[$node]=$(yaml_value "$node" listeners http)
    ADMIN[$node]=$(yaml_value "$node" admin listen)
    PEER[$node]=$(yaml_value "$node" cluster listen)
done
S3_ENDPOINT=$(yaml_value shield origin endpoint)
BUCKET=$(yaml_value shield origin bucket)
S3_ADDR=${S3_ENDPOINT#http://}
[[ "$S3_ADDR" =~ ^[0-9.]+:[0-9]+$ ]] ||
    die "shield.yaml's origin.endpoint should be http://IP:PORT (the local s3s-fs), not $S3_ENDPOINT"

# The value of a metric series (NAME{LABELS} as the node prints it) at an
# admin listener; 0 when absent, the sum when several series match NAME
# alone.
metric() {
    { curl -fs --max-time 2 "http://$1/metrics" || true; } |
        awk -v series="$2" '
            index($0, series) == 1 && substr($0, length(series) + 1, 1) ~ /[ {]/ { sum += $NF }
            END { print sum + 0 }'
}

# GETs a node sent to S3: its origin answers but for the HEADs that learn an
# object's size (one per cold object, besides its GET).
s3_gets() {
    echo $(($(metric "$1" cdn_node_origin_requests_total) - $(metric "$1" cdn_node_origin_head_requests_total)))
}

# One line per node: up or not, objects in its cache, GETs it sent to S3,
# requests it passed to the key's owner in the PoP and to the shield, and
# the PoP members it sees healthy.
show_status() {
    local node admin
    printf '%-8s %-5s %7s %8s %9s %10s %9s\n' node up stored "S3 GETs" "to peers" "to shield" "PoP ring"
    for node in "${NODES[@]}"; do
        admin=${ADMIN[$node]}
        if ! http_ok "http://$admin/healthz"; then
            printf '%-8s %-5s\n' "$node" no
            continue
        fi
        printf '%-8s %-5s %7s %8s %9s %10s %9s\n' "$node" yes \
            "$(metric "$admin" cdn_node_cache_stored_objects)" \
            "$(s3_gets "$admin")" \
            "$(metric "$admin" 'cdn_node_peer_forwards_total{to="peer"}')" \
            "$(metric "$admin" 'cdn_node_peer_forwards_total{to="parent"}')" \
            "$(metric "$admin" 'cdn_node_ring_healthy_members{ring="pop"}')"
    done
}

case "${1:-start}" in
    start) ;;
    stop)
        stop_all
        exit 0
        ;;
    status)
        show_status
        exit 0
        ;;
    -h | --help | help)
        sed -n '2,25s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown command '$1' (expected start, stop or status)" ;;
esac

# --- starting -------------------------------------------------------------

# Until the very end, any exit (an error, Ctrl-C) stops what was started here.
stop_on_failure .run/pop/ stop_all

bash "$ROOT/deploy/setup.sh" build s3

stop_all

build_node

addresses=("$S3_ADDR")
for node in "${NODES[@]}"; do
    addresses+=("${CLIENT[$node]}" "${ADMIN[$node]}" "${PEER[$node]}")
done
busy=$(busy_addresses "${addresses[@]}")
if [[ -n "$busy" ]]; then
    die "these addresses of deploy/pop/*.yaml cannot be listened on:
$busy
Stop what holds them, or give free ports in deploy/pop/*.yaml (every file that names them)."
fi

# A fresh runtime folder: the data, secrets, caches and logs of the previous
# run go.
mkdir -p "$ROOT/.run"
chmod 700 "$ROOT/.run"
rm -rf "$RUN"
mkdir -m 700 "$RUN"
mkdir -p "$RUN/s3/$BUCKET"
for node in "${NODES[@]}"; do
    cp "$POP/$node.yaml" "$RUN/$node.yaml"
done

# The secret files the configurations name, beside them. cluster.key,
# hmac.key and admin.token are the same for every node.
write_secrets "$RUN" cluster.key=hex32 hmac.key=hex32 admin.token=hex32 \
    s3-access-key-id=s3-key-id s3-secret-access-key=s3-secret
S3_ACCESS_KEY=$(cat "$RUN/s3-access-key-id")
S3_SECRET_KEY=$(cat "$RUN/s3-secret-access-key")
ADMIN_TOKEN=$(cat "$RUN/admin.token")

for node in "${NODES[@]}"; do
    "$NODE" check -c "$RUN/$node.yaml" >/dev/null ||
        die "cdn-node check refused .run/pop/$node.yaml (problems listed above)"
done

say "starting s3s-fs on $S3_ADDR (bucket '$BUCKET' in .run/pop/s3)"
start_s3 "${S3_ADDR%:*}" "${S3_ADDR##*:}" "$RUN/s3" "$RUN/s3s-fs.log" "$S3_READY_SECONDS"
echo "$S3_PID" >"$RUN/s3s-fs.pid"
say "uploading the sample to s3://$BUCKET/$KEY"
put_object "$S3_ENDPOINT" "$BUCKET" "$SAMPLE" "$KEY" video/mp4

# Every node runs in .run/pop/, where its pid_file and upgrade_sock are.
cd "$RUN"
for node in "${NODES[@]}"; do
    say "starting $node (clients ${CLIENT[$node]}, admin ${ADMIN[$node]}, peers ${PEER[$node]})"
    start "$node" INT "$RUN/$node.access.log" "$RUN/$node.log" "$NODE" run -c "$RUN/$node.yaml"
    echo "$STARTED_PID" >"$RUN/$node.pid"
done
for node in "${NODES[@]}"; do
    wait_for "$node" "$(cat "$RUN/$node.pid")" "$NODE_READY_SECONDS" "$RUN/$node.log" \
        http_ok "http://${ADMIN[$node]}/readyz"
done
cd "$ROOT"

# Each edge sees the three edges and the shield up (health checks every
# second): only then do all agree on who owns which key.
ring_complete() {
    local admin=$1
    [[ "$(metric "$admin" 'cdn_node_ring_healthy_members{ring="pop"}')" == 3 ]] &&
        [[ "$(metric "$admin" 'cdn_node_ring_healthy_members{ring="parents"}')" == 1 ]]
}
for node in "${EDGES[@]}"; do
    wait_for "$node's view of the PoP" "$(cat "$RUN/$node.pid")" "$RING_READY_SECONDS" \
        "$RUN/$node.log" ring_complete "${ADMIN[$node]}"
done

TOKEN=$(mint_token "$RUN/hmac.key" main alice 3600)

# The self-check: the video through every edge, byte for byte, with one S3
# request in all (the shield's); then a purge through one edge reaches the
# other nodes, so the reader starts with cold caches.
for node in "${EDGES[@]}"; do
    url="http://${CLIENT[$node]}/$KEY"
    code=$(curl -s -o "$RUN/check.mp4" -w '%{http_code}' --max-time 30 "$url?jwt=$TOKEN" || true)
    if [[ "$code" != 200 ]] || ! cmp -s "$RUN/check.mp4" "$SAMPLE"; then
        show_log "$RUN/$node.log"
        die "self-check failed: GET through $node answered $code$([[ $code == 200 ]] && echo ', with bytes that differ from the sample')"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$url" || true)
    [[ "$code" == 401 ]] || die "self-check failed: GET through $node without a token answered $code, not 401"
done
rm -f "$RUN/check.mp4"
asked=$(s3_gets "${ADMIN[shield]}")
[[ "$asked" == 1 ]] ||
    die "self-check failed: the shield sent $asked GETs to S3 for one video fetched through three edges (expected 1)"
for node in "${EDGES[@]}"; do
    n=$(metric "${ADMIN[$node]}" cdn_node_origin_requests_total)
    [[ "$n" == 0 ]] || die "self-check failed: $node asked S3 itself ($n requests)"
done
purge_url="http://${ADMIN[edge-1]}/purge?path=/$KEY"
reply=$(curl -s -X POST -H "Authorization: Bearer $ADMIN_TOKEN" --max-time 10 "$purge_url" || true)
[[ "$reply" == *'"nodes":3,"failed":[]'* ]] ||
    die "self-check failed: the purge through edge-1 answered '$reply' (expected it to reach the 3 other nodes)"

token_file=$(here "$RUN/admin.token")

completed
cat <<EOF

The PoP is running: three edges sharding by cache key in front of one shield,
in front of S3 (self-check passed: the video through every edge with one S3
request, 401 without a token, a purge through edge-1 reached all 4 nodes;
the caches are cold again).

  node     clients            admin              peers
EOF
for node in "${NODES[@]}"; do
    printf '  %-8s %-18s %-18s %s\n' "$node" "${CLIENT[$node]}" "${ADMIN[$node]}" "${PEER[$node]}"
done
cat <<EOF

The same video through each edge, with a token valid for 1 hour: the first
answer is a MISS, the next ones HITs from the one edge that owns the key,
whichever edge you ask:
EOF
for node in "${EDGES[@]}"; do
    printf '  curl -s -o /dev/null -D - "http://%s/%s?jwt=%s" | grep -i -e ^HTTP -e x-cache\n' \
        "${CLIENT[$node]}" "$KEY" "$TOKEN"
done
cat <<EOF

Which node stored it, and who asked S3 (the shield, one GET per cold object,
the self-check's included; the edges never do):
  $(here "$POP/run.sh") status
or the same from the metrics, node by node (S3 GETs: origin requests less
HEADs, one of each per cold object):
  curl -s http://${ADMIN[shield]}/metrics | grep -E '^cdn_node_(cache_stored_objects|origin_(head_)?requests_total|peer_forwards_total)'

Purge it through one node (the others and the shield remove their copies too):
  curl -X POST -H "Authorization: Bearer \$(cat $token_file)" "http://${ADMIN[edge-2]}/purge?path=/$KEY"

Take edge-3 out of the ring (it keeps serving what it is sent; the others
take its keys within a few seconds):
  curl -X POST -H "Authorization: Bearer \$(cat $token_file)" http://${ADMIN[edge-3]}/drain

Or kill an edge and keep fetching through the other two:
  kill -KILL \$(cat $(here "$RUN/edge-2.pid"))

Configurations: $(here "$RUN")/*.yaml (copies of deploy/pop/*.yaml; secrets beside them)
Logs:           $(here "$RUN")/NODE.log, NODE.access.log (one JSON line per request), s3s-fs.log
A new token:    $(here "$NODE") token --key-file $(here "$RUN/hmac.key") --alg HS256 --kid main --sub alice --ttl 3600
Stop:           $(here "$POP/run.sh") stop
EOF
