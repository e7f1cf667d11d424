#!/usr/bin/env python3
"""Markdown tables for tools/bench/serve/run.sh: medians of the load runs per server and
concurrency, the pipeline/peer throughput ratio, and the agreement check.

    summarize.py --load load.jsonl [--agree agree.jsonl]
"""
import argparse
import json
import statistics
from collections import defaultdict

ORDER = ["pipeline", "flask", "gunicorn", "pipeline-close"]
NAMES = {
    "pipeline": "pipeline serve (Go)",
    "flask": "Flask dev server, threaded",
    "gunicorn": "gunicorn -w 2 (sync)",
    "pipeline-close": "pipeline serve, no keep-alive (control)",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", required=True)
    ap.add_argument("--agree")
    a = ap.parse_args()

    cells = defaultdict(list)
    for line in open(a.load):
        line = line.strip()
        if line:
            r = json.loads(line)
            cells[(r["label"], r["clients"])].append(r)

    def med(rs, k):
        return statistics.median(r[k] for r in rs)

    servers = sorted({s for s, _ in cells}, key=lambda s: (ORDER.index(s) if s in ORDER else 99, s))
    clients = sorted({c for _, c in cells})
    print("| server | clients | p50 ms | p99 ms | req/s | ratio pipeline/peer (req/s) | runs | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in clients:
        base = cells.get(("pipeline", c))
        for s in servers:
            rs = cells.get((s, c))
            if not rs:
                continue
            rps = med(rs, "rps")
            if s.startswith("pipeline"):
                ratio = "—"
            elif base:
                ratio = f"{med(base, 'rps') / rps:.2f}×"
            else:
                ratio = "n/a"
            errors = sum(r["errors"] for r in rs)
            print(f"| {NAMES.get(s, s)} | {c} | {med(rs, 'p50_ms'):.2f} | {med(rs, 'p99_ms'):.2f} | "
                  f"{rps:.0f} | {ratio} | {len(rs)}×{rs[0]['requests']} | {errors} |")
    spread = []
    for (s, c), rs in sorted(cells.items()):
        v = [r["rps"] for r in rs]
        if len(v) > 1:
            spread.append(f"{s}@{c}: {min(v):.0f}–{max(v):.0f}")
    if spread:
        print()
        print("req/s range over runs: " + "; ".join(spread) + ".")
    dials = [f"{s}@{c}: {statistics.median(r['dials'] for r in rs):.0f}" for (s, c), rs in sorted(cells.items())]
    print()
    print("TCP connections dialled per measured run (median; keep-alive = clients): " + "; ".join(dials) + ".")

    if a.agree:
        print()
        print("| pipeline vs | images | top-1 agree | top-5 lists identical | responses equal (decoded) | warning agree | max abs Δ top-1 conf | max abs Δ top-5 conf | top-1 = true class (pipeline / peer) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for line in open(a.agree):
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            for kind, label in (("test_images", "test PNGs 28×28"), ("resized_rgb_56x40", "same, as 56×40 RGB")):
                t = r.get(kind)
                if not t or not t["images"]:
                    continue
                n = t["images"]
                print(f"| {NAMES.get(r['peer'], r['peer'])}, {label} | {n} | {t['top1_agree']}/{n} | "
                      f"{t['top5_lists_identical']}/{n} | {t['responses_equal']}/{n} | {t['warning_agree']}/{n} | "
                      f"{t['max_abs_delta_top1_conf']:.2e} | {t['max_abs_delta_top5_conf']:.2e} | "
                      f"{t['true_class_top1_a']}/{t['true_class_top1_b']} |")


if __name__ == "__main__":
    main()
