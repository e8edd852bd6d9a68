#!/usr/bin/env python3
"""The table of benches/pop_workload.sh from its result lines.

  summary.py RESULTS RATE_PERCENT

RESULTS holds one client run per line as `key=value` words (zipf, server,
phase: warm, saturation or rate-R; requests, bytes, duration_us, p99_us,
hits, p99_hit_us, misses, p99_miss_us (as the server's cache fields say),
errors, dropped, not_ok, origin_bytes, cpu_s: the server's CPU seconds;
disk_samples, disk_mean_mib, disk_peak_mib: its cache folder's size). The
byte figures and the disk used count the saturation and fixed-rate runs
together, the warm-up left out; requests per CPU-second are the
saturation run's.
"""

import sys

NAMES = {"node": "cdn-node", "nginx": "nginx proxy_cache"}


def main():
    path, percent = sys.argv[1], sys.argv[2]
    runs = []
    with open(path) as f:
        for line in f:
            runs.append(dict(w.split("=", 1) for w in line.split() if "=" in w))
    print(f"| Zipf | server | saturation (req/s) | vs nginx | per server CPU-second | vs nginx "
          f"| p99 at {percent} % of nginx's rate "
          "| origin bytes per client byte | byte hit ratio | disk used, mean / peak (MiB) "
          "| errors / not 200-206 / dropped |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for zipf in dict.fromkeys(r["zipf"] for r in runs):
        of = [r for r in runs if r["zipf"] == zipf]
        sat = {r["server"]: int(r["requests"]) * 1e6 / int(r["duration_us"])
               for r in of if r["phase"] == "saturation"}
        per_cpu = {r["server"]: int(r["requests"]) / float(r["cpu_s"])
                   for r in of if r["phase"] == "saturation" and float(r.get("cpu_s", 0)) > 0}
        for server in ("node", "nginx"):
            mine = [r for r in of if r["server"] == server]
            measured = [r for r in mine if r["phase"] != "warm"]
            paced = next((r for r in mine if r["phase"].startswith("rate-")), None)
            client = sum(int(r["bytes"]) for r in measured)
            origin = sum(int(r["origin_bytes"]) for r in measured)
            faults = [sum(int(r[k]) for r in measured) for k in ("errors", "not_ok", "dropped")]
            ratio = sat.get(server, 0) / sat["nginx"] if sat.get("nginx") else 0
            cpu = per_cpu.get(server, 0)
            cpu_ratio = cpu / per_cpu["nginx"] if per_cpu.get("nginx") else 0
            if paced:
                rate = paced["phase"].removeprefix("rate-")
                achieved = int(paced["requests"]) * 1e6 / int(paced["duration_us"])
                p99 = f"{int(paced['p99_us']) / 1000:.1f} ms ({rate} req/s asked, {achieved:.0f} done"
                if "p99_hit_us" in paced:
                    p99 += (f"; hits {int(paced['p99_hit_us']) / 1000:.1f} ms, "
                            f"misses {int(paced['p99_miss_us']) / 1000:.1f} ms, "
                            f"{int(paced['misses']) / max(1, int(paced['requests'])):.0%} of the answers")
                p99 += ")"
            else:
                p99 = "-"
            per = origin / client if client else 0
            samples = sum(int(r.get("disk_samples", 0)) for r in measured)
            mean = sum(int(r.get("disk_samples", 0)) * float(r.get("disk_mean_mib", 0))
                       for r in measured) / samples if samples else 0
            peak = max((float(r.get("disk_peak_mib", 0)) for r in measured), default=0)
            print(f"| {zipf} | {NAMES[server]} | {sat.get(server, 0):,.0f} | {ratio:.2f}x "
                  f"| {cpu:,.0f} | {cpu_ratio:.2f}x | {p99} "
                  f"| {per:.3f} ({origin / 2**30:.1f} of {client / 2**30:.1f} GiB) | {1 - per:.1%} "
                  f"| {mean:,.0f} / {peak:,.0f} "
                  f"| {' / '.join(map(str, faults))} |")


if __name__ == "__main__":
    main()
