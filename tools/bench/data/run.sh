#!/usr/bin/env bash
# run.sh: split + augment throughput of `pipeline` against the original system's Python
# (original.py, Pillow), on the same 2,000 synthetic photos and the same machine.
#
#   tools/bench/data/run.sh                 # RUNS=3
#   RUNS=5 VARIANTS="png" tools/bench/data/run.sh
#
# Environment (defaults in brackets):
#   RUNS [3]             measured runs of every side; the table shows medians
#   VARIANTS [png jpeg]  the split stage's stored format for `pipeline` (one side each), or
#                        unstored: store_images = false and near_duplicates = false (the split
#                        writes manifests naming the photos and checks JPEGs from their markers,
#                        as the original's split copies them unchecked; augment fits the
#                        originals it copies)
#   SAME_WORK [1]        also run original.py --same-work (Pillow doing pipeline's work:
#                        224x224 uncompressed PNGs at split time, augmenting those), a reference row
#   WORK [tools/bench/data/work]  photos, workspaces, outputs and results (git-ignored)
#   PILENV [/tmp/pilenv] venv with Pillow for original.py (made when missing)
#   PILLOW [13.0.0]      Pillow version installed into a new venv
#   LOCK [/tmp/bench.lock]  every measurement runs under `flock $LOCK`, one at a time
#
# Steps: builds bin/pipeline (make build) and freezes a copy in $WORK/bin, generates the
# photos once (cached in $WORK/photos, regenerated when genphotos changes), makes the venv,
# then runs the sides alternately (odd runs pipeline first, even runs original first), each
# with a fresh store/output folder, under /usr/bin/time (wall, peak RSS, CPU). Images/s =
# input images (2,000) / wall seconds of split + augment together. JSON lines go to
# $WORK/results/<UTC stamp>.jsonl; a markdown table is printed at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"

RUNS=${RUNS:-3}
VARIANTS=${VARIANTS:-png jpeg}
SAME_WORK=${SAME_WORK:-1}
WORK=${WORK:-$here/work}
PILENV=${PILENV:-/tmp/pilenv}
PILLOW=${PILLOW:-13.0.0}
LOCK=${LOCK:-/tmp/bench.lock}
# --- tools ------------------------------------------------------------------------------
. "$here/setup.sh" pipeline

if ! "$PILENV/bin/python" -c 'import PIL' 2>/dev/null; then
  echo "making $PILENV with Pillow $PILLOW" >&2
  python3 -m venv "$PILENV"
  "$PILENV/bin/pip" install -q "pillow==$PILLOW"
fi

# --- photos (cached) --------------------------------------------------------------------
photos=$WORK/photos
gen_id=$(sha256sum "$here/genphotos/main.go" | cut -c1-16)
if [ "$(cat "$photos/.generator" 2>/dev/null)" != "$gen_id" ]; then
  echo "generating the photos into $photos" >&2
  rm -rf "$photos"
  "$WORK/bin/genphotos" -out "$photos" >&2
  echo "$gen_id" >"$photos/.generator"
fi
n_inputs=$(find "$photos" -name '*.jpg' | wc -l)
photo_mb=$(du -sm --exclude=.generator "$photos" | cut -f1)
cat "$photos"/*/*.jpg >/dev/null # warm the page cache: every side reads from memory

# --- workspaces -------------------------------------------------------------------------
for v in $VARIANTS; do
  mkdir -p "$WORK/ours-$v"
  storage="format     = \"$v\""
  [ "$v" = unstored ] && storage="store_images    = false
  near_duplicates = false"
  cat >"$WORK/ours-$v/pipeline.hcl" <<EOF
# Written by tools/bench/data/run.sh.
pipeline {
  seed = 42
}

stage "split" "main" {
  source     = "../photos"
  image_size = 224
  channels   = 3
  resize     = "center_crop"
  val        = 0.1
  test       = 0.1
  $storage
}

stage "augment" "balanced" {
  input       = stage.split.main.train
  max_augment = 5
  ops         = ["flip_rotate_crop", "color_jitter"]
}
EOF
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$WORK/results/$stamp.jsonl
log=$WORK/results/$stamp.log
: >"$out"
: >"$log"
tfile=$(mktemp)

# Earlier outputs are moved aside, not deleted, until the end (leftovers of an interrupted
# run too): this machine's ext4 has no journal, and without one ext4 does not reuse an inode
# freed in the last minute (five while its inode table block is dirty), so every file created
# soon after deleting thousands scans past them (perf: recently_deleted, under ext4_create,
# took a fifth of the CPU of a run). Neither side's measurement should pay for the one before.
trash=$WORK/trash/$stamp
mkdir -p "$trash"
trap 'rm -f "$tfile"; rm -rf "$WORK/trash"' EXIT
# Their pages are also dropped from the page cache (written out first): each round leaves
# about 2.5 GB of images, and once those had filled the free memory, the sides that write most
# paid for reclaim (our CPU time per run rose from 8.7 to 13 s over five rounds while the
# original's stayed at 12 s).
discard() {
  local p to
  for p in "$@"; do
    if [ -e "$p" ]; then
      to=$trash/$(date +%s%N)
      mv "$p" "$to"
      sync
      python3 - "$to" <<'PY'
import os, sys
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        try:
            fd = os.open(os.path.join(d, f), os.O_RDONLY)
        except OSError:
            continue
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
PY
    fi
  done
}

# measure NAME RUN CMD...: runs CMD under the lock and /usr/bin/time; sets wall rss cpu.
# Dirty pages of earlier runs are written out first (sync), for the same reason.
measure() {
  local name=$1 run=$2
  shift 2
  echo "== $name run $run: $*" >>"$log"
  sync
  if ! flock "$LOCK" /usr/bin/time -f '%e %M %U %S' -o "$tfile" "$@" >>"$log" 2>&1; then
    echo "run.sh: $name failed (log: $log)" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  read -r wall rss user sys <"$tfile"
  cpu=$(python3 -c "print(round($user + $sys, 2))")
}

run_ours() {
  local v=$1 run=$2 ws=$WORK/ours-$v
  discard "$ws/data/intermediate" "$ws/models"
  cd "$ws"
  measure "ours-$v" "$run" "$WORK/bin/pipeline" run pipeline.hcl --quiet
  cd "$repo"
  python3 - "$ws" "$v" "$run" "$wall" "$rss" "$cpu" "$n_inputs" >>"$out" <<'EOF'
import glob, json, sys
ws, v, run, wall, rss, cpu, n = sys.argv[1:]
rec = json.load(open(glob.glob(ws + "/models/*/run.json")[0]))
assert rec["status"] == "succeeded", rec["status"]
dur = {s["stage"].split(".")[0]: s["duration_s"] for s in rec["stages"]}
rundir = glob.glob(ws + "/models/*/")[0]
split = json.load(open(glob.glob(rundir + "split.*/report/split.json")[0]))
aug = json.load(open(glob.glob(rundir + "augment.*/report/augment.json")[0]))
copies = sum(c["after"] - c["before"] for c in aug["classes"])
stored = split["total"]["total"]
print(json.dumps({"impl": "ours-" + v, "run": int(run), "inputs": int(n), "wall_s": float(wall),
                  "rss_mb": int(rss) / 1024, "cpu_s": float(cpu), "outputs": stored + copies,
                  "aug_copies": copies, "split_s": round(dur["split"], 3),
                  "augment_s": round(dur["augment"], 3)}))
EOF
  tail -n 1 "$out" | sed 's/^/  /' >&2
}

# run_original RUN [--same-work]
run_original() {
  local run=$1 dst=$WORK/original-out name=original
  shift
  [ $# -gt 0 ] && name=original-same-work
  discard "$dst"
  measure "$name" "$run" "$PILENV/bin/python" "$here/original.py" "$photos" "$dst" "$@"
  python3 - "$run" "$wall" "$rss" "$cpu" "$log" "$name" >>"$out" <<'EOF'
import json, sys
run, wall, rss, cpu, log, name = sys.argv[1:]
line = [l for l in open(log) if l.startswith('{"impl": "%s"' % name)][-1]
r = json.loads(line)
print(json.dumps({"impl": name, "run": int(run), "inputs": r["inputs"], "wall_s": float(wall),
                  "rss_mb": int(rss) / 1024, "cpu_s": float(cpu), "outputs": r["outputs"],
                  "aug_copies": r["aug_copies"], "split_s": r["split_s"], "augment_s": r["augment_s"]}))
EOF
  tail -n 1 "$out" | sed 's/^/  /' >&2
}

echo "photos: $n_inputs JPEGs, $photo_mb MB in $photos; $RUNS runs; results in $out" >&2
for ((run = 1; run <= RUNS; run++)); do
  echo "run $run/$RUNS" >&2
  if ((run % 2 == 1)); then
    for v in $VARIANTS; do run_ours "$v" "$run"; done
    run_original "$run"
    [ "$SAME_WORK" = 1 ] && run_original "$run" --same-work
  else
    [ "$SAME_WORK" = 1 ] && run_original "$run" --same-work
    run_original "$run"
    for v in $(echo $VARIANTS | tr ' ' '\n' | tac); do run_ours "$v" "$run"; done
  fi
done

# --- table ------------------------------------------------------------------------------
python3 - "$out" "$n_inputs" "$photo_mb" "$RUNS" "$(nproc)" <<'EOF'
import json, statistics as st, sys
path, n, mb, runs, cores = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
impls = []
for r in rows:
    if r["impl"] not in impls:
        impls.append(r["impl"])
med = lambda xs: st.median(xs)
orig_ips = med([r["inputs"] / r["wall_s"] for r in rows if r["impl"] == "original"])
print(f"\n{n} photos ({mb} MB), {runs} runs each, {cores} cores; medians (peak RSS: the largest)\n")
print("| side | images/s | wall s | split s | augment s | CPU s | peak RSS MB | output images | ours/original |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for impl in impls:
    rs = [r for r in rows if r["impl"] == impl]
    ips = med([r["inputs"] / r["wall_s"] for r in rs])
    outs = sorted({r["outputs"] for r in rs})
    print(f"| {impl} | {ips:.1f} | {med([r['wall_s'] for r in rs]):.2f} | {med([r['split_s'] for r in rs]):.2f} | "
          f"{med([r['augment_s'] for r in rs]):.2f} | {med([r['cpu_s'] for r in rs]):.1f} | "
          f"{max(r['rss_mb'] for r in rs):.0f} | {'/'.join(map(str, outs))} | {ips / orig_ips:.2f}x |")
print("\nimages/s = input photos / wall s of split + augment together. split s / augment s: ours from")
print("run.json (stage durations), original from its own timer. original-same-work is a reference, not")
print("the original: Pillow doing pipeline's work (224x224 uncompressed PNGs at split time, augmenting those).")
EOF
echo
echo "reproduce (in $repo): RUNS=$RUNS VARIANTS=\"$VARIANTS\" SAME_WORK=$SAME_WORK tools/bench/data/run.sh"
