#!/usr/bin/env bash
# Fleet rules: how fast a purge or a revocation reaches 10 nodes (p99 from
# the write to the last node), and how long a node takes to start and list
# 100,000 stored rules. See benches/fleet/bench.py for the method.
#
# Usage: benches/fleet_rules.sh
#
#   NODES=10        nodes in the PoP of the propagation run
#   TRIALS=100      purges and revocations timed (each)
#   RULES=100000    rules stored for the start-up run
#   ROUNDS=5        start-ups timed, with and without the rules
#   POLL_MS=2       how often each node's metrics are read
#   KEEP=1          keep the scratch folder (target/fleet-bench/)
#
# Needs etcd (deploy/setup.sh fleet) and python3; builds the release binary.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LIB_NAME="fleet bench"
# shellcheck source=deploy/lib.sh
source "$ROOT/deploy/lib.sh"

command -v etcd >/dev/null 2>&1 || die "etcd is missing: bash deploy/setup.sh fleet"
command -v python3 >/dev/null 2>&1 || die "python3 is missing"

build_node
mkdir -p target/fleet-bench
say "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $(etcd --version | sed -n 1p)"
say "commit $(git rev-parse --short HEAD)"
SCRATCH="$ROOT/target/fleet-bench" exec python3 benches/fleet/bench.py "$NODE"
