#!/usr/bin/env python3
"""bench/stall.py IPERF_JSON CUTS_FILE T0: the longest TCP stall of an iperf3
download (-J, -i 0.1) during link cuts, for bench/failover.sh and
bench/failover_repeat.sh.

Prints "during_cut_ms outside_ms median_mbit" on stdout and, on stderr,
which cut the longest stall during a cut belongs to ("cutN start=S
after_cut=D", seconds into the run; "-" if none). CUTS_FILE has one line
"WAN EPOCH_SECONDS" per cut ("-" for none); T0 is the download's start.
A stall is a run of 0.1 s intervals below 10 % of the run's median (after
the first 2 s)."""
import json, sys, statistics
d = json.load(open(sys.argv[1]))
t0 = float(sys.argv[3])
cuts = [float(l.split()[1]) - t0 for l in open(sys.argv[2])] if sys.argv[2] != "-" else []
iv = [i["sum"] for i in d.get("intervals", [])][20:]   # after the first 2 s
bps = [x["bits_per_second"] for x in iv]
med = statistics.median(bps) if bps else 0
runs, run, start = [], 0.0, None
for x in iv + [{"bits_per_second": med, "seconds": 0, "start": 1e9}]:
    if x["bits_per_second"] < 0.1 * med:
        if run == 0: start = x["start"]
        run += x["seconds"]
    elif run > 0:
        runs.append((start, run)); run = 0.0
# A stall during a cut: one that starts between the cut and 1 s after the
# restore, or one already going on when the cut came (BBR's ProbeRTT, every
# 10 s, may fall just before one); that one counts from the cut on.
def during_cut(s, r):
    hits = [c for c in cuts if s <= c + 2.0 and s + r >= c - 0.05]
    return max(0.0, s + r - max(s, min(hits))) if hits else None
during = [during_cut(s, r) for s, r in runs if during_cut(s, r) is not None]
outside = [r for s, r in runs if during_cut(s, r) is None]
print("%d %d %.1f" % (round(max(during, default=0) * 1000), round(max(outside, default=0) * 1000), med / 1e6))
best = None
for s, r in runs:
    d = during_cut(s, r)
    if d is not None and (best is None or d > best[0]):
        first = [i for i, c in enumerate(cuts) if s <= c + 2.0 and s + r >= c - 0.05][0]
        best = (d, first, s, s - cuts[first])
print("cut%d start=%.1f after_cut=%.2f" % best[1:] if best else "-", file=sys.stderr)
