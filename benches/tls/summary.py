#!/usr/bin/env python3
"""Turns benches/tls.sh's result lines into figures.

  summary.py run LINE        one run: rate, CPU, operations per CPU-second
  summary.py table RESULTS   per scenario and certificate: both servers'
                             rates over all rounds, the cdn-node / nginx
                             ratio (and each round's), and per CPU-second

A line holds `key=value` words: scenario, server, key, ops, seconds, cpu_s,
and for new-connection runs resumed and failed.
"""

import sys

TITLES = {
    "h1": "1 KiB hits, HTTP/1.1 over TLS (wrk -t2 -c50), req/s",
    "h2": "1 KiB hits, HTTP/2 (h2load -c50 -m10 -t2), req/s",
    "full": "new connections, full handshake + 1 GET (s_time -new), conn/s",
    "resumed": "new connections, resumed + 1 GET (s_time -reuse), conn/s",
}


def words(line):
    return dict(w.split("=", 1) for w in line.split() if "=" in w)


def describe(r):
    ops, secs, cpu = int(r["ops"]), float(r["seconds"]), float(r["cpu_s"])
    text = f"{ops / secs:>10,.0f}/s  cpu {cpu:5.2f} s  {ops / cpu if cpu else 0:>9,.0f} per CPU-s"
    if "resumed" in r and ops:
        text += f"  resumed {100 * int(r['resumed']) / ops:.0f} %"
    if int(r.get("failed", "0")):
        text += f"  FAILED {r['failed']}"
    return text


def table(path):
    runs = {}
    with open(path) as f:
        for line in f:
            r = words(line)
            runs.setdefault((r["scenario"], r["key"]), {}).setdefault(r["server"], []).append(r)
    print("| scenario | cert | nginx | cdn-node | ratio (rounds) | per CPU-s nginx | per CPU-s cdn-node | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for (scenario, key), servers in runs.items():
        if "node" not in servers or "nginx" not in servers:
            continue
        rate, per_cpu, rounds = {}, {}, {}
        for server, rs in servers.items():
            ops = sum(int(r["ops"]) for r in rs)
            rate[server] = ops / sum(float(r["seconds"]) for r in rs)
            cpu = sum(float(r["cpu_s"]) for r in rs)
            per_cpu[server] = ops / cpu if cpu else 0
            rounds[server] = [int(r["ops"]) / float(r["seconds"]) for r in rs]
        each = ", ".join(f"{n / g:.2f}" for n, g in zip(rounds["node"], rounds["nginx"]))
        resumed = ""
        if scenario == "resumed":
            share = [sum(int(r["resumed"]) for r in rs) / max(1, sum(int(r["ops"]) for r in rs)) for rs in (servers["nginx"], servers["node"])]
            resumed = f" (resumed {100 * share[0]:.0f} % / {100 * share[1]:.0f} %)"
        print(
            f"| {TITLES[scenario]}{resumed} | {key} | {rate['nginx']:,.0f} | {rate['node']:,.0f} "
            f"| {rate['node'] / rate['nginx']:.2f}x ({each}) | {per_cpu['nginx']:,.0f} | {per_cpu['node']:,.0f} "
            f"| {per_cpu['node'] / per_cpu['nginx'] if per_cpu['nginx'] else 0:.2f}x |"
        )


if __name__ == "__main__":
    if sys.argv[1] == "run":
        print(describe(words(sys.argv[2])))
    elif sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)
