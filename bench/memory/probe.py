#!/usr/bin/env python3
"""Where a process's memory goes: samples /proc/PID/smaps every INTERVAL seconds until the
process exits, and prints the breakdown at the sample with the highest total RSS.

    probe.py PID [INTERVAL]

Classes: wasm linear memory (anonymous reservations of 4 GiB or more: wasmtime's memories with
their guard regions; only touched pages count), the main malloc arena ([heap]), the binary's
code and data, shared libraries, and other anonymous memory (glibc's per-thread arenas, thread
stacks, large buffers malloc maps directly)."""
import os
import sys
import time


def mappings(pid):
    """(size, perms, path, rss) of every mapping."""
    out = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0].endswith(":"):
                if parts[0] == "Rss:" and out:
                    out[-1][3] = int(parts[1]) * 1024
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append([hi - lo, parts[1], parts[5] if len(parts) > 5 else "", 0])
    return out


def sample(pid):
    exe = os.readlink(f"/proc/{pid}/exe")
    classes = {}
    for size, perms, path, rss in mappings(pid):
        if path == exe:
            cls = "binary code and data"
        elif path == "[heap]":
            cls = "malloc heap (main arena)"
        elif path.startswith("[stack"):
            cls = "main thread stack"
        elif path and not path.startswith("["):
            cls = "shared libraries and files"
        elif size >= 4 << 30:
            cls = "wasm linear memory"
        else:
            cls = "other anonymous (thread arenas, stacks, buffers)"
        classes[cls] = classes.get(cls, 0) + rss
    return classes


def main():
    pid = int(sys.argv[1])
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
    best, best_total = {}, 0
    while True:
        try:
            s = sample(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            break
        total = sum(s.values())
        if total > best_total:
            best, best_total = s, total
        time.sleep(interval)
    print(f"peak RSS {best_total / 2**20:.1f} MiB")
    for cls, rss in sorted(best.items(), key=lambda kv: -kv[1]):
        print(f"  {cls:<28} {rss / 2**20:7.1f} MiB")


if __name__ == "__main__":
    main()
