#!/usr/bin/env bash
# Samples the disk space a cache folder uses (du, 1 KiB blocks) once a
# second until it is stopped, appending one number per line to OUT.
# Usage: benches/pop/disk-use.sh DIR OUT
set -u
dir=$1 out=$2
trap 'exit 0' TERM INT
while :; do
    du -s -k "$dir" 2>/dev/null | cut -f1 >>"$out"
    sleep 1
done
