#!/usr/bin/python3
"""Measure a TCP path: round trip and bulk throughput.

  linkprobe.py serve HOST PORT       answer probes (until killed)
  linkprobe.py measure HOST PORT [--bytes N] [--pings N]
                                     print one JSON line:
                                     {"rtt-ms": ..., "throughput-mibs": ...}

The round trip is the median of small ping-pongs on one connection; the
throughput is measured by the receiver, from its first to its last byte of
a bulk transfer, so it is the rate the path delivers, not what the
sender's socket buffer swallowed.  Runs inside the network namespaces of
the emulated link (scripts/amig/link.py).
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import argparse
import json
import socket
import statistics
import struct
import sys
import threading
import time


def serve_one(c):
    with c:
        kind = c.recv(1)
        if kind == b'E':
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)
        elif kind == b'S':
            n, first, last = 0, None, None
            while True:
                d = c.recv(1 << 20)
                if not d:
                    break
                last = time.monotonic()
                if first is None:
                    first = last
                n += len(d)
            c.sendall(struct.pack('!Qd', n, (last or 0) - (first or 0)))


def serve(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(8)
    print('ready', flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_one, args=(c,), daemon=True).start()


def measure(host, port, nbytes, pings):
    c = socket.create_connection((host, port), timeout=60)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(b'E')
    rtts = []
    msg = b'x' * 64
    for _ in range(pings):
        t = time.monotonic()
        c.sendall(msg)
        got = 0
        while got < len(msg):
            d = c.recv(4096)
            if not d:
                raise SystemExit('linkprobe: echo closed')
            got += len(d)
        rtts.append((time.monotonic() - t) * 1000)
    c.close()
    c = socket.create_connection((host, port), timeout=120)
    c.sendall(b'S')
    buf = b'\0' * (1 << 16)
    left = nbytes
    while left > 0:
        n = c.send(buf[:min(left, len(buf))])
        left -= n
    c.shutdown(socket.SHUT_WR)
    reply = b''
    while len(reply) < 16:
        d = c.recv(16)
        if not d:
            break
        reply += d
    c.close()
    n, dt = struct.unpack('!Qd', reply)
    return {'rtt-ms': round(statistics.median(rtts), 3),
            'rtt-min-ms': round(min(rtts), 3),
            'throughput-mibs': round(n / dt / 1048576, 2) if dt > 0 else None,
            'bytes': n}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('what', choices=['serve', 'measure'])
    ap.add_argument('host')
    ap.add_argument('port', type=int)
    ap.add_argument('--bytes', type=int, default=8 << 20)
    ap.add_argument('--pings', type=int, default=15)
    a = ap.parse_args()
    if a.what == 'serve':
        serve(a.host, a.port)
    else:
        print(json.dumps(measure(a.host, a.port, a.bytes, a.pings)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
