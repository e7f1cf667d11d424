#!/usr/bin/env bash
# install-libtensorflow.sh installs the TensorFlow C library that pipeline links against.
#
# By default it takes libtensorflow from PyPI's tensorflow-cpu wheel (pinned version and sha256),
# unpacks only libtensorflow_cc.so.2 (which exports the C API), libtensorflow_framework.so.2 and
# the C headers graft includes, adds libtensorflow.so (graft links -ltensorflow: a lazy-loading
# shim on x86-64, see libtensorflow-shim.sh), and checks that every C function graft calls is
# exported. Re-running it is a no-op when the install is complete.
#
# Environment:
#   LIBTENSORFLOW_PREFIX   where to install (default: <repo>/.libtensorflow)
#   LIBTENSORFLOW_CACHE    where downloaded wheels/tarballs are kept (default: ${XDG_CACHE_HOME:-~/.cache}/pipeline)
#   LIBTENSORFLOW_PACKAGE  tensorflow-cpu (default) or tensorflow (the CUDA-enabled wheel, for GPU
#                          machines; CUDA itself comes from the nvidia-* wheels or the system)
#   LIBTENSORFLOW_TARBALL  path or URL of an official libtensorflow C tarball to use instead
#   LIBTENSORFLOW_SHA256   expected sha256 of the tarball (or of a wheel not pinned below)
#   LIBTENSORFLOW_LAZY     1 (default; x86-64 only): libtensorflow.so is a shim that loads the
#                          library at the first TensorFlow call; 0: a link to the library
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
prefix=${LIBTENSORFLOW_PREFIX:-$repo/.libtensorflow}
cache=${LIBTENSORFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pipeline}
package=${LIBTENSORFLOW_PACKAGE:-tensorflow-cpu}
tarball=${LIBTENSORFLOW_TARBALL:-}
version=2.18.1

die() { echo "install-libtensorflow: $*" >&2; exit 1; }
log() { echo "install-libtensorflow: $*" >&2; }

# Pinned wheels: the same file on every machine whatever the local Python, so the hash is fixed.
arch=$(uname -m)
case "$package/$arch" in
  tensorflow-cpu/x86_64)
    wheel=tensorflow_cpu-$version-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
    sha=810c75d7149d2da0cb2092187817b0dcabb80728ca9f9cf3a61f3f42fadd1298
    platform=manylinux_2_17_x86_64 ;;
  tensorflow/x86_64)
    wheel=tensorflow-$version-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
    sha=c9f87e5d2a680a4595f5dc30daf6bbaec9d4129b46d7ef1b2af63c46ac7d2828
    platform=manylinux_2_17_x86_64 ;;
  tensorflow/aarch64|tensorflow-cpu/aarch64)
    package=tensorflow
    wheel=tensorflow-$version-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl
    sha=8a6485edd2148f70d011dbd1d8dc2c775e91774a5a159466e83d0d1f21580944
    platform=manylinux_2_17_aarch64 ;;
  *) die "no pinned wheel for package '$package' on $arch; set LIBTENSORFLOW_TARBALL and LIBTENSORFLOW_SHA256" ;;
esac

if [ -n "$tarball" ]; then
  source_id="tarball:$tarball:${LIBTENSORFLOW_SHA256:-}"
else
  source_id="wheel:$wheel:$sha"
fi
# On x86-64 libtensorflow.so is a shim that loads the real library on first use
# (tools/libtensorflow-shim.sh), so commands that never run TensorFlow start in milliseconds;
# LIBTENSORFLOW_LAZY=0 (and other machines) link the real library directly.
lazy=0
if [ "${LIBTENSORFLOW_LAZY:-1}" = 1 ] && [ "$arch" = x86_64 ]; then
  lazy=1
  source_id+=":shim:$(sha256sum "$here/libtensorflow-shim.sh" | cut -d' ' -f1)"
fi
stamp=$prefix/.installed

# Fast path: the same source is already installed and intact.
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$source_id" ] &&
   [ -e "$prefix/lib/libtensorflow.so" ] && [ -e "$prefix/include/tensorflow/c/c_api.h" ]; then
  exit 0
fi

sha256() { sha256sum "$1" | cut -d' ' -f1; }
mkdir -p "$cache"
mkdir -p "$(dirname "$prefix")"
stage=$(mktemp -d "$(dirname "$prefix")/.libtensorflow-tmp.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Headers that tensorflow/c/c_api.h and tensorflow/c/eager/c_api.h include (transitively).
headers=(
  tensorflow/c/c_api.h tensorflow/c/c_api_macros.h tensorflow/c/c_api_experimental.h
  tensorflow/c/eager/c_api.h tensorflow/c/eager/c_api_experimental.h
  tensorflow/c/tf_attrtype.h tensorflow/c/tf_buffer.h tensorflow/c/tf_datatype.h
  tensorflow/c/tf_file_statistics.h tensorflow/c/tf_status.h tensorflow/c/tf_tensor.h
  tensorflow/c/tf_tstring.h tensorflow/c/env.h
  tensorflow/core/platform/ctstring.h tensorflow/core/platform/ctstring_internal.h
  tsl/platform/ctstring.h tsl/platform/ctstring_internal.h xla/tsl/c/tsl_status.h
)

mkdir -p "$stage/out/lib" "$stage/out/include"
if [ -n "$tarball" ]; then
  file=$tarball
  case "$tarball" in
    http://*|https://*)
      file=$cache/$(basename "$tarball")
      [ -f "$file" ] || { log "downloading $tarball"; curl -fL --retry 3 -o "$file.part" "$tarball" && mv "$file.part" "$file"; } ;;
  esac
  [ -f "$file" ] || die "LIBTENSORFLOW_TARBALL: $file does not exist"
  if [ -n "${LIBTENSORFLOW_SHA256:-}" ] && [ "$(sha256 "$file")" != "$LIBTENSORFLOW_SHA256" ]; then
    die "$file: sha256 $(sha256 "$file") does not match LIBTENSORFLOW_SHA256=$LIBTENSORFLOW_SHA256"
  fi
  tar -C "$stage/out" -xzf "$file" || die "$file: not a gzip'd tar archive"
  [ -e "$stage/out/lib/libtensorflow.so.2" ] || die "$file: no lib/libtensorflow.so.2 inside; is it a libtensorflow C tarball?"
  ln -sf libtensorflow.so.2 "$stage/out/lib/libtensorflow.so"
else
  file=$cache/$wheel
  if [ ! -f "$file" ] || [ "$(sha256 "$file")" != "$sha" ]; then
    command -v python3 >/dev/null || die "python3 with pip is needed to download $package==$version from PyPI"
    log "downloading $wheel from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --platform "$platform" -d "$stage/dl" "$package==$version" ||
      die "pip could not download $package==$version (is PyPI reachable?)"
    [ -f "$stage/dl/$wheel" ] || die "pip downloaded $(ls "$stage/dl"), expected $wheel"
    mv "$stage/dl/$wheel" "$file.part" && mv "$file.part" "$file"
  fi
  got=$(sha256 "$file")
  if [ "$got" != "$sha" ]; then
    rm -f "$file"
    die "$wheel: sha256 $got does not match the pinned $sha; the download was removed, run again"
  fi
  members=(tensorflow/libtensorflow_cc.so.2 tensorflow/libtensorflow_framework.so.2)
  for h in "${headers[@]}"; do members+=("tensorflow/include/$h"); done
  # Some headers are absent in some releases; unzip exits 11 when a named member is missing.
  # Without unzip, Python's zipfile (pip needs Python anyway) extracts the same members.
  if command -v unzip >/dev/null; then
    unzip -q -o "$file" "${members[@]}" -d "$stage/x" || [ $? -eq 11 ] || die "$wheel: cannot unpack"
  else
    python3 - "$file" "$stage/x" "${members[@]}" <<'PY' || die "$wheel: cannot unpack"
import sys, zipfile
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    z.extractall(dest, [m for m in members if m in names])
PY
  fi
  mv "$stage/x/tensorflow/libtensorflow_cc.so.2" "$stage/x/tensorflow/libtensorflow_framework.so.2" "$stage/out/lib/"
  cp -r "$stage/x/tensorflow/include/." "$stage/out/include/"
  ln -sf libtensorflow_cc.so.2 "$stage/out/lib/libtensorflow.so"
  ln -sf libtensorflow_framework.so.2 "$stage/out/lib/libtensorflow_framework.so"
fi
[ -f "$stage/out/include/tensorflow/c/c_api.h" ] || die "no tensorflow/c/c_api.h in $file"

# Every TF_/TFE_ function graft calls must be exported by the library it links.
lib=$(readlink -f "$stage/out/lib/libtensorflow.so")
command -v nm >/dev/null || die "nm (binutils) is needed to check the library's exports"
exports=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | grep -E '^TFE?_' | sort -u)
graft_dir=""
if command -v go >/dev/null; then
  graft_dir=$(cd "$repo" && go list -m -f '{{.Dir}}' github.com/wamuir/graft 2>/dev/null || true)
  if [ -n "$graft_dir" ] && [ ! -d "$graft_dir" ]; then
    (cd "$repo" && go mod download github.com/wamuir/graft) >/dev/null 2>&1 || true
  fi
fi
if [ -n "$graft_dir" ] && [ -d "$graft_dir" ]; then
  needed=$(cat "$graft_dir"/tensorflow/*.go | grep -v '^//' | grep -oE '\bC\.TFE?_[A-Za-z0-9_]+\(' |
    sed -e 's/^C\.//' -e 's/($//' | sort -u)
  # Keep only functions the C headers export: the rest are inline helpers or graft's own C code.
  declared=$(cat $(find "$stage/out/include" -name '*.h') | tr -s ' \n' ' ' | grep -oE 'TF_CAPI_EXPORT[^;(]*\b(TFE?_[A-Za-z0-9_]+) *\(' |
    grep -oE 'TFE?_[A-Za-z0-9_]+ *\($' | tr -d ' (' | sort -u)
  needed=$(comm -12 <(echo "$needed") <(echo "$declared"))
else
  log "graft sources not found (run from the repository with Go installed); checking a fixed list"
  needed="TF_Version TF_NewGraph TF_NewSession TF_SessionRun TF_AddGradientsWithPrefix TF_LoadSessionFromSavedModel TF_NewTensor TF_FinishOperation"
fi
missing=$(comm -23 <(echo "$needed" | tr ' ' '\n' | sort -u) <(echo "$exports"))
if [ -n "$missing" ]; then
  die "$(basename "$lib") does not export these C functions graft calls:
$missing
This build of TensorFlow cannot be used with graft v0.10.0; use TensorFlow $version."
fi

if [ "$lazy" = 1 ]; then
  "$here/libtensorflow-shim.sh" "$stage/out/lib" "$(basename "$lib")" ||
    die "could not build the lazy-loading shim; LIBTENSORFLOW_LAZY=0 links libtensorflow directly"
fi

# Publish: replace the prefix in one rename so a failed install never leaves a half tree.
echo "$source_id" > "$stage/out/.installed"
rm -rf "$prefix.old"
[ -e "$prefix" ] && mv "$prefix" "$prefix.old"
mv "$stage/out" "$prefix"
rm -rf "$prefix.old"
log "installed libtensorflow ($(basename "$lib"), $(echo "$needed" | wc -w) C functions checked) in $prefix"
