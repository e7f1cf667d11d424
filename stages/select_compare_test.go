package stages

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"pipeline/pipeline"
)

// A score kept in scores.json is used as it was worked out: one kept before the per-class
// floor was checked is worked out again, and one kept as too few is too few at once, even
// with the test set's folder gone.
func TestKeptChampionScoresAreReadAsTheyWereMade(t *testing.T) {
	ws, champ := t.TempDir(), t.TempDir()
	w := Candidate{Name: "cnn", Model: "m/saved_model", Data: "gone/test", TestSet: "T"}
	saw := &sawLists{id: "abcd", champKnown: true, winnerKnown: true}
	job := &pipeline.Job{Workspace: ws, Log: io.Discard, Progress: nopProgress{}}
	keep := func(scores map[string]map[string]metric) {
		t.Helper()
		b, _ := json.Marshal(scores)
		if err := os.WriteFile(filepath.Join(champ, championScores), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unchecked := map[string]metric{"test_f1_macro": 0.5, comparedKey: 2, leftOutKey: 98}
	keep(map[string]map[string]metric{"T less abcd": unchecked, "winner m/saved_model on T less abcd": {"test_f1_macro": 0.9}})
	if c, err := championScore(context.Background(), job, champ, w, saw); !errors.Is(err, errTestSetGone) {
		t.Fatalf("a kept score without the floor checked was used: %v, %+v", err, c)
	}
	short := map[string]metric{"test_f1_macro": 0.5, comparedKey: 20, leftOutKey: 80, shortKey: 1, shortLeftKey: 2, shortAllKey: 30}
	keep(map[string]map[string]metric{"T less abcd": short})
	if c, err := championScore(context.Background(), job, champ, w, saw); !errors.Is(err, errTooFewUnseen) || c.short != 1 || c.shortLeft != 2 || c.shortAll != 30 {
		t.Fatalf("a kept too-few score: %v, %+v", err, c)
	}
	none := map[string]metric{comparedKey: 0, leftOutKey: 100}
	keep(map[string]map[string]metric{"T less abcd": none})
	if _, err := championScore(context.Background(), job, champ, w, saw); !errors.Is(err, errNoneUnseen) {
		t.Fatalf("a kept none-left score: %v", err)
	}
}
