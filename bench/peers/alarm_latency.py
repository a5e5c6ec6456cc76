#!/usr/bin/env python3
"""Sample arrival -> alarm on the SSE stream, through the real `millwright run` binary.

Usage: alarm_latency.py MILLWRIGHT_BIN DATA_DIR TOKEN [--alarms N] [--tags K] [--period-ms P] [--poll-ms Q]

A minimal Modbus TCP server (function code 3 only, written here so the peer's own scheduling is
plain and visible) serves K holding registers; `millwright run` polls them every Q ms, each with a
`hi` alarm at 500. Every P ms the server flips all K registers between 0 and 1000, so every flip
is one alarm transition per tag (normal/rtn_unack -> unack_active and back). This script reads
`GET /api/v1/alarms/stream` and takes, for each transition of the bench alarms, its arrival time
here minus its `ts_ns` (the receive timestamp of the causing sample, stamped by the poller when
the Modbus answer arrived) until N transitions are in. Same machine, same clock.

Prints `alarms=N p50_ms=... p99_ms=... max_ms=... lagged=...`.
"""

import argparse
import http.client
import json
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time

REGS = []  # the holding registers, replaced whole by the flipper (atomic in CPython)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 7:
                tid, pid, length, unit = struct.unpack(">HHHB", buf[:7])
                if len(buf) < 6 + length:
                    break
                pdu = buf[7 : 6 + length]
                buf = buf[6 + length :]
                fc = pdu[0]
                if fc == 3 and len(pdu) == 5:
                    addr, count = struct.unpack(">HH", pdu[1:5])
                    regs = REGS
                    if addr + count <= len(regs):
                        body = bytes([3, 2 * count]) + struct.pack(f">{count}H", *regs[addr : addr + count])
                    else:
                        body = bytes([0x83, 2])
                else:
                    body = bytes([fc | 0x80, 1])
                sock.sendall(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def config(data_dir, port, tags, poll_ms):
    out = [
        "[site]",
        'name = "alarm latency bench"',
        f'data_dir = "{data_dir}"',
        "",
        "[http]",
        'address = "127.0.0.1:0"',
        "",
        "[[devices]]",
        'name = "bench"',
        f'endpoint = "127.0.0.1:{port}"',
        f"poll_interval_ms = {poll_ms}",
        "timeout_ms = 1000",
    ]
    for i in range(tags):
        out += ["[[devices.tags]]", f'path = "bench/area/t{i:03}/v"', 'table = "holding"', f"address = {i}", 'type = "u16"']
    for i in range(tags):
        out += ["[[alarms]]", f'tag = "bench/area/t{i:03}/v"', 'kind = "hi"', "limit = 500", 'priority = "critical"']
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("data_dir")
    ap.add_argument("token")
    ap.add_argument("--alarms", type=int, default=10000)
    ap.add_argument("--tags", type=int, default=20)
    ap.add_argument("--period-ms", type=float, default=40.0)
    ap.add_argument("--poll-ms", type=int, default=10)
    a = ap.parse_args()

    REGS[:] = [0] * a.tags
    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    cfg = os.path.join(a.data_dir, "bench.toml")
    with open(cfg, "w") as f:
        f.write(config(a.data_dir, port, a.tags, a.poll_ms))
    out = open(os.path.join(a.data_dir, "mw.out"), "w+")
    mw = subprocess.Popen([a.bin, "run", "--config", cfg], stdout=out, stderr=subprocess.STDOUT)
    try:
        http_addr = None
        for _ in range(600):
            out.flush()
            with open(out.name) as f:
                text = f.read()
            if "web UI at http://" in text:
                http_addr = text.split("web UI at http://", 1)[1].split()[0].rstrip("/")
                break
            if mw.poll() is not None:
                sys.exit(f"millwright exited: {text}")
            time.sleep(0.05)
        if not http_addr:
            sys.exit("millwright did not start within 30 s")
        host, hport = http_addr.split(":")
        conn = http.client.HTTPConnection(host, int(hport), timeout=30)
        conn.request("GET", "/api/v1/alarms/stream", headers={"Authorization": f"Bearer {a.token}", "Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            sys.exit(f"stream: {resp.status} {resp.read()[:300]!r}")
        # let the poller connect and the engine see the first (normal) values
        time.sleep(1.0)

        stop = threading.Event()

        def flipper():
            v = 0
            period = a.period_ms / 1000.0
            nxt = time.monotonic()
            while not stop.is_set():
                v = 1000 if v == 0 else 0
                REGS[:] = [v] * a.tags
                nxt += period
                time.sleep(max(0.0, nxt - time.monotonic()))

        threading.Thread(target=flipper, daemon=True).start()
        lat = []
        lagged = 0
        event = None
        t_end = time.monotonic() + 600
        while len(lat) < a.alarms and time.monotonic() < t_end:
            line = resp.readline()
            if not line:
                break
            now = time.time_ns()
            line = line.decode().rstrip("\r\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "transition":
                j = json.loads(line[6:])
                if j.get("alarm", "").startswith("bench/area/"):
                    lat.append((now - j["ts_ns"]) / 1e6)
            elif line.startswith("data: ") and event == "lagged":
                lagged += 1
        stop.set()
        conn.close()
        if not lat:
            sys.exit("no alarm arrived")
        lat.sort()
        pct = lambda q: lat[min(len(lat) - 1, int(q * (len(lat) - 1)))]
        print(f"alarms={len(lat)} p50_ms={pct(0.5):.2f} p99_ms={pct(0.99):.2f} max_ms={lat[-1]:.2f} lagged={lagged}")
    finally:
        mw.terminate()
        try:
            mw.wait(timeout=10)
        except subprocess.TimeoutExpired:
            mw.kill()
        srv.shutdown()


if __name__ == "__main__":
    main()
