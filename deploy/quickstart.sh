#!/usr/bin/env bash
# Runs cdn-node on this machine in front of a local S3 server (s3s-fs) that
# holds the sample videos (an MP4 and an HLS stream), serves the player page
# (deploy/player/) from a second port, and prints the commands to fetch the
# videos with a token and the page's URL to watch them in a browser.
#
# Usage: deploy/quickstart.sh [start]   install what is missing, build, (re)start
#        deploy/quickstart.sh stop      stop the node, the S3 server and the page server
#
# Everything it makes lives in .run/ at the top of the repository: the S3
# server's files, random credentials and the HMAC secret (mode 600), the
# node's configuration, pid files and logs. Running it again stops the
# previous processes and starts afresh with new secrets.
#
# Ports: 8080 (clients), 9091 (admin), 9000 (S3) and 8081 (the player page)
# when free, otherwise free ports chosen by the system. All listen on
# 127.0.0.1 only.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

CALLER_DIR=$PWD
LIB_NAME=quickstart
STOP_SECONDS=10
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

RUN="$ROOT/.run"
SAMPLE="$ROOT/deploy/sample/lecture-01.mp4"
HLS_SAMPLE="$ROOT/deploy/sample/hls"
PLAYER_DIR="$ROOT/deploy/player"
BUCKET=videos
KEY=courses/101/lecture-01.mp4
HLS_PREFIX=courses/101/hls
HLS_KEY=$HLS_PREFIX/master.m3u8
REGION=us-east-1
S3_READY_SECONDS=30
NODE_READY_SECONDS=60
PAGE_READY_SECONDS=10

# --- stopping -------------------------------------------------------------

# The page server runs on the Python that python3 names; /proc/PID/comm
# shows the name it was started by (at most 15 characters).
PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)
[[ -n "$PYTHON" ]] || PYTHON=python3
PYTHON_COMM=$(basename "$PYTHON" | cut -c1-15)

stop_all() {
    stop_pidfile "$RUN/player.pid" "$PYTHON_COMM" TERM
    # Pingora exits at once on SIGINT (SIGTERM would wait out a grace period).
    stop_pidfile "$RUN/cdn-node.pid" cdn-node INT
    stop_pidfile "$RUN/s3s-fs.pid" s3s-fs TERM
}

case "${1:-start}" in
    start) ;;
    stop)
        stop_all
        exit 0
        ;;
    -h | --help | help)
        sed -n '2,17s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown command '$1' (expected start or stop)" ;;
esac

# --- starting -------------------------------------------------------------

# Until the very end, any exit (an error, Ctrl-C) stops what was started here.
stop_on_failure .run/ stop_all

bash "$ROOT/deploy/setup.sh" build s3

stop_all

build_node

# A fresh runtime folder: the S3 data, secrets and logs of the previous run go.
mkdir -p "$RUN"
chmod 700 "$RUN"
rm -rf "$RUN/s3" "$RUN"/*.log "$RUN"/*.yaml "$RUN"/*.sock "$RUN"/lecture-01.mp4 \
    "$RUN"/s3-access-key-id "$RUN"/s3-secret-access-key "$RUN"/hmac-secret "$RUN"/env \
    "$RUN"/master.m3u8 "$RUN"/master.headers
mkdir -p "$RUN/s3/$BUCKET"

# Random S3 credentials and a 64-character (256-bit) HMAC secret, in files
# only this user can read.
write_secrets "$RUN" s3-access-key-id=s3-key-id s3-secret-access-key=s3-secret hmac-secret=hex32
S3_ACCESS_KEY=$(cat "$RUN/s3-access-key-id")
S3_SECRET_KEY=$(cat "$RUN/s3-secret-access-key")
HMAC_SECRET=$(cat "$RUN/hmac-secret")

# The preferred ports when free, else ports the system hands out. The sockets
# stay open until all four are chosen, so the four differ.
read -r HTTP_PORT ADMIN_PORT S3_PORT PLAYER_PORT < <(choose_ports 127.0.0.1 8080 9091 9000 8081)
[[ -n "${PLAYER_PORT:-}" ]] || die "could not choose ports"
# The page's origin, as the browser sends it in Origin: another origin than
# the node's (the port differs), so the node must allow it (cors:).
PLAYER_ORIGIN="http://127.0.0.1:$PLAYER_PORT"

UPGRADE_SOCK="$RUN/upgrade.sock"
# A Unix socket path must fit in 108 bytes.
if ((${#UPGRADE_SOCK} > 100)); then
    UPGRADE_SOCK="${TMPDIR:-/tmp}/cdn-node-quickstart-$(id -u).sock"
fi
case "$RUN" in
    *'"'* | *\\*) die "the repository path must not contain '\"' or '\\': $ROOT" ;;
esac

cat >"$RUN/cdn-node.yaml" <<EOF
# Written by deploy/quickstart.sh: cdn-node in front of a local s3s-fs.
# The secrets come from the environment (see .run/env); none is in this file.
server:
  threads: 2
  pid_file: "$RUN/pingora.pid"
  upgrade_sock: "$UPGRADE_SOCK"

listeners:
  http:
    - "127.0.0.1:$HTTP_PORT"

admin:
  listen: "127.0.0.1:$ADMIN_PORT"

origin:
  endpoint: "http://127.0.0.1:$S3_PORT"
  bucket: $BUCKET
  region: $REGION
  addressing: path
  credentials:
    from: env
  connect_timeout_ms: 2000
  read_timeout_ms: 15000
  forward_query: []

auth:
  token_sources:
    - query: jwt
    - query: token
    - header: authorization
    - cookie: jwt
  keys:
    - kid: main
      algorithm: HS256
      secret_env: CDN_NODE_HMAC_SECRET
  require_exp: true
  leeway_seconds: 5
  public_prefixes: []

cache:
  dir: "$RUN/cache"
  max_size: 1GiB
  max_object_size: 512MiB
  min_free_space: 256MiB

cors:
  allowed_origins: ["$PLAYER_ORIGIN"]

log:
  access_stdout: true
EOF

(
    umask 077
    cat >"$RUN/env" <<EOF
# The node's secrets, for running cdn-node by hand: set -a; . .run/env; set +a
AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
CDN_NODE_HMAC_SECRET=$HMAC_SECRET
EOF
)

node_env=(
    "AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY"
    "AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY"
    "CDN_NODE_HMAC_SECRET=$HMAC_SECRET"
)
env "${node_env[@]}" "$NODE" check -c "$RUN/cdn-node.yaml" >/dev/null ||
    die "cdn-node check refused .run/cdn-node.yaml (problems listed above)"

say "starting s3s-fs on 127.0.0.1:$S3_PORT (bucket '$BUCKET' in .run/s3)"
start_s3 127.0.0.1 "$S3_PORT" "$RUN/s3" "$RUN/s3s-fs.log" "$S3_READY_SECONDS"
echo "$S3_PID" >"$RUN/s3s-fs.pid"
S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

say "uploading the sample to s3://$BUCKET/$KEY"
put_object "$S3_ENDPOINT" "$BUCKET" "$SAMPLE" "$KEY" video/mp4

# The HLS sample: its playlists and segments under HLS_PREFIX, by their
# paths relative to deploy/sample/hls/.
say "uploading the HLS sample to s3://$BUCKET/$HLS_PREFIX/"
hls_files=0
while IFS= read -r -d '' file; do
    rel=${file#"$HLS_SAMPLE"/}
    case "$rel" in
        *.m3u8) ctype=application/vnd.apple.mpegurl ;;
        *.ts) ctype=video/mp2t ;;
        *.m4s | *.mp4) ctype=video/mp4 ;;
        *) continue ;;
    esac
    put_object "$S3_ENDPOINT" "$BUCKET" "$file" "$HLS_PREFIX/$rel" "$ctype"
    hls_files=$((hls_files + 1))
done < <(find "$HLS_SAMPLE" -type f -print0 | sort -z)
((hls_files > 0)) || die "no HLS sample found in $HLS_SAMPLE"

say "starting cdn-node (clients 127.0.0.1:$HTTP_PORT, admin 127.0.0.1:$ADMIN_PORT)"
start cdn-node INT "$RUN/access.log" "$RUN/cdn-node.log" \
    env "${node_env[@]}" "$NODE" run -c "$RUN/cdn-node.yaml"
echo "$STARTED_PID" >"$RUN/cdn-node.pid"
wait_for cdn-node "$STARTED_PID" "$NODE_READY_SECONDS" "$RUN/cdn-node.log" \
    http_ok "http://127.0.0.1:$ADMIN_PORT/readyz"

TOKEN=$(mint_token "$RUN/hmac-secret" main alice 3600)

# Check the path a reader is about to try: with the token the bytes of the
# sample, without it 401.
URL="http://127.0.0.1:$HTTP_PORT/$KEY"
code=$(curl -s -o "$RUN/lecture-01.mp4" -w '%{http_code}' --max-time 30 "$URL?jwt=$TOKEN" || true)
if [[ "$code" != 200 ]] || ! cmp -s "$RUN/lecture-01.mp4" "$SAMPLE"; then
    show_log "$RUN/cdn-node.log"
    die "self-check failed: GET with the token answered $code$([[ $code == 200 ]] && echo ', with bytes that differ from the sample')"
fi
rm -f "$RUN/lecture-01.mp4"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL" || true)
if [[ "$code" != 401 ]]; then
    show_log "$RUN/cdn-node.log"
    die "self-check failed: GET without a token answered $code, not 401"
fi

# What the player page relies on: the node answers the page's origin with
# CORS headers, and the master playlist it serves hands the token on to
# every URI in it (so that hls.js sends it for variants and segments).
HLS_URL="http://127.0.0.1:$HTTP_PORT/$HLS_KEY"
code=$(curl -s -o "$RUN/master.m3u8" -D "$RUN/master.headers" -w '%{http_code}' --max-time 10 \
    -H "Origin: $PLAYER_ORIGIN" "$HLS_URL?jwt=$TOKEN" || true)
if [[ "$code" != 200 ]]; then
    show_log "$RUN/cdn-node.log"
    die "self-check failed: GET of the master playlist with the token answered $code"
fi
if ! awk -v want="access-control-allow-origin: $PLAYER_ORIGIN" \
    '{ sub(/\r$/, "") } tolower($0) == tolower(want) { found = 1 } END { exit !found }' \
    "$RUN/master.headers"; then
    die "self-check failed: the node's answer to the page's origin $PLAYER_ORIGIN has no Access-Control-Allow-Origin for it (cors: in .run/cdn-node.yaml)"
fi
if awk '!/^#/ && NF && !/jwt=/ { bad = 1 } END { exit !bad }' "$RUN/master.m3u8"; then
    die "self-check failed: the master playlist names URIs without the token (jwt=)"
fi
rm -f "$RUN/master.m3u8" "$RUN/master.headers"

say "serving the player page on $PLAYER_ORIGIN (deploy/player/)"
start "the page server" TERM "$RUN/player.log" "$RUN/player.log" \
    "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$PLAYER_DIR" "$PLAYER_PORT"
echo "$STARTED_PID" >"$RUN/player.pid"
wait_for "the page server" "$STARTED_PID" "$PAGE_READY_SECONDS" "$RUN/player.log" \
    http_ok "$PLAYER_ORIGIN/index.html"
PLAYER_URL="$PLAYER_ORIGIN/index.html?node=http://127.0.0.1:$HTTP_PORT&token=$TOKEN&mp4=/$KEY&hls=/$HLS_KEY"

completed
cat <<EOF

cdn-node is running (self-check passed: the video with a token, 401 without,
CORS for the player page, the token in the master playlist's URIs).

Watch the MP4 and the HLS stream in a browser: open the player page (served
from another origin, as a portal's page would be; the token is in the URL):
  $PLAYER_URL

Fetch the video with a token valid for 1 hour, and compare it with the sample:
  curl -o lecture-01.mp4 "$URL?jwt=$TOKEN"
  cmp lecture-01.mp4 "$(here "$SAMPLE")" && echo identical

Without a token (expect 401):
  curl -i "$URL"

Served from the node's disk cache since the self-check (expect X-Cache: HIT):
  curl -s -o /dev/null -D - "$URL?jwt=$TOKEN" | grep -i x-cache

A byte range, as video players ask for (expect 206):
  curl -s -o /dev/null -w '%{http_code} %{size_download}\n' -r 0-1023 "$URL?jwt=$TOKEN"

The HLS master playlist, each URI in it carrying the token:
  curl "$HLS_URL?jwt=$TOKEN"

Metrics and readiness:
  curl http://127.0.0.1:$ADMIN_PORT/metrics
  curl http://127.0.0.1:$ADMIN_PORT/readyz

A new token:   $(here "$NODE") token --key-file $(here "$RUN/hmac-secret") --alg HS256 --kid main --sub alice --ttl 3600
Logs:          $(here "$RUN/access.log") (one JSON line per request), $(here "$RUN/cdn-node.log"), $(here "$RUN/s3s-fs.log"), $(here "$RUN/player.log")
Configuration: $(here "$RUN/cdn-node.yaml") (its secrets: $(here "$RUN/env"))
Stop:          $(here "$ROOT/deploy/quickstart.sh") stop
EOF
