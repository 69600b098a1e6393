#!/usr/bin/env python3
"""Draws the ratios of a `cargo bench -p state-bench` run as an SVG bar chart.

    cargo bench -p state-bench | tee state-bench/results/latest.txt
    python3 state-bench/plot.py state-bench/results/latest.txt > state-bench/results/ratios.svg

One bar per RESULT line of this project's systems (the stores; the baselines' and peers' own
lines are what the bars are measured against), on a log scale. Each bar runs from 1 (the
limit or the peer) to the ratio, left when below it; a tick marks the target; green met, red
missed, grey no target. Standard library only.
"""

import html
import math
import re
import sys

LINE = re.compile(
    r"^RESULT (?P<workload>\S+) (?P<system>\S+) ops_per_s=(?P<ops>\d+) "
    r"ratio=(?P<ratio>[\d.]+)(?: target=(?P<target>[\d.]+))?\s*$"
)
LOW, HIGH = 0.01, 1000.0  # the axis, as ratios
OURS = {"sqlite", "sqlite_typed", "memory", "postgres"}  # this project's systems
LEFT, BAR, GAP, WIDTH, TOP = 360, 16, 6, 520, 48


def rows(text):
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if not m:
            continue
        if m["system"] not in OURS:
            continue
        target = float(m["target"]) if m["target"] else None
        ratio = float(m["ratio"])
        yield {
            "label": f"{m['workload'].replace('_', ' ')} — {m['system'].replace('_', ' ')}",
            "ratio": ratio,
            "ops": int(m["ops"]),
            "target": target,
        }


def x(ratio):
    r = min(max(ratio, LOW), HIGH)
    return LEFT + WIDTH * (math.log10(r) - math.log10(LOW)) / (math.log10(HIGH) - math.log10(LOW))


def svg(data, title):
    height = TOP + len(data) * (BAR + GAP) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LEFT + WIDTH + 90}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{html.escape(title)}</text>',
        f'<text x="10" y="38" fill="#555">ratio to the limit (rusqlite, raw sqlx, bare map) '
        "or the peer (ADK), log scale, bars from 1; | target</text>",
        f'<rect x="{LEFT + WIDTH - 250}" y="8" width="10" height="10" fill="#3a3"/>'
        f'<text x="{LEFT + WIDTH - 236}" y="17">met</text>'
        f'<rect x="{LEFT + WIDTH - 200}" y="8" width="10" height="10" fill="#d33"/>'
        f'<text x="{LEFT + WIDTH - 186}" y="17">missed</text>'
        f'<rect x="{LEFT + WIDTH - 130}" y="8" width="10" height="10" fill="#9aa"/>'
        f'<text x="{LEFT + WIDTH - 116}" y="17">no target</text>',
    ]
    bottom = TOP + len(data) * (BAR + GAP)
    for tick in [0.01, 0.1, 0.5, 1, 2, 10, 100, 1000]:
        tx = x(tick)
        weight = "#888" if tick == 1 else "#ddd"
        out.append(f'<line x1="{tx:.1f}" y1="{TOP - 4}" x2="{tx:.1f}" y2="{bottom}" stroke="{weight}"/>')
        out.append(f'<text x="{tx:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#555">{tick:g}</text>')
    for i, r in enumerate(data):
        y = TOP + i * (BAR + GAP)
        t = r["target"]
        color = "#9aa" if t is None else ("#3a3" if r["ratio"] >= t else "#d33")
        out.append(
            f'<text x="{LEFT - 8}" y="{y + BAR - 4}" text-anchor="end">{html.escape(r["label"])}</text>'
        )
        x0, x1 = sorted([x(1), x(r["ratio"])])
        out.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{BAR}" fill="{color}"/>'
        )
        end = max(x1, x(t) if t is not None else 0)
        out.append(f'<text x="{end + 5:.1f}" y="{y + BAR - 4}">{r["ratio"]:.2f}</text>')
        if t is not None:
            tx = x(t)
            out.append(f'<line x1="{tx:.1f}" y1="{y - 2}" x2="{tx:.1f}" y2="{y + BAR + 2}" stroke="black" stroke-width="2"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plot.py BENCH_OUTPUT > ratios.svg")
    with open(sys.argv[1], encoding="utf-8") as f:
        data = list(rows(f.read()))
    if not data:
        sys.exit(f"{sys.argv[1]}: no RESULT lines")
    sys.stdout.write(svg(data, "state-bench: this project against the limit and the peers"))


if __name__ == "__main__":
    main()
