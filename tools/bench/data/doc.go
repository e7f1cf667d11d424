// Package databench holds the data stage benchmark (split + augment against the original
// system's Python): run.sh, the photo generator (genphotos), the original's work in Python
// (original.py) and a Go profiling harness (stages_bench_test.go).
package databench
