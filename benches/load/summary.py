#!/usr/bin/env python3
"""Turns the result lines benches/load.sh collects into readable figures.

  summary.py run RESULTS SCENARIO SERVER   one line for one finished run
  summary.py pair RESULTS SCENARIO         the cdn-node / nginx comparison
  summary.py table RESULTS                 the final markdown summary

RESULTS holds one run per line as `key=value` words; the machine facts for
the table come from BENCH_* environment variables.
"""

import os
import sys

SERVERS = {"nginx": "nginx proxy_cache", "node": "cdn-node"}
MEM_TARGET_MIB = 150


def load(path):
    runs = {}
    with open(path) as f:
        for line in f:
            words = dict(w.split("=", 1) for w in line.split() if "=" in w)
            if "scenario" in words and "server" in words:
                runs[(words["scenario"], words["server"])] = words
    return runs


def num(run, key):
    return float(run.get(key, "0") or 0)


def seconds(run):
    return max(num(run, "duration_us") / 1e6, 1e-9)


def req_rate(run):
    return num(run, "requests") / seconds(run)


def byte_rate(run):
    return num(run, "bytes") / seconds(run)


def cpu_share(run):
    return num(run, "cpu_s") / seconds(run)


def errors(run):
    return sum(int(num(run, k)) for k in ("err_connect", "err_read", "err_write", "err_status"))


def fmt_count(x):
    return f"{x:,.0f}"


def fmt_bytes_rate(x):
    if x >= 1e9:
        return f"{x / 1e9:.2f} GB/s"
    return f"{x / 1e6:.1f} MB/s"


def fmt_ms(us):
    return f"{us / 1000:.2f} ms" if us < 100_000 else f"{us / 1e6:.2f} s"


def fmt_mib(kib):
    return f"{kib / 1024:.1f} MiB"


def ratio(a, b):
    return a / b if b > 0 else float("nan")


def fmt_ratio(x):
    return f"{x:.2f}x"


def verdict(ok):
    return "yes" if ok else "**no**"


def describe_run(run):
    if num(run, "requests") > 0:
        text = (
            f"{fmt_count(req_rate(run))} req/s, {fmt_bytes_rate(byte_rate(run))}, "
            f"p50 {fmt_ms(num(run, 'p50_us'))}, p99 {fmt_ms(num(run, 'p99_us'))}, "
        )
    else:
        # Every download outlasts the run: only the bytes tell.
        text = f"{fmt_bytes_rate(byte_rate(run))} (no download completed within the run), "
    text += f"server CPU {cpu_share(run) * 100:.0f}%"
    if "peak_kib" in run:
        text += f", peak RSS {fmt_mib(num(run, 'peak_kib'))} (idle {fmt_mib(num(run, 'idle_kib'))})"
    bad = errors(run)
    if bad:
        text += (
            f", ERRORS: {bad} (connect {run.get('err_connect')}, read {run.get('err_read')}, "
            f"write {run.get('err_write')}, non-2xx/3xx {run.get('err_status')})"
        )
    return text


def pair_lines(runs, scenario):
    nginx, node = runs.get((scenario, "nginx")), runs.get((scenario, "node"))
    if not nginx or not node:
        return ["  (incomplete: a run is missing)"]
    lines = []
    if scenario == "small":
        r = ratio(req_rate(node), req_rate(nginx))
        lines.append(f"  req/s cdn-node/nginx {fmt_ratio(r)} (target >= 1.20x: {verdict(r >= 1.2)})")
        p_node, p_nginx = num(node, "p99_us"), num(nginx, "p99_us")
        lines.append(
            f"  p99 cdn-node {fmt_ms(p_node)} vs nginx {fmt_ms(p_nginx)} "
            f"(target no worse: {verdict(p_node <= p_nginx)})"
        )
    elif scenario == "medium":
        r = ratio(byte_rate(node), byte_rate(nginx))
        lines.append(f"  throughput cdn-node/nginx {fmt_ratio(r)} (target >= 1.00x: {verdict(r >= 1.0)})")
    elif scenario == "large":
        peak = num(node, "peak_kib") / 1024
        lines.append(
            f"  cdn-node peak RSS {peak:.1f} MiB (target < {MEM_TARGET_MIB} MiB: "
            f"{verdict(peak < MEM_TARGET_MIB)}); nginx workers {fmt_mib(num(nginx, 'peak_kib'))}"
        )
    for server in ("nginx", "node"):
        run = runs[(scenario, server)]
        eff = num(run, "requests") / max(num(run, "cpu_s"), 1e-9)
        if scenario == "small":
            lines.append(f"  {SERVERS[server]}: {fmt_count(eff)} requests per server CPU-second")
        else:
            per_cpu = num(run, "bytes") / max(num(run, "cpu_s"), 1e-9)
            lines.append(f"  {SERVERS[server]}: {fmt_bytes_rate(per_cpu)[:-2]} per server CPU-second")
    return lines


def table(runs):
    env = os.environ.get
    titles = {
        "small": f"1 KiB hit, {env('BENCH_SMALL_ARGS', '')}",
        "medium": f"10 MiB hit, {env('BENCH_MEDIUM_ARGS', '')}",
        "large": f"{env('BENCH_LARGE_LABEL', '1 GiB')} hit, {env('BENCH_LARGE_ARGS', '')}",
    }
    out = [
        "| scenario | measure | nginx 1.22 proxy_cache | cdn-node | cdn-node / nginx | target | met |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(*cells):
        out.append("| " + " | ".join(cells) + " |")

    def get(scenario):
        return runs.get((scenario, "nginx")), runs.get((scenario, "node"))

    nginx, node = get("small")
    if nginx and node:
        t = titles["small"]
        r = ratio(req_rate(node), req_rate(nginx))
        row(t, "requests/s", fmt_count(req_rate(nginx)), fmt_count(req_rate(node)), fmt_ratio(r), ">= 1.2x", verdict(r >= 1.2))
        row(t, "p50 latency", fmt_ms(num(nginx, "p50_us")), fmt_ms(num(node, "p50_us")),
            fmt_ratio(ratio(num(node, "p50_us"), num(nginx, "p50_us"))), "", "")
        ok = num(node, "p99_us") <= num(nginx, "p99_us")
        row(t, "p99 latency", fmt_ms(num(nginx, "p99_us")), fmt_ms(num(node, "p99_us")),
            fmt_ratio(ratio(num(node, "p99_us"), num(nginx, "p99_us"))), "no worse", verdict(ok))
        row(t, "transfer", fmt_bytes_rate(byte_rate(nginx)), fmt_bytes_rate(byte_rate(node)), "", "", "")
        row(t, "server CPU (1 core = 100%)", f"{cpu_share(nginx) * 100:.0f}%", f"{cpu_share(node) * 100:.0f}%", "", "", "")
        e_nginx = num(nginx, "requests") / max(num(nginx, "cpu_s"), 1e-9)
        e_node = num(node, "requests") / max(num(node, "cpu_s"), 1e-9)
        row(t, "requests per server CPU-second", fmt_count(e_nginx), fmt_count(e_node), fmt_ratio(ratio(e_node, e_nginx)), "", "")
    nginx, node = get("medium")
    if nginx and node:
        t = titles["medium"]
        r = ratio(byte_rate(node), byte_rate(nginx))
        row(t, "transfer", fmt_bytes_rate(byte_rate(nginx)), fmt_bytes_rate(byte_rate(node)), fmt_ratio(r), ">= 1.0x", verdict(r >= 1.0))
        row(t, "requests/s", fmt_count(req_rate(nginx)), fmt_count(req_rate(node)), fmt_ratio(ratio(req_rate(node), req_rate(nginx))), "", "")
        row(t, "p50 / p99 latency", f"{fmt_ms(num(nginx, 'p50_us'))} / {fmt_ms(num(nginx, 'p99_us'))}",
            f"{fmt_ms(num(node, 'p50_us'))} / {fmt_ms(num(node, 'p99_us'))}", "", "", "")
        row(t, "server CPU (1 core = 100%)", f"{cpu_share(nginx) * 100:.0f}%", f"{cpu_share(node) * 100:.0f}%", "", "", "")
    nginx, node = get("large")
    if nginx and node:
        t = titles["large"]
        peak = num(node, "peak_kib") / 1024
        row(t, "peak RSS (cdn-node process; nginx: sum of workers)", fmt_mib(num(nginx, "peak_kib")), fmt_mib(num(node, "peak_kib")),
            "", f"< {MEM_TARGET_MIB} MiB", verdict(peak < MEM_TARGET_MIB))
        row(t, "RSS when idle, before the run", fmt_mib(num(nginx, "idle_kib")), fmt_mib(num(node, "idle_kib")), "", "", "")
        row(t, "transfer", fmt_bytes_rate(byte_rate(nginx)), fmt_bytes_rate(byte_rate(node)),
            fmt_ratio(ratio(byte_rate(node), byte_rate(nginx))), "", "")
        row(t, "server CPU (1 core = 100%)", f"{cpu_share(nginx) * 100:.0f}%", f"{cpu_share(node) * 100:.0f}%", "", "", "")

    bad = [
        f"{scenario}/{server}: {errors(run)}"
        for (scenario, server), run in sorted(runs.items())
        if errors(run)
    ]
    out += [
        "",
        f"- machine: {env('BENCH_NPROC', '?')} CPUs, {env('BENCH_CPU', '?')}, kernel {env('BENCH_KERNEL', '?')}",
        f"- date: {env('BENCH_DATE', '?')}; load average (1/5/15 min) at start {env('BENCH_LOAD_START', '?')}, at end {env('BENCH_LOAD_END', '?')}",
        f"- command: `{env('BENCH_COMMAND', '?')}`",
        f"- versions: cdn-node {env('BENCH_NODE_VERSION', '?')}, {env('BENCH_NGINX_VERSION', '?')}, {env('BENCH_WRK_VERSION', '?')}",
        f"- cdn-node: HS256 token in the query verified on every request, `server.threads: 2`, "
        f"access log to a file: {env('BENCH_ACCESS_LOG', '?')}; nginx: `worker_processes 2`, no token check, access_log off",
        "- client, servers and origin share the machine's CPUs over loopback: compare the two columns, not the absolute figures",
    ]
    if bad:
        out.append("- failed requests (connect/read/write errors, non-2xx/3xx): " + ", ".join(bad))
    return out


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    runs = load(argv[2])
    if argv[1] == "run":
        print(describe_run(runs[(argv[3], argv[4])]))
    elif argv[1] == "pair":
        print("\n".join(pair_lines(runs, argv[3])))
    elif argv[1] == "table":
        print("\n".join(table(runs)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
