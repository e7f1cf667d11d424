package stages

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPruneChampionsKeepsTheRollbackChain(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit", "vgg19", "cnn")
	root := final + ".d"
	for i, run := range []string{"run1", "run2", "run3", "run4"} {
		applyDecision(t, ws, decision("m"+string(rune('1'+i)), 0.5+0.1*float64(i), 0), run)
	}
	if id, _, err := Rollback(final); err != nil || id != "run3-cnn" {
		t.Fatalf("rollback: %q %v", id, err)
	}
	// Something else put in the folder by hand is not the promotions' to remove, nor a copy
	// of a model the history does not name.
	if err := os.MkdirAll(filepath.Join(root, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	fakeModel(t, filepath.Join(root, "my-backup"), "cnn")
	ids := func(ps []PrunedModel) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
			if p.Bytes <= 0 || p.Freed > p.Bytes {
				t.Errorf("%s: %d bytes, %d freed", p.ID, p.Bytes, p.Freed)
			}
		}
		return out
	}
	// The champion (run3) and the one before it (run2) stay; the oldest champion and the
	// model rolled back (run4) go.
	pruned, err := PruneChampions(final, 1, true)
	if err != nil || !slices.Equal(ids(pruned), []string{"run1-cnn", "run4-cnn"}) || pruned[0].SetAside != "" || !strings.HasPrefix(pruned[1].SetAside, "rolled back on ") || pruned[0].Promoted.IsZero() {
		t.Fatalf("dry run: %+v %v", pruned, err)
	}
	if got := promotedIDList(root); !slices.Equal(got, []string{"my-backup", "notes", "run1-cnn", "run2-cnn", "run3-cnn", "run4-cnn"}) {
		t.Fatalf("a dry run removed folders: %v", got)
	}
	pruned, err = PruneChampions(final, 1, false)
	if err != nil || !slices.Equal(ids(pruned), []string{"run1-cnn", "run4-cnn"}) {
		t.Fatalf("prune: %v %v", ids(pruned), err)
	}
	if got := promotedIDList(root); !slices.Equal(got, []string{"my-backup", "notes", "run2-cnn", "run3-cnn"}) {
		t.Fatalf("left %v", got)
	}
	// A model rolled back and removed is still one that was promoted: promote ID says its
	// folder is gone.
	if _, _, _, err := PromoteAgain(final, "run4-cnn"); err == nil || !strings.Contains(err.Error(), "run4-cnn was promoted before, but its folder") || !strings.Contains(err.Error(), "`pipeline promote run4/cnn` would install run4-cnn again") {
		t.Fatalf("promote a removed model that was rolled back: %v", err)
	}
	if !PromotionRemoved(final, "run1-cnn") || PromotionRemoved(final, "run2-cnn") {
		t.Fatal("PromotionRemoved does not tell removed folders")
	}
	if card, err := ReadCard(final); err != nil || card.ID != "run3-cnn" {
		t.Fatalf("champion after pruning: %+v %v", card, err)
	}
	// The rolled-back model's record stays: select does not promote it again, and says how
	// to do it by hand from this run, the folder it was promoted to being gone.
	if note := applyDecision(t, ws, decision("m4", 0.99, 0), "run5"); !strings.Contains(note, "run4-cnn, which was rolled back on ") || !strings.Contains(note, "(pipeline promote run5/cnn does it by hand)") {
		t.Fatalf("the rolled-back model, its folder removed: %q", note)
	}
	// Rollback goes back through what was kept, then says the next folder is gone.
	if id, _, err := Rollback(final); err != nil || id != "run2-cnn" {
		t.Fatalf("rollback to the kept champion: %q %v", id, err)
	}
	if _, _, err := Rollback(final); err == nil || !strings.Contains(err.Error(), "previous champion run1-cnn is missing") {
		t.Fatalf("rollback to a removed champion: %v", err)
	}
	// Keeping none leaves the champion alone.
	pruned, err = PruneChampions(final, 0, false)
	if err != nil || !slices.Equal(ids(pruned), []string{"run3-cnn"}) {
		t.Fatalf("keep 0: %v %v", ids(pruned), err)
	}
	if card, err := ReadCard(final); err != nil || card.ID != "run2-cnn" {
		t.Fatalf("champion after keeping none: %+v %v", card, err)
	}
	if got := promotedIDList(root); !slices.Equal(got, []string{"my-backup", "notes", "run2-cnn"}) {
		t.Fatalf("left %v", got)
	}
	// A folder that was never promoted to: nothing to do.
	if pruned, err := PruneChampions(filepath.Join(ws, "elsewhere/final"), 0, false); err != nil || len(pruned) != 0 {
		t.Fatalf("no promotions: %v %v", pruned, err)
	}
}

// The champions kept before the champion are counted among those whose folders are there: a
// removed one does not take the place of one that --rollback can still go to.
func TestPruneChampionsCountsOnlyFoldersThatAreThere(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit", "vgg19")
	for i, run := range []string{"run1", "run2", "run3"} {
		applyDecision(t, ws, decision("m"+string(rune('1'+i)), 0.5+0.1*float64(i), 0), run)
	}
	if err := os.RemoveAll(filepath.Join(final+".d", "run2-cnn")); err != nil {
		t.Fatal(err)
	}
	if pruned, err := PruneChampions(final, 1, false); err != nil || len(pruned) != 0 {
		t.Fatalf("removed %+v (%v), want run1-cnn kept as the one before the champion", pruned, err)
	}
}
