package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/stages"
)

func promoteCommand() *cli.Command {
	return &cli.Command{
		Name:      "promote",
		Usage:     "show the champion, roll back to the previous one, or make a model the champion by hand (ID: one promoted before, or RUN/FOLDER of any run)",
		ArgsUsage: "[FILE] [ID]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Value: stages.DefaultPromoteTo, DefaultText: "the file's select promote_to, else " + stages.DefaultPromoteTo, Usage: "the promotion folder, relative to the pipeline file"},
			varFlag,
			&cli.StringFlag{Name: "runs-dir", Value: "models", Usage: "the folder of run folders, for RUN/FOLDER, relative to the pipeline file"},
			&cli.BoolFlag{Name: "rollback", Usage: "make the previous champion current again; select will not promote the current one again by itself"},
		},
		Action: func(c *cli.Context) error {
			// The pipeline file, which says the workspace, is told from a model id by its name.
			var file, id string
			for _, a := range c.Args().Slice() {
				switch {
				case strings.HasSuffix(a, ".hcl") && file == "":
					file = a
				case !strings.HasSuffix(a, ".hcl") && id == "":
					id = a
				default:
					return fmt.Errorf("expected a pipeline file (FILE.hcl) and a model id, got %q", c.Args().Slice())
				}
			}
			path, ws, err := workspaceFile(file)
			if err != nil {
				return err
			}
			to := c.String("to")
			if !c.IsSet("to") {
				if to, err = promoteTo(path, to, c.StringSlice("var")); err != nil {
					return err
				}
			}
			to = pipeline.InWorkspace(ws, to)
			if _, ferr := os.Stat(path); errors.Is(ferr, fs.ErrNotExist) && !lexists(to) && !lexists(to+".d") {
				// as runs says it: most likely not the workspace meant
				return fmt.Errorf("pipeline file %s does not exist, nor does the promotion folder %s; name the pipeline file, or run this in its folder", path, to)
			}
			var before *stages.Card // the champion before a change, to compare classes with
			var missing *stages.MissingChampionError
			restoring := "" // the champion whose link is missing, which promoting it puts back
			gone := ""      // the champion whose folder is gone, which promoting it installs again
			if dir, err := stages.ChampionDir(to); err == nil && dir != "" {
				before, _ = stages.ReadCard(dir)
			} else if errors.As(err, &missing) && missing.Target == "" && missing.Present {
				restoring = missing.Champion
			} else if missing != nil && missing.Target != "" {
				gone = filepath.Base(missing.Target) // the link leads to the folder gone
			} else if missing != nil {
				gone = missing.Champion
			}
			if id != "" || c.Bool("rollback") {
				// Promotion loads the model to check it: load TensorFlow as predict does, with
				// its start-up lines held back, and a missing library is one clean error.
				if err := graphs.LoadTensorFlow(); err != nil {
					return err
				}
				graphs.QuietStartupLines()
			}
			switch {
			case id != "" && c.Bool("rollback"):
				return fmt.Errorf("give a model id to promote or --rollback, not both")
			case c.Bool("rollback"):
				prev, aside, err := stages.Rollback(to)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "rolled back: %s now points to %s\n", to, filepath.Join(filepath.Base(to)+".d", prev))
				if aside != nil {
					fmt.Fprintf(c.App.Writer, "%s will not be promoted again automatically (pipeline promote %[1]s does it by hand)\n", aside.ID)
				}
			case id != "":
				runsDir := pipeline.InWorkspace(ws, c.String("runs-dir"))
				id = modelArg(id, c.String("runs-dir"), runsDir)
				card, lifted, aside, err := stages.PromoteAgain(to, id)
				run, folder, isRun := strings.Cut(id, "/")
				var broken *graphs.BrokenModelError
				if !isRun && errors.Is(err, stages.ErrNotPromoted) {
					if hint := stages.NotPromotedHint(to, runsDir, id); hint != "" {
						err = fmt.Errorf("%w; %s", err, hint)
					}
				}
				if isRun && (errors.Is(err, stages.ErrNotPromoted) || errors.As(err, &broken)) {
					// RUN/FOLDER never promoted, or whose promoted folder is gone or broken:
					// from the run folder, by hand.
					was := err
					card, lifted, aside, err = stages.PromoteFromRun(to, filepath.Join(runsDir, run), folder)
					if err != nil && broken != nil {
						err = fmt.Errorf("%w; nor can it be installed again from its run folder: %v", was, err)
					}
				}
				var already *stages.AlreadyChampionError
				switch {
				case errors.As(err, &already):
					// Nothing to do is not a failure: say so, and show the champion.
					fmt.Fprintln(c.App.Writer, already.Msg)
				case err != nil:
					return err
				case before != nil && before.ID == card.ID:
					fmt.Fprintf(c.App.Writer, "repaired: the champion %s, which was broken, is installed again from run %s\n", card.ID, card.Run)
				case card.ID == gone && gone != "":
					fmt.Fprintf(c.App.Writer, "reinstalled: the champion %s, whose folder was gone, is installed again from run %s\n", card.ID, card.Run)
				case card.ID == restoring:
					fmt.Fprintf(c.App.Writer, "restored: %s, which was missing, points to the champion %s again\n", to, filepath.Join(filepath.Base(to)+".d", card.ID))
				default:
					fmt.Fprintf(c.App.Writer, "promoted: %s now points to %s\n", to, filepath.Join(filepath.Base(to)+".d", card.ID))
				}
				if aside != nil {
					fmt.Fprintf(c.App.Writer, "%s, set aside, will not be promoted again automatically (pipeline promote %[1]s does it by hand)\n", aside.ID)
				}
				if lifted != nil {
					fmt.Fprintf(c.App.Writer, "%s was %s; select may promote it again\n", lifted.ID, lifted.How())
				}
			}
			if note, err := stages.FinishCutOffPromotion(to, to); err != nil {
				fmt.Fprintf(c.App.ErrWriter, "warning: %v\n", err)
			} else if note != "" {
				fmt.Fprintf(c.App.Writer, "note: %s\n", note)
			}
			dir, err := stages.ChampionDir(to) // a *stages.MissingChampionError says what to do
			if err != nil {
				return err
			}
			if dir == "" {
				return fmt.Errorf("%s holds no promoted model yet; run a pipeline with a select stage, or promote a model of a run folder by hand (pipeline promote RUN/FOLDER)", to)
			}
			card, err := stages.ReadCard(dir)
			if err != nil && dir == to && errors.Is(err, fs.ErrNotExist) && !stages.HoldsModel(dir) {
				// A folder of something else (the runs folder) given as the promotion folder:
				// it holds no champion, broken or not.
				return fmt.Errorf("%s holds no champion: it is not a promotion folder (no promotion has been made there, and it holds no model); --to names the folder a select stage promotes to (its promote_to, %s by default)", to, stages.DefaultPromoteTo)
			}
			if err != nil {
				// The card is part of what a champion needs: say so as for its model.
				return fmt.Errorf("the champion %s cannot serve: %w; %s", filepath.Base(dir), err, stages.BrokenChampionNext(to, filepath.Base(dir)))
			}
			if before != nil && before.ID != card.ID {
				if note := stages.ClassChange(before.Classes, card.Classes); note != "" {
					fmt.Fprintf(c.App.Writer, "note: %s has other classes than %s: %s; servers of %s now answer with these\n", card.ID, before.ID, note, filepath.Base(to))
				}
				m := before.Metric
				switch {
				case card.Metric == "":
					fmt.Fprintf(c.App.Writer, "note: %s has no evaluation; a run's select scores it on that run's test set before comparing\n", card.ID)
				case m != "" && before.TestSet != "" && before.TestSet == card.TestSet &&
					card.Metrics[m] != before.Metrics[m] && (card.Metrics[m] < before.Metrics[m]) != stages.LowerIsBetter(m):
					fmt.Fprintf(c.App.Writer, "note: %s scores worse than %s on the same test set (%s %.4f against %.4f)\n", card.ID, before.ID, m, float64(card.Metrics[m]), float64(before.Metrics[m]))
				}
			}
			score := "no evaluation"
			if card.Metric != "" {
				score = fmt.Sprintf("%s %.4f", card.Metric, float64(card.Metrics[card.Metric]))
				if card.SeenInTraining > 0 {
					score += fmt.Sprintf(" (trained on %d of those test images, which flatter it)", card.SeenInTraining)
				}
			}
			fmt.Fprintf(c.App.Writer, "champion %s: %s, %d classes, %s, from run %s, promoted %s\n", card.ID, card.Architecture,
				len(card.Classes), score, card.Run, card.Promoted.Local().Format("2006-01-02 15:04"))
			// What promote ID and --rollback can go to.
			promotions, setAside, err := stages.History(to)
			if err != nil {
				return err
			}
			var earlier []string // newest first, each once, the champion aside
			for i := len(promotions) - 1; i >= 0; i-- {
				if p := promotions[i]; p != card.ID && !slices.Contains(earlier, p) {
					earlier = append(earlier, p)
				}
			}
			for i, p := range earlier {
				if stages.PromotionRemoved(to, p) {
					earlier[i] += " (folder removed)"
				}
			}
			if len(earlier) > 0 {
				goes := "--rollback goes to the first"
				if strings.HasSuffix(earlier[0], " (folder removed)") {
					goes = "--rollback would go to the first, whose folder is removed"
				}
				fmt.Fprintf(c.App.Writer, "earlier champions, newest first (%s): %s\n", goes, strings.Join(earlier, ", "))
			}
			for _, rb := range setAside {
				removed := ""
				if stages.PromotionRemoved(to, rb.ID) {
					removed = ", folder removed"
				}
				fmt.Fprintf(c.App.Writer, "not promoted again automatically: %s (%s%s)\n", rb.ID, rb.How(), removed)
			}
			if id == "" && !c.Bool("rollback") {
				// Promotion loaded the model; showing checks its files, without TensorFlow.
				var broken *graphs.BrokenModelError
				if err := graphs.CheckFiles(stages.SavedModelOf(dir)); errors.As(err, &broken) {
					return fmt.Errorf("the champion %s cannot serve: %w; %s", card.ID, err, stages.BrokenChampionNext(to, card.ID))
				}
			}
			return nil
		},
	}
}

// modelArg reads promote's model id as a shell may complete it: RUN/FOLDER/ with a trailing
// slash, or the path of the model's folder in the runs folder runsDir (the --runs-dir runsArg
// in the workspace): models/RUN/FOLDER relative to the workspace or to the current folder,
// or its SavedModel, models/RUN/FOLDER/saved_model, as predict and serve take it.
func modelArg(id, runsArg, runsDir string) string {
	id = strings.TrimRight(id, "/")
	if dir, last := filepath.Split(id); last == "saved_model" && strings.Contains(strings.TrimRight(dir, "/"), "/") {
		id = strings.TrimRight(dir, "/")
	}
	paths := []string{id}
	if abs, err := filepath.Abs(id); err == nil {
		paths = append(paths, abs)
	}
	for _, p := range paths {
		for _, prefix := range []string{filepath.Clean(runsArg), runsDir} {
			if rest, ok := strings.CutPrefix(p, prefix+string(filepath.Separator)); ok && strings.Count(rest, "/") == 1 {
				return rest
			}
		}
	}
	return id
}

// promotionFolders returns the folders the select stages of wf promote to (as written,
// relative to the workspace), each with the addresses of the stages that do.
func promotionFolders(wf *pipeline.Workflow) map[string][]string {
	folders := map[string][]string{}
	for _, inst := range wf.Instances {
		if inst.Kind.Name() != "select" {
			continue
		}
		v, _ := wf.Evaluate(inst, nil)
		if to := v.String("promote_to"); to != "" {
			folders[to] = append(folders[to], inst.Addr)
		}
	}
	return folders
}

// promoteTo returns the folder the select stages of the pipeline file at path promote to,
// with the variables vars (NAME=VALUE), or def when the file does not exist (the default
// pipeline.hcl need not) or has no select stage. Select stages that promote to different
// folders need --to, as does a file that cannot be read: the folder must not be guessed.
func promoteTo(path, def string, vars []string) (string, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return def, nil
	}
	reg, err := registry()
	if err != nil {
		return "", err
	}
	values, err := parseVars(vars)
	if err != nil {
		return "", err
	}
	_, wf, diags := buildFile(path, reg, values)
	switch {
	case diags.HasErrors():
		return "", fmt.Errorf("%s: cannot tell its promotion folder (%v); fix the file or give the folder with --to", path, diags.Errs()[0])
	case wf == nil: // no stages
		return def, nil
	}
	folders := promotionFolders(wf)
	switch len(folders) {
	case 0:
		return def, nil
	case 1:
		for to := range folders {
			return to, nil
		}
	}
	var list []string
	for _, to := range slices.Sorted(maps.Keys(folders)) {
		list = append(list, fmt.Sprintf("%s (%s)", to, strings.Join(folders[to], ", ")))
	}
	return "", fmt.Errorf("%s promotes to more than one folder: %s; choose one with --to", path, strings.Join(list, "; "))
}

// lexists reports whether there is anything at path, a dangling link too.
func lexists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
