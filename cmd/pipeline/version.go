package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"pipeline/graphs"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the pipeline and TensorFlow versions",
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("version takes no arguments, got %q", c.Args().Slice())
			}
			fmt.Fprintf(c.App.Writer, "pipeline %s\nlibtensorflow %s\n", version, graphs.TensorFlowVersion())
			return nil
		},
	}
}
