#!/usr/bin/env python3
"""Where a cache's origin bytes went, from the PoP workload's origin log.

  origin_log.py LOG [SLICE_SIZE]

LOG is one side's log of benches/pop/nginx-origin.conf.in (`status bytes
method path "range"` per answer). Prints one row per object class
(segments, playlists, MP4s) and request kind: HEAD; a GET without Range
(whole); a GET of `bytes=0-65535` (probe); a GET from byte 0 of at most
SLICE_SIZE bytes (first slice: 4 MiB unless given); any other Range GET
(slice). Counts, bytes, and each row's share of the side's bytes.
"""

import collections
import re
import sys

KINDS = ("HEAD", "whole", "probe", "first slice", "slice")


def classify(path):
    for marker, name in (("/seg/", "segments"), ("/pl/", "playlists"), (".mp4", "MP4s")):
        if marker in path:
            return name
    return "other"


def kind(method, rng, slice_size):
    if method == "HEAD":
        return "HEAD"
    if rng in ("", "-"):
        return "whole"
    if rng == "bytes=0-65535":
        return "probe"
    m = re.fullmatch(r"bytes=0-(\d+)", rng)
    if m and int(m.group(1)) < slice_size:
        return "first slice"
    return "slice"


def main():
    path = sys.argv[1]
    slice_size = int(sys.argv[2]) if len(sys.argv) > 2 else 4 * 1024 * 1024
    rows = collections.defaultdict(lambda: [0, 0])
    pattern = re.compile(r'(\d+) (\d+) (\S+) (\S+) "([^"]*)"')
    with open(path) as f:
        for line in f:
            m = pattern.match(line)
            if not m:
                continue
            status, sent, method, uri, rng = m.groups()
            row = rows[(classify(uri), kind(method, rng, slice_size))]
            row[0] += 1
            row[1] += int(sent)
    total = sum(b for _, b in rows.values()) or 1
    print("| class | request | count | MiB | share of bytes |")
    print("|---|---|---|---|---|")
    for (cls, k), (n, b) in sorted(rows.items(), key=lambda kv: (kv[0][0], KINDS.index(kv[0][1]))):
        print(f"| {cls} | {k} | {n:,} | {b / 2**20:,.0f} | {b / total:.1%} |")
    print(f"| all | | {sum(n for n, _ in rows.values()):,} | {total / 2**20:,.0f} | |")


if __name__ == "__main__":
    main()
