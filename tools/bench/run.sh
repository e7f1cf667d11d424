#!/usr/bin/env bash
# run.sh: Go (tools/bench/gotrain) vs Keras (tools/bench/keras_train.py) training throughput on
# the same networks, side by side. Invoked by `make bench`; also runs directly.
#
# Environment (defaults in brackets):
#   ARCHS [cnn vgg19 vit]  RUNS [5]  STEPS [40]  WARMUP [5]  BATCH [32]  SIZE [64]  THREADS [0]
#   STEPS_<ARCH>   timed steps for one architecture (e.g. STEPS_VGG19=20), both sides alike
#   JIT_EXTRA=1    afterwards, one more Keras run per architecture with --jit off and --jit on
#   ONEDNN_EXTRA=1 afterwards, one more Go run per architecture with oneDNN off
#
# Three sides: go (gotrain as pipeline trains: TensorFlow's oneDNN kernels on), keras (Keras
# with TensorFlow's defaults, which leave oneDNN off on CPUs without AVX512-VNNI/BF16 or AMX)
# and keras-onednn (Keras with TF_ENABLE_ONEDNN_OPTS=1, as a user who knows the switch runs
# it). Each run executes the three one after the other, the first rotating from run to run,
# never in parallel. JSON lines go to tools/bench/results/<UTC timestamp>.jsonl,
# stderr of every run to the matching .log; at the end tools/bench/summarize.py prints a
# markdown table of the medians.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

ARCHS=${ARCHS:-cnn vgg19 vit}
RUNS=${RUNS:-5}
STEPS=${STEPS:-40}
WARMUP=${WARMUP:-5}
BATCH=${BATCH:-32}
SIZE=${SIZE:-64}
THREADS=${THREADS:-0}
JIT_EXTRA=${JIT_EXTRA:-0}
ONEDNN_EXTRA=${ONEDNN_EXTRA:-0}
# Each side decides TensorFlow's oneDNN setting itself (see the header).
unset TF_ENABLE_ONEDNN_OPTS

# The same flags the Makefile exports, for runs outside make.
tf_prefix=${LIBTENSORFLOW_PREFIX:-$repo/.libtensorflow}
export CGO_CFLAGS=${CGO_CFLAGS:--I$tf_prefix/include}
export CGO_LDFLAGS=${CGO_LDFLAGS:--L$tf_prefix/lib -Wl,-rpath,$tf_prefix/lib}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

[ -d "$tf_prefix/lib" ] || { echo "run.sh: no libtensorflow in $tf_prefix; run tools/install-libtensorflow.sh (or make bench)" >&2; exit 1; }
${GO:-go} build -o bin/gotrain ./tools/bench/gotrain
py=$(tools/python-env.sh) || { echo "run.sh: no Python venv (tools/python-env.sh failed)" >&2; exit 1; }

mkdir -p tools/bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=tools/bench/results/$stamp.jsonl
log=tools/bench/results/$stamp.log
: >"$out"
: >"$log"

# steps_for ARCH: STEPS_<ARCH> if set, else STEPS.
steps_for() {
  local var
  var="STEPS_$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')"
  echo "${!var:-$STEPS}"
}

# bench IMPL ARCH [EXTRA FLAGS...]: one measurement, its JSON line appended to $out.
bench() {
  local impl=$1 arch=$2
  shift 2
  local steps cmd line
  steps=$(steps_for "$arch")
  local flags=(--arch "$arch" --size "$SIZE" --batch "$BATCH" --steps "$steps" --warmup "$WARMUP" --threads "$THREADS")
  case $impl in
  go) cmd=(bin/gotrain "${flags[@]}" "$@") ;;
  go-no-onednn) cmd=(env TF_ENABLE_ONEDNN_OPTS=0 bin/gotrain "${flags[@]}" "$@") ;;
  keras) cmd=("$py" tools/bench/keras_train.py "${flags[@]}" "$@") ;;
  keras-onednn) cmd=(env TF_ENABLE_ONEDNN_OPTS=1 "$py" tools/bench/keras_train.py "${flags[@]}" "$@") ;;
  esac
  echo "== ${cmd[*]}" >>"$log"
  if ! line=$("${cmd[@]}" 2>>"$log"); then
    echo "run.sh: failed: ${cmd[*]} (stderr in $log):" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  line=$(printf '%s\n' "$line" | tail -n 1)
  printf '%s\n' "$line" >>"$out"
  printf '  %-12s %s\n' "$impl" "$line" >&2
}

sides=(go keras keras-onednn)
for arch in $ARCHS; do
  for ((run = 1; run <= RUNS; run++)); do
    echo "$arch run $run/$RUNS ($(steps_for "$arch") steps after $WARMUP warmup, batch $BATCH, ${SIZE}x$SIZE)" >&2
    # The three sides one after the other, the first one rotating from run to run.
    for ((i = 0; i < ${#sides[@]}; i++)); do
      bench "${sides[(run - 1 + i) % ${#sides[@]}]}" "$arch"
    done
  done
done
if [ "$ONEDNN_EXTRA" = 1 ]; then
  for arch in $ARCHS; do
    echo "$arch: Go with oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)" >&2
    bench go-no-onednn "$arch"
  done
fi
if [ "$JIT_EXTRA" = 1 ]; then
  for arch in $ARCHS; do
    echo "$arch: Keras with --jit off and --jit on" >&2
    bench keras "$arch" --jit off
    bench keras "$arch" --jit on
  done
fi

repro="ARCHS='$ARCHS' RUNS=$RUNS STEPS=$STEPS WARMUP=$WARMUP BATCH=$BATCH SIZE=$SIZE THREADS=$THREADS"
for arch in $ARCHS; do
  var="STEPS_$(printf '%s' "$arch" | tr '[:lower:]' '[:upper:]')"
  if [ -n "${!var:-}" ]; then repro+=" $var=${!var}"; fi
done
if [ "$JIT_EXTRA" = 1 ]; then repro+=" JIT_EXTRA=1"; fi
if [ "$ONEDNN_EXTRA" = 1 ]; then repro+=" ONEDNN_EXTRA=1"; fi
if [ -n "${PIPELINE_XLA:-}" ]; then repro+=" PIPELINE_XLA=$PIPELINE_XLA"; fi

echo
echo "Results: $out (stderr: $log)"
echo "Machine: $(nproc) cores, $(uname -m); $("$py" -c 'import tensorflow as tf, keras; print("tensorflow", tf.__version__, "keras", keras.__version__)' 2>/dev/null)"
echo "Reproduce: $repro tools/bench/run.sh"
echo
"$py" tools/bench/summarize.py "$out"
