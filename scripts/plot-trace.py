#!/usr/bin/env python3
"""Draws a Spindle timeline (`--trace FILE`, Chrome trace-event JSON) as a PNG:
one row per track of every party (compute, protocol per stream, send and
receive per peer), each span a bar, time on the x axis.

    python3 scripts/plot-trace.py TRACE.json [MORE.json ...] --output timeline.png
        [--from SECONDS] [--to SECONDS] [--title TEXT]

Several files (one per party process) are drawn together. Needs matplotlib.
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"compute": "#1f77b4", "protocol": "#2ca02c", "send": "#ff7f0e", "receive": "#d62728"}


def load(paths):
    tracks, spans = {}, {}
    for path in paths:
        with open(path) as f:
            events = json.load(f)["traceEvents"]
        for e in events:
            key = (e["pid"], e["tid"])
            if e["ph"] == "M" and e["name"] == "thread_name":
                tracks[key] = e["args"]["name"]
            elif e["ph"] == "X":
                spans.setdefault(key, []).append((e["ts"] / 1e6, e["dur"] / 1e6))
    return tracks, spans


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="+")
    ap.add_argument("--output", required=True)
    ap.add_argument("--from", dest="t0", type=float, default=None)
    ap.add_argument("--to", dest="t1", type=float, default=None)
    ap.add_argument("--title", default="Spindle timeline")
    a = ap.parse_args()
    tracks, spans = load(a.traces)
    keys = sorted(spans, key=lambda k: (k[0], k[1]))
    fig, ax = plt.subplots(figsize=(14, 0.45 * len(keys) + 1.5))
    labels = []
    for row, key in enumerate(keys):
        name = tracks.get(key, f"track {key[1]}")
        labels.append(f"party {key[0]}: {name}")
        kind = name.split()[0]
        bars = [
            (s, d)
            for s, d in spans[key]
            if (a.t0 is None or s + d >= a.t0) and (a.t1 is None or s <= a.t1)
        ]
        ax.broken_barh(bars, (row - 0.4, 0.8), facecolors=COLORS.get(kind, "gray"), linewidth=0)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    if a.t0 is not None or a.t1 is not None:
        ax.set_xlim(a.t0, a.t1)
    ax.set_xlabel("seconds since the party's start")
    ax.set_title(a.title)
    fig.tight_layout()
    fig.savefig(a.output, dpi=110)


if __name__ == "__main__":
    main()
