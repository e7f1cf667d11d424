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
		}
	}
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// tensorFlowCommands always run TensorFlow, so libtensorflow is loaded before they start (a
// missing or mismatched library is then one clean error); run loads it once it knows it will
// execute stages. The other commands never load it.
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
	}
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
