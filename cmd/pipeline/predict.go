package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/stages"
)

// predictBatch is how many images predict reads and classifies at once: a folder of
// thousands of photos is never all in memory.
const predictBatch = 32

// predictBatchBytes bounds the files predict holds at once: a chunk ends with the file that
// brings what it read to this many bytes, so a folder of large images (scans, uncompressed
// TIFFs) is read a few at a time.
const predictBatchBytes = 64 << 20

func predictCommand() *cli.Command {
	d := defaultServeOptions()
	return &cli.Command{
		Name:      "predict",
		Usage:     "print the most likely classes of images",
		ArgsUsage: "IMAGE|FOLDER|-...",
		Description: "Classifies each IMAGE (- for standard input: curl -s URL | pipeline predict -; ./- for\n" +
			"a file named -). A FOLDER stands for the files directly in it, in name order: hidden\n" +
			"files (.name) and subfolders are left out (with --recursive, each subfolder's files follow,\n" +
			"in name order, hidden folders left out), and a file that cannot be classified for what\n" +
			"it is (not an image, empty, truncated or corrupt, over --max-pixels, unreadable, or not a\n" +
			"regular file: a named pipe, a device) is skipped with a note saying why (in --json, an\n" +
			"entry with \"skipped\"), which does not change the exit status; an IMAGE named that is\n" +
			"so is an error (exit status 1). Formats:\n" +
			stages.ImageFormats + ", recognised by content (a file's header is checked before\n" +
			"the file is read).\n\n" +
			"As serve does, a warning follows the classes of an image the model is unsure of: when the\n" +
			"top five confidences sum to less than --warn-sum or the first is below --warn-top (in full\n" +
			"for the first such image, then in short, with a count at the end). A JPEG with damaged\n" +
			"coded data that libjpeg-turbo decodes past is classified as decoded, with a note of what\n" +
			"it said (\"damaged\" in --json).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Value: stages.DefaultPromoteTo, Usage: "a promoted model folder or a SavedModel written by train"},
			&cli.IntFlag{Name: "top", Aliases: []string{"k"}, Value: 5, Usage: "classes per image"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "classify the files in a folder's subfolders too"},
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
			if err := checkImageFlags(c.Int64("max-pixels"), c.Float64("warn-sum"), c.Float64("warn-top")); err != nil {
				return err
			}
			type result struct {
				File        string              `json:"file"`
				Predictions []stages.Prediction `json:"predictions,omitempty"`
				Warning     string              `json:"warning,omitempty"`
				Damaged     string              `json:"damaged,omitempty"` // what libjpeg-turbo said of damage it decoded past
				Model       string              `json:"model,omitempty"`
				Error       string              `json:"error,omitempty"`
				Skipped     string              `json:"skipped,omitempty"` // why a file of a folder was skipped
			}
			results := []result{} // [] in JSON when nothing was classified, not null
			// The results' writes are checked: a script's `predict … > out.json` on a full
			// disk must not exit 0 with the results lost.
			w := &checkedWriter{w: c.App.Writer}
			printJSON := func() {
				if c.Bool("json") {
					enc := json.NewEncoder(w)
					enc.SetIndent("", "  ")
					enc.Encode(results)
				}
			}
			// A folder that cannot be looked in or holds no files is an error of its own, as a
			// bad file named is: the other inputs are still classified.
			files, badDirs := expandImageArgs(c.Args().Slice(), c.Bool("recursive"))
			for _, d := range badDirs {
				fmt.Fprintf(c.App.ErrWriter, "pipeline: %s: %s\n", shownPath(d.path), d.reason)
			}
			// In --json, each such folder has an entry with its error, after the files'.
			folderErrors := func(found map[string]int) {
				if !c.Bool("json") {
					return
				}
				listed := map[string]bool{}
				for _, f := range files {
					listed[f.dir] = true
				}
				for _, a := range c.Args().Slice() {
					why := ""
					if i := slices.IndexFunc(badDirs, func(d badDir) bool { return d.path == a }); i >= 0 {
						why = badDirs[i].reason
					} else if listed[a] && found[a] == 0 {
						why = "no image in it: every file was skipped"
					}
					if why != "" && !slices.ContainsFunc(results, func(r result) bool { return r.File == shownPath(a) && r.Error != "" }) {
						results = append(results, result{File: shownPath(a), Error: why})
					}
				}
			}
			if len(files) == 0 {
				// every input a folder said above to hold no image: nothing to add
				folderErrors(nil)
				printJSON()
				return exitError{code: exitErr}
			}
			// The model is loaded from the folder its links lead to now, as serve loads it:
			// through models/final_models, a promotion switching the link while the model
			// loads gave the card (the "model" named) of one champion and the weights of the
			// other, or a mix of their files, refused as a broken champion.
			resolved, err := filepath.EvalSymlinks(c.String("model"))
			if err != nil {
				resolved = c.String("model")
			}
			p, err := stages.LoadPredictor(resolved, 0)
			if err != nil {
				return explainModelError(c.String("model"), err)
			}
			defer p.Close()
			id := modelName(c.String("model"), resolved, p)
			// Said only of a --top asked for: the default 5 of a model of fewer classes
			// shows them all without a word.
			if n := len(p.Classes()); k > n && c.IsSet("top") {
				fmt.Fprintf(c.App.ErrWriter, "pipeline: the model has %d classes: showing all %d\n", n, n)
			}
			rankWidth := len(fmt.Sprint(min(k, len(p.Classes()))))
			// Files found in folders that cannot be classified for what they are (not an
			// image, empty, truncated, unreadable, …), by reason, the reasons in the order met.
			skipped := map[string][]string{}
			var reasons []string
			found := map[string]int{} // images found in each folder named
			failed, total, unsure := 0, 0, 0
			stdinRead := false // - names standard input, which can be read once
			for start := 0; start < len(files) && w.err == nil; {
				// Each file's header is checked before it is read, and a file far larger than
				// an image of its size is not read: a video, or /dev/zero, costs a few kilobytes.
				// A chunk ends at predictBatch files, or once what it read reaches
				// predictBatchBytes: 32 scans of 60 MB each are not all in memory at once.
				var data [][]byte
				var readErrs []error
				for read := 0; start+len(data) < len(files) && len(data) < predictBatch && read < predictBatchBytes; {
					var b []byte
					var err error
					switch f := files[start+len(data)]; {
					case f.path == "-" && stdinRead:
						err = errors.New("standard input was read for an earlier -")
					case f.path == "-":
						stdinRead = true
						b, err = stages.ReadImageFrom(c.App.Reader, c.Int64("max-pixels"))
					default:
						b, err = stages.ReadImage(f.path, c.Int64("max-pixels"))
					}
					data, readErrs, read = append(data, b), append(readErrs, err), read+len(b)
				}
				chunk := files[start : start+len(data)]
				start += len(chunk)
				// The warning looks at the top five whatever --top shows, as serve's does.
				preds, damaged, errs := p.PredictBytes(data, max(k, 5), c.Int64("max-pixels"))
				for i, f := range chunk {
					if readErrs[i] != nil {
						errs[i] = readErrs[i]
					}
					if f.dir != "" && stages.IsRejected(errs[i]) {
						why := skipReason(errs[i])
						if skipped[why] == nil {
							reasons = append(reasons, why)
						}
						skipped[why] = append(skipped[why], shownPath(f.path))
						if c.Bool("json") {
							results = append(results, result{File: shownPath(f.path), Skipped: why})
						}
						continue
					}
					found[f.dir]++
					total++
					r := result{File: shownPath(f.path)}
					if errs[i] != nil {
						r.Error = errs[i].Error()
					} else {
						r.Predictions = preds[i][:min(k, len(preds[i]))]
						r.Model, r.Damaged = id, damaged[i]
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
					if r.Error != "" {
						fmt.Fprintf(c.App.ErrWriter, "pipeline: %s: %s\n", r.File, r.Error)
						continue
					}
					// The warning in full once; then in short, and counted at the end.
					warning := r.Warning
					if warning != "" {
						if unsure++; unsure > 1 {
							warning = "low confidence"
						}
					}
					writePredictions(w, r.File, r.Predictions, warning, r.Damaged, rankWidth)
				}
			}
			folderErrors(found)
			printJSON()
			if w.err != nil {
				return exitError{code: exitErr, err: fmt.Errorf("the results could not be written: %w", w.err)}
			}
			if unsure > 1 {
				fmt.Fprintf(c.App.ErrWriter, "pipeline: low confidence for %d of %s (--warn-sum %g, --warn-top %g)\n",
					unsure, pipeline.Plural(total-failed, "image classified", "images classified"), c.Float64("warn-sum"), c.Float64("warn-top"))
			}
			for _, why := range reasons {
				names := skipped[why]
				if why == notRegular && len(names) > 1 {
					why = "not regular files"
				}
				fmt.Fprintf(c.App.ErrWriter, "pipeline: skipped %s in the folders given, %s: %s\n",
					pipeline.Plural(len(names), "file", "files"), why, pipeline.ListSome(names, 3))
			}
			var empty []string // folders named that gave no image, in the order named
			listed := map[string]bool{}
			for _, f := range files {
				listed[f.dir] = true
			}
			for _, a := range c.Args().Slice() {
				bad := slices.ContainsFunc(badDirs, func(d badDir) bool { return d.path == a })
				if (bad || listed[a] && found[a] == 0) && !contains(empty, shownPath(a)) {
					empty = append(empty, shownPath(a))
				}
			}
			var problems []string
			if failed > 0 {
				problems = append(problems, fmt.Sprintf("%d of %s could not be classified", failed, pipeline.Plural(total, "file", "files")))
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

// checkedWriter keeps the first error of the writes to w, after which it writes nothing.
type checkedWriter struct {
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.err = err
	return n, err
}

// writePredictions writes the classes predicted for file, one a line: the rank, right-aligned
// in width digits so that the columns after it line up from the 10th row on, the confidence,
// then the class name, which comes last: names in scripts whose characters take two columns
// (Chinese, Japanese) would push any column after them out of line. The low-confidence
// warning follows when there is one.
func writePredictions(w io.Writer, file string, preds []stages.Prediction, warning, damaged string, width int) {
	fmt.Fprintf(w, "%s\n", file)
	for i, p := range preds {
		fmt.Fprintf(w, "  %*d. %6.1f%%  %s\n", width, i+1, 100*p.Confidence, p.ClassName)
	}
	if warning != "" {
		fmt.Fprintf(w, "  warning: %s\n", warning)
	}
	if damaged != "" {
		fmt.Fprintf(w, "  damaged: the JPEG's coded data is damaged, and was classified as libjpeg-turbo decoded it (%s)\n", damaged)
	}
}

// notRegular is skipReason's reason for a named pipe or a device, which predict does not open.
const notRegular = "not a regular file"

// skipReason is what the note on skipped files says of a file found in a folder that err, a
// problem with the file itself (stages.IsRejected), keeps from being classified: the reason
// the split's rejected.json gives ("empty file", "truncated jpeg", "unreadable: permission
// denied"), shortened for a file that is not an image, which says nothing more.
func skipReason(err error) string {
	switch {
	case errors.Is(err, stages.ErrNotImage) && !errors.Is(err, stages.ErrUnsupportedFormat):
		return "not an image (content is not " + stages.ImageFormats + ")" // as a file named is told
	case errors.Is(err, stages.ErrNotRegular):
		return notRegular
	}
	return err.Error()
}

// explainModelError adds to LoadPredictor's error for the model folder dir what to do about
// it: for a folder that does not exist, where a model comes from; for a promotion folder
// whose link leads nowhere, what the promotions say; for another link to nowhere or a folder
// without a model, what it is; for a broken model (its weights deleted, say), how to make
// another model the champion.
func explainModelError(dir string, err error) error {
	var missing *stages.MissingChampionError
	// A promotion folder whose link or champion is gone says what the promotions say; a
	// link of another name with no promotions beside it is only a link that leads nowhere.
	if _, cerr := stages.ChampionDir(dir); errors.As(cerr, &missing) && (!missing.RootGone || stages.HasDefaultPromotionName(dir)) {
		return missing
	}
	if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
		if _, serr := os.Stat(dir); serr != nil {
			target, _ := os.Readlink(dir)
			return fmt.Errorf("%s is a symbolic link to %s, which does not exist; give a model folder (--model)", dir, target)
		}
	}
	var several *stages.ModelsFolderError
	if errors.As(err, &several) {
		return err
	}
	fi, serr := os.Stat(dir)
	if errors.Is(serr, fs.ErrNotExist) && (stages.HasDefaultPromotionName(dir) || isPromotionFolder(dir)) {
		return fmt.Errorf("no model at %s: %w; run the pipeline so that its select stage promotes one, or give a model folder (--model)", dir, stages.WithoutPath(serr))
	}
	if errors.Is(serr, fs.ErrNotExist) { // a path given that leads nowhere: a typo, most often
		return fmt.Errorf("no model at %s: %w; check the path given to --model (a model folder is a run's models/RUN/cnn/saved_model, or a promotion folder such as models/final_models)", dir, stages.WithoutPath(serr))
	}
	if serr == nil && fi.IsDir() {
		if _, ierr := os.Stat(filepath.Join(stages.SavedModelOf(dir), graphs.ModelInfoFile)); errors.Is(ierr, fs.ErrNotExist) {
			return fmt.Errorf("%s holds no model: a model folder is a SavedModel as pipeline exports it, with its %s (a run's models/RUN/cnn/saved_model, or a promotion folder such as models/final_models)", dir, graphs.ModelInfoFile)
		}
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

// shownPath is path as predict's output names it, in text as in JSON: each byte of a name
// that is not valid UTF-8 written as \xNN, as the split's reports write it, not replaced by
// U+FFFD (which JSON would do), so that the name leads back to the file.
func shownPath(path string) string { return stages.EscapeInvalidUTF8(path) }
