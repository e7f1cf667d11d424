// Command pipeline trains image classifiers end to end from a pipeline.hcl: split, augment,
// train (CNN, VGG19, ViT through TensorFlow's C API), evaluate and select.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

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
