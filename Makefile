# pipeline: build, test and run. libtensorflow is installed into .libtensorflow/ by
# tools/install-libtensorflow.sh (near-instant once installed); every target that compiles
# Go code depends on it and links with an rpath, so binaries run without LD_LIBRARY_PATH.

# Where libtensorflow is installed: TF_PREFIX=… on the command line, or LIBTENSORFLOW_PREFIX
# in the environment (as tools/install-libtensorflow.sh reads it), else .libtensorflow/.
TF_PREFIX ?= $(or $(LIBTENSORFLOW_PREFIX),$(CURDIR)/.libtensorflow)
export CGO_CFLAGS  := -I$(TF_PREFIX)/include
export CGO_LDFLAGS := -L$(TF_PREFIX)/lib -Wl,-rpath,$(TF_PREFIX)/lib
export LIBTENSORFLOW_PREFIX := $(TF_PREFIX)
# TensorFlow's C++ INFO lines (CPU features, MLIR passes) are noise for users.
export TF_CPP_MIN_LOG_LEVEL ?= 1
# TensorFlow's oneDNN kernels, which the pipeline binary turns on for training (see
# graphs/onednn.go); tests and tools run with the same kernels.
export TF_ENABLE_ONEDNN_OPTS ?= 1

GO  ?= go
BIN := bin/pipeline

.PHONY: all build test run lint bench libtensorflow pyenv clean

all: build

libtensorflow:
	@tools/install-libtensorflow.sh

build: libtensorflow
	$(GO) build -o $(BIN) ./cmd/pipeline

# The Python check (SavedModels load in Python TensorFlow) runs when a venv can be made; the
# upload page's browser test when Debian's chromium is there (installed here when possible).
test: libtensorflow lint
	@tools/install-chromium.sh
	@py=$$(tools/python-env.sh) || { echo "make test: no Python venv; skipping the Python SavedModel check"; py=""; }; \
	PIPELINE_PYTHON="$$py" $(GO) test -count=1 ./...
	@# The engine, the stages, training and the server run their work in goroutines: once
	@# more under the race detector (about 4 minutes here).
	PIPELINE_PYTHON="" $(GO) test -race -count=1 ./...
	@# Fuzz budgets are counts of inputs (5–8 s each here), not durations: with Go 1.26 a
	@# duration can end the run with a spurious "context deadline exceeded" (golang/go#75804).
	$(GO) test -run '^$$' -fuzz FuzzLoadConfig -fuzztime 50000x ./pipeline
	$(GO) test -run '^$$' -fuzz FuzzPredictBody -fuzztime 300x ./cmd/pipeline
	$(GO) test -run '^$$' -fuzz FuzzReadStoredPNG -fuzztime 100000x ./stages/raster

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The main job: the default pipeline.hcl on the embedded dataset.
run: build
	$(BIN) run pipeline.hcl

# Go vs Keras training throughput; see BENCHMARKS.md.
bench: build pyenv
	tools/bench/run.sh

pyenv:
	@tools/python-env.sh >/dev/null

clean:
	rm -rf bin
