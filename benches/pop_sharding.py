#!/usr/bin/env python3
"""PoP benchmark: the "Speed and scale" figures of a PoP of cdn-node nodes.

Usage: benches/pop_sharding.py            (Python 3.11, standard library only)

Three parts, every process on loopback (s3s-fs on 127.0.0.1, node N's
client and admin listeners on 127.0.0.1, its peer listener on 127.0.0.N):

1. hit ratio: a catalogue of small objects, CATALOGUE_PER_DISK times one
   node's cache.max_size (C); a Zipf trace (each exponent in ZIPF) replayed
   through a random node of a 4-node PoP (C each), through one node with 4C,
   and through 4 standalone nodes (C each, no cluster section). Hit ratio =
   1 - S3 requests / requests over the part after the warm-up, S3 requests
   being the nodes' cdn_node_origin_requests_total (all status classes;
   hops between nodes are not in it). Memory tier off: the disk budget is
   what limits.
2. origin fetches per object: 3 edges (C each) behind 1 shield whose cache
   holds the whole catalogue; a Zipf(first of ZIPF) trace through random
   edges; S3 GETs / distinct objects requested (HEADs shown apart).
3. forwarding cost: a 2-node PoP, memory tier as shipped (64MiB: a local
   hit is a memory hit) and off (disk hits); a key owned by node A and one
   owned by node B, both warm; wrk -t1 -c1 on A for each in turn (Python
   sequential client if wrk is missing): p50/p99 latency, and A's CPU time
   (utime+stime from /proc) per request. With the memory tier on, twice:
   cluster.memory_copies off (every request for B's key is forwarded) and
   on (A answers B's hot key from its memory copy, X-Cache HIT-COPY).
   Each run is repeated with LOAD_CONNECTIONS connections (wrk only): A's
   CPU per request when it is busy. With one connection every request
   also pays A's going idle and being woken (once for a local hit, twice
   for a forward: the client's request, then the owner's answer), which a
   node under load does not pay per request.

Settings (environment):
  CATALOGUE=20000         objects, sizes uniform in [MIN_KIB, MAX_KIB] KiB
  MIN_KIB=2 MAX_KIB=8
  CATALOGUE_PER_DISK=16   the catalogue's bytes over one node's max_size
  REQUESTS=200000         requests per trace; WARMUP=0.2 of them excluded
  ZIPF=0.8,1.0            exponents of part 1 (part 2 uses the first)
  WORKERS=16              concurrent keep-alive client connections
  SEED=1                  trace seed (objects, ranks and nodes)
  NODE_THREADS=1          server.threads of every node
  LAT_SECONDS=10 LAT_ROUNDS=3   part 3: seconds per run, rounds per key
  LOAD_CONNECTIONS=16     part 3: connections of the loaded runs (1: none)
  FORWARD_MEMORY=64MiB,0  part 3: the memory tiers (cache.memory_size) tried
  FORWARD_PROTOCOL=h1     part 3: h1 (wrk, plain HTTP/1.1) or h2 (h2load over
                          HTTPS and HTTP/2, one stream in flight per
                          connection; a self-signed certificate; latency
                          as h2load gives it, mean and max)
  PARTS=hit,origin,forward      which parts to run
  CDN_NODE=path           use this binary instead of building it
  KEEP=1                  keep the scratch folder (target/pop-bench)

The nodes reach s3s-fs through a tap in this script that counts requests
by method (the S3 GETs of parts 1 and 2) and acks s3s-fs's segments at
once (s3s-fs's small answers on reused connections otherwise wait ~40 ms
for a delayed ACK). One run at a time: the scratch folder is shared.

Needs s3s-fs (deploy/setup.sh s3) and, for part 3, wrk (apt-get install
wrk); with FORWARD_PROTOCOL=h2, h2load and openssl (installed with apt-get
when missing). Builds the release binary unless CDN_NODE is set. Stops every process
it started when it ends, fails or is interrupted.
"""

import bisect
import itertools
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "videos"
PREFIX = "pop"
READY_SECONDS = 60
STOP_SECONDS = 10


def die(msg):
    raise SystemExit(f"pop: error: {msg}")


def say(msg):
    print(f"pop: {msg}", flush=True)


def env_int(name, default, low=1):
    raw = os.environ.get(name, str(default))
    try:
        v = int(raw)
    except ValueError:
        die(f"{name}={raw!r}: give a whole number")
    if v < low:
        die(f"{name}={v}: give at least {low}")
    return v


def env_float(name, default, low, high):
    raw = os.environ.get(name, str(default))
    try:
        v = float(raw)
    except ValueError:
        die(f"{name}={raw!r}: give a number")
    if not low <= v <= high:
        die(f"{name}={v}: give a number from {low} to {high}")
    return v


SETTINGS = [
    "CATALOGUE", "MIN_KIB", "MAX_KIB", "CATALOGUE_PER_DISK", "REQUESTS", "WARMUP",
    "ZIPF", "WORKERS", "SEED", "NODE_THREADS", "LAT_SECONDS", "LAT_ROUNDS", "LOAD_CONNECTIONS", "FORWARD_MEMORY",
    "FORWARD_PROTOCOL", "PARTS",
]
CATALOGUE = env_int("CATALOGUE", 20000, 10)
MIN_KIB = env_int("MIN_KIB", 2)
MAX_KIB = env_int("MAX_KIB", 8)
if MAX_KIB < MIN_KIB:
    die("MAX_KIB must be at least MIN_KIB")
PER_DISK = env_int("CATALOGUE_PER_DISK", 16, 2)
REQUESTS = env_int("REQUESTS", 200000, 100)
WARMUP = env_float("WARMUP", 0.2, 0.0, 0.9)
try:
    ZIPF = [float(z) for z in os.environ.get("ZIPF", "0.8,1.0").split(",")]
except ValueError:
    die("ZIPF: give comma-separated exponents, e.g. 0.8,1.0")
WORKERS = env_int("WORKERS", 16)
SEED = env_int("SEED", 1, 0)
NODE_THREADS = env_int("NODE_THREADS", 1)
LAT_SECONDS = env_int("LAT_SECONDS", 10)
LAT_ROUNDS = env_int("LAT_ROUNDS", 3)
LOAD_CONNECTIONS = env_int("LOAD_CONNECTIONS", 16)
FORWARD_MEMORY = os.environ.get("FORWARD_MEMORY", "64MiB,0").split(",")
FORWARD_PROTOCOL = os.environ.get("FORWARD_PROTOCOL", "h1")
if FORWARD_PROTOCOL not in ("h1", "h2"):
    die(f"FORWARD_PROTOCOL: {FORWARD_PROTOCOL!r} is not h1 or h2")
H2 = FORWARD_PROTOCOL == "h2"
PARTS = os.environ.get("PARTS", "hit,origin,forward").split(",")
for p in PARTS:
    if p not in ("hit", "origin", "forward"):
        die(f"PARTS: unknown part {p!r} (hit, origin, forward)")
KEEP = os.environ.get("KEEP") == "1"

# --- processes -------------------------------------------------------------

STARTED = []  # (Popen, signal), in start order


def start(cmd, log_path, env=None, sig=signal.SIGTERM):
    log = open(log_path, "wb")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         env=env, start_new_session=True)
    log.close()
    STARTED.append((p, sig))
    return p


def stop(p, sig):
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        except ProcessLookupError:
            pass
    for i, (q, _) in enumerate(STARTED):
        if q is p:
            del STARTED[i]
            break


def stop_all():
    for p, sig in reversed(list(STARTED)):
        stop(p, sig)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def free_port(ip):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def http_get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return None, ""


def wait_until(what, proc, log, check):
    deadline = time.monotonic() + READY_SECONDS
    while True:
        if check():
            return
        if proc.poll() is not None:
            die(f"{what} exited during start-up:\n{tail(log)}")
        if time.monotonic() > deadline:
            die(f"{what} was not ready within {READY_SECONDS}s:\n{tail(log)}")
        time.sleep(0.1)


# --- a minimal keep-alive HTTP/1.1 client -----------------------------------


class Conn:
    def __init__(self, port, host="127.0.0.1"):
        self.addr = (host, port)
        self.sock = None

    def _open(self):
        self.sock = socket.create_connection(self.addr, timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb", buffering=65536)

    def close(self):
        if self.sock:
            self.file.close()
            self.sock.close()
            self.sock = None

    def get(self, target):
        """(status, x-cache, body length); reconnects once on a closed connection."""
        for attempt in (0, 1):
            fresh = self.sock is None
            if fresh:
                self._open()
            try:
                self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: pop\r\n\r\n".encode())
                line = self.file.readline()
                if not line:
                    raise ConnectionError("closed")
                status = int(line.split(b" ", 2)[1])
                length, xcache, close = 0, "", False
                while True:
                    h = self.file.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"x-cache":
                        xcache = value.strip().decode()
                    elif name == b"connection" and b"close" in value.lower():
                        close = True
                got = len(self.file.read(length)) if length else 0
                if close:
                    self.close()
                return status, xcache, got, length
            except (ConnectionError, OSError):
                self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")


# --- a tap between the nodes and s3s-fs ------------------------------------


class Tap:
    """Forwards TCP between the nodes and s3s-fs and counts the requests by
    method (GET and HEAD have no body: each head is one request). It acks
    s3s-fs's segments at once (TCP_QUICKACK): s3s-fs sets no TCP_NODELAY,
    so on a reused connection a small answer otherwise waits ~40 ms for
    the receiver's delayed ACK."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.counts = {}
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def count(self, method):
        with self.lock:
            return self.counts.get(method, 0)

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
            except OSError:
                client.close()
                continue
            up.settimeout(None)
            for s in (client, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._requests, args=(client, up), daemon=True).start()
            threading.Thread(target=self._answers, args=(up, client), daemon=True).start()

    def _requests(self, src, dst):
        buf = b""
        try:
            while data := src.recv(65536):
                buf += data
                while (end := buf.find(b"\r\n\r\n")) >= 0:
                    method = buf.split(b" ", 1)[0].decode(errors="replace")
                    buf = buf[end + 4:]
                    with self.lock:
                        self.counts[method] = self.counts.get(method, 0) + 1
                dst.sendall(data)
        except OSError:
            pass
        self._end(src, dst)

    def _answers(self, src, dst):
        try:
            while data := src.recv(65536):
                src.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                dst.sendall(data)
        except OSError:
            pass
        self._end(src, dst)

    @staticmethod
    def _end(*socks):
        # shutdown, not just close: it wakes the other direction's blocked
        # recv and lets s3s-fs see the connection end (else its descriptors
        # run out).
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()


# --- the world ---------------------------------------------------------------


class World:
    def __init__(self):
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        self.scratch = os.path.join(target, "pop-bench")
        shutil.rmtree(self.scratch, ignore_errors=True)
        os.makedirs(self.scratch, mode=0o700)
        # Upgrade sockets want short paths.
        self.sockdir = tempfile.mkdtemp(prefix="cdn-pop-")
        self.node_bin = os.environ.get("CDN_NODE") or os.path.join(target, "release", "cdn-node")
        self.secrets = {}
        for name, n in (("s3-key", 20), ("s3-secret", 40), ("hmac", 64), ("cluster", 64)):
            self.secrets[name] = os.urandom(n // 2).hex()
            path = os.path.join(self.scratch, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(self.secrets[name])
        self.nodes = []
        self.counter = itertools.count(1)
        self.certificate = None

    def cert(self):
        """(certificate, key) files of a self-signed pair for localhost."""
        if self.certificate is None:
            crt = os.path.join(self.scratch, "tls.crt")
            key = os.path.join(self.scratch, "tls.key")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                            "-subj", "/CN=localhost", "-keyout", key, "-out", crt],
                           capture_output=True, check=True)
            self.certificate = (crt, key)
        return self.certificate

    def write_catalogue(self):
        rng = random.Random(SEED)
        folder = os.path.join(self.scratch, "objects", BUCKET, PREFIX)
        os.makedirs(folder)
        self.sizes = []
        for i in range(CATALOGUE):
            size = rng.randint(MIN_KIB * 1024, MAX_KIB * 1024)
            with open(os.path.join(folder, f"{i:06d}.bin"), "wb") as f:
                f.write(rng.randbytes(size))
            self.sizes.append(size)
        self.catalogue_bytes = sum(self.sizes)

    def start_s3(self):
        self.s3_port = free_port("127.0.0.1")
        log = os.path.join(self.scratch, "s3s-fs.log")
        p = start(["s3s-fs", "--host", "127.0.0.1", "--port", str(self.s3_port),
                   "--access-key", self.secrets["s3-key"], "--secret-key",
                   self.secrets["s3-secret"], os.path.join(self.scratch, "objects")], log)
        wait_until("s3s-fs", p, log,
                   lambda: http_get(f"http://127.0.0.1:{self.s3_port}/")[0] is not None)
        self.tap = Tap(self.s3_port)

    def token(self):
        out = subprocess.run([self.node_bin, "token", "--key-file",
                              os.path.join(self.scratch, "hmac"), "--alg", "HS256", "--kid",
                              "bench", "--sub", "pop", "--ttl", "86400"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def node_env(self):
        env = dict(os.environ)
        env.update(AWS_ACCESS_KEY_ID=self.secrets["s3-key"],
                   AWS_SECRET_ACCESS_KEY=self.secrets["s3-secret"],
                   CDN_NODE_HMAC_SECRET=self.secrets["hmac"], RUST_LOG="warn")
        env.pop("AWS_SESSION_TOKEN", None)
        return env

    def start_nodes(self, count, cache_bytes, memory="0", peers=False, parents=(), first_ip=1,
                    copies=True, https=False):
        """count nodes (a PoP when peers), each with max_size cache_bytes;
        with https, each also listens for HTTPS (node["https"])."""
        ips = [f"127.0.0.{first_ip + i}" for i in range(count)]
        peer_addrs = [f"{ip}:{free_port(ip)}" for ip in ips]
        started = []
        for ip, me in zip(ips, peer_addrs):
            n = next(self.counter)
            d = os.path.join(self.scratch, "nodes", f"{n:02d}")
            os.makedirs(d)
            node = {"dir": d, "http": free_port("127.0.0.1"), "admin": free_port("127.0.0.1"),
                    "peer": me}
            tls_line = ""
            if https:
                node["https"] = free_port("127.0.0.1")
                crt, key = self.cert()
                tls_line = (f'  https:\n    - {{ listen: "127.0.0.1:{node["https"]}", '
                            f'cert_file: "{crt}", key_file: "{key}" }}\n')
            cluster = ""
            if peers:
                listed = ", ".join(f'"{a}"' for a in peer_addrs)
                cluster = (f"cluster:\n  name: pop-bench\n  listen: \"{me}\"\n"
                           f"  peers: [{listed}]\n"
                           f"  secret_file: \"{self.scratch}/cluster\"\n"
                           f"  memory_copies: {'true' if copies else 'false'}\n")
            elif peers is None:  # a shield: a cluster with no peers
                cluster = (f"cluster:\n  name: pop-bench\n  listen: \"{me}\"\n  peers: []\n"
                           f"  secret_file: \"{self.scratch}/cluster\"\n")
            parent_line = ""
            if parents:
                parent_line = "  parents: [" + ", ".join(f'"{a}"' for a in parents) + "]\n"
            conf = f"""server:
  threads: {NODE_THREADS}
  pid_file: "{d}/cdn-node.pid"
  upgrade_sock: "{self.sockdir}/{n}.sock"
listeners:
  http: ["127.0.0.1:{node['http']}"]
{tls_line}admin:
  listen: "127.0.0.1:{node['admin']}"
origin:
  endpoint: "http://127.0.0.1:{self.tap.port}"
  bucket: {BUCKET}
  region: us-east-1
  addressing: path
  credentials:
    from: env
  connect_timeout_ms: 2000
  read_timeout_ms: 60000
{parent_line}auth:
  keys:
    - kid: bench
      algorithm: HS256
      secret_env: CDN_NODE_HMAC_SECRET
  require_exp: true
cache:
  dir: "{d}/cache"
  max_size: "{cache_bytes}B"
  max_object_size: "{min(cache_bytes, 1 << 20)}B"
  min_free_space: 0
  memory_size: "{memory}"
log:
  access_stdout: false
{cluster}"""
            path = os.path.join(d, "cdn-node.yaml")
            with open(path, "w") as f:
                f.write(conf)
            check = subprocess.run([self.node_bin, "check", "-c", path], env=self.node_env(),
                                   capture_output=True, text=True)
            if check.returncode != 0:
                die(f"cdn-node check refused {path}:\n{check.stdout}{check.stderr}")
            log = os.path.join(d, "stderr.log")
            node["proc"] = start([self.node_bin, "run", "-c", path], log, self.node_env(),
                                 signal.SIGINT)
            node["log"] = log
            started.append(node)
        for node in started:
            wait_until("cdn-node", node["proc"], node["log"],
                       lambda: http_get(f"http://127.0.0.1:{node['admin']}/readyz")[0] == 200)
        want = []
        if peers:
            want.append(("pop", count))
        if parents:
            want.append(("parents", len(parents)))
        for node in started:
            def healthy():
                text = metrics_text(node)
                return all(metric(text, "cdn_node_ring_healthy_members", {"ring": r}) == k
                           for r, k in want)
            wait_until("the ring", node["proc"], node["log"], healthy)
        self.nodes.extend(started)
        return started

    def stop_nodes(self, nodes):
        for node in nodes:
            stop(node["proc"], signal.SIGINT)
            shutil.rmtree(os.path.join(node["dir"], "cache"), ignore_errors=True)
            self.nodes.remove(node)

    def cleanup(self):
        stop_all()
        if getattr(self, "tap", None):
            self.tap.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)
        if not KEEP:
            shutil.rmtree(os.path.join(self.scratch, "objects"), ignore_errors=True)
            nodes = os.path.join(self.scratch, "nodes")
            for d in os.listdir(nodes) if os.path.isdir(nodes) else []:
                shutil.rmtree(os.path.join(nodes, d, "cache"), ignore_errors=True)


def metrics_text(node):
    status, text = http_get(f"http://127.0.0.1:{node['admin']}/metrics", timeout=10)
    return text if status == 200 else ""


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric(text, name, labels=None):
    """The sum of NAME's series whose labels include LABELS."""
    total = 0.0
    for line in text.splitlines():
        m = LINE.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(LABEL.findall(m.group(2) or ""))
        if all(have.get(k) == v for k, v in (labels or {}).items()):
            total += float(m.group(3))
    return total


def total_metric(nodes, name, labels=None):
    return sum(metric(metrics_text(n), name, labels) for n in nodes)


def s3_requests(nodes):
    return total_metric(nodes, "cdn_node_origin_requests_total")


# --- traces and replay -------------------------------------------------------


def zipf_trace(s, count, nodes):
    """count (object, node) pairs: Zipf(s) ranks over a fixed random
    assignment of ranks to objects, and a uniformly random node."""
    cdf = list(itertools.accumulate(1.0 / (k ** s) for k in range(1, CATALOGUE + 1)))
    order = list(range(CATALOGUE))
    random.Random(SEED).shuffle(order)
    pick = random.Random(SEED * 1000 + 1)
    where = random.Random(SEED * 1000 + 2)
    top = cdf[-1]
    objs = [order[min(bisect.bisect_left(cdf, pick.random() * top), CATALOGUE - 1)]
            for _ in range(count)]
    at = [where.randrange(nodes) for _ in range(count)]
    return objs, at


def replay(ports, objs, at, first, last, token):
    """Replays objs[first:last] through node ports (at: index per request)
    with WORKERS keep-alive connections; returns (requests, x-cache counts)."""
    lock = threading.Lock()
    state = {"next": first, "done": 0, "xcache": {}, "error": None}

    def worker():
        conns = [Conn(p) for p in ports]
        xcache = {}
        try:
            while True:
                with lock:
                    i = state["next"]
                    if i >= last or state["error"]:
                        break
                    state["next"] = min(last, i + 32)
                for j in range(i, min(last, i + 32)):
                    o = objs[j]
                    status, xc, got, length = conns[at[j]].get(
                        f"/{PREFIX}/{o:06d}.bin?jwt={token}")
                    if status != 200 or got != length or length != WORLD.sizes[o]:
                        raise RuntimeError(f"object {o}: status {status}, {got} of "
                                           f"{length} bytes (want {WORLD.sizes[o]})")
                    xcache[xc] = xcache.get(xc, 0) + 1
        except Exception as e:  # reported by the caller
            with lock:
                state["error"] = e
        finally:
            for c in conns:
                c.close()
            with lock:
                for k, v in xcache.items():
                    state["xcache"][k] = state["xcache"].get(k, 0) + v

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state["error"]:
        die(f"replay failed: {state['error']}")
    return last - first, state["xcache"]


def run_trace(nodes, objs, at, token):
    """Warm-up, then the measured part: (requests, S3 requests, x-cache HIT share)."""
    ports = [n["http"] for n in nodes]
    cut = int(len(objs) * WARMUP)
    if cut:
        replay(ports, objs, at, 0, cut, token)
    before, gets = s3_requests(nodes), WORLD.tap.count("GET")
    started = time.monotonic()
    count, xcache = replay(ports, objs, at, cut, len(objs), token)
    elapsed = time.monotonic() - started
    s3 = s3_requests(nodes) - before
    gets = WORLD.tap.count("GET") - gets
    hits = xcache.get("HIT", 0) / count
    return count, s3, gets, hits, elapsed


# --- the parts ---------------------------------------------------------------


def part_hit(token, disk):
    say(f"part 1: hit ratio, catalogue {CATALOGUE} objects ({WORLD.catalogue_bytes} bytes), "
        f"C = {disk} bytes (catalogue / {PER_DISK}), memory tier off")
    rows = []
    setups = [("pop of 4, C each", 4, disk, True),
              ("1 node, 4C", 1, 4 * disk, False),
              ("4 standalone, C each", 4, disk, False)]
    for s in ZIPF:
        for name, count, size, pop in setups:
            objs, at = zipf_trace(s, REQUESTS, count)
            nodes = WORLD.start_nodes(count, size, peers=pop)
            n, s3, gets, hits, elapsed = run_trace(nodes, objs, at, token)
            WORLD.stop_nodes(nodes)
            ratio = 1 - s3 / n
            rows.append((s, name, n, s3, gets, ratio, hits))
            say(f"  zipf {s}: {name}: hit ratio {ratio:.4f} ({int(s3)} S3 requests of {n}, "
                f"{gets} GETs at the tap; X-Cache HIT {hits:.4f}; {n / elapsed:.0f} req/s)")
    return rows


def part_origin(token, disk):
    s = ZIPF[0]
    shield_disk = 2 * WORLD.catalogue_bytes
    say(f"part 2: origin fetches, 3 edges (C = {disk} bytes each) behind 1 shield "
        f"({shield_disk} bytes), zipf {s}, {REQUESTS} requests")
    shield = WORLD.start_nodes(1, shield_disk, peers=None, first_ip=10)
    edges = WORLD.start_nodes(3, disk, peers=True, parents=[shield[0]["peer"]])
    objs, at = zipf_trace(s, REQUESTS, 3)
    before_edges = total_metric(edges, "cdn_node_origin_requests_total")
    before_shield = s3_requests(shield)
    gets, heads = WORLD.tap.count("GET"), WORLD.tap.count("HEAD")
    replay([e["http"] for e in edges], objs, at, 0, len(objs), token)
    edge_s3 = total_metric(edges, "cdn_node_origin_requests_total") - before_edges
    shield_s3 = s3_requests(shield) - before_shield
    gets, heads = WORLD.tap.count("GET") - gets, WORLD.tap.count("HEAD") - heads
    to_parent = total_metric(edges, "cdn_node_peer_forwards_total", {"to": "parent"})
    distinct = len(set(objs))
    WORLD.stop_nodes(edges + shield)
    per = gets / distinct
    say(f"  S3 GETs {gets}, HEADs {heads} (S3 requests counted by the shield "
        f"{int(shield_s3)}, by the edges {int(edge_s3)}), distinct objects {distinct}: "
        f"{per:.4f} GETs per object; edges asked the shield {int(to_parent)} times")
    return per, gets, heads, int(edge_s3 + shield_s3), distinct, int(to_parent)


def cpu_seconds(proc):
    with open(f"/proc/{proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_run(url, connections=1):
    """(requests, p50 ms, p99 ms) of wrk -t1 -c<connections> on url."""
    p = start(["wrk", "-t1", f"-c{connections}", f"-d{LAT_SECONDS}s", "--latency", url],
              os.path.join(WORLD.scratch, "wrk.log"))
    p.wait()
    stop(p, signal.SIGTERM)
    with open(os.path.join(WORLD.scratch, "wrk.log")) as f:
        out = f.read()
    n = re.search(r"(\d+) requests in", out)
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    if not n or set(pct) != {"50", "99"} or "Non-2xx" in out:
        die(f"wrk output not understood or not all 200:\n{out}")

    def ms(v):
        m = re.match(r"([\d.]+)(us|ms|s)$", v)
        return float(m.group(1)) * UNITS[m.group(2)]
    return int(n.group(1)), ms(pct["50"]), ms(pct["99"])


def h2load_run(url, connections=1):
    """(requests, mean ms, max ms) of h2load -t1 -c<connections> -m1 on url
    over HTTPS and HTTP/2."""
    log = os.path.join(WORLD.scratch, "h2load.log")
    p = start(["h2load", "-t1", f"-c{connections}", "-m1", "-D", str(LAT_SECONDS), url], log)
    p.wait()
    stop(p, signal.SIGTERM)
    with open(log) as f:
        out = f.read()
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    times = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    whole = (done and codes and times and "Application protocol: h2" in out
             and done.group(1) == done.group(2) == codes.group(1)
             and done.group(3) == done.group(4) == "0")
    if not whole:
        die(f"h2load output not understood or not all 200 over HTTP/2:\n{out}")

    def ms(v):
        m = re.match(r"([\d.]+)(us|ms|s)$", v)
        return float(m.group(1)) * UNITS[m.group(2)]
    return int(done.group(1)), ms(times.group(3)), ms(times.group(2))


def python_run(port, target):
    c = Conn(port)
    times = []
    end = time.monotonic() + LAT_SECONDS
    while time.monotonic() < end:
        t = time.perf_counter()
        status, _, got, length = c.get(target)
        times.append((time.perf_counter() - t) * 1e3)
        if status != 200 or got != length:
            die(f"{target}: status {status}")
    c.close()
    times.sort()
    return len(times), times[len(times) // 2], times[int(len(times) * 0.99)]


def part_forward(token, memory, copies):
    if H2:
        tool = "h2load -t1 -c1 -m1 over HTTPS and HTTP/2"
    else:
        tool = "wrk -t1 -c1 --latency" if shutil.which("wrk") else "python sequential client"
    say(f"part 3: forwarding cost in a 2-node PoP, memory tier {memory}, memory copies "
        f"{'on' if copies else 'off'}, {tool}, {LAT_SECONDS} s per run, {LAT_ROUNDS} rounds "
        f"per key")
    nodes = WORLD.start_nodes(2, 4 * WORLD.catalogue_bytes, memory=memory, peers=True,
                              copies=copies, https=H2)
    a, b = nodes
    conn = Conn(a["http"])
    keys = {}
    for o in range(CATALOGUE):
        before = metric(metrics_text(a), "cdn_node_peer_forwards_total", {"to": "peer"})
        target = f"/{PREFIX}/{o:06d}.bin?jwt={token}"
        status, _, _, _ = conn.get(target)
        if status != 200:
            die(f"{target}: status {status}")
        forwarded = metric(metrics_text(a), "cdn_node_peer_forwards_total", {"to": "peer"}) > before
        keys.setdefault("owner B" if forwarded else "local", target)
        if len(keys) == 2:
            break
    for name, target in keys.items():
        want = "HIT-COPY" if copies and name == "owner B" else "HIT"
        deadline = time.monotonic() + 30
        while conn.get(target)[1] != want:
            if time.monotonic() > deadline:
                die(f"the {name} key is not served as a hit")
            time.sleep(0.1)
    conn.close()
    results = {k: [] for k in ("local", "owner B")}
    for r in range(LAT_ROUNDS):
        for name in (["local", "owner B"] if r % 2 == 0 else ["owner B", "local"]):
            target = keys[name]
            ca, cb = cpu_seconds(a["proc"]), cpu_seconds(b["proc"])
            if H2:
                n, p50, p99 = h2load_run(f"https://127.0.0.1:{a['https']}{target}")
            elif shutil.which("wrk"):
                n, p50, p99 = wrk_run(f"http://127.0.0.1:{a['http']}{target}")
            else:
                n, p50, p99 = python_run(a["http"], target)
            cpu_a = (cpu_seconds(a["proc"]) - ca) / n * 1e6
            cpu_b = (cpu_seconds(b["proc"]) - cb) / n * 1e6
            say(f"  round {r + 1} {name}: {n} requests, p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
                f"CPU per request A {cpu_a:.1f} us, B {cpu_b:.1f} us")
            n_load, cpu_load = 0, float("nan")
            if LOAD_CONNECTIONS > 1 and (H2 or shutil.which("wrk")):
                ca = cpu_seconds(a["proc"])
                if H2:
                    url = f"https://127.0.0.1:{a['https']}{target}"
                    n_load, _, _ = h2load_run(url, LOAD_CONNECTIONS)
                else:
                    url = f"http://127.0.0.1:{a['http']}{target}"
                    n_load, _, _ = wrk_run(url, LOAD_CONNECTIONS)
                cpu_load = (cpu_seconds(a["proc"]) - ca) / n_load * 1e6
                say(f"  round {r + 1} {name}, {LOAD_CONNECTIONS} connections: {n_load} "
                    f"requests, CPU per request A {cpu_load:.1f} us")
            results[name].append((n, p50, p99, cpu_a, cpu_b, n_load, cpu_load))
    WORLD.stop_nodes(nodes)
    return tool, results


# --- main --------------------------------------------------------------------


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    return "unknown"


def main():
    global WORLD
    command = " ".join([f"{k}={os.environ[k]}" for k in SETTINGS if k in os.environ]
                       + ["benches/pop_sharding.py"])
    load_start = open("/proc/loadavg").read().split()[:3]
    if H2 and "forward" in PARTS:
        missing = [pkg for tool, pkg in (("h2load", "nghttp2-client"), ("openssl", "openssl"))
                   if not shutil.which(tool)]
        if missing:
            say(f"installing {' '.join(missing)}")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            install = ["apt-get", "-q", "install", "-y", "--no-install-recommends", *missing]
            if subprocess.run(install, env=env, capture_output=True).returncode != 0:
                subprocess.run(["apt-get", "-q", "update"], env=env, capture_output=True)
                subprocess.run(install, env=env, capture_output=True, check=True)
    if not shutil.which("s3s-fs"):
        subprocess.run(["bash", os.path.join(ROOT, "deploy", "setup.sh"), "s3"], check=True)
    if not os.environ.get("CDN_NODE"):
        say("building cdn-node (release)")
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "cdn-node"],
                       cwd=ROOT, check=True, env=dict(os.environ, CARGO_INCREMENTAL="0"))
    # s3s-fs and the nodes hold a connection or two per node and client.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    WORLD = World()
    if not os.access(WORLD.node_bin, os.X_OK):
        die(f"{WORLD.node_bin} is not an executable")
    try:
        say(f"writing {CATALOGUE} objects of {MIN_KIB}-{MAX_KIB} KiB")
        WORLD.write_catalogue()
        WORLD.start_s3()
        token = WORLD.token()
        disk = WORLD.catalogue_bytes // PER_DISK
        hit = part_hit(token, disk) if "hit" in PARTS else None
        origin = part_origin(token, disk) if "origin" in PARTS else None
        forward = None
        if "forward" in PARTS:
            setups = [(m, c) for m in FORWARD_MEMORY
                      for c in ([False, True] if m not in ("0", "0B") else [False])]
            forward = [(m, c, *part_forward(token, m, c)) for m, c in setups]
    finally:
        WORLD.cleanup()
    load_end = open("/proc/loadavg").read().split()[:3]
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    print()
    print("## PoP benchmark")
    print()
    print(f"- command: `{command}` (cdn-node {commit or 'unknown'})")
    print(f"- CPU: {cpu_model()}, {os.cpu_count()} cores; load average "
          f"{' '.join(load_start)} at start, {' '.join(load_end)} at end")
    print(f"- catalogue: {CATALOGUE} objects of {MIN_KIB}-{MAX_KIB} KiB, "
          f"{WORLD.catalogue_bytes} bytes; C = catalogue / {PER_DISK} = "
          f"{WORLD.catalogue_bytes // PER_DISK} bytes; {REQUESTS} requests per trace, "
          f"first {WARMUP:.0%} not measured; {WORKERS} keep-alive clients; "
          f"node threads {NODE_THREADS}; seed {SEED}")
    if hit:
        print()
        print("| Zipf | setup | measured requests | S3 requests | S3 GETs (tap) | hit ratio "
              "| X-Cache HIT |")
        print("|---|---|---|---|---|---|---|")
        for s, name, n, s3, gets, ratio, hits in hit:
            print(f"| {s} | {name} | {n} | {int(s3)} | {gets} | {ratio:.4f} | {hits:.4f} |")
        print()
        for s in ZIPF:
            by = {name: ratio for z, name, _, _, _, ratio, _ in hit if z == s}
            pop, one, alone = by["pop of 4, C each"], by["1 node, 4C"], by["4 standalone, C each"]
            verdict = "within 5 %" if pop >= 0.95 * one else "NOT within 5 %"
            print(f"- Zipf {s}: PoP / one node with 4C = {pop / one:.4f} ({verdict}); "
                  f"4 standalone / one node = {alone / one:.4f}")
    if origin:
        per, gets, heads, s3, distinct, to_parent = origin
        print()
        print(f"- origin fetches per object (3 edges + 1 shield holding the catalogue, "
              f"Zipf {ZIPF[0]}, {REQUESTS} requests): {gets} S3 GETs / {distinct} distinct "
              f"objects = {per:.4f} (target 1.0); S3 HEADs {heads}; S3 requests by the "
              f"nodes' metrics {s3}; edges asked the shield {to_parent} times")
    if forward:
        print()
        print(f"Forwarding cost (2-node PoP, requests to node A, {forward[0][2]}, "
              f"{LAT_SECONDS} s x {LAT_ROUNDS} rounds, medians over rounds):")
        print()
        loaded = LOAD_CONNECTIONS > 1 and forward[0][2].startswith(("wrk", "h2load"))
        low, high = ("mean", "max") if H2 else ("p50", "p99")
        print(f"| memory tier | memory copies | key | requests/run | {low} ms | {high} ms "
              "| A CPU us/req | B CPU us/req |"
              + (f" requests/run, {LOAD_CONNECTIONS} conns | A CPU us/req, {LOAD_CONNECTIONS} "
                 "conns |" if loaded else ""))
        print("|---|---|---|---|---|---|---|---|" + ("---|---|" if loaded else ""))
        verdicts = []
        for memory, copies, _, results in forward:
            med = {}
            on = "on" if copies else "off"
            for name, runs in results.items():
                m = [statistics.median(r[i] for r in runs) for i in range(7)]
                med[name] = m
                print(f"| {memory} | {on} | {name} | {m[0]:.0f} | {m[1]:.3f} | {m[2]:.3f} | "
                      f"{m[3]:.1f} | {m[4]:.1f} |"
                      + (f" {m[5]:.0f} | {m[6]:.1f} |" if loaded else ""))
            d50 = med["owner B"][1] - med["local"][1]
            cpu = med["owner B"][3] / med["local"][3] if med["local"][3] else float("inf")
            what = "copy hit of B's key" if copies else "forwarded request"
            line = (f"- memory tier {memory}, copies {on}: {low} added {d50:+.3f} ms "
                    f"(target at most +0.3 ms); A's CPU per {what} / per local hit = "
                    f"{cpu:.2f}x with one connection")
            if loaded:
                cpu_load = med["owner B"][6] / med["local"][6]
                line += f", {cpu_load:.2f}x with {LOAD_CONNECTIONS}"
            verdicts.append(line + " (target at most 1.5x)")
        print()
        print("\n".join(verdicts))

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        main()
    finally:
        stop_all()
