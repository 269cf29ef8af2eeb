#!/usr/bin/env python3
"""Reduces a soak run (Tools/soak.sh) to per-minute figures, a summary and an SVG plot.

Reads OUTDIR/samples.tsv (RSS and fds every 10 s) and OUTDIR/events.sse (what the /events client
received). Writes OUTDIR/soak.tsv (one row per minute: RSS max, fds max, fresh answers, p99 of their
end-to-end latency), OUTDIR/soak-summary.json and OUTDIR/soak.svg. Standard library only.

    python3 Tools/plot_soak.py OUTDIR [--warmup-min 2]
"""
import argparse
import json
import math
import os
import sys


def percentile(values, p):
    """Nearest-rank percentile (the value at rank ceil(p/100 * n))."""
    if not values:
        return None
    s = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(s)))
    return s[rank - 1]


def load(out):
    samples = []
    with open(os.path.join(out, "samples.tsv")) as f:
        next(f)
        for line in f:
            cols = line.rstrip("\n").split("\t")
            load = float(cols[3]) if len(cols) > 3 and cols[3] else None
            samples.append((int(cols[0]), int(cols[1]), int(cols[2]), load))
    answers, other = [], 0
    bad_lines = 0
    with open(os.path.join(out, "events.sse")) as f:
        for line in f:
            if not line.startswith("data: "):
                continue
            try:
                e = json.loads(line[6:])
            except json.JSONDecodeError:
                bad_lines += 1
                continue
            if "query" in e and "e2e_ms" in e:
                answers.append(e)
            else:
                other += 1
    return samples, answers, other, bad_lines


def svg_plot(minutes, series, path, title):
    """Stacked panels sharing the time axis: (label, unit, values, colour, y minimum)."""
    W, panel_h, left, right, top, gap = 860, 170, 80, 20, 40, 50
    H = top + len(series) * (panel_h + gap) + 10
    x_max = max(minutes) + 1 if minutes else 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>']

    def nice_max(v):
        """The smallest 4 × step ≥ v with step in {1, 2, 2.5, 5} × 10^k (round tick labels)."""
        if v <= 0:
            return 1
        e = 10 ** math.floor(math.log10(v / 4))
        for m in (1, 2, 2.5, 5, 10):
            if 4 * m * e >= v:
                return 4 * m * e
        return 40 * e

    for i, (label, unit, values, colour, y_min) in enumerate(series):
        y0 = top + i * (panel_h + gap)
        vals = [v for v in values if v is not None]
        y_hi = nice_max(max(vals) * 1.1 if vals else 1)
        lo = y_min
        px = lambda m: left + (W - left - right) * m / x_max
        py = lambda v: y0 + panel_h - panel_h * (v - lo) / (y_hi - lo)
        out.append(f'<rect x="{left}" y="{y0}" width="{W - left - right}" height="{panel_h}" fill="none" stroke="#888"/>')
        for k in range(5):
            v = lo + (y_hi - lo) * k / 4
            y = py(v)
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{W - right}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        step = max(1, round(x_max / 12))
        for m in range(0, int(x_max) + 1, step):
            out.append(f'<text x="{px(m):.1f}" y="{y0 + panel_h + 15}" text-anchor="middle">{m}</text>')
        out.append(f'<text x="{left + 6}" y="{y0 + 15}" fill="{colour}">{label} ({unit})</text>')
        pts = " ".join(f"{px(m):.1f},{py(v):.1f}" for m, v in zip(minutes, values) if v is not None)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for m, v in zip(minutes, values):
            if v is not None:
                out.append(f'<circle cx="{px(m):.1f}" cy="{py(v):.1f}" r="2.5" fill="{colour}"/>')
    y_last = top + len(series) * (panel_h + gap) - gap + 32
    out.append(f'<text x="{W / 2}" y="{y_last}" text-anchor="middle">minutes since start</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--warmup-min", type=int, default=2, help="minutes left out of the flatness figures")
    args = ap.parse_args()
    samples, answers, other, bad = load(args.out)
    if not samples or not answers:
        sys.exit(f"plot_soak: {args.out}: no samples ({len(samples)}) or no answer events ({len(answers)})")

    t_first = min(e["captured_at"] for e in answers)
    n_min = max(samples[-1][0] // 60, int((max(e["captured_at"] for e in answers) - t_first) // 60)) + 1
    rows = []
    for m in range(n_min):
        in_min = [s for s in samples if m * 60 <= s[0] < (m + 1) * 60]
        fresh = [e["e2e_ms"] for e in answers
                 if not e.get("reused") and m * 60 <= e["captured_at"] - t_first < (m + 1) * 60]
        rows.append({
            "minute": m,
            "rss_mb": max(s[1] for s in in_min) / 1024 if in_min else None,
            "fds": max(s[2] for s in in_min) if in_min else None,
            "load1": max(s[3] for s in in_min) if in_min and all(s[3] is not None for s in in_min) else None,
            "fresh_answers": len(fresh),
            "p99_ms": percentile(fresh, 99),
        })
    # The last minute may be partial (the run stops mid-minute): keep it only if it has answers.
    with open(os.path.join(args.out, "soak.tsv"), "w") as f:
        f.write("minute\trss_mb\tfds\tfresh_answers\tp99_ms\tload1_max\n")
        for r in rows:
            f.write("\t".join("" if r[k] is None else (f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]))
                              for k in ("minute", "rss_mb", "fds", "fresh_answers", "p99_ms", "load1")) + "\n")

    after = [r for r in rows[args.warmup_min:] if r["rss_mb"] is not None and r["fresh_answers"] > 0]
    base_rss = after[0]["rss_mb"] if after else None
    rss_after = [r["rss_mb"] for r in after]
    p99s = [r["p99_ms"] for r in after if r["p99_ms"] is not None]
    fds_after = [r["fds"] for r in after if r["fds"] is not None]
    correct = [e["correct"] for e in answers if e.get("correct") is not None]
    per_query = {}
    for e in answers:
        if e.get("correct") is not None:
            per_query.setdefault(e["query"], []).append(e["correct"])
    summary = {
        "minutes": len(rows),
        "warmup_minutes": args.warmup_min,
        "answer_events": len(answers),
        "fresh_answers": sum(1 for e in answers if not e.get("reused")),
        "other_events": other,
        "unparsable_lines": bad,
        "rss_mb_after_warmup": base_rss,
        "rss_mb_min_max": [min(rss_after), max(rss_after)] if rss_after else None,
        "rss_max_deviation_pct": (max(abs(v - base_rss) for v in rss_after) / base_rss * 100) if rss_after else None,
        "fds_min_max": [min(fds_after), max(fds_after)] if fds_after else None,
        "p99_ms_min_median_max": [min(p99s), percentile(p99s, 50), max(p99s)] if p99s else None,
        "accuracy": (sum(correct) / len(correct)) if correct else None,
        "accuracy_per_query": {q: sum(v) / len(v) for q, v in sorted(per_query.items())},
    }
    with open(os.path.join(args.out, "soak-summary.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    minutes = [r["minute"] for r in rows]
    svg_plot(minutes, [
        ("RSS, max per minute", "MB", [r["rss_mb"] for r in rows], "#1f77b4", 0),
        ("open file descriptors, max per minute", "count", [r["fds"] for r in rows], "#2ca02c", 0),
        ("p99 end-to-end latency of fresh answers", "ms", [r["p99_ms"] for r in rows], "#d62728", 0),
    ] + ([("machine load average (1 min), max per minute", "runnable tasks", [r["load1"] for r in rows], "#7f7f7f", 0)]
         if any(r["load1"] is not None for r in rows) else []), os.path.join(args.out, "soak.svg"),
        f"atp serve soak: {len(rows)} min, {summary['fresh_answers']} fresh answers, one /events client")
    json.dump(summary, sys.stdout, indent=2, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
