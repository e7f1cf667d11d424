#!/usr/bin/env bash
# python-env.sh creates .venv with the same tensorflow-cpu as libtensorflow (for the SavedModel
# load check and the Keras peer benchmark). It reuses the wheel install-libtensorflow.sh cached.
# Prints the venv's python on success; exits 3 when python3/venv is unavailable.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
venv=${PIPELINE_VENV:-$repo/.venv}
cache=${LIBTENSORFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pipeline}
version=2.18.1
stamp=$venv/.pipeline-tf-$version

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ]; then
  echo "$venv/bin/python"; exit 0
fi
command -v python3 >/dev/null || { echo "python-env: python3 not found" >&2; exit 3; }
python3 -c 'import venv, ensurepip' 2>/dev/null || { echo "python-env: python3 has no venv/ensurepip" >&2; exit 3; }
case "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" in
  3.9|3.10|3.11|3.12) ;;
  *) echo "python-env: tensorflow-cpu $version needs Python 3.9-3.12" >&2; exit 3 ;;
esac
echo "python-env: creating $venv with tensorflow-cpu==$version" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --find-links "$cache" \
  "tensorflow-cpu==$version" "keras==3.8.0" "numpy<2.1" >&2
"$venv/bin/python" -c 'import tensorflow as tf, keras; print("python-env: tensorflow", tf.__version__, "keras", keras.__version__)' >&2
touch "$stamp"
echo "$venv/bin/python"
