#!/usr/bin/env bash
# build-default-dataset.sh rebuilds data/raw/, the embedded default dataset: an imbalanced subset
# of Fashion-MNIST (see data/raw/README.md) made by tools/mkdataset.
#
# The images come from Debian's dataset-fashion-mnist package at a pinned version, checked
# against a pinned sha256. The .deb is fetched with `apt-get download` (no root needed) and kept
# in ${XDG_CACHE_HOME:-$HOME/.cache}/pipeline/; on a machine without apt, put the file there by
# hand (from any Debian mirror, pool/main/d/dataset-fashion-mnist/). The script replaces
# data/raw/train and data/raw/test and rewrites data/raw/LICENSE; running it again gives
# byte-identical files.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pipeline
out=data/raw
seed=42

pkg=dataset-fashion-mnist
version=0.0~git20200523.55506a9-1
deb=${pkg}_${version}_all.deb
sha=39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0

die() { echo "build-default-dataset: $*" >&2; exit 1; }
log() { echo "build-default-dataset: $*" >&2; }
sha_ok() { [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha" ]; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/build-default-dataset.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# 1. The pinned .deb, from the cache or apt.
if [ -f "$cache/$deb" ] && sha_ok "$cache/$deb"; then
  log "using cached $cache/$deb"
else
  [ -f "$cache/$deb" ] && log "cached $cache/$deb has the wrong sha256; downloading it again"
  command -v apt-get >/dev/null ||
    die "apt-get not found; put $deb (sha256 $sha) in $cache/"
  log "downloading $pkg=$version"
  (cd "$tmp" && apt-get download -q "$pkg=$version") ||
    die "apt-get download $pkg=$version failed (is a Debian bookworm source in the apt lists? try apt-get update)"
  [ -f "$tmp/$deb" ] || die "apt-get download did not produce $deb"
  sha_ok "$tmp/$deb" ||
    die "$deb has sha256 $(sha256sum "$tmp/$deb" | cut -d' ' -f1), want $sha"
  mkdir -p "$cache"
  cp "$tmp/$deb" "$cache/$deb.tmp.$$"
  mv "$cache/$deb.tmp.$$" "$cache/$deb"
fi

# 2. Unpack it.
mkdir "$tmp/x"
if command -v dpkg-deb >/dev/null; then
  dpkg-deb -x "$cache/$deb" "$tmp/x"
else
  (cd "$tmp" && ar x "$cache/$deb" && tar -xf data.tar.* -C x) || die "cannot unpack $deb (need dpkg-deb, or ar and tar)"
fi
src=$tmp/x/usr/share/datasets/fashion-mnist
copyright=$tmp/x/usr/share/doc/$pkg/copyright
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [ -f "$src/$f" ] || die "$deb has no usr/share/datasets/fashion-mnist/$f"
done
[ -f "$copyright" ] || die "$deb has no usr/share/doc/$pkg/copyright"

# 3. The images. mkdataset uses only the standard library, so no cgo (and no libtensorflow).
cd "$repo"
CGO_ENABLED=0 go run ./tools/mkdataset -force -seed "$seed" -out "$out" \
  -train-images "$src/train-images-idx3-ubyte.gz" \
  -train-labels "$src/train-labels-idx1-ubyte.gz" \
  -test-images "$src/t10k-images-idx3-ubyte.gz" \
  -test-labels "$src/t10k-labels-idx1-ubyte.gz"

# 4. The licence: the upstream stanza (Files: *) of Debian's copyright file and the Expat text,
# unfolded from the copyright format (leading space removed, " ." lines made blank).
awk '
  /^Source:/ && !done_src { print "Fashion-MNIST"; print; done_src = 1; next }
  /^Files: \*$/ { in_files = 1; next }
  in_files && /^Copyright:/ { print; next }
  in_files && /^License:/ { print; print ""; in_files = 0; next }
  /^License: Expat$/ && prev == "" { in_text = 1; prev = $0; next }
  in_text && /^ / { line = substr($0, 2); if (line == ".") line = ""; sub(/[ \t]+$/, "", line); print line; next }
  { in_text = 0; prev = $0 }
' "$copyright" >"$tmp/LICENSE"
grep -q 'Zalando SE' "$tmp/LICENSE" && grep -q '^Permission is hereby granted' "$tmp/LICENSE" &&
  grep -q 'THE SOFTWARE IS PROVIDED "AS IS"' "$tmp/LICENSE" ||
  die "could not find the Fashion-MNIST Expat licence in $copyright"
cp "$tmp/LICENSE" "$out/LICENSE"
log "wrote $out/train, $out/test and $out/LICENSE"
