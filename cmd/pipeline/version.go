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
			fmt.Fprintf(c.App.Writer, "pipeline %s\nlibtensorflow %s\n", version, graphs.TensorFlowVersion())
			return nil
		},
	}
}
