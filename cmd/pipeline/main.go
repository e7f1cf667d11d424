// Command pipeline trains image classifiers end to end from a pipeline.hcl: split, augment,
// train (CNN, VGG19, ViT through TensorFlow's C API), evaluate and select.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"pipeline/graphs"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	quietTensorFlow()
	if len(os.Args) > 1 {
		if oneDNNCommands[os.Args[1]] {
			if err := graphs.EnableOneDNN(); err != nil {
				fmt.Fprintln(os.Stderr, "pipeline: warning:", err)
			}
		}
		if tensorFlowCommands[os.Args[1]] {
			if err := graphs.LoadTensorFlow(); err != nil {
				fmt.Fprintln(os.Stderr, "pipeline:", err)
				os.Exit(exitErr)
			}
			graphs.QuietStartupLines()
		}
	}
	stopProfile := startHeapProfile(os.Stderr)
	code := run(os.Args, os.Stdout, os.Stderr)
	stopProfile()
	os.Exit(code)
}

// quietTensorFlow hides TensorFlow's informational log lines ("oneDNN custom operations are
// on"), which tell a pipeline user nothing to act on and would break into the progress
// display, unless TF_CPP_MIN_LOG_LEVEL is set: warnings and errors still show. libtensorflow
// reads the variable when it loads, after this. Two lines that its Abseil logging prints
// regardless ("MLIR V1 optimization pass is not enabled") are absorbed once the library is
// loaded (graphs.QuietStartupLines).
func quietTensorFlow() {
	if _, set := os.LookupEnv("TF_CPP_MIN_LOG_LEVEL"); !set {
		os.Setenv("TF_CPP_MIN_LOG_LEVEL", "1")
	}
}

// tensorFlowCommands always run TensorFlow, so libtensorflow is loaded before they start (a
// missing or mismatched library is then one clean error); run loads it in the background
// while it plans, and its first executing stage waits for it. The other commands never load
// it.
var tensorFlowCommands = map[string]bool{"predict": true, "serve": true, "schedule": true, "selftest": true}

// oneDNNCommands are the commands that train, for which the process re-executes itself with
// TensorFlow's oneDNN kernels on (graphs.EnableOneDNN: training 1.4–1.7× faster on CPUs
// where TensorFlow leaves them off). Not serve or predict: one image at a time through a small
// network was measured 5× slower with oneDNN (a request took 10–14 ms instead of 2.3 ms), and short
// commands keep their start-up time.
var oneDNNCommands = map[string]bool{"run": true, "schedule": true, "selftest": true}

// exitError carries a process exit code chosen by a command; err may be nil when the code
// says everything (plan's "work pending").
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

// run executes the command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	app := &cli.App{
		Writer:    stdout,
		ErrWriter: stderr,
		Name:      "pipeline",
		Usage:     "train image classifiers end to end, reproducibly",
		Version:   version,
		// -var archs=["cnn","vit"] and --stage 'train.model[a,b]' are one value each, not
		// values to split at their commas.
		DisableSliceFlagSeparator: true,
		Commands: []*cli.Command{
			validateCommand(),
			planCommand(),
			runCommand(),
			runsCommand(),
			graphCommand(),
			gcCommand(),
			promoteCommand(),
			predictCommand(),
			serveCommand(),
			scheduleCommand(),
			selftestCommand(),
			versionCommand(),
		},
		HideHelpCommand: true,
		Action:          commandAction,
	}
	onUsageErrors(app)
	if err := app.Run(interspersed(app, args)); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintln(stderr, "pipeline:", ee.err)
			}
			return ee.code
		}
		fmt.Fprintln(stderr, "pipeline:", err)
		return exitErr
	}
	return exitOK
}
