#!/usr/bin/env python3
"""Keep-alive HTTP probe: N connections, each sends a request every 5 ms and
waits for its response, for `secs` seconds. Prints one JSON line: the
longest time any connection waited between two responses (how long its flow
stopped, e.g. while a dead node's flows move), the connections that failed,
and how many finished.

    probe.py ADDRESS SECONDS CONNECTIONS [RTO_MIN_MS]

RTO_MIN_MS sets the connections' minimum retransmission timeout
(TCP_RTO_MIN_US, Linux 6.15+; 200 ms by default). A segment lost in a dead
node is resent no sooner than that, so with the default the longest wait
has a floor of 200 ms whatever the cluster does; a datacenter client's
lower minimum shows the cluster's own failover time.
"""
import json
import re
import socket
import sys
import threading
import time

addr, secs, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rto_min_ms = int(sys.argv[4]) if len(sys.argv) > 4 else 0
TCP_RTO_MIN_US = 45  # linux/tcp.h; not in Python's socket module
rto_min_us = []  # what the kernel took (rounded to jiffies)
REQ = b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n"
LEN = re.compile(rb"content-length:\s*(\d+)", re.I)
lock = threading.Lock()
gaps, failed = [], []


def response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    m = LEN.search(head)
    need = int(m.group(1)) if m else 0
    while len(body) < need:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        body += chunk


def run(i):
    worst = 0.0
    try:
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
        s.settimeout(10)
        if rto_min_ms:
            s.setsockopt(socket.IPPROTO_TCP, TCP_RTO_MIN_US, rto_min_ms * 1000)
            with lock:
                rto_min_us.append(s.getsockopt(socket.IPPROTO_TCP, TCP_RTO_MIN_US))
        s.connect((addr, 80))
        last = time.monotonic()
        end = last + secs
        while time.monotonic() < end:
            s.sendall(REQ)
            response(s)
            now = time.monotonic()
            worst = max(worst, now - last)
            last = now
            time.sleep(0.005)
        s.close()
    except Exception as e:  # a broken or stuck connection
        with lock:
            failed.append(f"{i}: {e}")
        return
    with lock:
        gaps.append(worst)


if rto_min_ms:
    try:
        socket.socket().setsockopt(socket.IPPROTO_TCP, TCP_RTO_MIN_US, rto_min_ms * 1000)
    except OSError as e:  # an older kernel: say so, measure nothing
        print(json.dumps({"max_gap_ms": -1, "failed": 0, "finished": 0,
                          "unsupported": f"TCP_RTO_MIN_US: {e}"}))
        sys.exit(0)

threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"max_gap_ms": round(max(gaps) * 1000) if gaps else -1,
                  "failed": len(failed), "finished": len(gaps),
                  "rto_min_us": max(rto_min_us) if rto_min_us else 200000,
                  "errors": failed[:5]}))
