package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"pipeline/stages"
)

func promoteCommand() *cli.Command {
	return &cli.Command{
		Name:  "promote",
		Usage: "show the promoted model, or roll back to the previous one",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Value: "models/final_models", Usage: "the promotion folder (select's promote_to)"},
			&cli.BoolFlag{Name: "rollback", Usage: "make the previous champion current again"},
		},
		Action: func(c *cli.Context) error {
			to := c.String("to")
			if c.Bool("rollback") {
				id, err := stages.Rollback(to)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "rolled back: %s now points to %s\n", to, filepath.Join(filepath.Base(to)+".d", id))
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
			return nil
		},
	}
}
