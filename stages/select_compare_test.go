package stages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pipeline/pipeline"
)

// A score kept in scores.json is used as it was worked out: one kept before the per-class
// floor was checked is worked out again, and one kept as too few or as none left is that at
// once. It is kept by the test photos left out: another winner leaving out the same ones
// finds it; leaving out others, not.
func TestKeptChampionScoresAreReadAsTheyWereMade(t *testing.T) {
	ws, champ := t.TempDir(), t.TempDir()
	digest := func(s string) string { d := sha256.Sum256([]byte(s)); return hex.EncodeToString(d[:]) }
	m := &Manifest{Split: TestSet, Classes: []string{"a", "b"}, SourceDir: "raw",
		Images: []Entry{{Label: 0, Digest: digest("x"), Source: "a/x"}, {Label: 1, Digest: digest("y"), Source: "b/y"}}}
	if err := m.Write(filepath.Join(ws, "test")); err != nil {
		t.Fatal(err)
	}
	w := Candidate{Name: "cnn", Model: "m/saved_model", Data: "test", TestSet: "T"}
	list := func(names ...string) *sawLists {
		l := &sawLists{champKnown: true, winnerKnown: true}
		for _, n := range names {
			var d [32]byte
			hex.Decode(d[:], []byte(digest(n)))
			l.union = append(l.union, d)
		}
		slices.SortFunc(l.union, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
		return l
	}
	saw := list("x", "z")
	job := &pipeline.Job{Workspace: ws, Log: io.Discard, Progress: nopProgress{}}
	k, err := comparisonKey(job, w, saw)
	if err != nil || k.left != 1 || k.data != "test" {
		t.Fatalf("%+v, %v", k, err)
	}
	key := k.key
	if other, _ := comparisonKey(job, w, list("x", "q")); other.key != key {
		t.Fatalf("the same test photos left out, another key: %s, %s", other.key, key)
	}
	if other, _ := comparisonKey(job, w, list("y")); other.key == key {
		t.Fatal("other test photos left out, the same key")
	}
	w.Model = "not/a/model" // scoring it fails: what is not kept cannot be worked out here
	keep := func(scores map[string]map[string]metric) {
		t.Helper()
		b, _ := json.Marshal(scores)
		if err := os.WriteFile(filepath.Join(champ, championScores), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unchecked := map[string]metric{"test_f1_macro": 0.5, comparedKey: 2, leftOutKey: 98}
	keep(map[string]map[string]metric{key: unchecked, "winner not/a/model on " + key: {"test_f1_macro": 0.9}})
	if c, err := scoreChampion(context.Background(), job, champ, w, saw); err == nil {
		t.Fatalf("a kept score without the floor checked was used: %+v", c)
	}
	short := map[string]metric{"test_f1_macro": 0.5, comparedKey: 20, leftOutKey: 80, shortKey: 1, shortLeftKey: 2, shortAllKey: 30}
	keep(map[string]map[string]metric{key: short})
	if c, err := scoreChampion(context.Background(), job, champ, w, saw); !errors.Is(err, errTooFewUnseen) || c.short != 1 || c.shortLeft != 2 || c.shortAll != 30 {
		t.Fatalf("a kept too-few score: %v, %+v", err, c)
	}
	none := map[string]metric{comparedKey: 0, leftOutKey: 100}
	keep(map[string]map[string]metric{key: none})
	if _, err := scoreChampion(context.Background(), job, champ, w, saw); !errors.Is(err, errNoneUnseen) {
		t.Fatalf("a kept none-left score: %v", err)
	}
}

// scoreChampion is championScore with the key comparisonKey gives, as select's apply calls it.
func scoreChampion(ctx context.Context, job *pipeline.Job, champDir string, w Candidate, saw *sawLists) (*comparison, error) {
	k, err := comparisonKey(job, w, saw)
	if err != nil {
		return nil, err
	}
	return championScore(ctx, job, champDir, w, saw, k)
}
