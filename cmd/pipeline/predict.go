package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"pipeline/stages"
)

func predictCommand() *cli.Command {
	return &cli.Command{
		Name:      "predict",
		Usage:     "print the most likely classes of images",
		ArgsUsage: "IMAGE...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Value: "models/final_models", Usage: "a promoted model folder or a SavedModel written by train"},
			&cli.IntFlag{Name: "top", Aliases: []string{"k"}, Value: 5, Usage: "classes per image"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.Int64Flag{Name: "max-pixels", Value: stages.DefaultMaxPixels, Usage: "refuse larger images"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fmt.Errorf("name at least one image file")
			}
			if k := c.Int("top"); k < 1 {
				return fmt.Errorf("--top %d: the number of classes per image must be at least 1", k)
			}
			p, err := stages.LoadPredictor(c.String("model"), 0)
			if err != nil {
				return err
			}
			defer p.Close()
			files := c.Args().Slice()
			data := make([][]byte, len(files))
			readErrs := make([]error, len(files))
			for i, f := range files {
				data[i], readErrs[i] = os.ReadFile(f)
			}
			preds, errs := p.PredictBytes(data, c.Int("top"), c.Int64("max-pixels"))
			failed := 0
			type result struct {
				File        string              `json:"file"`
				Predictions []stages.Prediction `json:"predictions,omitempty"`
				Error       string              `json:"error,omitempty"`
			}
			var results []result
			for i, f := range files {
				r := result{File: f, Predictions: preds[i]}
				if err := readErrs[i]; err != nil {
					r.Error, r.Predictions = err.Error(), nil
				} else if errs[i] != nil {
					r.Error = errs[i].Error()
				}
				if r.Error != "" {
					failed++
				}
				results = append(results, r)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				enc.Encode(results)
			} else {
				// The class name comes last: names in scripts whose characters take two
				// columns (Chinese, Japanese) would push any column after them out of line.
				w := c.App.Writer
				for _, r := range results {
					if r.Error != "" {
						fmt.Fprintf(c.App.ErrWriter, "pipeline: %s: %s\n", r.File, r.Error)
						continue
					}
					fmt.Fprintf(w, "%s\n", r.File)
					for i, p := range r.Predictions {
						fmt.Fprintf(w, "  %d. %6.1f%%  %s\n", i+1, 100*p.Confidence, p.ClassName)
					}
				}
			}
			if failed > 0 {
				return exitError{code: exitErr, err: fmt.Errorf("%d of %d images could not be classified", failed, len(files))}
			}
			return nil
		},
	}
}
