#!/usr/bin/env python3
"""summarize.py prints the pipeline-vs-Keras-twin table (markdown) for BENCHMARKS.md.

Usage: summarize.py --run models/<run> [--time time.txt] [--ref-seed 42] twin.jsonl...

--run is the pipeline run folder (its <arch>/metrics.json and <arch>/evaluation/metrics.json),
--time the output of `/usr/bin/time -v make run` (its wall clock time is reported), and the
JSONL files the lines keras_twin.py printed (any number of seeds; the table shows the
--ref-seed run and the min-max over all seeds). Standard library only.
"""
import argparse
import json
import os
import re
import statistics


def load_lines(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out += [json.loads(l) for l in f if l.strip().startswith("{")]
    return out


def wall_seconds(path):
    with open(path) as f:
        for line in f:
            m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (.*)$", line.strip())
            if m:
                parts = [float(x) for x in m.group(1).split(":")]
                s = 0.0
                for x in parts:
                    s = s * 60 + x
                return s
    return None


def fmt_time(s):
    return f"{int(s // 60)}:{s % 60:04.1f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--time")
    p.add_argument("--ref-seed", type=int, default=42)
    p.add_argument("jsonl", nargs="+")
    a = p.parse_args()
    twin = load_lines(a.jsonl)
    archs = [x for x in ("cnn", "vgg19", "vit") if os.path.isfile(os.path.join(a.run, x, "metrics.json"))]

    rows = []
    hdr = ("| architecture | pipeline test macro-F1 | Keras twin test macro-F1: seed {r} (min–max, n seeds) "
           "| pipeline top-1 / top-5 | Keras top-1 / top-5 (seed {r}) | best epoch (val F1): pipeline / Keras "
           "| pipeline train img/s | Keras train img/s (median) |").format(r=a.ref_seed)
    rows.append(hdr)
    rows.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    # The pipeline's training speed is in the run record (run.json: each stage's stats), not
    # in its metrics.json, which holds only what the inputs determine.
    with open(os.path.join(a.run, "run.json")) as f:
        speed = {s.get("artifacts"): s["stats"]["train_images_per_s"]
                 for s in json.load(f)["stages"] if "train_images_per_s" in s.get("stats", {})}
    for arch in archs:
        with open(os.path.join(a.run, arch, "metrics.json")) as f:
            tm = json.load(f)
        with open(os.path.join(a.run, arch, "evaluation", "metrics.json")) as f:
            em = json.load(f)
        ks = [t for t in twin if t["arch"] == arch]
        ref = next((t for t in ks if t["seed"] == a.ref_seed), ks[0] if ks else None)
        if ref is None:
            kf = ktk = kbest = kips = "–"
        else:
            f1s = [t["test_f1_macro"] for t in ks]
            kf = f"{ref['test_f1_macro']:.3f}"
            if len(ks) > 1:
                kf += f" ({min(f1s):.3f}–{max(f1s):.3f}, n={len(ks)})"
            ktk = f"{ref['test_top1']:.3f} / {ref['test_top5']:.3f}"
            kbest = f"{ref['best_epoch']} ({ref['val_f1']:.3f})"
            kips = f"{statistics.median(t['train_images_per_s'] for t in ks):.0f}"
        rows.append(
            f"| {arch} | {em['test_f1_macro']:.3f} | {kf} | {em['test_top1']:.3f} / {em['test_top5']:.3f} | {ktk} "
            f"| {tm['best_epoch']} ({tm['val_f1']:.3f}) / {kbest} | {speed.get(arch, float('nan')):.0f} | {kips} |")
    print("\n".join(rows))
    if a.time:
        s = wall_seconds(a.time)
        if s is not None:
            print(f"\n`make run` wall time: {fmt_time(s)} ({s:.0f} s)")
    cpu = {arch: [t["fit_cpu_per_s"] for t in twin if t["arch"] == arch and "fit_cpu_per_s" in t] for arch in archs}
    if any(cpu.values()):
        print("\nKeras fit, CPU seconds per second (2.0 = both cores busy): " + ", ".join(
            f"{a} {min(v):.2f}–{max(v):.2f}" for a, v in cpu.items() if v))
    tr = twin[0] if twin else {}
    if tr:
        print(f"\nData: {tr['train_images']} training images (augmented), {tr['val_images']} val, "
              f"{tr['test_images']} test; seeds: {sorted({t['seed'] for t in twin})}")


if __name__ == "__main__":
    main()
