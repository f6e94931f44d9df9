#!/usr/bin/env python3
"""Plot the output of bench/memcached.sh as an SVG (Python 3 standard library only).

    bash bench/memcached.sh | tee bench/results/memcached-$(date +%F).txt
    python3 bench/plot_memcached.py bench/results/memcached-YYYY-MM-DD.txt \
        -o book/src/img/memcached-ops.svg

Reads the lines bench/memcached.sh prints:

    memcached 1.6.18 vs evloop memcached example; memcaslap -t 10s -T 1 -c 16; 3 rounds
    round 1: memcached   123456 ops/s   evloop   134567 ops/s
    median:  memcached   123456 ops/s   evloop   134567 ops/s   ratio 1.09x
    idle RSS: memcached    3000 KiB before,   40000 KiB with 10000 idle connections: 3.70 KiB per connection

and draws two panels: ops/s per round for both servers with their medians (dashed),
and a bar chart of the RSS per idle connection. Other lines (warnings) are ignored.
The medians are recomputed from the rounds and checked against the "median:" line.
"""

import argparse
import math
import re
import statistics
import sys
from xml.sax.saxutils import escape

ROUND = re.compile(r"^round\s+(\d+):\s+memcached\s+(\d+)\s+ops/s\s+evloop\s+(\d+)\s+ops/s")
MEDIAN = re.compile(
    r"^median:\s+memcached\s+(\d+)\s+ops/s\s+evloop\s+(\d+)\s+ops/s\s+ratio\s+([\d.]+)x")
IDLE = re.compile(
    r"^idle RSS:\s+(\S+)\s+(\d+)\s+KiB before,\s+(\d+)\s+KiB with\s+(\d+)\s+idle connections:"
    r"\s+(-?[\d.]+)\s+KiB per connection")
HEADER = re.compile(r"^memcached (\S+) vs evloop .*; (memcaslap [^;]*); (\d+) rounds")

COLORS = {"memcached": "#6b7b8c", "evloop": "#d9661f"}
SERVERS = ("memcached", "evloop")


def parse(text):
    """The figures of one bench/memcached.sh run."""
    run = {"rounds": [], "median": None, "idle": {}, "header": None}
    for line in text.splitlines():
        line = line.strip()
        if m := ROUND.match(line):
            run["rounds"].append((int(m[1]), int(m[2]), int(m[3])))
        elif m := MEDIAN.match(line):
            run["median"] = (int(m[1]), int(m[2]), float(m[3]))
        elif m := IDLE.match(line):
            run["idle"][m[1]] = {
                "before": int(m[2]), "after": int(m[3]), "conns": int(m[4]),
                "per_conn": float(m[5])}
        elif m := HEADER.match(line):
            run["header"] = {"version": m[1], "load": m[2], "rounds": int(m[3])}
    if not run["rounds"]:
        sys.exit("plot_memcached: no 'round N:' lines in the input")
    return run


def medians(run):
    """(memcached, evloop, ratio) medians, as bench/memcached.sh computes them."""
    def med(values):
        v = sorted(values)
        n = len(v)
        return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) // 2
    mc = med([r[1] for r in run["rounds"]])
    ev = med([r[2] for r in run["rounds"]])
    ratio = ev / mc if mc else 0.0
    if run["median"] and run["median"][:2] != (mc, ev):
        print(f"plot_memcached: warning: the input's medians {run['median'][:2]} differ from "
              f"the rounds' {(mc, ev)}", file=sys.stderr)
    return mc, ev, ratio


def nice_step(top, ticks=5):
    """A round tick step so that about `ticks` steps cover 0..top."""
    raw = top / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for f in (1, 2, 2.5, 5, 10):
        if raw <= f * mag:
            return f * mag
    return 10 * mag


def fmt_ops(v):
    return f"{v / 1000:.0f}k" if v >= 1000 else f"{v:.0f}"


class Svg:
    def __init__(self, width, height):
        self.w, self.h, self.parts = width, height, []

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, size=12, anchor="start", weight="normal", fill="#222", extra=""):
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{fill}"{extra}>{escape(s)}</text>')

    def line(self, x1, y1, x2, y2, stroke="#222", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{stroke}" stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, fill, stroke="none"):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                 f'fill="{fill}" stroke="{stroke}"/>')

    def render(self):
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" font-family="Helvetica, Arial, sans-serif">\n'
                f'<rect width="{self.w}" height="{self.h}" fill="#ffffff"/>\n')
        return head + "\n".join(self.parts) + "\n</svg>\n"


def ops_panel(svg, run, x0, y0, w, h):
    """ops/s per round, one line per server, dashed medians; the y axis starts at 0."""
    rounds = run["rounds"]
    mc_med, ev_med, ratio = medians(run)
    top = max(max(r[1], r[2]) for r in rounds) * 1.12
    step = nice_step(top)
    top = step * (int(top / step) + 1)
    left, right, up, down = x0 + 62, x0 + w - 90, y0 + 34, y0 + h - 40
    y = lambda v: down - (down - up) * v / top
    n = len(rounds)
    x = (lambda i: (left + right) / 2) if n == 1 else (
        lambda i: left + 30 + (right - left - 60) * i / (n - 1))

    svg.text(x0 + w / 2, y0 + 16, "Throughput per round (memcaslap, ops/s)", 14, "middle", "bold")
    v = 0
    while v <= top + 1e-9:
        svg.line(left, y(v), right, y(v), "#e3e3e3")
        svg.text(left - 6, y(v) + 4, fmt_ops(v), 11, "end", fill="#555")
        v += step
    svg.line(left, down, right, down, "#444")
    svg.line(left, up, left, down, "#444")
    for i, r in enumerate(rounds):
        svg.text(x(i), down + 16, f"round {r[0]}", 11, "middle", fill="#555")
    svg.text(x0 + 14, (up + down) / 2, "ops/s", 11, "middle", fill="#555",
             extra=f' transform="rotate(-90 {x0 + 14} {(up + down) / 2:.1f})"')

    for col, name, med in ((1, "memcached", mc_med), (2, "evloop", ev_med)):
        c = COLORS[name]
        pts = " ".join(f"{x(i):.1f},{y(r[col]):.1f}" for i, r in enumerate(rounds))
        svg.add(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"/>')
        for i, r in enumerate(rounds):
            svg.add(f'<circle cx="{x(i):.1f}" cy="{y(r[col]):.1f}" r="4" fill="{c}">'
                    f'<title>{name}, round {r[0]}: {r[col]} ops/s</title></circle>')
        svg.line(left, y(med), right, y(med), c, 1.5, "6,4")
        svg.text(right + 6, y(med) + 4, f"{name}", 11, fill=c, weight="bold")
        svg.text(right + 6, y(med) + 17, f"median {fmt_ops(med)}", 10, fill=c)
    svg.text(left + 8, up + 14, f"evloop / memcached (medians): {ratio:.2f}x", 12,
             weight="bold")


def rss_panel(svg, run, x0, y0, w, h):
    """KiB of RSS per idle connection, one bar per server."""
    idle = run["idle"]
    svg.text(x0 + w / 2, y0 + 16, "RSS per idle connection (KiB)", 14, "middle", "bold")
    if not idle:
        svg.text(x0 + w / 2, y0 + h / 2, "(no idle RSS figures in the input)", 11, "middle")
        return
    left, right, up, down = x0 + 46, x0 + w - 10, y0 + 34, y0 + h - 40
    top = max(max(v["per_conn"] for v in idle.values()), 0.01) * 1.15
    step = nice_step(top, 4)
    top = step * (int(top / step) + 1)
    y = lambda v: down - (down - up) * max(v, 0) / top
    for k in range(round(top / step) + 1):
        v = k * step
        svg.line(left, y(v), right, y(v), "#e3e3e3")
        svg.text(left - 6, y(v) + 4, f"{v:.10g}", 11, "end", fill="#555")
    svg.line(left, down, right, down, "#444")
    svg.line(left, up, left, down, "#444")
    names = [s for s in SERVERS if s in idle]
    slot = (right - left) / len(names)
    for i, name in enumerate(names):
        d = idle[name]
        bw = slot * 0.5
        bx = left + slot * i + (slot - bw) / 2
        svg.rect(bx, y(d["per_conn"]), bw, down - y(d["per_conn"]), COLORS[name])
        svg.text(bx + bw / 2, y(d["per_conn"]) - 5, f"{d['per_conn']:.2f}", 12, "middle",
                 "bold", COLORS[name])
        svg.text(bx + bw / 2, down + 16, name, 11, "middle", fill="#555")
        svg.text(bx + bw / 2, down + 29, f"{d['before']}→{d['after']} KiB", 9, "middle",
                 fill="#777")
    conns = next(iter(idle.values()))["conns"]
    svg.text(x0 + w / 2, down + 42, f"RSS before → with {conns} idle connections", 9,
             "middle", fill="#777")


def plot(run):
    width, height = 860, 372
    svg = Svg(width, height)
    ops_panel(svg, run, 0, 0, 600, height - 36)
    rss_panel(svg, run, 600, 0, 260, height - 36)
    hdr = run["header"]
    note = (f"memcached {hdr['version']} vs the evloop example, one worker thread each; "
            f"{hdr['load']}; {hdr['rounds']} alternating rounds") if hdr else \
        "memcached vs the evloop example, one worker thread each"
    svg.text(width / 2, height - 8, note, 10, "middle", fill="#555")
    return svg.render()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", nargs="?", help="bench/memcached.sh output (default: stdin)")
    ap.add_argument("-o", "--output", default="book/src/img/memcached-ops.svg")
    args = ap.parse_args()
    text = open(args.input, encoding="utf-8").read() if args.input else sys.stdin.read()
    run = parse(text)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(plot(run))
    mc, ev, ratio = medians(run)
    print(f"{args.output}: medians memcached {mc} ops/s, evloop {ev} ops/s, ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
