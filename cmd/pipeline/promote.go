package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"pipeline/stages"
)

func promoteCommand() *cli.Command {
	return &cli.Command{
		Name:      "promote",
		Usage:     "show the champion, roll back to the previous one, or make a model promoted before (ID) the champion again",
		ArgsUsage: "[FILE] [ID]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Value: "models/final_models", Usage: "the promotion folder (select's promote_to), relative to the pipeline file"},
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
			_, ws, err := workspaceFile(file)
			if err != nil {
				return err
			}
			to := inWorkspace(ws, c.String("to"))
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
				card, lifted, aside, err := stages.PromoteAgain(to, id)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "promoted: %s now points to %s\n", to, filepath.Join(filepath.Base(to)+".d", card.ID))
				if aside != nil {
					fmt.Fprintf(c.App.Writer, "%s, set aside, will not be promoted again automatically (pipeline promote %[1]s does it by hand)\n", aside.ID)
				}
				if lifted != nil {
					fmt.Fprintf(c.App.Writer, "%s was rolled back on %s; select may promote it again\n", lifted.ID, lifted.At.Local().Format("2006-01-02 15:04"))
				}
			}
			dir, err := stages.ChampionDir(to)
			if err != nil {
				return err
			}
			if dir == "" {
				return fmt.Errorf("%s holds no promoted model yet; run a pipeline with a select stage", to)
			}
			card, err := stages.ReadCard(dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "champion %s: %s, %d classes, %s %.4f, from run %s, promoted %s\n", card.ID, card.Architecture,
				len(card.Classes), card.Metric, float64(card.Metrics[card.Metric]), card.Run, card.Promoted.Local().Format("2006-01-02 15:04"))
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
			if len(earlier) > 0 {
				fmt.Fprintf(c.App.Writer, "earlier champions, newest first (--rollback goes to the first): %s\n", strings.Join(earlier, ", "))
			}
			for _, rb := range setAside {
				fmt.Fprintf(c.App.Writer, "set aside on %s, not promoted again automatically: %s\n", rb.At.Local().Format("2006-01-02 15:04"), rb.ID)
			}
			return nil
		},
	}
}
