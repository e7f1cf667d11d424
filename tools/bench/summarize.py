#!/usr/bin/env python3
"""summarize.py prints a markdown table of a tools/bench/run.sh results file (JSON lines from
gotrain and keras_train.py): per architecture the median images/s of Go, of Keras with
TensorFlow's defaults and of Keras with oneDNN forced on, the ratios of the medians, and the
median peak RSS of each. Keras runs with a forced --jit (on/off) and Go runs with oneDNN
forced off get their own rows. Standard library only.

usage: summarize.py RESULTS.jsonl
"""
import json
import statistics
import sys


def label(rec):
    """go, go onednn=0, keras (defaults: jit "auto", oneDNN as TensorFlow decides), keras
    onednn=1, or keras jit=on / keras jit=off."""
    env = rec.get("onednn_env")
    if rec["impl"] != "keras":
        return rec["impl"] if env in (None, "", "1") else f"{rec['impl']} onednn={env}"
    jit = str(rec.get("jit", "auto"))
    if not jit.startswith("auto"):
        return f"keras jit={jit}"
    return "keras" if env is None else f"keras onednn={env}"


def main(path):
    runs = {}  # (arch, label) -> [record]
    archs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: {e}")
            if rec["arch"] not in archs:
                archs.append(rec["arch"])
            runs.setdefault((rec["arch"], label(rec)), []).append(rec)
    if not runs:
        sys.exit(f"{path}: no results")

    def med(arch, impl, key):
        recs = runs.get((arch, impl), [])
        return statistics.median(r[key] for r in recs) if recs else None

    def fmt(v, spec):
        return "–" if v is None else format(v, spec)

    print("| arch | params | runs | Go images/s | Keras images/s | Go/Keras | Keras+oneDNN images/s | Go/(Keras+oneDNN) "
          "| Go peak RSS MB | Keras peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    for arch in archs:
        go, ke = runs.get((arch, "go"), []), runs.get((arch, "keras"), [])
        ko = runs.get((arch, "keras onednn=1"), [])
        params = sorted({r["params"] for r in go + ke + ko})
        if len(params) > 1:
            notes.append(f"{arch}: parameter counts differ between runs: {params}")
        cfg = sorted({(r["batch"], r["size"]) for r in go + ke + ko})
        if len(cfg) > 1:
            notes.append(f"{arch}: mixed batch/size settings: {cfg}")
        g, k = med(arch, "go", "images_per_s"), med(arch, "keras", "images_per_s")
        o = med(arch, "keras onednn=1", "images_per_s")
        ratio = g / k if g and k else None
        ratio_o = g / o if g and o else None
        print(f"| {arch} | {'/'.join(str(p) for p in params)} | {len(go)}/{len(ke)}/{len(ko)} | {fmt(g, '.1f')} | {fmt(k, '.1f')} | "
              f"{fmt(ratio, '.2f')} | {fmt(o, '.1f')} | {fmt(ratio_o, '.2f')} | "
              f"{fmt(med(arch, 'go', 'peak_rss_mb'), '.0f')} | {fmt(med(arch, 'keras', 'peak_rss_mb'), '.0f')} |")

    extra = sorted({lb for (_, lb) in runs if lb.startswith("keras jit=") or lb.startswith("go onednn=")})
    if extra:
        print()
        print("| arch | variant | runs | images/s (median) | peak RSS MB (median) |")
        print("|---|---|---:|---:|---:|")
        for arch in archs:
            for lb in ["keras"] + extra:
                recs = runs.get((arch, lb))
                if recs:
                    jit = str(recs[0].get("jit", "auto"))
                    name = f"keras default, jit {jit}" if lb == "keras" else lb
                    print(f"| {arch} | {name} | {len(recs)} | {fmt(med(arch, lb, 'images_per_s'), '.1f')} | "
                          f"{fmt(med(arch, lb, 'peak_rss_mb'), '.0f')} |")
    for n in notes:
        print(f"\nwarning: {n}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1])
