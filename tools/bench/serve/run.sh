#!/usr/bin/env bash
# run.sh: POST /predict latency (p50, p99) and throughput of `pipeline serve` against a Flask
# peer (tools/bench/serve/peer/app.py: same SavedModel via tf.saved_model.load, same
# preprocessing with Pillow, same top-5 JSON), at 1, 4 and 16 concurrent clients.
#
# Servers, all on 127.0.0.1 and started once, side by side (idle while another is measured):
#   pipeline   bin built here from ./cmd/pipeline: `pipeline serve --model $MODEL` (defaults:
#              --concurrency 2 inference slots, --queue 32)
#   flask      `python app.py`: Flask's development server, threaded (as the original ran)
#   gunicorn   `gunicorn -w 2 app:app`: two sync worker processes (a careful Python user)
#   pipeline-close  not a server: the pipeline server again, with the load generator opening a
#              new connection per request, as both Python servers force (they answer
#              "Connection: close"), to show what keep-alive is worth
# The load generator (tools/bench/serve/load) runs on the same 2 cores as the server under
# test. Every measurement (one load run) and the agreement check take $LOCK (flock), so that no
# other benchmark shares the cores; measurements are interleaved server by server (run 1 of
# every server and concurrency, then run 2, ...), and the medians of $RUNS runs are reported.
#
# Environment (defaults in brackets):
#   RUNS [3]  N [2000] measured requests per run  WARMUP [100]  CLIENTS [1 4 16]
#   N_<clients> requests for one concurrency (e.g. N_1=1000), the same for every server
#   SERVERS [pipeline flask gunicorn pipeline-close]  MODEL [models/final_models]  IMAGES [data/raw/test]
#   MAX_IMAGES [200] test PNGs cycled through  AGREE [1] the agreement check first
#   PROFILE [1] afterwards, go test -bench + -cpuprofile of the real handler (tools/bench/serve/prof.sh)
#   PEER_VENV [/tmp/flaskenv] made if missing: tensorflow-cpu 2.18.1 (from ~/.cache/pipeline), flask, gunicorn, pillow
#   LOCK [/tmp/bench.lock]  PORT [18500] pipeline on PORT, flask PORT+1, gunicorn PORT+2
#   OUT [tools/bench/serve/results/<UTC stamp>]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"
# The server runs as users start it: TensorFlow decides oneDNN (pipeline serve leaves it alone).
unset TF_ENABLE_ONEDNN_OPTS

RUNS=${RUNS:-3}
N=${N:-2000}
WARMUP=${WARMUP:-100}
CLIENTS=${CLIENTS:-1 4 16}
SERVERS=${SERVERS:-pipeline flask gunicorn pipeline-close}
MODEL=${MODEL:-models/final_models}
IMAGES=${IMAGES:-data/raw/test}
MAX_IMAGES=${MAX_IMAGES:-200}
AGREE=${AGREE:-1}
PROFILE=${PROFILE:-1}
PEER_VENV=${PEER_VENV:-/tmp/flaskenv}
LOCK=${LOCK:-/tmp/bench.lock}
PORT=${PORT:-18500}
OUT=${OUT:-$here/results/$(date -u +%Y%m%dT%H%M%SZ)}
work=$here/_work
tf_prefix=${LIBTENSORFLOW_PREFIX:-$repo/.libtensorflow}
cache=${LIBTENSORFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pipeline}

# The same flags the Makefile exports, for runs outside make.
export CGO_CFLAGS=${CGO_CFLAGS:--I$tf_prefix/include}
export CGO_LDFLAGS=${CGO_LDFLAGS:--L$tf_prefix/lib -Wl,-rpath,$tf_prefix/lib}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-1}

[ -f "$tf_prefix/lib/libtensorflow.so" ] || { echo "run.sh: no libtensorflow in $tf_prefix; run make libtensorflow" >&2; exit 1; }
[ -d "$MODEL/" ] || { echo "run.sh: no model at $MODEL (promote one first)" >&2; exit 1; }
command -v flock >/dev/null || { echo "run.sh: flock (util-linux) is missing" >&2; exit 1; }
mkdir -p "$OUT" "$work/bin"

# 1. Build: the server under test into a private path (bin/pipeline may be rebuilt by others
# meanwhile), the load generator and the agreement checker.
echo "run.sh: building (commit $(git rev-parse --short HEAD)$([ -n "$(git status --porcelain -- cmd stages graphs)" ] && echo ", with uncommitted changes in cmd/stages/graphs"))" >&2
${GO:-go} build -o "$work/bin/pipeline" ./cmd/pipeline
${GO:-go} build -o "$work/bin/load" ./tools/bench/serve/load
${GO:-go} build -o "$work/bin/agree" ./tools/bench/serve/agree

# 2. The peer's venv.
if ! [ -x "$PEER_VENV/bin/gunicorn" ] || ! "$PEER_VENV/bin/python" -c 'import flask, PIL, tensorflow' 2>/dev/null; then
  echo "run.sh: creating $PEER_VENV (tensorflow-cpu 2.18.1, flask, gunicorn, pillow)" >&2
  python3 -m venv "$PEER_VENV"
  "$PEER_VENV/bin/pip" install --quiet --disable-pip-version-check --find-links "$cache" \
    "tensorflow-cpu==2.18.1" "numpy<2.1" flask gunicorn pillow >&2
fi
versions=$("$PEER_VENV/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ["tensorflow-cpu", "flask", "werkzeug", "gunicorn", "pillow"]))')

# 3. Servers.
model_abs=$(cd "$MODEL" && pwd)
declare -A port=([pipeline]=$PORT [flask]=$((PORT + 1)) [gunicorn]=$((PORT + 2)) [pipeline-close]=$PORT)
declare -A loadflags=([pipeline-close]=-no-keepalive)
started=()
for s in $SERVERS; do
  r=${s%-close}
  [[ " ${started[*]} " == *" $r "* ]] || started+=("$r")
done
declare -A cmd
cmd[pipeline]="$work/bin/pipeline serve --model $model_abs --addr 127.0.0.1:${port[pipeline]}"
cmd[flask]="$PEER_VENV/bin/python app.py --port ${port[flask]}"
cmd[gunicorn]="$PEER_VENV/bin/gunicorn -w 2 -b 127.0.0.1:${port[gunicorn]} app:app"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
for s in "${started[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/${port[$s]}") 2>/dev/null; then
    echo "run.sh: port ${port[$s]} is taken; set PORT" >&2; exit 1
  fi
  # shellcheck disable=SC2086 # the commands are word lists
  (cd "$here/peer" && PEER_MODEL=$model_abs exec ${cmd[$s]}) >"$OUT/$s.log" 2>&1 &
  pids+=($!)
done
for s in "${started[@]}"; do
  for _ in $(seq 120); do
    curl -sf "127.0.0.1:${port[$s]}/healthz" >/dev/null && break
    sleep 1
  done
  curl -sf "127.0.0.1:${port[$s]}/healthz" >/dev/null || { echo "run.sh: $s did not come up; see $OUT/$s.log" >&2; tail -n 20 "$OUT/$s.log" >&2; exit 1; }
done
echo "run.sh: servers up: ${started[*]}" >&2

# 4. Agreement: the same top-1 (and how close the confidences are) on MAX_IMAGES test images.
if [ "$AGREE" = 1 ]; then
  : >"$OUT/agree.jsonl"
  for s in "${started[@]}"; do
    [ "$s" = pipeline ] && continue
    flock "$LOCK" "$work/bin/agree" -a "http://127.0.0.1:${port[pipeline]}/predict" -b "http://127.0.0.1:${port[$s]}/predict" \
      -images "$IMAGES" -max-images "$MAX_IMAGES" | sed "s/^{/{\"peer\":\"$s\",/" >>"$OUT/agree.jsonl"
  done
fi

# 5. Load: RUNS rounds; in each, every concurrency and every server (order rotated per round).
: >"$OUT/load.jsonl"
servers=($SERVERS)
for r in $(seq "$RUNS"); do
  for c in $CLIENTS; do
    nvar=N_$c
    n=${!nvar:-$N}
    for i in "${!servers[@]}"; do
      s=${servers[$(((i + r - 1) % ${#servers[@]}))]}
      echo "run.sh: run $r/$RUNS, $s, $c clients, $n requests (waiting for $LOCK)" >&2
      flock "$LOCK" "$work/bin/load" -url "http://127.0.0.1:${port[$s]}/predict" -images "$IMAGES" -max-images "$MAX_IMAGES" \
        -c "$c" -n "$n" -warmup "$WARMUP" -label "$s" ${loadflags[$s]:-} >>"$OUT/load.jsonl" ||
        echo "run.sh: $s at $c clients had errors (see $OUT/load.jsonl)" >&2
    done
  done
done
cleanup
pids=()

# 6. Profile of the real handler, in-process (see prof.sh).
if [ "$PROFILE" = 1 ]; then
  OUT=$OUT/prof LOCK=$LOCK MODEL=$model_abs IMAGES=$IMAGES "$here/prof.sh" >&2 || echo "run.sh: profiling failed" >&2
fi

{
  echo "Machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); commit $(git rev-parse --short HEAD); $versions"
  echo "Load generator: tools/bench/serve/load on the same cores; $RUNS runs per cell, medians; warm-up $WARMUP requests per run; $MAX_IMAGES test PNGs (28×28 grey) cycled."
  echo
  agree=()
  [ "$AGREE" = 1 ] && agree=(--agree "$OUT/agree.jsonl")
  python3 "$here/summarize.py" --load "$OUT/load.jsonl" "${agree[@]}"
  echo
  echo "Commands:"
  echo
  echo '```sh'
  for s in "${started[@]}"; do
    case $s in
      pipeline) echo "${cmd[$s]#"$repo/"}" ;;
      *) echo "(cd tools/bench/serve/peer && PEER_MODEL=$model_abs ${cmd[$s]})" ;;
    esac
  done
  echo "flock $LOCK tools/bench/serve/_work/bin/load -url http://127.0.0.1:PORT/predict -images $IMAGES -max-images $MAX_IMAGES -c C -n N -warmup $WARMUP  # pipeline-close: + -no-keepalive"
  echo '```'
  [ -f "$OUT/prof/summary.md" ] && { echo; cat "$OUT/prof/summary.md"; }
} | tee "$OUT/summary.md"
echo "run.sh: results in ${OUT#"$repo/"}" >&2
