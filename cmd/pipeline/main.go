// Command pipeline trains image classifiers end to end from a pipeline.hcl: split, augment,
// train (CNN, VGG19, ViT through TensorFlow's C API), evaluate and select.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args))
}

// exitError carries a process exit code chosen by a command.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

// run executes the command line and returns the process exit code.
func run(args []string) int {
	app := &cli.App{
		Name:    "pipeline",
		Usage:   "train image classifiers end to end, reproducibly",
		Version: version,
		Commands: []*cli.Command{
			versionCommand(),
			selftestCommand(),
		},
		HideHelpCommand: true,
	}
	if err := app.Run(args); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}
