#!/usr/bin/env python3
"""Keep-alive HTTP probe: N connections, each sends a request every 5 ms and
waits for its response, for `secs` seconds. Prints one JSON line: the
longest time any connection waited between two responses (how long its flow
stopped, e.g. while a dead node's flows move), the connections that failed,
and how many finished.

    probe.py ADDRESS SECONDS CONNECTIONS
"""
import json
import re
import socket
import sys
import threading
import time

addr, secs, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
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
        s = socket.create_connection((addr, 80), timeout=10)
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


threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"max_gap_ms": round(max(gaps) * 1000) if gaps else -1,
                  "failed": len(failed), "finished": len(gaps),
                  "errors": failed[:5]}))
