#!/usr/bin/env python3
"""Byte hit ratios a cache could reach on the PoP workload's trace.

  bounds.py DIR ZIPF CAPACITY_MIB [FIRST LAST]

DIR holds benches/pop_workload.sh's catalogue.tsv and trace-ZIPF.txt (its
scratch folder, kept with KEEP=1). Prints two figures for a cache of
CAPACITY_MIB:

- static best: the objects with the highest request rate per byte kept for
  good (from the Zipf popularities the trace was drawn with), the expected
  share of requested bytes they serve; no policy that learns online does
  better on such a trace;
- LRU: an exact byte-bounded LRU played over the trace, the share of bytes
  of requests FIRST to LAST (0-based, LAST excluded; the warm-up of 5,000
  to the end by default) it served without the origin;
- exact LFU: a cache that knows every key's request count since the
  trace's start exactly (no sketch, no ageing) and keeps the most requested
  keys: a missed key enters only if the keys it pushes out were all asked
  less often. What an admission policy that learns online can hope for on
  this trace (`cargo bench --bench policy_replay` plays the node's own).

MP4 ranges count as the 4 MiB slices they touch, as both caches store them.
"""

import collections
import heapq
import os
import random
import sys

MIB = 1024 * 1024
SLICE = 4 * MIB
RANGE = 2 * MIB


def catalogue(folder):
    with open(os.path.join(folder, "catalogue.tsv")) as f:
        return [(p, int(s)) for p, s in (line.rstrip("\n").split("\t") for line in f)]


def static_best(rows, zipf, capacity):
    # The ranking trace.py drew with (seed 1).
    rng = random.Random(1)
    ranking = list(range(len(rows)))
    rng.shuffle(ranking)
    items = []
    for rank in range(len(rows)):
        path, size = rows[ranking[rank]]
        rate = 1.0 / (rank + 1) ** zipf
        asked = RANGE if path.endswith(".mp4") else size
        items.append((rate, asked, size))
    total = sum(rate * asked for rate, asked, _ in items)
    kept = served = 0
    for rate, asked, size in sorted(items, key=lambda t: -t[0] * t[1] / t[2]):
        if kept + size <= capacity:
            kept += size
            served += rate * asked
    return served / total


def requests(folder, zipf, sizes, last):
    """The trace's requests up to LAST: (keys with their sizes, bytes the client asked)."""
    with open(os.path.join(folder, f"trace-{zipf}.txt")) as f:
        for i, line in enumerate(f):
            if last is not None and i >= last:
                return
            words = line.split()
            if len(words) == 1:
                yield [(words[0], sizes[words[0]])], sizes[words[0]]
            else:
                a, b = map(int, words[1].split("-"))
                keys = [(f"{words[0]}#{n}", SLICE) for n in range(a // SLICE, b // SLICE + 1)]
                yield keys, b - a + 1


def lru(folder, rows, zipf, capacity, first, last):
    sizes = dict(rows)
    cache = collections.OrderedDict()
    used = fetched = asked = 0
    for i, (keys, client) in enumerate(requests(folder, zipf, sizes, last)):
        missed = 0
        for key, size in keys:
            if key in cache:
                cache.move_to_end(key)
                continue
            missed += size
            cache[key] = size
            used += size
            while used > capacity:
                used -= cache.popitem(last=False)[1]
        if i >= first:
            fetched += missed
            asked += client
    return 1 - fetched / asked


def exact_lfu(folder, rows, zipf, capacity, first, last):
    sizes = dict(rows)
    counts = collections.Counter()
    cache = {}
    # (count when pushed, key); an entry whose count moved on is stale.
    heap = []
    used = fetched = asked = 0
    for i, (keys, client) in enumerate(requests(folder, zipf, sizes, last)):
        missed = 0
        for key, size in keys:
            counts[key] += 1
            if key in cache:
                heapq.heappush(heap, (counts[key], key))
                continue
            missed += size
            victims, freed = [], 0
            while used - freed + size > capacity and heap:
                count, victim = heapq.heappop(heap)
                if victim not in cache or count != counts[victim] or victim in victims:
                    continue
                if count >= counts[key]:
                    heapq.heappush(heap, (count, victim))
                    break
                victims.append(victim)
                freed += cache[victim]
            if used - freed + size > capacity:
                for victim in victims:
                    heapq.heappush(heap, (counts[victim], victim))
                continue
            for victim in victims:
                used -= cache.pop(victim)
            cache[key] = size
            used += size
            heapq.heappush(heap, (counts[key], key))
        if i >= first:
            fetched += missed
            asked += client
    return 1 - fetched / asked


def main():
    folder, zipf, capacity = sys.argv[1], sys.argv[2], int(sys.argv[3]) * MIB
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    last = int(sys.argv[5]) if len(sys.argv) > 5 else None
    rows = catalogue(folder)
    print(f"static best: {static_best(rows, float(zipf), capacity):.1%}")
    print(f"LRU: {lru(folder, rows, zipf, capacity, first, last):.1%}")
    print(f"exact LFU: {exact_lfu(folder, rows, zipf, capacity, first, last):.1%}")


if __name__ == "__main__":
    main()
