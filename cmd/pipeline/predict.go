package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/stages"
)

// predictBatch is how many images predict reads and classifies at once: a folder of
// thousands of photos is never all in memory.
const predictBatch = 32

func predictCommand() *cli.Command {
	d := defaultServeOptions()
	return &cli.Command{
		Name:      "predict",
		Usage:     "print the most likely classes of images",
		ArgsUsage: "IMAGE|FOLDER...",
		Description: "Classifies each IMAGE. A FOLDER stands for the files directly in it, in name order: hidden\n" +
			"files (.name) and subfolders are left out, and files whose content is not an image are\n" +
			"skipped with a note. Formats: " + stages.ImageFormats + ", recognised by content.\n\n" +
			"As serve does, a warning follows the classes of an image the model is unsure of: when the\n" +
			"top five confidences sum to less than --warn-sum or the first is below --warn-top.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Value: "models/final_models", Usage: "a promoted model folder or a SavedModel written by train"},
			&cli.IntFlag{Name: "top", Aliases: []string{"k"}, Value: 5, Usage: "classes per image"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.Int64Flag{Name: "max-pixels", Value: stages.DefaultMaxPixels, Usage: "refuse larger images"},
			&cli.Float64Flag{Name: "warn-sum", Value: d.WarnSum, Usage: "warn when the top five sum to less"},
			&cli.Float64Flag{Name: "warn-top", Value: d.WarnTop, Usage: "warn when the best is below"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fmt.Errorf("name at least one image file or folder")
			}
			k := c.Int("top")
			if k < 1 {
				return fmt.Errorf("--top %d: the number of classes per image must be at least 1", k)
			}
			files, err := expandImageArgs(c.Args().Slice())
			if err != nil {
				return err
			}
			p, err := stages.LoadPredictor(c.String("model"), 0)
			if err != nil {
				return explainModelError(c.String("model"), err)
			}
			defer p.Close()
			type result struct {
				File        string              `json:"file"`
				Predictions []stages.Prediction `json:"predictions,omitempty"`
				Warning     string              `json:"warning,omitempty"`
				Error       string              `json:"error,omitempty"`
			}
			var results []result
			var skipped []string
			found := map[string]int{} // images found in each folder named
			failed, total := 0, 0
			w := c.App.Writer
			for start := 0; start < len(files); start += predictBatch {
				chunk := files[start:min(start+predictBatch, len(files))]
				data := make([][]byte, len(chunk))
				readErrs := make([]error, len(chunk))
				for i, f := range chunk {
					data[i], readErrs[i] = os.ReadFile(f.path)
				}
				// The warning looks at the top five whatever --top shows, as serve's does.
				preds, errs := p.PredictBytes(data, max(k, 5), c.Int64("max-pixels"))
				for i, f := range chunk {
					if f.dir != "" && readErrs[i] == nil && errors.Is(errs[i], stages.ErrNotImage) {
						skipped = append(skipped, f.path)
						continue
					}
					found[f.dir]++
					total++
					r := result{File: f.path}
					switch {
					case readErrs[i] != nil:
						r.Error = readErrs[i].Error()
					case errs[i] != nil:
						r.Error = errs[i].Error()
					default:
						r.Predictions = preds[i][:min(k, len(preds[i]))]
						if lowConfidence5(preds[i], c.Float64("warn-sum"), c.Float64("warn-top")) {
							r.Warning = lowConfidence
						}
					}
					if r.Error != "" {
						failed++
					}
					if c.Bool("json") {
						results = append(results, r)
						continue
					}
					// The class name comes last: names in scripts whose characters take two
					// columns (Chinese, Japanese) would push any column after them out of line.
					if r.Error != "" {
						fmt.Fprintf(c.App.ErrWriter, "pipeline: %s: %s\n", r.File, r.Error)
						continue
					}
					fmt.Fprintf(w, "%s\n", r.File)
					for i, p := range r.Predictions {
						fmt.Fprintf(w, "  %d. %6.1f%%  %s\n", i+1, 100*p.Confidence, p.ClassName)
					}
					if r.Warning != "" {
						fmt.Fprintf(w, "  warning: %s\n", r.Warning)
					}
				}
			}
			if c.Bool("json") {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				enc.Encode(results)
			}
			if len(skipped) > 0 {
				fmt.Fprintf(c.App.ErrWriter, "pipeline: skipped %s in the folders given, not %s: %s\n",
					pipeline.Plural(len(skipped), "file", "files"), stages.ImageFormats, listSome(skipped, 3))
			}
			var empty []string
			for _, f := range files {
				if f.dir != "" && found[f.dir] == 0 && !contains(empty, f.dir) {
					empty = append(empty, f.dir)
				}
			}
			var problems []string
			if failed > 0 {
				problems = append(problems, fmt.Sprintf("%d of %s could not be classified", failed, pipeline.Plural(total, "image", "images")))
			}
			if len(empty) > 0 {
				problems = append(problems, "no image in "+strings.Join(empty, ", "))
			}
			if len(problems) > 0 {
				return exitError{code: exitErr, err: errors.New(strings.Join(problems, "; "))}
			}
			return nil
		},
	}
}

// explainModelError adds to LoadPredictor's error for the model folder dir what to do about
// it: for a promotion folder whose link leads nowhere, what the promotions say; for a broken
// model (its weights deleted, say), how to make another model the champion.
func explainModelError(dir string, err error) error {
	var missing *stages.MissingChampionError
	if _, cerr := stages.ChampionDir(dir); errors.As(cerr, &missing) {
		return missing
	}
	var broken *graphs.BrokenModelError
	if !errors.As(err, &broken) {
		return err
	}
	if card, cerr := stages.ReadCard(dir); cerr == nil && card.ID != "" {
		// The promotion folder: dir itself (the link), or the one whose .d folder holds dir.
		to := dir
		if parent, ok := strings.CutSuffix(filepath.Dir(filepath.Clean(dir)), ".d"); ok {
			to = parent
		}
		return fmt.Errorf("the promoted model %s in %s cannot predict: %w; %s", card.ID, dir, err, stages.BrokenChampionNext(to, card.ID))
	}
	return fmt.Errorf("%w; give another model folder (--model)", err)
}

// imageFile is a file predict classifies: one named on the command line (dir is ""), or one
// found in the folder dir named there.
type imageFile struct {
	path, dir string
}

// expandImageArgs turns predict's arguments into files: a file (or a name that does not
// exist, which then gets its own error) as it is, a folder into the files directly in it,
// in name order, leaving out hidden ones (.name) and subfolders.
func expandImageArgs(args []string) ([]imageFile, error) {
	var files []imageFile
	for _, a := range args {
		if fi, err := os.Stat(a); err != nil || !fi.IsDir() {
			files = append(files, imageFile{path: a})
			continue
		}
		entries, err := os.ReadDir(a) // sorted by name
		if err != nil {
			return nil, err
		}
		n := 0
		for _, e := range entries {
			p := filepath.Join(a, e.Name())
			if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
				continue
			}
			if fi, err := os.Stat(p); err == nil && fi.IsDir() { // a link to a folder
				continue
			}
			files = append(files, imageFile{path: p, dir: a})
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: the folder holds no files (hidden files and subfolders are not looked in)", a)
		}
	}
	return files, nil
}

// listSome names the first n of names, and how many more there are.
func listSome(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
