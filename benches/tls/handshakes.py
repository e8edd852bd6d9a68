#!/usr/bin/env python3
"""New TLS connections per second against one server, each carrying one
HTTP/1.1 GET (`Connection: close`), from several client processes.

  handshakes.py MODE HOST PORT PATH SECONDS PROCESSES

MODE `full`: every connection a full handshake (no session offered).
MODE `resumed`: each process's first connection is a full handshake; every
later one offers the session (ticket) the previous connection received, so a
server that resumes it does no certificate signature. Each connection reports
whether it really resumed (`SSL_session_reused`).

Prints one line: `connections=N resumed=R failed=F seconds=S`. The
certificate is not verified (both servers present the same one); the client
offers TLS 1.3 and 1.2 with OpenSSL's defaults.
"""

import multiprocessing
import socket
import ssl
import sys
import time


def one_process(mode, host, port, path, seconds, out):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    session = None
    done = resumed = failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=10) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with ctx.wrap_socket(raw, session=session if mode == "resumed" else None) as tls:
                    tls.sendall(request)
                    head = b""
                    while True:
                        chunk = tls.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    if not head.startswith(b"HTTP/1.1 200"):
                        failed += 1
                        continue
                    done += 1
                    if tls.session_reused:
                        resumed += 1
                    # After the response, the session holds the newest ticket.
                    session = tls.session
        except (OSError, ssl.SSLError):
            failed += 1
    out.put((done, resumed, failed))


def main():
    mode, host, port, path, seconds, processes = sys.argv[1:7]
    if mode not in ("full", "resumed"):
        sys.exit("handshakes.py: MODE must be full or resumed")
    out = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=one_process, args=(mode, host, int(port), path, float(seconds), out))
        for _ in range(int(processes))
    ]
    start = time.monotonic()
    for w in workers:
        w.start()
    totals = [0, 0, 0]
    for _ in workers:
        for i, v in enumerate(out.get()):
            totals[i] += v
    for w in workers:
        w.join()
    elapsed = time.monotonic() - start
    print(f"connections={totals[0]} resumed={totals[1]} failed={totals[2]} seconds={elapsed:.3f}")


if __name__ == "__main__":
    main()
