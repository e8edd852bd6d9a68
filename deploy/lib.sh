# shellcheck shell=bash
# What the scripts that run cdn-node on this machine share: messages,
# starting and stopping processes, building the node, secrets, ports, the
# local S3 server and tokens. Sourced, never run, by deploy/quickstart.sh,
# deploy/pop/run.sh and benches/lib.sh (the benchmarks).
#
# Before sourcing, the caller sets LIB_NAME (the prefix of its messages).
# Sourcing sets ROOT (the top of the repository) and puts cargo's bin folder
# on PATH (s3s-fs is installed there). Functions that stop processes read
# STOP_SECONDS (default 10); the S3 helpers read S3_ACCESS_KEY,
# S3_SECRET_KEY and REGION.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${LIB_NAME:=deploy}"
: "${STOP_SECONDS:=10}"

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
    *":$CARGO_BIN:"*) ;;
    *) export PATH="$CARGO_BIN:$PATH" ;;
esac

say() { printf '%s: %s\n' "$LIB_NAME" "$*"; }
die() {
    printf '%s: error: %s\n' "$LIB_NAME" "$*" >&2
    exit 1
}

# --- processes ------------------------------------------------------------

# Every process start started, as "PID SIGNAL", the latest last.
STARTED=()

# Runs COMMAND in the background, in a session of its own (a Ctrl-C in the
# terminal reaches the script alone, which stops what it started; a process
# meant to outlive the script does), stdin from /dev/null, stdout to OUT
# and stderr to ERR (one file may be both); SIGNAL is the one that stops
# it. Sets STARTED_PID.
# Usage: start NAME SIGNAL OUT ERR COMMAND...
start() {
    local name=$1 signal=$2 out=$3 err=$4
    shift 4
    if [[ "$err" == "$out" ]]; then
        setsid "$@" </dev/null >"$out" 2>&1 &
    else
        setsid "$@" </dev/null >"$out" 2>"$err" &
    fi
    STARTED_PID=$!
    STARTED+=("$STARTED_PID $signal")
    say "started $name (pid $STARTED_PID)"
}

# Sends SIGNAL to PID, then SIGKILL if it has not exited within
# STOP_SECONDS. NAME is for the message.
# Usage: stop_pid PID SIGNAL [NAME]
stop_pid() {
    local pid=$1 signal=$2 name=${3:-process}
    kill "-$signal" "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + STOP_SECONDS))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            say "$name (pid $pid) did not stop within ${STOP_SECONDS}s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    # A child of this shell: its exit is collected here, not reported later.
    wait "$pid" 2>/dev/null || true
}

# Stops every process start started, the latest first.
stop_started() {
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        # shellcheck disable=SC2086
        stop_pid ${STARTED[$i]}
    done
    STARTED=()
}

# Stops the process named in a pid file (written by an earlier run of the
# script), if it is still the program COMM (a recycled pid is left alone).
# Usage: stop_pidfile PIDFILE COMM SIGNAL
stop_pidfile() {
    local pidfile=$1 comm=$2 signal=$3
    [[ -f "$pidfile" ]] || return 0
    local pid
    pid=$(cat "$pidfile" 2>/dev/null || true)
    rm -f "$pidfile"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    # Just after a start the process may still be setsid or env, about to exec.
    case "$(cat "/proc/$pid/comm" 2>/dev/null || true)" in
        "$comm" | env | setsid) ;;
        *) return 0 ;;
    esac
    stop_pid "$pid" "$signal" "$comm"
    say "stopped $comm (pid $pid)"
}

# The exit trap. When the script exits before it calls completed (an error,
# Ctrl-C), every process start started is stopped, CLEANUP (a function, if
# given) runs, and a message says where the logs are (LOGS). Once it has
# completed, its processes keep running with stop_on_failure (they serve
# on); with stop_on_exit they are stopped, and CLEANUP runs, however it ends.
# Usage: stop_on_failure LOGS [CLEANUP]
#        stop_on_exit LOGS [CLEANUP]
stop_on_failure() { _exit_trap failure "$@"; }
stop_on_exit() { _exit_trap always "$@"; }

# The script got to its end: an exit from now on is not a failure of it.
completed() { _completed=1; }

_exit_trap() {
    _stop_when=$1
    _logs=$2
    _cleanup=${3:-}
    _completed=0
    trap _on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

_on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ ${_completed:-1} -eq 0 || ${_stop_when:-} == always ]]; then
        stop_started
        if [[ -n "${_cleanup:-}" ]]; then "$_cleanup" >/dev/null 2>&1 || true; fi
    fi
    if [[ ${_completed:-1} -eq 0 ]]; then
        [[ $rc -eq 0 ]] && rc=1
        say "failed or interrupted; nothing it started is left running. Logs are in $_logs" >&2
    fi
    exit "$rc"
}

# The last lines of a log file, on stderr, named relative to ROOT.
show_log() {
    local file=$1
    [[ -s "$file" ]] || return 0
    printf -- '--- last lines of %s ---\n' "${file#"$ROOT"/}" >&2
    tail -n 20 "$file" >&2
}

# Polls until CHECK (a quiet command) succeeds, or dies when the process
# PID has exited or SECONDS have passed, showing its LOG.
# Usage: wait_for WHAT PID SECONDS LOG CHECK [ARGS...]
wait_for() {
    local what=$1 pid=$2 seconds=$3 log=$4
    shift 4
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$log"
            die "$what exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$log"
            die "$what was not ready within ${seconds}s"
        fi
        sleep 0.2
    done
}

# Any HTTP answer from URL (even 403 or 404) means its server is up.
http_answers() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)
    [[ "$code" =~ ^[1-5][0-9][0-9]$ ]]
}

# A 2xx answer from URL (e.g. an admin listener's /readyz).
http_ok() {
    curl -fs -o /dev/null --max-time 2 "$1"
}

# --- the node ---------------------------------------------------------------

# Builds the release binary (the first build takes several minutes); sets
# NODE to its path and TARGET_DIR to cargo's target folder.
build_node() {
    say "building cdn-node (release; the first build takes several minutes)"
    (cd "$ROOT" && cargo build --release --locked --bin cdn-node)
    TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps --locked |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    NODE="$TARGET_DIR/release/cdn-node"
    [[ -x "$NODE" ]] || die "$NODE was not built"
}

# Prints a token for SUB, valid for TTL seconds, signed (HS256) with the
# HMAC secret in KEY_FILE under the key id KID.
# Usage: mint_token KEY_FILE KID SUB TTL
mint_token() {
    local key_file=$1 kid=$2 sub=$3 ttl=$4 token
    token=$("$NODE" token --key-file "$key_file" --alg HS256 --kid "$kid" --sub "$sub" --ttl "$ttl")
    [[ -n "$token" ]] || die "cdn-node token printed nothing"
    printf '%s' "$token"
}

# --- secrets and ports ------------------------------------------------------

# Writes random secrets into DIR, one file each, readable by this user only
# and without a trailing newline (the files hold the exact bytes).
# Usage: write_secrets DIR NAME=KIND... with KIND one of
#   s3-key-id   an access key id (20 upper-case letters and digits)
#   s3-secret   a secret access key (40 letters and digits)
#   hex32       32 random bytes as 64 hex digits (HMAC keys, tokens)
write_secrets() {
    local dir=$1
    shift
    (
        umask 077
        python3 - "$dir" "$@" <<'EOF'
import secrets, string, sys
upper = string.ascii_uppercase + string.digits
alnum = string.ascii_letters + string.digits
make = {
    "s3-key-id": lambda: "AKQS" + "".join(secrets.choice(upper) for _ in range(16)),
    "s3-secret": lambda: "".join(secrets.choice(alnum) for _ in range(40)),
    "hex32": lambda: secrets.token_hex(32),
}
for spec in sys.argv[2:]:
    name, kind = spec.split("=", 1)
    with open(f"{sys.argv[1]}/{name}", "w") as f:
        f.write(make[kind]())
EOF
    ) || die "could not write the secrets in $dir"
    local spec
    for spec in "$@"; do
        chmod 600 "$dir/${spec%%=*}"
    done
}

# Prints one port per PORT given: PORT itself when it is free on HOST, else
# (or for 0) one the system hands out. The sockets stay open until all are
# chosen, so the ports differ.
# Usage: choose_ports HOST PORT...
choose_ports() {
    python3 - "$@" <<'EOF'
import socket, sys
host, held, ports = sys.argv[1], [], []
for want in map(int, sys.argv[2:]):
    s = socket.socket()
    # As the servers do: a port whose old connections linger in TIME_WAIT
    # (after a restart) is free.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, want))
    except OSError:
        s.bind((host, 0))
    held.append(s)
    ports.append(s.getsockname()[1])
print(*ports)
EOF
}

# Prints each IP:PORT given that cannot be listened on now (in use, or an
# address this machine does not have); prints nothing when all are free.
busy_addresses() {
    python3 - "$@" <<'EOF'
import socket, sys
for addr in sys.argv[1:]:
    host, port = addr.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, int(port)))
    except OSError as e:
        print(f"{addr} ({e.strerror})")
    finally:
        s.close()
EOF
}

# --- the local S3 server ----------------------------------------------------

# Starts s3s-fs on HOST:PORT serving the folder DATA (its buckets are its
# sub-folders) with the credentials S3_ACCESS_KEY / S3_SECRET_KEY, its
# output to LOG, and waits up to SECONDS until it answers. Sets S3_PID.
# Usage: start_s3 HOST PORT DATA LOG SECONDS
start_s3() {
    local host=$1 port=$2 data=$3 log=$4 seconds=$5
    start s3s-fs TERM "$log" "$log" s3s-fs --host "$host" --port "$port" \
        --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$data"
    S3_PID=$STARTED_PID
    wait_for s3s-fs "$S3_PID" "$seconds" "$log" http_answers "http://$host:$port/"
}

# Uploads FILE as KEY of BUCKET at ENDPOINT with a SigV4-signed PUT, as a
# real bucket is filled.
# Usage: put_object ENDPOINT BUCKET FILE KEY CONTENT_TYPE
put_object() {
    local endpoint=$1 bucket=$2 file=$3 key=$4 type=$5
    local payload_sha put_code out
    out=$(mktemp)
    payload_sha=$(sha256sum "$file" | cut -d' ' -f1)
    put_code=$(curl -sS -o "$out" -w '%{http_code}' --max-time 30 \
        --aws-sigv4 "aws:amz:$REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
        -H "x-amz-content-sha256: $payload_sha" -H "Content-Type: $type" \
        -T "$file" "$endpoint/$bucket/$key") || put_code=000
    if [[ "$put_code" != 200 ]]; then
        show_log "$out"
        rm -f "$out"
        die "uploading $key failed (HTTP $put_code)"
    fi
    rm -f "$out"
}

# --- printing ---------------------------------------------------------------

# A path as the reader should type it: relative when the script was run from
# the top of the repository (CALLER_DIR, set by the caller), else absolute.
here() {
    if [[ "${CALLER_DIR:-}" == "$ROOT" ]]; then
        printf '%s' "${1#"$ROOT"/}"
    else
        printf '%s' "$1"
    fi
}
