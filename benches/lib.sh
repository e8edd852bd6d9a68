# shellcheck shell=bash disable=SC2034
# What the benchmark scripts (load.sh, tls.sh, soak.sh, pop_workload.sh)
# share beyond deploy/lib.sh, which this sources (messages, starting and
# stopping processes, building the node, secrets, ports, s3s-fs, tokens):
# installing the load tools, the scratch folder and its secrets, cdn-node
# and nginx from templates on free loopback ports, and the figures (metrics,
# CPU time, the machine). Sourced, never run; the script sets BENCH (its
# name, for messages) and ROOT (the repository) first, and may define
# bench_cleanup, run on exit once every process it started is stopped.

READY_SECONDS=${READY_SECONDS:-60}
LOAD_DIR="$ROOT/benches/load"

LIB_NAME=$BENCH
# shellcheck source=deploy/lib.sh
source "$ROOT/deploy/lib.sh"

# --- installing -------------------------------------------------------------

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

# --- the scratch folder ---------------------------------------------------

# scratch NAME: the scratch folder TARGET_DIR/NAME, made empty; sets
# SCRATCH and installs the exit trap (every process stopped, then
# bench_cleanup).
scratch() {
    SCRATCH="$TARGET_DIR/$1"
    case "$SCRATCH" in
        *'|'* | *'"'* | *\\* | *' '*) die "the scratch folder path must not contain '|', '\"', '\\' or spaces: $SCRATCH" ;;
    esac
    stop_on_exit "${SCRATCH#"$ROOT"/}/" _bench_cleanup
    rm -rf "$SCRATCH"
    mkdir -p "$SCRATCH"
    chmod 700 "$SCRATCH"
}

_bench_cleanup() { if declare -F bench_cleanup >/dev/null; then bench_cleanup; fi; }

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

# --- secrets and servers ----------------------------------------------------

# bench_secrets: random S3 credentials, HMAC secret and admin token in the
# SCRATCH files the node's configuration names; sets S3_ACCESS_KEY,
# S3_SECRET_KEY and ADMIN_TOKEN.
bench_secrets() {
    write_secrets "$SCRATCH" s3-access-key-id=s3-key-id s3-secret-access-key=s3-secret \
        hmac-secret=hex32 admin-token=hex32
    S3_ACCESS_KEY=$(cat "$SCRATCH/s3-access-key-id")
    S3_SECRET_KEY=$(cat "$SCRATCH/s3-secret-access-key")
    ADMIN_TOKEN=$(cat "$SCRATCH/admin-token")
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
    start cdn-node INT "$access_log" "$SCRATCH/node/cdn-node.log" \
        env "${node_env[@]}" "$NODE" run -c "$SCRATCH/node/cdn-node.yaml"
    NODE_PID=$STARTED_PID
    wait_for cdn-node "$NODE_PID" "$READY_SECONDS" "$SCRATCH/node/cdn-node.log" \
        http_ok "http://127.0.0.1:$ADMIN_PORT/readyz"
    wait_for cdn-node "$NODE_PID" "$READY_SECONDS" "$SCRATCH/node/cdn-node.log" \
        http_answers "http://127.0.0.1:$NODE_PORT/"
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
    start "$name" TERM "$prefix/stderr.log" "$prefix/stderr.log" \
        "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;'
    local pid=$STARTED_PID
    wait_for "$name" "$pid" "$READY_SECONDS" "$prefix/error.log" http_answers "http://127.0.0.1:$port/"
    STARTED_PID=$pid
}

# start_varnish PORT STORAGE_MIB [LISTEN...]: Varnish with malloc storage
# of STORAGE_MIB in front of the origin on ORIGIN_PORT
# (benches/load/varnish.vcl.in), one thread pool per CPU, in the foreground
# under SCRATCH/varnish, answering on 127.0.0.1:PORT and on each further
# LISTEN (varnishd's -a, e.g. "127.0.0.1:P,PROXY"); waits until it answers
# on PORT. Sets VARNISH_PID.
start_varnish() {
    local port=$1 mib=$2 listen=() a jail=()
    shift 2
    for a in "$@"; do listen+=(-a "$a"); done
    render "$ROOT/benches/load/varnish.vcl.in" "$SCRATCH/varnish.vcl" ORIGIN_PORT="$ORIGIN_PORT"
    # As root, without its jail: the scratch folder is the invoking user's
    # alone, and Varnish's own users could not read the VCL in it.
    if [[ $(id -u) -eq 0 ]]; then jail=(-j none); fi
    start varnish TERM "$SCRATCH/varnish.log" "$SCRATCH/varnish.log" \
        varnishd -F "${jail[@]}" -n "$SCRATCH/varnish" -a "127.0.0.1:$port" "${listen[@]}" \
        -f "$SCRATCH/varnish.vcl" -s "malloc,${mib}m" -p thread_pools=2
    VARNISH_PID=$STARTED_PID
    wait_for varnish "$VARNISH_PID" "$READY_SECONDS" "$SCRATCH/varnish.log" http_answers "http://127.0.0.1:$port/"
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
