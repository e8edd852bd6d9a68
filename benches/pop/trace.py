#!/usr/bin/env python3
"""A video PoP's catalogue and request trace, for benches/pop_workload.sh.

  trace.py catalogue DIR OBJECTS MP4_MIB SEED
      writes DIR/catalogue.tsv (path, bytes), one object per line:
      HLS-like segments of 0.5-2 MiB (95 % of the objects), playlists of
      2-20 KiB (5 %) and one MP4 of MP4_MIB per 5,000 objects (at least two)
  trace.py trace DIR ZIPF REQUESTS SEED
      writes DIR/trace-ZIPF.txt: REQUESTS lines, `PATH` for a whole object
      or `PATH FIRST-LAST` for a 2 MiB range of an MP4 (at a random
      1 MiB-aligned offset); objects drawn with Zipf popularity of exponent
      ZIPF over a random ranking of the catalogue
  trace.py files DIR ROOT
      creates the catalogue's objects under ROOT as sparse files (no disk
      used: the origin reads zeros)

The same SEED gives the same catalogue, ranking and trace.
"""

import bisect
import itertools
import os
import random
import sys

MIB = 1024 * 1024
RANGE = 2 * MIB


def catalogue(folder, objects, mp4_mib, seed):
    rng = random.Random(seed)
    mp4s = max(2, objects // 5000)
    playlists = objects // 20
    rows = []
    for i in range(objects):
        if i < mp4s:
            rows.append((f"/pop/mp4/{i}.mp4", mp4_mib * MIB))
        elif i < mp4s + playlists:
            rows.append((f"/pop/pl/{i}.bin", rng.randint(2 * 1024, 20 * 1024)))
        else:
            rows.append((f"/pop/seg/{i // 1000}/{i}.bin", rng.randint(MIB // 2, 2 * MIB)))
    with open(os.path.join(folder, "catalogue.tsv"), "w") as f:
        for path, size in rows:
            f.write(f"{path}\t{size}\n")


def read_catalogue(folder):
    with open(os.path.join(folder, "catalogue.tsv")) as f:
        return [(p, int(s)) for p, s in (line.split("\t") for line in f)]


def trace(folder, zipf, requests, seed):
    rows = read_catalogue(folder)
    rng = random.Random(seed)
    ranking = list(range(len(rows)))
    rng.shuffle(ranking)
    weights = [1.0 / (rank + 1) ** zipf for rank in range(len(rows))]
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    with open(os.path.join(folder, f"trace-{zipf}.txt"), "w") as f:
        for _ in range(requests):
            rank = bisect.bisect_left(cumulative, rng.random() * total)
            path, size = rows[ranking[min(rank, len(rows) - 1)]]
            if path.endswith(".mp4"):
                first = rng.randrange(0, max(1, (size - RANGE) // MIB)) * MIB
                f.write(f"{path} {first}-{first + RANGE - 1}\n")
            else:
                f.write(f"{path}\n")


def files(folder, root):
    for path, size in read_catalogue(folder):
        full = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.truncate(size)


def main():
    command, folder, *rest = sys.argv[1:]
    if command == "catalogue":
        catalogue(folder, int(rest[0]), int(rest[1]), int(rest[2]))
    elif command == "trace":
        trace(folder, float(rest[0]), int(rest[1]), int(rest[2]))
    elif command == "files":
        files(folder, rest[0])
    else:
        sys.exit(f"trace.py: unknown command {command}")


if __name__ == "__main__":
    main()
