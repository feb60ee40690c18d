#!/usr/bin/env python3
"""End-to-end latency probe: append JSON lines stamped with the wall clock to INPUT at RATE
lines/s for SECONDS, tail OUTPUT (written by a Sluice job reading INPUT) and, for every line
that appears there, take now - stamp. Prints one Markdown row: count, lost, p50/p90/p99/max ms.

  probe.py INPUT OUTPUT RATE SECONDS LABEL

Both clocks are this machine's wall clock, read by this one process, so there is no clock skew;
the reader polls every 0.5 ms, which is the resolution of the figures.
"""
import json
import os
import sys
import threading
import time

inp, out, rate, seconds, label = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
total = int(rate * seconds)
latencies = {}
done_writing = threading.Event()


def writer():
    with open(inp, "a", buffering=1 << 16) as f:
        start = time.monotonic()
        sent = 0
        while sent < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            now_ms = time.time() * 1000.0
            f.write("".join(json.dumps({"seq": i, "t": now_ms, "pad": "x" * 64}) + "\n" for i in range(sent, due)))
            f.flush()
            sent = due
            time.sleep(0.001)
    done_writing.set()


def reader():
    while not os.path.exists(out):
        time.sleep(0.0005)
    with open(out, "rb") as f:
        pending = b""
        idle_since = None
        while True:
            chunk = f.read()
            if chunk:
                now_ms = time.time() * 1000.0
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    r = json.loads(line)
                    latencies.setdefault(r["seq"], now_ms - r["t"])
                idle_since = None
            else:
                if len(latencies) >= total:
                    return
                if done_writing.is_set():
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 10:
                        return
                time.sleep(0.0005)


w = threading.Thread(target=writer)
r = threading.Thread(target=reader)
r.start()
w.start()
w.join()
r.join()
vals = sorted(latencies.values())
if not vals:
    sys.exit("no line reached the output")


def pct(p):
    return vals[min(len(vals) - 1, int(p / 100.0 * len(vals)))]


print(f"| {label} | {rate:.0f} | {len(vals)} | {total - len(vals)} | {pct(50):.1f} | {pct(90):.1f} | {pct(99):.1f} | {vals[-1]:.1f} |")
