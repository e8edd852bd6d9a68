#!/usr/bin/env bash
# Installs what building, running and testing cdn-node needs, and only what is
# missing. Safe to run again: anything already present is left alone.
#
# Usage: deploy/setup.sh [GROUP...]
#
#   build     cmake (Pingora's zlib-ng build needs it), protoc and the
#             protobuf well-known types (etcd-client's build needs them:
#             packages protobuf-compiler, libprotobuf-dev), curl,
#             ca-certificates; checks that cargo, rustfmt and clippy are there
#   s3        s3s-fs 0.14.1, a local S3-compatible server that checks SigV4
#             signatures (the origin for the quickstart and the tests)
#   promtool  Prometheus' promtool, used by the tests to lint /metrics
#   test-tools
#             what other tests run: shellcheck (lints the deploy scripts),
#             systemd's systemd-analyze (verifies the unit), openssl (makes
#             the HTTPS tests' certificates), faketime (moves the node's
#             clock in the clock tests)
#   browser   Chromium and its chromedriver (packages chromium and
#             chromium-driver), for the browser tests (tests/browser.rs)
#   fleet     etcd and etcdctl (packages etcd-server, etcd-client), for the
#             fleet tests (tests/fleet_*.rs) and a local fleet
#   conformance
#             Node.js and npm (packages nodejs, npm) and the HTTP cache
#             conformance suite http-cache-tests (npm, pinned), installed
#             into CDN_NODE_TOOLS (default ~/.local/share/cdn-node), for
#             tests/http_cache_conformance.rs
#   all       all of the above (the default when no group is given)
#
# The groups can also be given as CDN_NODE_SETUP="build s3".
# Debian/Ubuntu only (apt-get); run as root, or as a user with sudo.
set -euo pipefail

S3S_FS_VERSION=0.14.1
HTTP_CACHE_TESTS_VERSION=0.4.5
TOOLS_DIR=${CDN_NODE_TOOLS:-$HOME/.local/share/cdn-node}

usage() {
    sed -n '2,31s/^# \{0,1\}//p' "$0"
}

say() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

# cargo installs binaries here; later steps and the scripts that call this one
# look for s3s-fs there too.
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
    *":$CARGO_BIN:"*) ;;
    *) export PATH="$CARGO_BIN:$PATH" ;;
esac

want_build=0 want_s3=0 want_promtool=0 want_test_tools=0 want_browser=0 want_fleet=0
want_conformance=0
groups=("$@")
if [[ ${#groups[@]} -eq 0 && -n "${CDN_NODE_SETUP:-}" ]]; then
    read -r -a groups <<<"$CDN_NODE_SETUP"
fi
[[ ${#groups[@]} -eq 0 ]] && groups=(all)
for g in "${groups[@]}"; do
    case "$g" in
        build) want_build=1 ;;
        s3) want_s3=1 ;;
        promtool) want_promtool=1 ;;
        test-tools) want_test_tools=1 ;;
        browser) want_browser=1 ;;
        fleet) want_fleet=1 ;;
        conformance) want_conformance=1 ;;
        all)
            want_build=1 want_s3=1 want_promtool=1 want_test_tools=1 want_browser=1 want_fleet=1
            want_conformance=1
            ;;
        -h | --help | help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown group '$g' (expected build, s3, promtool, test-tools, browser, fleet, conformance or all)"
            ;;
    esac
done

export DEBIAN_FRONTEND=noninteractive

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        # -n: fail rather than wait for a password nobody can type.
        sudo -n DEBIAN_FRONTEND=noninteractive "$@"
    else
        die "installing needs root: run this script as root (or install sudo)"
    fi
}

# Runs a command with its output kept in a temporary file; shows that output
# only when the command fails.
quietly() {
    local log rc=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        printf 'setup: command failed (exit %s): %s\n' "$rc" "$*" >&2
        tail -n 40 "$log" >&2
    fi
    rm -f "$log"
    return "$rc"
}

pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

# Missing apt packages are collected first and installed together, so that
# `apt-get update` runs at most once, and only when something is missing.
apt_missing=()
need_pkg() {
    local pkg=$1 reason=$2
    local p
    for p in "${apt_missing[@]+"${apt_missing[@]}"}"; do
        [[ "$p" == "$pkg" ]] && return 0
    done
    say "will install $pkg ($reason)"
    apt_missing+=("$pkg")
}

if [[ $want_build -eq 1 ]]; then
    command -v cmake >/dev/null 2>&1 || need_pkg cmake "needed to build Pingora's zlib-ng"
    command -v protoc >/dev/null 2>&1 || need_pkg protobuf-compiler "protoc, needed to build etcd-client"
    [[ -f /usr/include/google/protobuf/descriptor.proto ]] ||
        need_pkg libprotobuf-dev "the protobuf well-known types etcd-client's build imports"
fi
if [[ $want_build -eq 1 || $want_s3 -eq 1 ]]; then
    command -v curl >/dev/null 2>&1 || need_pkg curl "used to download, upload and probe"
    pkg_installed ca-certificates || need_pkg ca-certificates "trust store for HTTPS origins"
fi
if [[ $want_promtool -eq 1 ]]; then
    command -v promtool >/dev/null 2>&1 || need_pkg prometheus "provides promtool, used to lint /metrics"
fi
if [[ $want_test_tools -eq 1 ]]; then
    command -v shellcheck >/dev/null 2>&1 || need_pkg shellcheck "used by the tests to lint the scripts under deploy/"
    command -v systemd-analyze >/dev/null 2>&1 ||
        need_pkg systemd "provides systemd-analyze, used by the tests to verify the unit"
    command -v openssl >/dev/null 2>&1 || need_pkg openssl "used by the tests to make certificates"
    command -v faketime >/dev/null 2>&1 || need_pkg faketime "its libfaketime moves the node's clock in the clock tests"
fi
if [[ $want_browser -eq 1 ]]; then
    # The tests start /usr/bin/chromium, Debian's build (its media stack
    # plays H.264 and AAC).
    [[ -x /usr/bin/chromium ]] || need_pkg chromium "the browser the browser tests drive"
    command -v chromedriver >/dev/null 2>&1 ||
        need_pkg chromium-driver "provides chromedriver, which drives Chromium for the browser tests"
fi

if [[ $want_fleet -eq 1 ]]; then
    command -v etcd >/dev/null 2>&1 || need_pkg etcd-server "etcd, the fleet's control plane (started by the fleet tests)"
    command -v etcdctl >/dev/null 2>&1 || need_pkg etcd-client "etcdctl, to inspect and write the fleet's keys"
fi

if [[ $want_conformance -eq 1 ]]; then
    command -v node >/dev/null 2>&1 || need_pkg nodejs "runs the HTTP cache conformance suite"
    command -v npm >/dev/null 2>&1 || need_pkg npm "installs the HTTP cache conformance suite"
fi

if [[ ${#apt_missing[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found: install ${apt_missing[*]} with this system's package manager"
    say "apt-get update"
    quietly as_root apt-get -q update || die "apt-get update failed"
    say "apt-get install ${apt_missing[*]}"
    quietly as_root apt-get -q install -y --no-install-recommends "${apt_missing[@]}" ||
        die "apt-get install ${apt_missing[*]} failed"
fi

if [[ $want_build -eq 1 || $want_s3 -eq 1 ]]; then
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found (looked in PATH and $CARGO_BIN): install Rust 1.95 or newer (https://rustup.rs)"
fi
if [[ $want_build -eq 1 ]]; then
    cargo fmt --version >/dev/null 2>&1 ||
        die "rustfmt is missing: rustup component add rustfmt"
    cargo clippy --version >/dev/null 2>&1 ||
        die "clippy is missing: rustup component add clippy"
fi

if [[ $want_s3 -eq 1 ]]; then
    if s3s-fs --help >/dev/null 2>&1; then
        :
    else
        say "installing s3s-fs $S3S_FS_VERSION with cargo into $CARGO_BIN (takes about 2 minutes)"
        quietly cargo install --quiet --locked "s3s-fs@$S3S_FS_VERSION" --features binary ||
            die "cargo install s3s-fs@$S3S_FS_VERSION failed"
        s3s-fs --help >/dev/null 2>&1 || die "s3s-fs was installed but does not run"
    fi
fi

if [[ $want_build -eq 1 ]]; then
    cmake --version >/dev/null 2>&1 || die "cmake was installed but does not run"
fi
if [[ $want_promtool -eq 1 ]]; then
    promtool --version >/dev/null 2>&1 || die "promtool was installed but does not run"
fi
if [[ $want_test_tools -eq 1 ]]; then
    shellcheck --version >/dev/null 2>&1 || die "shellcheck was installed but does not run"
    systemd-analyze --version >/dev/null 2>&1 || die "systemd-analyze was installed but does not run"
    openssl version >/dev/null 2>&1 || die "openssl was installed but does not run"
fi
if [[ $want_build -eq 1 ]]; then
    protoc --version >/dev/null 2>&1 || die "protoc was installed but does not run"
fi
if [[ $want_fleet -eq 1 ]]; then
    etcd --version >/dev/null 2>&1 || die "etcd was installed but does not run"
fi
if [[ $want_browser -eq 1 ]]; then
    /usr/bin/chromium --version >/dev/null 2>&1 || die "chromium was installed but does not run"
    chromedriver --version >/dev/null 2>&1 || die "chromedriver was installed but does not run"
fi

if [[ $want_conformance -eq 1 ]]; then
    suite="$TOOLS_DIR/http-cache-tests-$HTTP_CACHE_TESTS_VERSION"
    if [[ ! -f "$suite/node_modules/http-cache-tests/cli.mjs" ]]; then
        say "installing http-cache-tests $HTTP_CACHE_TESTS_VERSION with npm into $suite"
        mkdir -p "$suite"
        quietly npm install --prefix "$suite" --no-audit --no-fund --no-save \
            "http-cache-tests@$HTTP_CACHE_TESTS_VERSION" ||
            die "npm install http-cache-tests@$HTTP_CACHE_TESTS_VERSION failed"
    fi
    node --version >/dev/null 2>&1 || die "node was installed but does not run"
fi

done_list=()
[[ $want_build -eq 1 ]] && done_list+=("build: cmake $(cmake --version | sed -n '1s/^cmake version //p'), $(cargo --version | cut -d' ' -f1-2)")
[[ $want_s3 -eq 1 ]] && done_list+=("s3: $(command -v s3s-fs)")
[[ $want_promtool -eq 1 ]] && done_list+=("promtool: $(command -v promtool)")
[[ $want_test_tools -eq 1 ]] && done_list+=("test-tools: shellcheck $(shellcheck --version | sed -n 's/^version: //p'), systemd-analyze $(systemd-analyze --version | sed -n '1p' | cut -d' ' -f2), $(openssl version | cut -d' ' -f1-2)")
[[ $want_fleet -eq 1 ]] && done_list+=("fleet: $(etcd --version | sed -n '1p')")
[[ $want_conformance -eq 1 ]] && done_list+=("conformance: node $(node --version), http-cache-tests $HTTP_CACHE_TESTS_VERSION")
[[ $want_browser -eq 1 ]] && done_list+=("browser: $(/usr/bin/chromium --version 2>/dev/null | cut -d' ' -f1-2), $(chromedriver --version | cut -d' ' -f1-2)")
summary=$(printf '%s; ' "${done_list[@]}")
say "ready: ${summary%; }"
