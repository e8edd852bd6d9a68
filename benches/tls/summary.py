#!/usr/bin/env python3
"""Turns benches/tls.sh's result lines into figures.

  summary.py run LINE        one run: rate, CPU, operations per CPU-second
  summary.py table RESULTS   per scenario and certificate: both servers'
                             rates over all rounds, the cdn-node / nginx
                             ratio (and each round's), and per CPU-second
  summary.py large-run LINE  one 10 MiB run: rate, bytes per second, CPU,
                             bytes per CPU-second
  summary.py large-table RESULTS   the 10 MiB scenario over its rounds:
                             each server's figures, cdn-node / nginx and
                             cdn-node / Varnish + hitch (each round's too)

A line holds `key=value` words: scenario, server, key, ops, seconds, cpu_s,
for new-connection runs resumed and failed, for 10 MiB runs bytes and
failed.
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


def describe_large(r):
    ops, secs, cpu, nbytes = int(r["ops"]), float(r["seconds"]), float(r["cpu_s"]), int(r["bytes"])
    text = (
        f"{ops / secs:>8,.0f} req/s  {nbytes / secs / 1e6:>7,.0f} MB/s  cpu {cpu:5.2f} s"
        f"  {nbytes / cpu / 1e6 if cpu else 0:>7,.0f} MB per CPU-s"
    )
    if int(r["failed"]):
        text += f"  FAILED {r['failed']}"
    return text


LARGE_NAMES = {"nginx": "nginx", "varnish": "Varnish + hitch", "node": "cdn-node"}


def large_figures(rs):
    secs = sum(float(r["seconds"]) for r in rs)
    cpu = sum(float(r["cpu_s"]) for r in rs)
    nbytes = sum(int(r["bytes"]) for r in rs)
    return {
        "req/s": sum(int(r["ops"]) for r in rs) / secs,
        "MB/s": nbytes / secs / 1e6,
        "server CPU, s per run": cpu / len(rs),
        "MB per CPU-s": nbytes / cpu / 1e6 if cpu else 0,
        "rounds": [int(r["bytes"]) / float(r["seconds"]) for r in rs],
        "rounds per CPU-s": [int(r["bytes"]) / float(r["cpu_s"]) if float(r["cpu_s"]) else 0 for r in rs],
    }


def large_table(path):
    runs = {}
    with open(path) as f:
        for line in f:
            r = words(line)
            runs.setdefault(r["server"], []).append(r)
    servers = [s for s in ("nginx", "varnish", "node") if s in runs]
    fig = {s: large_figures(runs[s]) for s in servers}
    others = [s for s in ("nginx", "varnish") if s in fig and "node" in fig]
    print(
        "| 10 MiB hits, HTTP/1.1 over TLS (wrk -t2 -c8) | "
        + " | ".join(LARGE_NAMES[s] for s in servers)
        + " | "
        + " | ".join(f"cdn-node / {LARGE_NAMES[s]}" for s in others)
        + " |"
    )
    print("|---" * (1 + len(servers) + len(others)) + "|")
    for row in ("req/s", "MB/s", "server CPU, s per run", "MB per CPU-s"):
        cpu_row = row.startswith("server")
        cells = [f"{fig[s][row]:,.2f}" if cpu_row else f"{fig[s][row]:,.0f}" for s in servers]
        for s in others:
            if cpu_row:
                cells.append("")
                continue
            each = {"MB/s": "rounds", "MB per CPU-s": "rounds per CPU-s"}.get(row)
            ratio = f"{fig['node'][row] / fig[s][row]:.2f}x" if fig[s][row] else "-"
            if each:
                pairs = zip(fig["node"][each], fig[s][each])
                ratio += " (" + ", ".join(f"{n / o:.2f}" if o else "-" for n, o in pairs) + ")"
            cells.append(ratio)
        print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if sys.argv[1] == "run":
        print(describe(words(sys.argv[2])))
    elif sys.argv[1] == "table":
        table(sys.argv[2])
    elif sys.argv[1] == "large-run":
        print(describe_large(words(sys.argv[2])))
    elif sys.argv[1] == "large-table":
        large_table(sys.argv[2])
    else:
        sys.exit(__doc__)
