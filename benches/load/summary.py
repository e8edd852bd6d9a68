#!/usr/bin/env python3
"""Turns the result lines benches/load.sh collects into readable figures.

  summary.py run RESULTS SCENARIO SERVER   one line for one finished run
  summary.py pair RESULTS SCENARIO         the cdn-node / nginx comparison
  summary.py seeks SEEKS                   the cold-seek medians and targets
  summary.py table RESULTS [SEEKS]         the final markdown summary

RESULTS holds one run per line as `key=value` words, SEEKS one timed cold
range GET per line; the machine facts for the table come from BENCH_*
environment variables. A scenario may have several runs (rounds) per server:
they are merged, requests, bytes, time and CPU added up, latency percentiles
the median of the rounds', peak memory the highest.
"""

import os
import statistics
import sys

SERVERS = {
    "nginx": "nginx proxy_cache",
    "nginx-slice": "nginx slice 1m",
    "node": "cdn-node",
    "varnish": "Varnish malloc",
    "s3": "s3s-fs (signed GET)",
    "s3-head": "s3s-fs (signed HEAD)",
    "origin": "nginx origin (static)",
}
MEM_TARGET_MIB = 150
# Cold seeks: cdn-node's time to first byte at 10, 50 and 90 % may differ by
# at most this factor, and stay within SLICE_TARGET times one slice GET.
FLAT_TARGET = 1.5
SLICE_TARGET = 2.0
RANGE_TARGET = 1.0


SUMMED = ("requests", "bytes", "duration_us", "cpu_s", "client_cpu_s", "err_connect", "err_read", "err_write", "err_status", "range_gets",
          "errors", "dropped", "not_ok")
MEDIAN = ("p50_us", "p90_us", "p99_us")


def load_rounds(path):
    """Every run of each (scenario, server), in the order they ran."""
    rounds = {}
    with open(path) as f:
        for line in f:
            words = dict(w.split("=", 1) for w in line.split() if "=" in w)
            if "scenario" in words and "server" in words:
                rounds.setdefault((words["scenario"], words["server"]), []).append(words)
    return rounds


def merge(runs):
    merged = dict(runs[-1])
    for key in SUMMED:
        if any(key in r for r in runs):
            total = sum(float(r.get(key, "0") or 0) for r in runs)
            merged[key] = f"{total:.6f}" if key.endswith("cpu_s") else str(int(round(total)))
    for key in MEDIAN:
        values = [float(r[key]) for r in runs if r.get(key)]
        if values:
            merged[key] = str(statistics.median(values))
    if any("peak_kib" in r for r in runs):
        merged["peak_kib"] = str(max(int(float(r.get("peak_kib", "0") or 0)) for r in runs))
    if "idle_kib" in runs[0]:
        merged["idle_kib"] = runs[0]["idle_kib"]
    return merged


def load(path):
    return {key: merge(runs) for key, runs in load_rounds(path).items()}


def words(line):
    return dict(w.split("=", 1) for w in line.split() if "=" in w)


def load_seeks(path):
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [words(line) for line in f if line.strip()]


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
    """A latency in µs; "-" for none."""
    if us is None:
        return "-"
    return f"{us / 1000:.2f} ms" if us < 100_000 else f"{us / 1e6:.2f} s"


def fmt_mib(kib):
    return f"{kib / 1024:.1f} MiB"


def ratio(a, b):
    return a / b if b > 0 else float("nan")


def fmt_ratio(x):
    return f"{x:.2f}x"


def verdict(ok):
    return "yes" if ok else "**no**"


def describe_rate_run(run):
    """An open-loop run of benches/pop/client: asked and done, latency, failures."""
    return (
        f"{fmt_count(num(run, 'rate'))} req/s asked, {fmt_count(req_rate(run))} done, "
        f"p50 {fmt_ms(num(run, 'p50_us'))}, p90 {fmt_ms(num(run, 'p90_us'))}, "
        f"p99 {fmt_ms(num(run, 'p99_us'))}, errors {int(num(run, 'errors'))}, "
        f"dropped {int(num(run, 'dropped'))}, not 200 {int(num(run, 'not_ok'))}"
    )


def clean_p99(server):
    """The median p99 of a server's open-loop runs in which every request was
    sent on time and answered (None when there was none), and how many of
    its runs that was. A run with requests not sent on time had a stall of
    the client or the server, or of the machine under both."""
    runs = ROUNDS_OF.get(("small-rate", server), [])
    clean = [num(r, "p99_us") for r in runs if not (num(r, "dropped") or num(r, "errors"))]
    return (statistics.median(clean) if clean else None), len(clean), len(runs)


def rate_verdict():
    """(cdn-node's p99, nginx's, text of the clean runs, verdict) over the clean runs."""
    (node, n_node, of_node), (nginx, n_nginx, of_nginx) = clean_p99("node"), clean_p99("nginx")
    runs = f"clean runs: cdn-node {n_node} of {of_node}, nginx {n_nginx} of {of_nginx}"
    if node is None or nginx is None:
        return node, nginx, runs, "not measured (no clean run)"
    return node, nginx, runs, verdict(node <= nginx)


def rate_lines(runs):
    """The 1 KiB hits at one open-loop rate: p99 by run, and over the clean runs."""
    nginx, node = runs.get(("small-rate", "nginx")), runs.get(("small-rate", "node"))
    if not nginx or not node:
        return ["  (incomplete: a run is missing)"]
    a, b = ROUNDS_OF.get(("small-rate", "nginx"), []), ROUNDS_OF.get(("small-rate", "node"), [])

    def p99(run):
        late = int(num(run, "dropped") + num(run, "errors"))
        return fmt_ms(num(run, "p99_us")) + (f" ({late} late or failed)" if late else "")
    lines = ["  rounds, p99 cdn-node vs nginx: " + "; ".join(f"{p99(y)} vs {p99(x)}" for x, y in zip(a, b))]
    p_node, p_nginx, clean, ok = rate_verdict()
    lines.append(f"  p99 at {fmt_count(num(node, 'rate'))} req/s over the clean runs: cdn-node {fmt_ms(p_node)} "
                 f"vs nginx {fmt_ms(p_nginx)} ({clean}; target no worse: {ok})")
    return lines


def describe_run(run):
    if run.get("scenario") == "small-rate":
        return describe_rate_run(run)
    if num(run, "requests") > 0:
        text = (
            f"{fmt_count(req_rate(run))} req/s, {fmt_bytes_rate(byte_rate(run))}, "
            f"p50 {fmt_ms(num(run, 'p50_us'))}, p99 {fmt_ms(num(run, 'p99_us'))}, "
        )
    else:
        # Every download outlasts the run: only the bytes tell.
        text = f"{fmt_bytes_rate(byte_rate(run))} (no download completed within the run), "
    text += f"server CPU {cpu_share(run) * 100:.0f}%"
    if "client_cpu_s" in run:
        text += f", client CPU {num(run, 'client_cpu_s') / seconds(run) * 100:.0f}%"
    if "peak_kib" in run:
        text += f", peak RSS {fmt_mib(num(run, 'peak_kib'))} (idle {fmt_mib(num(run, 'idle_kib'))})"
    bad = errors(run)
    if bad:
        text += (
            f", ERRORS: {bad} (connect {run.get('err_connect')}, read {run.get('err_read')}, "
            f"write {run.get('err_write')}, non-2xx/3xx {run.get('err_status')})"
        )
    return text


def manifest_lines(runs):
    """Manifest hits (the token given to every URI) against plain 1 KiB hits."""
    plain = runs.get(("manifest-plain", "node"))
    lines = []
    for which, label in (("master", "master playlist (6 URIs)"), ("media", "media playlist (102 URIs)")):
        run = runs.get((f"manifest-{which}", "node"))
        if not plain or not run:
            lines.append(f"  {label}: (incomplete: a run is missing)")
            continue
        r = ratio(req_rate(run), req_rate(plain))
        lines.append(f"  req/s {label} hit / 1 KiB hit {fmt_ratio(r)} (target >= 0.80x: {verdict(r >= 0.8)})")
    # The bytes alone: a plain object as large as the media playlist's answer.
    sized, media = runs.get(("manifest-sized", "node")), runs.get(("manifest-media", "node"))
    if plain and sized and media:
        lines.append(
            f"  req/s plain hit of the media answer's size / 1 KiB hit {fmt_ratio(ratio(req_rate(sized), req_rate(plain)))}; "
            f"media playlist hit / that hit {fmt_ratio(ratio(req_rate(media), req_rate(sized)))} (the rewrite's own cost)"
        )
    return lines


def pair_lines(runs, scenario):
    if scenario == "ranges":
        return range_lines(runs)
    if scenario == "small-rate":
        return rate_lines(runs)
    nginx, node = runs.get((scenario, "nginx")), runs.get((scenario, "node"))
    if not nginx or not node:
        return ["  (incomplete: a run is missing)"]
    lines = []
    if scenario == "small":
        r = ratio(req_rate(node), req_rate(nginx))
        lines.append(f"  req/s cdn-node/nginx {fmt_ratio(r)} (target >= 1.20x: {verdict(r >= 1.2)})")
        lines += round_lines(scenario)
        p_node, p_nginx = num(node, "p99_us"), num(nginx, "p99_us")
        lines.append(
            f"  p99 cdn-node {fmt_ms(p_node)} vs nginx {fmt_ms(p_nginx)} "
            f"(target no worse: {verdict(p_node <= p_nginx)})"
        )
    elif scenario == "medium":
        r = ratio(byte_rate(node), byte_rate(nginx))
        lines.append(f"  throughput cdn-node/nginx {fmt_ratio(r)} (target >= 1.00x: {verdict(r >= 1.0)})")
        varnish = runs.get((scenario, "varnish"))
        if varnish:
            r = ratio(byte_rate(node), byte_rate(varnish))
            lines.append(f"  throughput cdn-node/Varnish {fmt_ratio(r)} (target >= 1.00x: {verdict(r >= 1.0)})")
    elif scenario == "large":
        peak = num(node, "peak_kib") / 1024
        lines.append(
            f"  cdn-node peak RSS {peak:.1f} MiB (target < {MEM_TARGET_MIB} MiB: "
            f"{verdict(peak < MEM_TARGET_MIB)}); nginx workers {fmt_mib(num(nginx, 'peak_kib'))}"
        )
    for server in ("nginx", "node", "varnish"):
        run = runs.get((scenario, server))
        if not run:
            continue
        eff = num(run, "requests") / max(num(run, "cpu_s"), 1e-9)
        if scenario == "small":
            lines.append(f"  {SERVERS[server]}: {fmt_count(eff)} requests per server CPU-second")
        else:
            per_cpu = num(run, "bytes") / max(num(run, "cpu_s"), 1e-9)
            lines.append(f"  {SERVERS[server]}: {fmt_bytes_rate(per_cpu)[:-2]} per server CPU-second")
    return lines


ROUNDS_OF = {}


def round_lines(scenario):
    """Each round's own figures, when there were several."""
    nginx, node = ROUNDS_OF.get((scenario, "nginx"), []), ROUNDS_OF.get((scenario, "node"), [])
    if len(nginx) < 2 or len(nginx) != len(node):
        return []
    return [
        "  rounds: "
        + "; ".join(
            f"{fmt_ratio(ratio(req_rate(b), req_rate(a)))} (p99 {fmt_ms(num(b, 'p99_us'))} vs {fmt_ms(num(a, 'p99_us'))})"
            for a, b in zip(nginx, node)
        )
    ]


def bytes_per_request(run):
    return num(run, "bytes") / max(num(run, "requests"), 1)


def range_lines(runs):
    nginx, node = runs.get(("ranges", "nginx-slice")), runs.get(("ranges", "node"))
    if not nginx or not node:
        return ["  (incomplete: a run is missing)"]
    r = ratio(req_rate(node), req_rate(nginx))
    lines = [f"  req/s cdn-node/nginx slice {fmt_ratio(r)} (target >= {RANGE_TARGET:.2f}x: {verdict(r >= RANGE_TARGET)})"]
    for server in ("nginx-slice", "node"):
        run = runs[("ranges", server)]
        lines.append(
            f"  {SERVERS[server]}: {bytes_per_request(run) / 1024:,.1f} KiB per response (1 MiB body + header), "
            f"{fmt_count(num(run, 'requests') / max(num(run, 'cpu_s'), 1e-9))} requests per server CPU-second"
        )
    gets = runs.get(("ranges-origin", "node"))
    if gets:
        lines.append(f"  cdn-node origin Range GETs during its run: {gets.get('range_gets')} (0: every range a hit)")
    return lines


def median(samples, key):
    values = [float(s[key]) for s in samples if s.get(key)]
    return statistics.median(values) if values else float("nan")


class Seeks:
    """Medians of the cold-seek samples, per server and offset."""

    def __init__(self, samples):
        self.samples = samples
        self.percents = sorted({int(s["pct"]) for s in samples if s.get("server") in ("node", "nginx")})
        self.reps = max((int(s["rep"]) for s in samples), default=0)

    def of(self, server, pct=None):
        return [s for s in self.samples if s.get("server") == server and (pct is None or int(s["pct"]) == pct)]

    def ttfb(self, server, pct=None):
        return median(self.of(server, pct), "ttfb_s")

    def total(self, server, pct=None):
        return median(self.of(server, pct), "total_s")

    def slice_s(self):
        return self.total("s3")

    def seek_percents(self):
        return [p for p in self.percents if p > 0] or self.percents

    def flatness(self):
        values = [self.ttfb("node", p) for p in self.seek_percents()]
        return max(values) / min(values) if values and min(values) > 0 else float("nan")

    def worst(self):
        return max((self.ttfb("node", p) for p in self.seek_percents()), default=float("nan"))

    def into_slice(self, pct):
        """How far into its slice the seek lands, e.g. " (2 MiB into a 4 MiB slice)":
        cdn-node's first byte waits for the slice's bytes before it."""
        size = int(os.environ.get("BENCH_SLICE_BYTES", "0") or 0)
        offsets = [int(s["offset"]) for s in self.of("node", pct) if s.get("offset")]
        if not size or not offsets:
            return ""
        return f" ({offsets[0] % size / 2**20:g} MiB into a {size / 2**20:g} MiB slice)"

    def wrong(self):
        return [s for s in self.samples if s.get("correct") != "yes"]

    def nginx_fill(self, pct):
        stored = [int(s.get("nginx_stored", "0")) for s in self.of("nginx", pct)]
        length = int(os.environ.get("BENCH_LARGE_BYTES", "0") or 0)
        if not stored:
            return ""
        if length and all(x >= length for x in stored):
            return "whole object stored after the range"
        if all(x == 0 for x in stored):
            return "nothing stored"
        return "stored " + ", ".join(f"{x / 2**20:.0f} MiB" for x in stored)


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def seek_lines(seeks):
    if not seeks.samples:
        return ["  (no cold seeks were measured)"]
    lines = [
        f"  one 4 MiB slice from the origin: s3s-fs signed GET {ms(seeks.total('s3'))} "
        f"(TTFB {ms(seeks.ttfb('s3'))}), its HEAD {ms(seeks.total('s3-head'))}, "
        f"nginx static {ms(seeks.total('origin'))}; medians of {seeks.reps}"
    ]
    for p in seeks.percents:
        fill = seeks.nginx_fill(p)
        lines.append(
            f"  {p:2d} %{seeks.into_slice(p)}: cdn-node TTFB {ms(seeks.ttfb('node', p))}, total {ms(seeks.total('node', p))}; "
            f"nginx proxy_cache TTFB {ms(seeks.ttfb('nginx', p))}, total {ms(seeks.total('nginx', p))}"
            + (f" ({fill})" if fill else "")
        )
    flat, worst, slice_s = seeks.flatness(), seeks.worst(), seeks.slice_s()
    pcts = "/".join(str(p) for p in seeks.seek_percents())
    lines.append(
        f"  cdn-node TTFB across {pcts} %: max/min {fmt_ratio(flat)} (target <= {FLAT_TARGET:.1f}x: {verdict(flat <= FLAT_TARGET)}); "
        f"slowest {ms(worst)} = {fmt_ratio(ratio(worst, slice_s))} one slice GET "
        f"(target <= {SLICE_TARGET:.1f}x: {verdict(worst <= SLICE_TARGET * slice_s)})"
    )
    for s in seeks.wrong():
        lines.append(f"  WRONG: {SERVERS.get(s['server'], s['server'])} {s['pct']} % rep {s['rep']}: status {s['code']}, {s['bytes']} bytes, not the object's")
    return lines


def table(runs, seeks=None):
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
    nginx, node = get("small-rate")
    if nginx and node:
        t = f"1 KiB hit, open loop at {fmt_count(num(node, 'rate'))} req/s ({env('BENCH_RATE_PERCENT', '40')} % of nginx's rate)"
        failed = any(num(r, k) for r in (node, nginx) for k in ("errors", "dropped", "not_ok"))
        p_node, p_nginx, clean, ok = rate_verdict()
        p99_ratio = fmt_ratio(ratio(p_node, p_nginx)) if p_node is not None and p_nginx is not None else ""
        row(t, f"p99 latency over the clean runs ({clean})", fmt_ms(p_nginx), fmt_ms(p_node), p99_ratio, "no worse", ok)
        row(t, "p50 latency (median of the rounds)", fmt_ms(num(nginx, "p50_us")), fmt_ms(num(node, "p50_us")), "", "", "")
        if failed:
            row(t, "errors / dropped (not sent on time) / not 200, all rounds", *(f"{int(num(r, 'errors'))} / {int(num(r, 'dropped'))} / {int(num(r, 'not_ok'))}" for r in (nginx, node)), "", "", "")
    nginx, node = get("medium")
    if nginx and node:
        t = titles["medium"]
        r = ratio(byte_rate(node), byte_rate(nginx))
        row(t, "transfer", fmt_bytes_rate(byte_rate(nginx)), fmt_bytes_rate(byte_rate(node)), fmt_ratio(r), ">= 1.0x", verdict(r >= 1.0))
        row(t, "requests/s", fmt_count(req_rate(nginx)), fmt_count(req_rate(node)), fmt_ratio(ratio(req_rate(node), req_rate(nginx))), "", "")
        row(t, "p50 / p99 latency", f"{fmt_ms(num(nginx, 'p50_us'))} / {fmt_ms(num(nginx, 'p99_us'))}",
            f"{fmt_ms(num(node, 'p50_us'))} / {fmt_ms(num(node, 'p99_us'))}", "", "", "")
        row(t, "server CPU (1 core = 100%)", f"{cpu_share(nginx) * 100:.0f}%", f"{cpu_share(node) * 100:.0f}%", "", "", "")
        varnish = runs.get(("medium", "varnish"))
        if varnish:
            # The Varnish comparison in the nginx column's place.
            r = ratio(byte_rate(node), byte_rate(varnish))
            row(t, "transfer against Varnish malloc (its figure in the nginx column)",
                fmt_bytes_rate(byte_rate(varnish)), fmt_bytes_rate(byte_rate(node)), fmt_ratio(r), ">= 1.0x", verdict(r >= 1.0))
            e_v = num(varnish, "bytes") / max(num(varnish, "cpu_s"), 1e-9)
            e_n = num(node, "bytes") / max(num(node, "cpu_s"), 1e-9)
            row(t, "bytes per server CPU-second against Varnish", fmt_bytes_rate(e_v)[:-2], fmt_bytes_rate(e_n)[:-2],
                fmt_ratio(ratio(e_n, e_v)), "", "")
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

    nginx, node = runs.get(("ranges", "nginx-slice")), runs.get(("ranges", "node"))
    if nginx and node:
        t = f"warm random 1 MiB ranges of {env('BENCH_LARGE_LABEL', '1 GiB')}, {env('BENCH_RANGE_ARGS', '')}; nginx: slice 1m"
        r = ratio(req_rate(node), req_rate(nginx))
        row(t, "requests/s", fmt_count(req_rate(nginx)), fmt_count(req_rate(node)), fmt_ratio(r),
            f">= {RANGE_TARGET:.1f}x", verdict(r >= RANGE_TARGET))
        row(t, "transfer", fmt_bytes_rate(byte_rate(nginx)), fmt_bytes_rate(byte_rate(node)),
            fmt_ratio(ratio(byte_rate(node), byte_rate(nginx))), "", "")
        row(t, "p50 / p99 latency", f"{fmt_ms(num(nginx, 'p50_us'))} / {fmt_ms(num(nginx, 'p99_us'))}",
            f"{fmt_ms(num(node, 'p50_us'))} / {fmt_ms(num(node, 'p99_us'))}", "", "", "")
        row(t, "server CPU (1 core = 100%)", f"{cpu_share(nginx) * 100:.0f}%", f"{cpu_share(node) * 100:.0f}%", "", "", "")
        e_nginx = num(nginx, "requests") / max(num(nginx, "cpu_s"), 1e-9)
        e_node = num(node, "requests") / max(num(node, "cpu_s"), 1e-9)
        row(t, "requests per server CPU-second", fmt_count(e_nginx), fmt_count(e_node), fmt_ratio(ratio(e_node, e_nginx)), "", "")
        gets = runs.get(("ranges-origin", "node"))
        if gets:
            row(t, "origin Range GETs during the run", "", gets.get("range_gets", "?"), "", "0", verdict(gets.get("range_gets") == "0"))
    if seeks and seeks.samples:
        label = env("BENCH_LARGE_LABEL", "1 GiB")
        slice_s = seeks.slice_s()
        for p in seeks.percents:
            t = f"cold seek to {p} % of {label}{seeks.into_slice(p)}, 1 MiB range, median of {seeks.reps}"
            ok = seeks.ttfb("node", p) <= SLICE_TARGET * slice_s
            fill = seeks.nginx_fill(p)
            row(t, "time to first byte / total",
                f"{ms(seeks.ttfb('nginx', p))} / {ms(seeks.total('nginx', p))}" + (f" ({fill})" if fill else ""),
                f"{ms(seeks.ttfb('node', p))} / {ms(seeks.total('node', p))}",
                fmt_ratio(ratio(seeks.total("node", p), seeks.total("nginx", p))) + " (total)",
                f"TTFB <= {SLICE_TARGET:.0f}x one slice GET" if p > 0 else "", verdict(ok) if p > 0 else "")
        flat = seeks.flatness()
        pcts = "/".join(str(p) for p in seeks.seek_percents())
        row("cold seeks, cdn-node", f"TTFB max/min across {pcts} %", "", fmt_ratio(flat), "",
            f"<= {FLAT_TARGET:.1f}x (flat)", verdict(flat <= FLAT_TARGET))
        row("one 4 MiB slice (cdn-node's slice_size) from the origin, median", "time to first byte / total",
            f"nginx static: {ms(seeks.ttfb('origin'))} / {ms(seeks.total('origin'))}",
            f"s3s-fs signed GET: {ms(seeks.ttfb('s3'))} / {ms(slice_s)}", "", "the slice GET time above", "")
        row("s3s-fs signed HEAD of the object (cdn-node's first step on a cold object), median", "total", "",
            ms(seeks.total("s3-head")), "", "", "")

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
        f"access log to a file: {env('BENCH_ACCESS_LOG', '?')}; nginx: `worker_processes 2`, no token check, "
        f"access log to a file: {env('BENCH_ACCESS_LOG', '?')} (`buffer=64k flush=1s`)",
        "- client, servers and origin share the machine's CPUs over loopback: compare the two columns, not the absolute figures",
        f"- 1 KiB, 10 MiB and warm-range scenarios: {env('BENCH_ROUNDS', '1')} run(s) per server, alternating which "
        "server goes first; requests/s and transfer over all runs, latency percentiles the median of the runs'",
    ]
    small = round_lines("small")
    if small:
        out.append("- 1 KiB hits, cdn-node / nginx req/s by round (nginx's p99 second):" + small[0][len("  rounds:"):])
    if bad:
        out.append("- failed requests (connect/read/write errors, non-2xx/3xx): " + ", ".join(bad))
    if seeks and seeks.samples:
        out.append(
            "- cold seeks: each on a path neither cache has seen (hard links of one file; cdn-node also purged "
            "through `POST /purge` before each); the origins read from the page cache. Total = the 1 MiB "
            "range complete; a TTFB counts the response header, which nginx sends before the body"
        )
        wrong = seeks.wrong()
        if wrong:
            out.append("- WRONG cold-seek answers (status or bytes): " + ", ".join(
                f"{s['server']} {s['pct']} % rep {s['rep']} ({s['code']}, {s['bytes']} bytes)" for s in wrong))
    return out


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    if argv[1] == "seeks":
        print("\n".join(seek_lines(Seeks(load_seeks(argv[2])))))
        return
    ROUNDS_OF.update(load_rounds(argv[2]))
    runs = load(argv[2])
    if argv[1] == "run":
        # The run that just finished, on its own.
        print(describe_run(ROUNDS_OF[(argv[3], argv[4])][-1]))
    elif argv[1] == "manifest":
        print("\n".join(manifest_lines(runs)))
    elif argv[1] == "pair":
        print("\n".join(pair_lines(runs, argv[3])))
    elif argv[1] == "table":
        print("\n".join(table(runs, Seeks(load_seeks(argv[3] if len(argv) > 3 else None)))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
