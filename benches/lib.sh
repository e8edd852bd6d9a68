# shellcheck shell=bash disable=SC2034
# Shared parts of the benchmark scripts (load.sh, soak.sh, pop_workload.sh):
# installing what is missing, building the node, starting s3s-fs, cdn-node
# and nginx on free loopback ports, stopping every process started, and
# minting tokens. Sourced, never run; the script sets BENCH (its name, for
# messages) and ROOT (the repository) first, and may define bench_cleanup,
# called on exit before the message of a failure.

READY_SECONDS=${READY_SECONDS:-60}
STOP_SECONDS=${STOP_SECONDS:-10}
LOAD_DIR="$ROOT/benches/load"

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
    *":$CARGO_BIN:"*) ;;
    *) export PATH="$CARGO_BIN:$PATH" ;;
esac

say() { printf '%s: %s\n' "$BENCH" "$*"; }
die() {
    printf '%s: error: %s\n' "$BENCH" "$*" >&2
    exit 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n DEBIAN_FRONTEND=noninteractive "$@"
    else
        die "installing $* needs root: run as root (or install sudo)"
    fi
}

# need COMMAND=PACKAGE...: installs with apt-get the packages of the
# commands not found.
need() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null 2>&1 || [[ -x "/usr/sbin/${pair%%=*}" ]] ||
            missing+=("${pair#*=}")
    done
    [[ ${#missing[@]} -gt 0 ]] || return 0
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
    export DEBIAN_FRONTEND=noninteractive
    say "installing ${missing[*]}"
    if ! as_root apt-get -q install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        as_root apt-get -q update >/dev/null
        as_root apt-get -q install -y --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# build_node: s3s-fs installed, the release binary built; sets NODE and
# TARGET_DIR.
build_node() {
    bash "$ROOT/deploy/setup.sh" build s3
    say "building cdn-node (release)"
    cargo build --release --locked --bin cdn-node
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --locked |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    NODE="$TARGET_DIR/release/cdn-node"
    [[ -x "$NODE" ]] || die "$NODE was not built"
}

# --- processes and clean-up -----------------------------------------------

# Every process started here, as "pid signal".
STARTED=()

stop_pid() {
    local pid=$1 signal=$2
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$signal" "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + STOP_SECONDS))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        # shellcheck disable=SC2086
        stop_pid ${STARTED[$i]}
    done
    STARTED=()
}

finished=0
on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    stop_all
    if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi
    if [[ $finished -eq 0 ]]; then
        [[ $rc -eq 0 ]] && rc=1
        say "failed or interrupted; every process it started is stopped. Logs: ${SCRATCH#"$ROOT"/}/" >&2
    fi
    exit "$rc"
}

# scratch NAME: the scratch folder TARGET_DIR/NAME, made empty; sets
# SCRATCH and installs the exit trap.
scratch() {
    SCRATCH="$TARGET_DIR/$1"
    case "$SCRATCH" in
        *'|'* | *'"'* | *\\* | *' '*) die "the scratch folder path must not contain '|', '\"', '\\' or spaces: $SCRATCH" ;;
    esac
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    rm -rf "$SCRATCH"
    mkdir -p "$SCRATCH"
    chmod 700 "$SCRATCH"
}

# start NAME SIGNAL LOG COMMAND...: runs COMMAND in the background, stdout and
# stderr to LOG; sets STARTED_PID.
start() {
    local name=$1 signal=$2 log=$3
    shift 3
    "$@" </dev/null >"$log" 2>&1 &
    STARTED_PID=$!
    STARTED+=("$STARTED_PID $signal")
    say "started $name (pid $STARTED_PID)"
}

show_log() {
    [[ -s "$1" ]] || return 0
    printf -- '--- last lines of %s ---\n' "${1#"$ROOT"/}" >&2
    tail -n 20 "$1" >&2
}

# wait_until WHAT PID LOG COMMAND...: polls COMMAND until it succeeds.
wait_until() {
    local what=$1 pid=$2 log=$3
    shift 3
    local deadline=$((SECONDS + READY_SECONDS))
    until "$@" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$log"
            die "$what exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$log"
            die "$what was not ready within ${READY_SECONDS}s"
        fi
        sleep 0.2
    done
}

answers() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)
    [[ "$code" =~ ^[1-5][0-9][0-9]$ ]]
}

# render TEMPLATE OUT NAME=VALUE...: fills @NAME@ placeholders.
render() {
    local template=$1 out=$2
    shift 2
    local args=() kv
    for kv in "$@"; do
        args+=(-e "s|@${kv%%=*}@|${kv#*=}|g")
    done
    sed "${args[@]}" "$template" >"$out"
    if grep -q '@[A-Z_]*@' "$out"; then
        die "unfilled placeholder in $out: $(grep -o '@[A-Z_]*@' "$out" | head -1)"
    fi
}

# --- secrets, ports, servers ------------------------------------------------

# make_secrets PREFIX: random S3 credentials (the key id starting with
# PREFIX), HMAC secret and admin token, in SCRATCH files only this user
# can read; sets S3_ACCESS_KEY, S3_SECRET_KEY and ADMIN_TOKEN.
make_secrets() {
    (
        umask 077
        head -c 32 /dev/urandom | sha256sum | cut -c1-20 | tr a-f A-F | sed "s/^/$1/" | tr -d '\n' >"$SCRATCH/s3-access-key-id"
        head -c 32 /dev/urandom | sha256sum | cut -c1-40 | tr -d '\n' >"$SCRATCH/s3-secret-access-key"
        head -c 32 /dev/urandom | sha256sum | cut -c1-64 | tr -d '\n' >"$SCRATCH/hmac-secret"
        head -c 32 /dev/urandom | sha256sum | cut -c1-40 | tr -d '\n' >"$SCRATCH/admin-token"
    )
    S3_ACCESS_KEY=$(cat "$SCRATCH/s3-access-key-id")
    S3_SECRET_KEY=$(cat "$SCRATCH/s3-secret-access-key")
    ADMIN_TOKEN=$(cat "$SCRATCH/admin-token")
}

# free_ports N: N free TCP ports on 127.0.0.1, on one line.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(*(s.getsockname()[1] for s in held))
EOF
}

# start_s3s PORT OBJECTS: s3s-fs over OBJECTS with the secrets' credentials;
# sets S3_PID.
start_s3s() {
    start s3s-fs TERM "$SCRATCH/s3s-fs.log" \
        s3s-fs --host 127.0.0.1 --port "$1" \
        --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$2"
    S3_PID=$STARTED_PID
    wait_until s3s-fs "$S3_PID" "$SCRATCH/s3s-fs.log" answers "http://127.0.0.1:$1/"
}

# start_node ACCESS_LOG TEMPLATE NAME=VALUE...: cdn-node from TEMPLATE
# (PREFIX, UPGRADE_SOCK, PORT, ADMIN_PORT and ADMIN_TOKEN_FILE filled in
# here, the rest given), its access log (stdout) to ACCESS_LOG, its own log
# to SCRATCH/node/cdn-node.log; waits until it is ready. Needs NODE_PORT
# and ADMIN_PORT; sets NODE_PID.
start_node() {
    local access_log=$1 template=$2
    shift 2
    mkdir -p "$SCRATCH/node"
    local sock="$SCRATCH/node/upgrade.sock"
    if ((${#sock} > 100)); then
        sock="$(mktemp -u "${TMPDIR:-/tmp}/cdn-node-$BENCH.XXXXXX").sock"
    fi
    render "$template" "$SCRATCH/node/cdn-node.yaml" \
        PREFIX="$SCRATCH/node" UPGRADE_SOCK="$sock" PORT="$NODE_PORT" \
        ADMIN_PORT="$ADMIN_PORT" ADMIN_TOKEN_FILE="$SCRATCH/admin-token" "$@"
    local node_env=(
        "AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY"
        "AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY"
        "CDN_NODE_HMAC_SECRET=$(cat "$SCRATCH/hmac-secret")"
    )
    env "${node_env[@]}" "$NODE" check -c "$SCRATCH/node/cdn-node.yaml" >/dev/null ||
        die "cdn-node check refused the generated configuration"
    env "${node_env[@]}" "$NODE" run -c "$SCRATCH/node/cdn-node.yaml" \
        </dev/null >"$access_log" 2>"$SCRATCH/node/cdn-node.log" &
    NODE_PID=$!
    STARTED+=("$NODE_PID INT")
    say "started cdn-node (pid $NODE_PID)"
    wait_until cdn-node "$NODE_PID" "$SCRATCH/node/cdn-node.log" \
        curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$ADMIN_PORT/readyz"
    wait_until cdn-node "$NODE_PID" "$SCRATCH/node/cdn-node.log" answers "http://127.0.0.1:$NODE_PORT/"
}

# start_nginx NAME TEMPLATE PREFIX PORT NAME=VALUE...: an nginx from
# TEMPLATE, in the foreground under PREFIX, answering on PORT; sets
# STARTED_PID.
start_nginx() {
    local name=$1 template=$2 prefix=$3 port=$4
    shift 4
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    mkdir -p "$prefix/tmp" "$prefix/logs"
    local user="# (not started as root: workers keep this user)"
    if [[ $(id -u) -eq 0 ]]; then
        user="user $(id -un) $(id -gn);"
    fi
    render "$template" "$prefix/nginx.conf" PREFIX="$prefix" USER_DIRECTIVE="$user" PORT="$port" "$@"
    "$NGINX" -t -q -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' ||
        die "nginx refused $prefix/nginx.conf"
    start "$name" TERM "$prefix/stderr.log" \
        "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;'
    local pid=$STARTED_PID
    wait_until "$name" "$pid" "$prefix/error.log" answers "http://127.0.0.1:$port/"
    STARTED_PID=$pid
}

# mint_token SUB: a day-long HS256 token for SUB.
mint_token() {
    local token
    token=$("$NODE" token --key-file "$SCRATCH/hmac-secret" --alg HS256 --kid bench --sub "$1" --ttl 86400)
    [[ -n "$token" ]] || die "cdn-node token printed nothing"
    printf '%s' "$token"
}

# metric_sum NAME: the sum of a counter of cdn-node's /metrics over its labels.
metric_sum() {
    curl -fsS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.0f", s }'
}

# cpu_seconds PID...: CPU seconds (user + system) used so far by the given
# processes.
cpu_seconds() {
    local ticks=0 pid stat fields hz
    hz=$(getconf CLK_TCK)
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # After "pid (comm) ": state is field 3, utime 14, stime 15.
        read -r -a fields <<<"${stat##*) }"
        ticks=$((ticks + fields[11] + fields[12]))
    done
    awk -v t="$ticks" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'
}

# machine_line: CPU model, CPUs, date and commit, for every printed figure.
machine_line() {
    local commit
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    printf '%s, %s CPUs, %s, commit %s' \
        "$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
        "$(date -u '+%Y-%m-%d %H:%M UTC')" "$commit"
}
