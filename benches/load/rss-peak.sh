#!/usr/bin/env bash
# Samples the summed VmRSS of the given processes every 200 ms until they have
# all exited or this script is killed, and keeps the peak (KiB) in OUT_FILE,
# rewritten after every new peak.
#
# Usage: rss-peak.sh OUT_FILE PID...
set -u
out=$1
shift
peak=0
echo 0 >"$out"
while :; do
    total=0
    alive=0
    for pid in "$@"; do
        # Read without forking: this runs beside the benchmark on few cores.
        while read -r name value _; do
            if [[ "$name" == VmRSS: ]]; then
                total=$((total + value))
                alive=1
                break
            fi
        done <"/proc/$pid/status" 2>/dev/null || true
    done
    [[ $alive -eq 1 ]] || exit 0
    if ((total > peak)); then
        peak=$total
        echo "$peak" >"$out.new" && mv -f "$out.new" "$out"
    fi
    sleep 0.2
done
