#!/usr/bin/env python3
"""Draws BENCHMARKS.md's scaling plot from `compare` lines (target/bench/results.txt by default):
bytes sent and server CPU over the three windows (joins, 60 s steady, 60 s churn) against the
number of clients, log-log, for Yjs and for ours with full lists and with summaries. Plain SVG,
no dependencies:

    python3 components/presence-bench/plot/plot.py [results.txt ...] > BENCHMARKS-scaling.svg
"""
import math
import re
import sys

SERIES = [("yjs", "-", "Yjs awareness server", "#d9480f"),
          ("ours", "full", "ours, full list", "#1c7ed6"),
          ("ours", "summary", "ours, summary (<FacePile/> default)", "#2b8a3e")]


def read(paths):
    runs = {}
    for path in paths:
        for line in open(path):
            if not line.startswith("compare "):
                continue
            f = dict(re.findall(r"(\w+)=(\S+)", line))
            if "churn_bytes" not in f:
                continue
            key = (f["server"], f.get("view", "-"), int(f["clients"]))
            runs[key] = {
                "bytes": sum(float(f[w + "_bytes"]) for w in ("join", "steady", "churn")),
                "cpu": sum(float(f[w + "_cpu_s"]) for w in ("join", "steady", "churn")),
            }
    return runs


def panel(runs, metric, x0, title, unit):
    w, h, left, bottom = 420, 300, 70, 40
    points = {s: sorted((n, v[metric]) for (srv, view, n), v in runs.items()
                        if (srv, view) == s[:2] and v[metric] > 0) for s in SERIES}
    ns = [n for pts in points.values() for n, _ in pts]
    vs = [v for pts in points.values() for _, v in pts]
    if not ns:
        return ""
    lx0, lx1 = math.floor(math.log10(min(ns))), math.ceil(math.log10(max(ns)))
    ly0, ly1 = math.floor(math.log10(min(vs))), math.ceil(math.log10(max(vs)))
    lx1, ly1 = max(lx1, lx0 + 1), max(ly1, ly0 + 1)
    X = lambda n: x0 + left + (math.log10(n) - lx0) / (lx1 - lx0) * (w - left - 10)
    Y = lambda v: 30 + (1 - (math.log10(v) - ly0) / (ly1 - ly0)) * (h - bottom - 30)
    out = [f'<text x="{x0 + w / 2}" y="18" text-anchor="middle" font-weight="bold">{title}</text>']
    for e in range(lx0, lx1 + 1):
        x = X(10 ** e)
        out.append(f'<line x1="{x}" y1="30" x2="{x}" y2="{h - bottom}" stroke="#ddd"/>')
        out.append(f'<text x="{x}" y="{h - bottom + 15}" text-anchor="middle">{10 ** e:,}</text>')
    for e in range(ly0, ly1 + 1):
        y = Y(10 ** e)
        out.append(f'<line x1="{x0 + left}" y1="{y}" x2="{x0 + w - 10}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 + left - 5}" y="{y + 4}" text-anchor="end">1e{e}</text>')
    out.append(f'<text x="{x0 + w / 2}" y="{h - 5}" text-anchor="middle">clients in one room</text>')
    out.append(f'<text x="{x0 + 12}" y="{(h - bottom) / 2 + 15}" transform="rotate(-90 {x0 + 12} {(h - bottom) / 2 + 15})" text-anchor="middle">{unit}</text>')
    for s in SERIES:
        pts = points[s]
        if not pts:
            continue
        path = " ".join(f"{X(n):.1f},{Y(v):.1f}" for n, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{s[3]}" stroke-width="2"/>')
        for n, v in pts:
            out.append(f'<circle cx="{X(n):.1f}" cy="{Y(v):.1f}" r="3" fill="{s[3]}"/>')
    return "\n".join(out)


def main():
    runs = read(sys.argv[1:] or ["target/bench/results.txt"])
    legend = "\n".join(
        f'<rect x="{20 + i * 280}" y="312" width="12" height="12" fill="{c}"/>'
        f'<text x="{36 + i * 280}" y="323">{label.replace("<", "&lt;").replace(">", "&gt;")}</text>'
        for i, (_, _, label, c) in enumerate(SERIES))
    print('<svg xmlns="http://www.w3.org/2000/svg" width="860" height="335" font-family="sans-serif" font-size="11">')
    print('<rect width="100%" height="100%" fill="white"/>')
    print(panel(runs, "bytes", 0, "Bytes sent by the server: joins + 60 s steady + 60 s churn", "bytes"))
    print(panel(runs, "cpu", 430, "Server CPU: joins + 60 s steady + 60 s churn", "CPU seconds"))
    print(legend)
    print("</svg>")


if __name__ == "__main__":
    main()
