#!/usr/bin/env python3
"""Fleet rule propagation and start-up with many stored rules.

Run by benches/fleet_rules.sh, which builds the release binary and gives
this script its paths. Everything runs on 127.0.0.1 with free ports, in a
scratch folder; every process started here is stopped at the end.

1. Propagation: one etcd, NODES nodes of one PoP. For each of TRIALS purges
   and TRIALS revocations, the clock starts before the admin call on node 0
   (which answers once etcd acknowledged the write) and stops when the last
   node's cdn_node_fleet_rules_applied_total has counted the rule (each node
   polled every POLL_MS by a thread of its own). Reported: p50, p99 and max
   of write-to-last-node, in ms.
2. Start-up: RULES rules stored in etcd (half exact purges, half jti
   revocations, written through etcd's JSON gateway without leases: the
   listing does not read leases), then a node is started ROUNDS times:
   from spawn to /readyz 200, which the node answers only once it listed and
   applied every rule. The same for a node of an empty fleet, for reference.
"""

import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

NODE = sys.argv[1]
NODES = int(os.environ.get("NODES", "10"))
TRIALS = int(os.environ.get("TRIALS", "100"))
RULES = int(os.environ.get("RULES", "100000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
POLL_MS = float(os.environ.get("POLL_MS", "2"))
ADMIN = "bench-admin-token-0123456789abcdef"
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def wait(what, check, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.005)
    raise SystemExit(f"fleet bench: timed out waiting for {what}")


def start_etcd(scratch):
    client, peer = free_port(), free_port()
    data = os.path.join(scratch, "etcd")
    log = open(os.path.join(scratch, "etcd.log"), "w")
    p = subprocess.Popen(
        ["etcd", "--name=bench", f"--data-dir={data}",
         f"--listen-client-urls=http://127.0.0.1:{client}",
         f"--advertise-client-urls=http://127.0.0.1:{client}",
         f"--listen-peer-urls=http://127.0.0.1:{peer}",
         f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
         f"--initial-cluster=bench=http://127.0.0.1:{peer}",
         "--quota-backend-bytes=4294967296"],
        stdout=subprocess.DEVNULL, stderr=log)
    PROCS.append(p)
    url = f"http://127.0.0.1:{client}"
    wait("etcd", lambda: http("GET", url + "/health")[0] == 200)
    return url


def node_config(folder, etcd, fleet):
    http_port, admin_port = free_port(), free_port()
    with open(os.path.join(folder, "hmac.key"), "w") as f:
        f.write("bench-hmac-secret-that-is-long-enough-0123")
    with open(os.path.join(folder, "admin.token"), "w") as f:
        f.write(ADMIN)
    conf = os.path.join(folder, "cdn-node.yaml")
    with open(conf, "w") as f:
        f.write(f"""server:
  threads: 1
  pid_file: {folder}/pid
  upgrade_sock: {folder}/upgrade.sock
listeners:
  http: ["127.0.0.1:{http_port}"]
admin:
  listen: "127.0.0.1:{admin_port}"
  token_file: admin.token
origin:
  endpoint: "http://127.0.0.1:9"
  bucket: videos
  region: us-east-1
  credentials:
    from: env
auth:
  keys:
    - kid: main
      algorithm: HS256
      secret_file: hmac.key
cache:
  dir: {folder}/cache
  min_free_space: 0
log:
  access_stdout: false
fleet:
  name: {fleet}
  pop: pop1
  etcd:
    endpoints: ["{etcd}"]
""")
    return conf, admin_port


def spawn(conf, folder):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDBENCH", AWS_SECRET_ACCESS_KEY="bench-secret-key",
               RUST_LOG="warn")
    err = open(os.path.join(folder, "stderr.log"), "a")
    p = subprocess.Popen([NODE, "run", "-c", conf], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=err)
    PROCS.append(p)
    return p


def ready(admin_port):
    return http("GET", f"http://127.0.0.1:{admin_port}/readyz", timeout=1)[0] == 200


def applied(admin_port, kind):
    status, body = http("GET", f"http://127.0.0.1:{admin_port}/metrics", timeout=1)
    if status != 200:
        return -1
    want = f'cdn_node_fleet_rules_applied_total{{kind="{kind}"}} '
    for line in body.decode().splitlines():
        if line.startswith(want):
            return float(line.split()[-1])
    return -1


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def propagation(scratch, etcd):
    admins = []
    for i in range(NODES):
        folder = os.path.join(scratch, f"node{i}")
        os.makedirs(folder)
        conf, admin = node_config(folder, etcd, "prop")
        spawn(conf, folder)
        admins.append(admin)
    for a in admins:
        wait("a node to be ready", lambda a=a: ready(a))
    results = {}
    for kind, target in (("purge", "/purge?path=/v/{k}.mp4"),
                         ("revocation", "/auth/denylist/jti/bench-{k}")):
        method = "POST" if kind == "purge" else "PUT"
        base = [applied(a, kind) for a in admins]
        times = []
        for k in range(TRIALS):
            seen = [None] * NODES

            def poll(i, want):
                while applied(admins[i], kind) < want:
                    time.sleep(POLL_MS / 1000)
                seen[i] = time.monotonic()

            t0 = time.monotonic()
            status, body = http(method, f"http://127.0.0.1:{admins[0]}" + target.format(k=k),
                                b"", {"Authorization": f"Bearer {ADMIN}"})
            if status != 200:
                raise SystemExit(f"fleet bench: {kind} answered {status}: {body!r}")
            threads = [threading.Thread(target=poll, args=(i, base[i] + k + 1)) for i in range(NODES)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            times.append((max(seen) - t0) * 1000)
        results[kind] = times
    return results


def store_rules(etcd, fleet, count):
    """Writes `count` rules through etcd's JSON gateway, 8 writers at once."""
    def b64(s):
        return base64.b64encode(s.encode()).decode()

    made = int(time.time() * 1000)

    def writer(start):
        for k in range(start, count, 8):
            if k % 2 == 0:
                key = f"/cdn-node/{fleet}/rules/purge/{made:013d}-{k:016x}"
                value = json.dumps({"made_at_ms": made, "path": f"/v/{k}.mp4", "query": ""})
            else:
                key = f"/cdn-node/{fleet}/rules/revoke/jti/bench-{k}"
                value = json.dumps({"made_at_ms": made})
            body = json.dumps({"key": b64(key), "value": b64(value)}).encode()
            status, _ = http("POST", etcd + "/v3/kv/put", body, {"Content-Type": "application/json"})
            if status != 200:
                raise SystemExit(f"fleet bench: etcd put answered {status}")

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def startup(scratch, etcd, fleet, label):
    folder = os.path.join(scratch, f"start-{label}")
    os.makedirs(folder)
    conf, admin = node_config(folder, etcd, fleet)
    times = []
    for _ in range(ROUNDS):
        t0 = time.monotonic()
        p = spawn(conf, folder)
        wait("the node to be ready", lambda: ready(admin), limit=120)
        times.append((time.monotonic() - t0) * 1000)
        p.kill()
        p.wait()
    return times


def main():
    scratch = tempfile.mkdtemp(prefix="fleet-bench-", dir=os.environ.get("SCRATCH"))
    try:
        etcd = start_etcd(scratch)
        prop = propagation(scratch, etcd)
        for p in PROCS[1:]:
            p.kill()
            p.wait()
        del PROCS[1:]
        empty = startup(scratch, etcd, "empty", "empty")
        t0 = time.monotonic()
        store_rules(etcd, "many", RULES)
        stored_s = time.monotonic() - t0
        many = startup(scratch, etcd, "many", "many")
        print(f"nodes {NODES}, trials {TRIALS} per kind, poll every {POLL_MS} ms")
        for kind, times in prop.items():
            print(f"{kind:<11} write to last node: p50 {pct(times, 0.5):.1f} ms, "
                  f"p99 {pct(times, 0.99):.1f} ms, max {max(times):.1f} ms")
        print(f"start-up to /readyz 200, {ROUNDS} rounds (median, max):")
        print(f"  empty fleet:        {statistics.median(empty):.0f} ms, {max(empty):.0f} ms")
        print(f"  {RULES} stored rules: {statistics.median(many):.0f} ms, {max(many):.0f} ms"
              f"   (rules written in {stored_s:.0f} s)")
    finally:
        for p in PROCS:
            p.kill()
            p.wait()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
