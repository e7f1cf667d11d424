#!/usr/bin/env bash
# run.sh: `make run` (the default pipeline.hcl on the embedded dataset) timed from a clean store,
# then a Keras twin of every trained network on the very same data (keras_twin.py), side by side.
#
# 1. A fresh `git clone` of this repository (committed files only) in $WS: no store, no runs.
# 2. `/usr/bin/time -v make run` there, reusing this checkout's libtensorflow (TF_PREFIX).
# 3. keras_twin.py on the clone's run folder, once per seed in $SEEDS.
# 4. summarize.py: the markdown table for BENCHMARKS.md.
# Every heavy step takes $LOCK (flock) so that it never shares the cores with another benchmark
# (the load average at the start of each goes to load.txt: processes outside the lock still can).
#
# Environment (defaults in brackets):
#   WS [a new /tmp/twin-ws.XXXXXX]   clone to run in (must not exist, or be a clone to reuse with SKIP_RUN=1)
#   SEEDS [42 43 44]                 Keras twin seeds (the pipeline's seed is pipeline.hcl's, 42)
#   LOCK [/tmp/bench.lock]           flock file shared with the other benchmarks
#   SKIP_RUN [0]                     1: reuse the newest run folder already in $WS/models
#   OUT [tools/bench/twin/results/<UTC stamp>]
# Needs /usr/bin/time (Debian package `time`), git, flock, Go, and the venv of tools/python-env.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"

SEEDS=${SEEDS-42 43 44}
LOCK=${LOCK:-/tmp/bench.lock}
SKIP_RUN=${SKIP_RUN:-0}
OUT=${OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}
tf_prefix=${LIBTENSORFLOW_PREFIX:-$repo/.libtensorflow}

[ -x /usr/bin/time ] || { echo "run.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
[ -f "$tf_prefix/lib/libtensorflow.so" ] || { echo "run.sh: no libtensorflow in $tf_prefix; run make libtensorflow" >&2; exit 1; }
py=$(tools/python-env.sh) || { echo "run.sh: no Python venv (tools/python-env.sh failed)" >&2; exit 1; }
mkdir -p "$OUT"

if [ "$SKIP_RUN" = 1 ]; then
  [ -n "${WS:-}" ] && [ -d "$WS/models" ] || { echo "run.sh: SKIP_RUN=1 needs WS=<a clone with a run>" >&2; exit 1; }
else
  if [ -z "${WS:-}" ]; then
    WS=$(mktemp -d /tmp/twin-ws.XXXXXX) && rmdir "$WS"
  fi
  [ -e "$WS" ] && { echo "run.sh: $WS exists; give a new WS (the point is a clean store)" >&2; exit 1; }
  git clone -q "$repo" "$WS"
  if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "run.sh: note: this checkout has uncommitted changes; the clone runs $(git -C "$WS" rev-parse --short HEAD) without them" >&2
  fi
  echo "run.sh: make run in $WS (commit $(git -C "$WS" rev-parse --short HEAD)), waiting for $LOCK" >&2
  # The Go build is part of the timed target (make run depends on build); Go's build cache is
  # shared with this checkout, so it is mostly a link.
  (cd "$WS" && flock "$LOCK" bash -c 'uptime >>"$0"; exec "$@"' "$OUT/load.txt" /usr/bin/time -v -o "$OUT/time.txt" make run TF_PREFIX="$tf_prefix") >"$OUT/make_run.log" 2>&1 ||
    { echo "run.sh: make run failed; see $OUT/make_run.log" >&2; tail -n 20 "$OUT/make_run.log" >&2; exit 1; }
  grep -E "Elapsed|Maximum resident" "$OUT/time.txt" >&2
fi
run=$(ls -d "$WS"/models/2*/ | sort | tail -n 1)
run=${run%/}
echo "run.sh: run folder $run" >&2

: >"$OUT/twin.jsonl"
for seed in $SEEDS; do
  echo "run.sh: Keras twin, seed $seed, waiting for $LOCK" >&2
  flock "$LOCK" bash -c 'uptime >>"$0"; exec "$@"' "$OUT/load.txt" "$py" "$here/keras_twin.py" --run "$run" --seed "$seed" >>"$OUT/twin.jsonl" 2>>"$OUT/twin.log" ||
    { echo "run.sh: keras_twin.py failed; see $OUT/twin.log" >&2; tail -n 20 "$OUT/twin.log" >&2; exit 1; }
done

{
  echo "Machine: $(nproc) cores, $(uname -m); $("$py" -c 'import tensorflow as tf, keras; print("tensorflow", tf.__version__, "keras", keras.__version__)' 2>/dev/null); commit $(git -C "$WS" rev-parse --short HEAD)"
  echo
  timing=()
  [ -f "$OUT/time.txt" ] && timing=(--time "$OUT/time.txt")
  "$py" "$here/summarize.py" --run "$run" "${timing[@]}" "$OUT/twin.jsonl"
} | tee "$OUT/summary.md"
echo "run.sh: results in $OUT" >&2
