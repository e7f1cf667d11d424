#!/usr/bin/env bash
# memscale.sh: how the data stages' memory grows with the number of photos. For each scale N
# (genphotos -scale N: N × 2,000 synthetic 500×375 photos in the benchmark's 20 imbalanced
# classes), runs the benchmark's split stage, then its augment stage, in a fresh workspace,
# each under /usr/bin/time (peak RSS) with PIPELINE_HEAP_PROFILE (peak live Go heap, the most
# memory the Go runtime held, and a heap profile of the peak), and prints a table with the
# growth per photo between the smallest and the largest scale, the Go runtime's apart from the
# rest (libtensorflow's and the C libraries').
#
#   tools/bench/data/memscale.sh                # SCALES="1 4 16"
#   SCALES="1 22" tools/bench/data/memscale.sh  # 44,000 photos
#
# Environment (defaults in brackets):
#   SCALES [1 4 16]   dataset sizes, in multiples of the benchmark's 2,000 photos
#   UNSTORED [0]      1: the split stores no images (store_images = false, near_duplicates =
#                     false, as run.sh's unstored variant)
#   WORK [tools/bench/data/work]  photos (cached per scale), workspaces, results (git-ignored)
#   LOCK [/tmp/bench.lock]        every measurement runs under `flock $LOCK`
#
# Profiles are left in $WORK/memscale-<N>/{split,augment}.heap:
#   go tool pprof -sample_index=inuse_space -top $WORK/bin/pipeline $WORK/memscale-16/augment.heap
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"

SCALES=${SCALES:-1 4 16}
UNSTORED=${UNSTORED:-0}
storage=""
[ "$UNSTORED" = 1 ] && storage="store_images    = false
  near_duplicates = false"
WORK=${WORK:-$here/work}
LOCK=${LOCK:-/tmp/bench.lock}
. "$here/setup.sh" pipeline-mem
gen_id=$(sha256sum "$here/genphotos/main.go" | cut -c1-16)

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$WORK/results/memscale-$stamp.jsonl
: >"$out"
tfile=$(mktemp)
trap 'rm -f "$tfile"' EXIT

for n in $SCALES; do
  photos=$WORK/photos-x$n
  if [ "$(cat "$photos/.generator" 2>/dev/null)" != "$gen_id" ]; then
    echo "generating $((n * 2000)) photos into $photos" >&2
    rm -rf "$photos"
    "$WORK/bin/genphotos" -out "$photos" -scale "$n" >&2
    echo "$gen_id" >"$photos/.generator"
  fi
  count=$(find "$photos" -name '*.jpg' | wc -l)
  ws=$WORK/memscale-$n
  rm -rf "$ws"
  mkdir -p "$ws"
  cat >"$ws/pipeline.hcl" <<EOF
# Written by tools/bench/data/memscale.sh.
pipeline {
  seed = 42
}

stage "split" "main" {
  source     = "$photos"
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
  for stage in split.main augment.balanced; do
    name=${stage%%.*}
    sync
    (cd "$ws" && PIPELINE_HEAP_PROFILE="$ws/$name.heap" flock "$LOCK" /usr/bin/time -f '%e %M' -o "$tfile" \
      "$WORK/bin/pipeline-mem" run pipeline.hcl --stage "$stage" --quiet >"$ws/$name.out" 2>"$ws/$name.err") ||
      { echo "memscale.sh: $stage failed at scale $n:" >&2; cat "$ws/$name.err" >&2; exit 1; }
    read -r wall rss <"$tfile"
    heap=$(sed -n 's/^pipeline: peak live heap \([0-9.]*\) MB.*/\1/p' "$ws/$name.err")
    held=$(sed -n 's/^pipeline: peak live heap .*held at most \([0-9.]*\) MB.*/\1/p' "$ws/$name.err")
    echo "{\"scale\": $n, \"unstored\": $UNSTORED, \"photos\": $count, \"stage\": \"$name\", \"wall_s\": $wall, \"rss_mb\": $((rss / 1024)), \"live_heap_mb\": ${heap:-null}, \"go_held_mb\": ${held:-null}}" | tee -a "$out" >&2
  done
done

python3 - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| photos | stage | peak RSS MB | live Go heap MB | held by Go MB | RSS not Go's MB |")
print("| ---: | --- | ---: | ---: | ---: | ---: |")
by = {}
for r in rows:
    by.setdefault(r["photos"], {})[r["stage"]] = r
for st in ("split", "augment"):
    for n in sorted(by):
        r = by[n][st]
        print(f"| {n:,} | {st} | {r['rss_mb']} | {r['live_heap_mb']} | {r['go_held_mb']} | {r['rss_mb'] - r['go_held_mb']:.0f} |")
ns = sorted(by)
if len(ns) > 1:
    lo, hi = by[ns[0]], by[ns[-1]]
    d = ns[-1] - ns[0]
    print()
    for st in ("split", "augment"):
        per = lambda k: 1e3 * (hi[st][k] - lo[st][k]) / d
        other = 1e3 * ((hi[st]["rss_mb"] - hi[st]["go_held_mb"]) - (lo[st]["rss_mb"] - lo[st]["go_held_mb"])) / d
        print(f"{st}, per photo: {per('rss_mb'):.2f} KB of peak RSS, {per('live_heap_mb'):.2f} KB of live Go heap, "
              f"{per('go_held_mb'):.2f} KB held by Go, {other:.2f} KB of the rest (libtensorflow, C libraries)")
EOF
echo "results: $out" >&2
