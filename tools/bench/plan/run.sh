#!/usr/bin/env bash
# run.sh: `pipeline plan` against `dvc status` on the same synthetic source tree (50,000 tiny
# PNGs in 50 class folders), everything cached: warm (stat cache hot), cold (stat cache deleted,
# OS page cache still warm) and after adding one file.
#
#   tools/bench/plan/run.sh                       # everything, results under $BENCH_DIR
#   BENCH_DIR=/tmp/pb RUNS=5 tools/bench/plan/run.sh
#
# Environment (defaults in brackets):
#   BENCH_DIR [/tmp/planbench]  where the tree, both workspaces, binaries and results go
#   FILES [50000]  CLASSES [50]  SIZE [8]  SEED [1]   the tree (tools/bench/plan/mktree)
#   RUNS [10]       timed runs of warm and add-one, per tool (plus WARMUP [2] untimed)
#   COLD_RUNS [5]   timed cold runs, per tool
#   DVC_VENV [/tmp/dvcenv]  DVC_SPEC [dvc==3.67.1]   dvc is pip-installed there if missing
#   BENCH_LOCK [/tmp/bench.lock]   every timed section (and the setup runs) hold this flock
#   PROFILE [auto]  1: always profile the warm plan in-process (planprobe + pprof); 0: never;
#                   auto: only when the warm median is above TARGET [0.3] seconds
#
# Layout under $BENCH_DIR:
#   tree/                 the generated tree (regenerated only when FILES/CLASSES/SIZE/SEED change)
#   pipeline/             pipeline.hcl (one split stage, source = data/raw) + data/raw
#   dvc/                  git + dvc repo, dvc.yaml (one stage, deps: [data/raw]) + data/raw
#   dvc-site/             dvc's site cache dir (its state db of hashes is dvc-site/repo/*/hashes)
#   bin/                  pipeline (make build BIN=…), mktree, planprobe
#   results/<UTC stamp>/  hyperfine JSON, plan outputs, profile, table.md
# Both data/raw folders are hard-linked copies (cp -al) of tree/: the same inodes and bytes,
# and separate directories, so the file added to one workspace is not seen by the other.
#
# Measured (hyperfine -N, each measurement in its own `flock $BENCH_LOCK` section):
#   warm     `pipeline plan` / `dvc status` with nothing changed (must exit 0 / print up to date)
#   cold     the same after deleting only the hash cache: data/intermediate/statcache /
#            dvc-site/repo/*/hashes. The page cache is NOT dropped: on the contrary, the
#            prepare step reads every file to be hashed (cat > /dev/null) first, because this
#            VM evicts page cache by itself. "cold" = no cached digests, files in RAM, so the
#            MB/s is hashing + syscalls + bookkeeping, not disk. pipeline's cold plan hashes the
#            source tree AND re-hashes the cached output (Store.Verify), about 100k files.
#   add-one  before each run a new distinct PNG replaces data/raw/class_00/zz-added.png (new
#            content, mtime, inode): the tree differs from the cached state by exactly 1 added
#            file. pipeline plan must exit 2 with reason "1 added".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"

BENCH_DIR=${BENCH_DIR:-/tmp/planbench}
FILES=${FILES:-50000}
CLASSES=${CLASSES:-50}
SIZE=${SIZE:-8}
SEED=${SEED:-1}
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-2}
COLD_RUNS=${COLD_RUNS:-5}
DVC_VENV=${DVC_VENV:-/tmp/dvcenv}
DVC_SPEC=${DVC_SPEC:-dvc==3.67.1}
BENCH_LOCK=${BENCH_LOCK:-/tmp/bench.lock}
PROFILE=${PROFILE:-auto}
TARGET=${TARGET:-0.3}

# The same flags the Makefile exports, for runs outside make.
tf_prefix=${LIBTENSORFLOW_PREFIX:-$repo/.libtensorflow}
export CGO_CFLAGS=${CGO_CFLAGS:--I$tf_prefix/include}
export CGO_LDFLAGS=${CGO_LDFLAGS:--L$tf_prefix/lib -Wl,-rpath,$tf_prefix/lib}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export DVC_NO_ANALYTICS=1

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
locked() { flock "$BENCH_LOCK" "$@"; }

command -v hyperfine >/dev/null || { log "hyperfine missing; installing (apt-get install -y hyperfine)"; apt-get install -y hyperfine >/dev/null || true; }
have_hyperfine=0
command -v hyperfine >/dev/null && have_hyperfine=1

bin=$BENCH_DIR/bin
tree=$BENCH_DIR/tree
pws=$BENCH_DIR/pipeline
dws=$BENCH_DIR/dvc
site=$BENCH_DIR/dvc-site
stamp=$(date -u +%Y%m%dT%H%M%SZ)
res=$BENCH_DIR/results/$stamp
mkdir -p "$bin" "$res"
: >"$res/checks.txt"
check() { printf '%s\n' "$*" | tee -a "$res/checks.txt" >&2; }

# ---------------------------------------------------------------- build
log "building bin/pipeline (make build BIN=$bin/pipeline), mktree, planprobe"
make --no-print-directory build BIN="$bin/pipeline" >&2
go build -o "$bin/mktree" ./tools/bench/plan/mktree
go build -o "$bin/planprobe" ./tools/bench/plan/planprobe
pipe=$bin/pipeline
rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -n "$(git status --porcelain -- cmd pipeline stages 2>/dev/null)" ] && rev="$rev (working tree modified)"

if [ ! -x "$DVC_VENV/bin/dvc" ]; then
  log "installing $DVC_SPEC into $DVC_VENV"
  python3 -m venv "$DVC_VENV"
  "$DVC_VENV/bin/pip" install -q "$DVC_SPEC"
fi
dvc=$DVC_VENV/bin/dvc
dvc_version=$("$dvc" --version)

# ---------------------------------------------------------------- tree
params="files=$FILES classes=$CLASSES size=$SIZE seed=$SEED mktree=$(sha256sum "$here/mktree/main.go" | cut -c1-12)"
if [ ! -d "$tree" ] || [ "$(cat "$BENCH_DIR/tree.params" 2>/dev/null)" != "$params" ]; then
  log "generating the tree ($params); the old workspaces are removed"
  rm -rf "$pws" "$dws" "$site" "$BENCH_DIR/tree.params"
  "$bin/mktree" -force -out "$tree" -files "$FILES" -classes "$CLASSES" -size "$SIZE" -seed "$SEED" >&2
  echo "$params" >"$BENCH_DIR/tree.params"
fi
tree_files=$(find "$tree" -type f | wc -l)
tree_bytes=$(find "$tree" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
tree_disk=$(du -sk "$tree" | cut -f1)

added=data/raw/class_00/zz-added.png
rm -f "$pws/$added" "$dws/$added"

# ---------------------------------------------------------------- pipeline workspace
if [ ! -f "$pws/pipeline.hcl" ]; then
  log "setting up $pws"
  rm -rf "$pws"
  mkdir -p "$pws/data"
  cp -al "$tree" "$pws/data/raw"
  cat >"$pws/pipeline.hcl" <<EOF
# Plan benchmark: one split stage whose source is the synthetic tree.
pipeline {
  seed = 42
}

stage "split" "main" {
  source     = "data/raw"
  image_size = $SIZE
  channels   = 1
}
EOF
fi
set +e
# Locked: after a move or a deleted stat cache this plan hashes the whole tree.
(cd "$pws" && locked "$pipe" plan pipeline.hcl >/dev/null 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ]; then
  log "pipeline run (setup, not measured; decodes and stores $FILES images)"
  t0=$(date +%s.%N)
  (cd "$pws" && locked "$pipe" run pipeline.hcl --quiet) >"$res/pipeline-setup-run.txt" 2>&1 || { cat "$res/pipeline-setup-run.txt" >&2; exit 1; }
  log "pipeline run took $(echo "$(date +%s.%N) - $t0" | bc) s (including waiting for the lock)"
  check "stat cache right after pipeline run: $("$bin/planprobe" -statcache "$pws/pipeline.hcl")"
  # One plan to bring the stat cache up to date after the run.
  (cd "$pws" && locked "$pipe" plan pipeline.hcl >/dev/null) || true
fi

# ---------------------------------------------------------------- dvc workspace
if [ ! -f "$dws/dvc.lock" ]; then
  log "setting up $dws"
  rm -rf "$dws" "$site"
  mkdir -p "$dws/data"
  cp -al "$tree" "$dws/data/raw"
  (
    cd "$dws"
    git init -q
    "$dvc" init -q
    "$dvc" config --local core.site_cache_dir "$site"
    "$dvc" config --local core.analytics false
    "$dvc" config --local core.check_update false
    cat >dvc.yaml <<'EOF'
stages:
  touch:
    cmd: cat /dev/null > out.txt
    deps:
      - data/raw
    outs:
      - out.txt
EOF
  )
fi
if ! (cd "$dws" && locked "$dvc" status -q >/dev/null 2>&1); then
  log "dvc repro (setup, not measured)"
  (cd "$dws" && locked "$dvc" repro -q) >"$res/dvc-setup-repro.txt" 2>&1 || { cat "$res/dvc-setup-repro.txt" >&2; exit 1; }
fi
dvc_hashes=$(find "$site/repo" -mindepth 2 -maxdepth 2 -type d -name hashes | head -1)
[ -n "$dvc_hashes" ] || { log "no dvc state db under $site/repo"; exit 1; }

# ---------------------------------------------------------------- measurement helpers
# measure NAME RUNS WARMUP IGNORE_FAILURE PREPARE COMMAND: times COMMAND (run in its workspace,
# no shell) under the lock; writes $res/NAME.json and prints "median min max mean" in seconds.
measure() {
  local name=$1 runs=$2 warmup=$3 ignore=$4 prepare=$5 cmd=$6 dir=$7
  if [ $have_hyperfine = 1 ]; then
    local args=(-N --style basic --runs "$runs" --warmup "$warmup" --export-json "$res/$name.json")
    [ "$ignore" = 1 ] && args+=(-i)
    [ -n "$prepare" ] && args+=(--prepare "$prepare")
    (cd "$dir" && locked hyperfine "${args[@]}" "$cmd") >"$res/$name.hyperfine.txt" 2>&1 ||
      { cat "$res/$name.hyperfine.txt" >&2; exit 1; }
    python3 - "$res/$name.json" <<'EOF'
import json, statistics, sys
t = json.load(open(sys.argv[1]))["results"][0]["times"]
print(f"{statistics.median(t):.4f} {min(t):.4f} {max(t):.4f} {statistics.mean(t):.4f}")
EOF
  else
    # Fallback: a loop of date +%s.%N around each run, all runs in one locked bash.
    (cd "$dir" && locked bash -c '
      runs=$1 warmup=$2 prepare=$3 cmd=$4
      for ((i = 0; i < warmup + runs; i++)); do
        [ -n "$prepare" ] && eval "$prepare"
        t0=$(date +%s.%N); eval "$cmd" >/dev/null 2>&1; t1=$(date +%s.%N)
        [ $i -ge $warmup ] && echo "$t1 - $t0" | bc
      done' _ "$runs" "$warmup" "$prepare" "$cmd") >"$res/$name.times"
    sort -g "$res/$name.times" | awk '{a[NR]=$1; s+=$1} END {m = NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.4f %.4f %.4f %.4f\n", m, a[1], a[NR], s/NR}'
  fi
}
med() { cut -d' ' -f1 <<<"$1"; }
range() { awk '{printf "%.3f–%.3f", $2, $3}' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f×", a/b}'; }

add_prepare() { # a fresh distinct image at $added in workspace $1
  echo "bash -c 'rm -f $1/$added && $bin/mktree -size $SIZE -one $1/$added -seed \$(date +%s%N)'"
}

# ---------------------------------------------------------------- checks
check "stat cache before measuring: $("$bin/planprobe" -statcache "$pws/pipeline.hcl")"
(cd "$pws" && "$pipe" plan pipeline.hcl) >"$res/pipeline-plan-warm.txt" 2>&1 && prc=0 || prc=$?
check "pipeline plan (warm): exit $prc (want 0): $(tr '\n' ' ' <"$res/pipeline-plan-warm.txt")"
[ $prc -eq 0 ] || exit 1
(cd "$dws" && "$dvc" status) >"$res/dvc-status-warm.txt" 2>&1
check "dvc status (warm): $(tr '\n' ' ' <"$res/dvc-status-warm.txt")"
grep -q "up to date" "$res/dvc-status-warm.txt" || exit 1

# ---------------------------------------------------------------- pipeline
log "pipeline: startup (pipeline --help), warm, cold, add-one"
p_start=$(measure pipeline-help "$RUNS" "$WARMUP" 0 "" "$pipe --help" "$pws")
p_warm=$(measure pipeline-warm "$RUNS" "$WARMUP" 0 "" "$pipe plan pipeline.hcl" "$pws")
# Cold: the prepare step deletes the stat cache and reads every file the plan will hash into the
# page cache (this VM evicts page cache on its own: without it the first cold run read from disk).
p_cold=$(measure pipeline-cold "$COLD_RUNS" 0 0 "bash -c 'rm -f $pws/data/intermediate/statcache && find $pws/data/raw $pws/data/intermediate/objects -type f -print0 | xargs -0 cat >/dev/null'" "$pipe plan pipeline.hcl" "$pws")

# In-process numbers (not the CLI): what a cold and a warm plan hash, and where time goes.
rm -f "$pws/data/intermediate/statcache"
(cd "$pws" && locked "$bin/planprobe" -n 1 -json pipeline.hcl) >"$res/probe-cold.json"
(cd "$pws" && locked "$bin/planprobe" -n "$RUNS" -phases -json pipeline.hcl) >"$res/probe-warm.json"
probe() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
cold_hashed=$(probe "$res/probe-cold.json" 'd["iterations"][0]["Hashed"]')
warm_hashed=$(probe "$res/probe-warm.json" 'd["iterations"][-1]["Hashed"]')
out_files=$(probe "$res/probe-warm.json" 'd["phases"]["output_files"]')
out_bytes=$(probe "$res/probe-warm.json" 'd["phases"]["output_bytes"]')
check "planprobe: cold plan hashed $cold_hashed files ($tree_files source + $out_files outputs verified); warm plan hashed $warm_hashed"
check "planprobe warm phases: $(probe "$res/probe-warm.json" '" ".join(f"{k}={v:.4f}s" if isinstance(v,float) else f"{k}={v}" for k,v in sorted(d["phases"].items()))')"
check "planprobe warm medians (in-process): $(probe "$res/probe-warm.json" '" ".join(f"{k}={v:.4f}s" for k,v in d["median"].items())')"

# add-one: check the reason and the hash count once, then time it.
eval "$(add_prepare "$pws")"
(cd "$pws" && "$pipe" plan pipeline.hcl) >"$res/pipeline-plan-add.txt" 2>&1 && prc=0 || prc=$?
check "pipeline plan (one file added): exit $prc (want 2): $(tr '\n' ' ' <"$res/pipeline-plan-add.txt")"
[ $prc -eq 2 ] && grep -q "1 added, 0 changed, 0 removed" "$res/pipeline-plan-add.txt" || { log "unexpected add-one plan"; exit 1; }
eval "$(add_prepare "$pws")"
(cd "$pws" && locked "$bin/planprobe" -n 1 -json pipeline.hcl) >"$res/probe-add.json"
add_hashed=$(probe "$res/probe-add.json" 'd["iterations"][0]["Hashed"]')
check "planprobe (one file added): hashed $add_hashed file(s)"
p_add=$(measure pipeline-add "$RUNS" "$WARMUP" 1 "$(add_prepare "$pws")" "$pipe plan pipeline.hcl" "$pws")
rm -f "$pws/$added"
(cd "$pws" && "$pipe" plan pipeline.hcl >/dev/null) # back to all cached (exit 0 under set -e)

# ---------------------------------------------------------------- dvc
log "dvc: startup (dvc --version), warm, cold, add-one"
d_start=$(measure dvc-version "$RUNS" "$WARMUP" 0 "" "$dvc --version" "$dws")
d_warm=$(measure dvc-warm "$RUNS" "$WARMUP" 0 "" "$dvc status" "$dws")
d_cold=$(measure dvc-cold "$COLD_RUNS" 0 0 "bash -c 'rm -rf $dvc_hashes && find $dws/data/raw -type f -print0 | xargs -0 cat >/dev/null'" "$dvc status" "$dws")
eval "$(add_prepare "$dws")"
(cd "$dws" && "$dvc" status) >"$res/dvc-status-add.txt" 2>&1
check "dvc status (one file added): $(tr '\n' ' ' <"$res/dvc-status-add.txt")"
grep -q "modified:.*data/raw" "$res/dvc-status-add.txt" || { log "unexpected dvc add-one status"; exit 1; }
d_add=$(measure dvc-add "$RUNS" "$WARMUP" 0 "$(add_prepare "$dws")" "$dvc status" "$dws")
rm -f "$dws/$added"
(cd "$dws" && "$dvc" status -q)

# ---------------------------------------------------------------- profile
prof_note=""
if [ "$PROFILE" = 1 ] || { [ "$PROFILE" = auto ] && awk -v m="$(med "$p_warm")" -v t="$TARGET" 'BEGIN {exit !(m > t)}'; }; then
  log "profiling the warm plan in-process (planprobe -cpuprofile)"
  (cd "$pws" && locked "$bin/planprobe" -n 20 -cpuprofile "$res/plan-warm.pprof" pipeline.hcl) >"$res/probe-profile.txt"
  go tool pprof -top -cum -nodecount=40 "$bin/planprobe" "$res/plan-warm.pprof" >"$res/pprof-top-cum.txt" 2>/dev/null
  go tool pprof -top -nodecount=30 "$bin/planprobe" "$res/plan-warm.pprof" >"$res/pprof-top-flat.txt" 2>/dev/null
  prof_note="Profile: $res/pprof-top-cum.txt, $res/pprof-top-flat.txt (go tool pprof $bin/planprobe $res/plan-warm.pprof)"
fi

# ---------------------------------------------------------------- table
src_mb=$(awk -v b="$tree_bytes" 'BEGIN {printf "%.2f", b/1e6}')
out_mb=$(awk -v b="$out_bytes" 'BEGIN {printf "%.2f", b/1e6}')
p_cold_mbs=$(awk -v b="$tree_bytes" -v o="$out_bytes" -v t="$(med "$p_cold")" 'BEGIN {printf "%.1f", (b+o)/1e6/t}')
p_cold_fps=$(awk -v n="$cold_hashed" -v t="$(med "$p_cold")" 'BEGIN {printf "%.0f", n/t}')
d_cold_mbs=$(awk -v b="$tree_bytes" -v t="$(med "$d_cold")" 'BEGIN {printf "%.1f", b/1e6/t}')
d_cold_fps=$(awk -v n="$tree_files" -v t="$(med "$d_cold")" 'BEGIN {printf "%.0f", n/t}')
{
  echo "## pipeline plan vs dvc status, $tree_files files"
  echo
  echo "Tree: $tree_files PNGs (${SIZE}×${SIZE} grey) in $CLASSES class folders, $src_mb MB of content ($tree_disk KiB on disk)."
  echo "pipeline $rev; $dvc_version (dvc); $(nproc) CPUs; hyperfine -N, median (min–max) seconds."
  echo
  echo "| measurement | pipeline plan | dvc status | dvc / pipeline |"
  echo "| --- | --- | --- | --- |"
  echo "| process start only (\`--help\` / \`--version\`), $RUNS runs | $(med "$p_start") ($(range "$p_start")) | $(med "$d_start") ($(range "$d_start")) | $(ratio "$(med "$d_start")" "$(med "$p_start")") |"
  echo "| warm: nothing changed, $RUNS runs | **$(med "$p_warm")** ($(range "$p_warm")) | **$(med "$d_warm")** ($(range "$d_warm")) | $(ratio "$(med "$d_warm")" "$(med "$p_warm")") |"
  echo "| add one file, $RUNS runs | **$(med "$p_add")** ($(range "$p_add")) | **$(med "$d_add")** ($(range "$d_add")) | $(ratio "$(med "$d_add")" "$(med "$p_add")") |"
  echo "| cold: hash cache deleted, page cache warm, $COLD_RUNS runs | $(med "$p_cold") ($(range "$p_cold")) | $(med "$d_cold") ($(range "$d_cold")) | $(ratio "$(med "$d_cold")" "$(med "$p_cold")") |"
  echo "| cold hash rate | $p_cold_mbs MB/s, $p_cold_fps files/s ($cold_hashed files, $src_mb MB source + $out_mb MB outputs) | $d_cold_mbs MB/s, $d_cold_fps files/s ($tree_files files, $src_mb MB) | |"
  echo
  echo "Warm target ≤ $TARGET s: pipeline $(awk -v m="$(med "$p_warm")" -v t="$TARGET" 'BEGIN {print (m <= t) ? "met" : "NOT met"}') ($(med "$p_warm") s)."
  echo "Files hashed (planprobe, StatCache.Hashed): warm $warm_hashed, one added $add_hashed, cold $cold_hashed."
  [ -n "$prof_note" ] && echo "$prof_note"
  echo
  echo "Checks:"
  sed 's/^/    /' "$res/checks.txt"
  echo
  echo "Reproduce: BENCH_DIR=$BENCH_DIR FILES=$FILES CLASSES=$CLASSES RUNS=$RUNS COLD_RUNS=$COLD_RUNS tools/bench/plan/run.sh"
  echo "Raw results: $res"
} | tee "$res/table.md"
