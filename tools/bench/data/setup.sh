# setup.sh, sourced by run.sh and memscale.sh (from the repository's root, with WORK set):
# makes $WORK/bin and $WORK/results, installs GNU time if it is missing, checks for flock,
# builds bin/pipeline (make build) and freezes a copy as $WORK/bin/$1 (others may rebuild
# bin/ meanwhile), and builds genphotos into $WORK/bin.
mkdir -p "$WORK/bin" "$WORK/results"
WORK=$(cd "$WORK" && pwd)
if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time (Debian package time)" >&2
  apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
command -v flock >/dev/null || { echo "$(basename "$0"): flock (util-linux) is required" >&2; exit 1; }
echo "building bin/pipeline (make build)" >&2
make -s build >&2
cp bin/pipeline "$WORK/bin/$1.new" && mv "$WORK/bin/$1.new" "$WORK/bin/$1"
go build -o "$WORK/bin/genphotos" ./tools/bench/data/genphotos
