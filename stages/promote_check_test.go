package stages

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pipeline/graphs"
	"pipeline/pipeline"
)

// champion returns the id on the card of the champion in final.
func championID(t *testing.T, final string) string {
	t.Helper()
	card, err := ReadCard(final)
	if err != nil {
		t.Fatal(err)
	}
	return card.ID
}

// TestBrokenModelsAreNotPromoted checks that a model that cannot predict (its variables/
// deleted) is refused by select, by promote ID and by a rollback, with an error naming its
// folder and what is wrong, and that the champion stays; and that the champion itself,
// broken, cannot be promoted again but is told how to be repaired or replaced.
func TestBrokenModelsAreNotPromoted(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit", "vgg19")
	root := final + ".d"
	applyDecision(t, ws, decision("m1", 0.70, 0), "run1")
	applyDecision(t, ws, decision("m2", 0.80, 0), "run2")

	// Select's winner.
	os.RemoveAll(filepath.Join(ws, "m3", "variables"))
	out := filepath.Join(ws, "decision-run3")
	if err := writeFileJSON(filepath.Join(out, "decision"), "decision.json", decision("m3", 0.90, 0)); err != nil {
		t.Fatal(err)
	}
	_, err := Select{}.Apply(context.Background(), &pipeline.Job{Workspace: ws, Out: out}, "run3")
	var broken *graphs.BrokenModelError
	if !errors.As(err, &broken) || !strings.Contains(err.Error(), "model "+filepath.Join(ws, "m3")+" is broken: its weights (variables/) are missing") ||
		!strings.Contains(err.Error(), "the champion is unchanged") {
		t.Fatalf("select's broken winner: %v", err)
	}
	if id := championID(t, final); id != "run2-cnn" {
		t.Fatalf("champion %s after a broken winner", id)
	}

	// An earlier promotion whose folder lost its weights.
	os.RemoveAll(filepath.Join(root, "run1-cnn", "saved_model", "variables"))
	_, _, _, err = PromoteAgain(final, "run1-cnn")
	if !errors.As(err, &broken) || !strings.HasPrefix(err.Error(), "not promoted: model "+filepath.Join(root, "run1-cnn", "saved_model")+" is broken: its weights") ||
		!strings.Contains(err.Error(), "`pipeline promote run1/cnn` would install run1-cnn again from its run folder, which is not in "+filepath.Dir(final)) {
		t.Fatalf("promote a broken earlier champion: %v", err)
	}
	if id := championID(t, final); id != "run2-cnn" {
		t.Fatalf("champion %s after promoting a broken model", id)
	}
	if _, setAside, _ := History(final); len(setAside) != 0 {
		t.Fatalf("the champion was set aside: %+v", setAside)
	}
	// Rolling back to it.
	if _, _, err := Rollback(final); !errors.As(err, &broken) || !strings.Contains(err.Error(), "not rolled back: the previous champion run1-cnn cannot serve") ||
		!strings.Contains(err.Error(), "the champion is still run2-cnn") {
		t.Fatalf("rollback to a broken model: %v", err)
	}
	if id := championID(t, final); id != "run2-cnn" {
		t.Fatalf("champion %s after a rollback to a broken model", id)
	}

	// The champion itself: not "already the champion", but how to repair or replace it; not
	// by --rollback or promote ID, as the champion before it is broken too.
	os.RemoveAll(filepath.Join(root, "run2-cnn", "saved_model", "variables"))
	_, _, _, err = PromoteAgain(final, "run2-cnn")
	if err == nil || !strings.HasSuffix(err.Error(), "run2-cnn is the champion in "+final+", but model "+filepath.Join(root, "run2-cnn", "saved_model")+
		" is broken: its weights (variables/) are missing: it loads but cannot predict; promoting it again cannot repair it: "+
		"`pipeline promote run2/cnn` would install it again from its run folder, which is not in "+filepath.Dir(final)+"; `pipeline promote RUN/FOLDER` makes a model of a run folder the champion") {
		t.Fatalf("promote the broken champion: %v", err)
	}
	// With its run folder beside the promotion folder, the repair is said plainly.
	os.MkdirAll(filepath.Join(filepath.Dir(final), "run2"), 0o755)
	if _, _, _, err = PromoteAgain(final, "run2-cnn"); err == nil || !strings.Contains(err.Error(), "installs it again from its run folder; ") {
		t.Fatalf("promote the broken champion, its run folder there: %v", err)
	}
	os.Remove(filepath.Join(filepath.Dir(final), "run2"))
}

// TestSelectReplacesAMissingOrBrokenChampion checks that select takes a champion whose link
// leads nowhere (its folder or the whole .d folder deleted) or whose weights are deleted for
// no champion, says so in its note, and promotes its winner; and that no bare lstat error
// comes out.
func TestSelectReplacesAMissingOrBrokenChampion(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(final string)
		want   string
	}{
		{"the .d folder deleted", func(final string) { os.RemoveAll(final + ".d") },
			"warning: models/final_models points to models/final_models.d/run1-cnn, but models/final_models.d, which holds the promoted models and their history, is gone, taken as no champion"},
		{"the champion's folder deleted", func(final string) { os.RemoveAll(final + ".d/run1-cnn") },
			"warning: models/final_models points to models/final_models.d/run1-cnn, which is gone, taken as no champion"},
		{"the champion's weights deleted", func(final string) { os.RemoveAll(final + ".d/run1-cnn/saved_model/variables") },
			"warning: the champion run1-cnn is broken, its weights (variables/) are missing, taken as no champion"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws, final := modelsWorkspace(t, "cnn", "vit")
			applyDecision(t, ws, decision("m1", 0.90, 0), "run1")
			c.damage(final)
			// Worse than the champion was: promoted all the same, as there is none.
			note := applyDecision(t, ws, decision("m2", 0.50, 0), "run2")
			if !strings.HasPrefix(note, "promoted cnn") || !strings.Contains(note, c.want) {
				t.Fatalf("note %q\nwant it to contain %q", note, c.want)
			}
			if id := championID(t, final); id != "run2-cnn" {
				t.Fatalf("champion %s", id)
			}
			if err := checkPromoted(final); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSelectRestoresADeletedChampionLink checks that a champion whose link alone was deleted
// gets it back and is compared with: a weaker winner is not promoted past it.
func TestSelectRestoresADeletedChampionLink(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit")
	applyDecision(t, ws, decision("m1", 0.90, 0), "run1")
	os.Remove(final)
	note := applyDecision(t, ws, decision("m2", 0.50, 0), "run2")
	if !strings.HasPrefix(note, "models/final_models was missing: it points to the champion run1-cnn again") || !strings.Contains(note, "not promoted: ") {
		t.Fatalf("note %q", note)
	}
	if id := championID(t, final); id != "run1-cnn" {
		t.Fatalf("champion %s, want run1-cnn back", id)
	}
}

// TestMissingChampionIsReported checks ChampionDir's account of a champion that cannot be
// found, which the promote command shows: with the next step, never a bare lstat error.
func TestMissingChampionIsReported(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit")
	root := final + ".d"
	if dir, err := ChampionDir(final); dir != "" || err != nil {
		t.Fatalf("before any promotion: %q %v", dir, err)
	}
	applyDecision(t, ws, decision("m1", 0.70, 0), "run1")
	applyDecision(t, ws, decision("m2", 0.80, 0), "run2")
	check := func(what, want string) {
		t.Helper()
		dir, err := ChampionDir(final)
		var missing *MissingChampionError
		if dir != "" || !errors.As(err, &missing) || err.Error() != want {
			t.Fatalf("%s: %q, %v\nwant %s", what, dir, err, want)
		}
	}
	os.Remove(final)
	check("the link deleted", final+" is missing but "+root+"/history.json names champion run2-cnn: `pipeline promote run2-cnn` restores it")
	if _, _, _, err := PromoteAgain(final, "run2-cnn"); err != nil {
		t.Fatalf("restoring the link: %v", err)
	}
	if id := championID(t, final); id != "run2-cnn" {
		t.Fatalf("champion %s after restoring the link", id)
	}
	os.RemoveAll(filepath.Join(root, "run2-cnn"))
	check("the champion's folder deleted", final+" points to "+root+"/run2-cnn, which is gone: there is no champion; `pipeline promote ID` makes a model promoted before the champion again (run1-cnn); a run's select promotes its winner, and `pipeline promote RUN/FOLDER` a model of a run folder by hand")
	os.Remove(final)
	check("the link deleted too", final+" is missing, and so is the folder of the champion run2-cnn that "+root+"/history.json names: there is no champion; `pipeline promote ID` makes a model promoted before the champion again (run1-cnn); a run's select promotes its winner, and `pipeline promote RUN/FOLDER` a model of a run folder by hand")
	if _, _, _, err := PromoteAgain(final, "run2-cnn"); err == nil || !strings.Contains(err.Error(), "run2-cnn was promoted before, but its folder "+filepath.Join(root, "run2-cnn")+" is gone (`pipeline promote run2/cnn` would install run2-cnn again") {
		t.Fatalf("promoting the champion whose folder is gone: %v", err)
	}
	os.Symlink("final_models.d/run2-cnn", final)
	os.RemoveAll(root)
	check("the .d folder deleted", final+" points to "+root+"/run2-cnn, but "+root+", which holds the promoted models and their history, is gone: there is no champion; a run's select promotes its winner, and `pipeline promote RUN/FOLDER` a model of a run folder by hand")
}

// TestHistoryHasNoRepeatsAndRollbackChangesTheChampion checks that installing the champion's
// id again (its folder deleted, promoted again from its run) adds no second entry, and that a
// rollback over a history that already has one (written before) goes to the previous
// champion of another id, not to the same.
func TestHistoryHasNoRepeatsAndRollbackChangesTheChampion(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit")
	root := final + ".d"
	applyDecision(t, ws, decision("m1", 0.70, 0), "run1")
	applyDecision(t, ws, decision("m2", 0.80, 0), "run2")
	// The champion's folder deleted and installed again under its id.
	os.RemoveAll(filepath.Join(root, "run2-cnn"))
	card := Card{ID: "run2-cnn", Source: "m2", Run: "run2"}
	if _, _, err := switchChampion(final, card.ID, card.Source, func(string) error { return nil },
		func() error { return install(final, filepath.Join(ws, "m2"), card) }); err != nil {
		t.Fatal(err)
	}
	if promotions, _, _ := History(final); !slices.Equal(promotions, []string{"run1-cnn", "run2-cnn"}) {
		t.Fatalf("promotions %v", promotions)
	}
	// A history with the champion twice in a row.
	if err := writeJSONAtomic(filepath.Join(root, "history.json"), promoteHistory{Promotions: []string{"run1-cnn", "run2-cnn", "run2-cnn"}}); err != nil {
		t.Fatal(err)
	}
	if id, _, err := Rollback(final); err != nil || id != "run1-cnn" || championID(t, final) != "run1-cnn" {
		t.Fatalf("rollback: %q %v", id, err)
	}
	if promotions, _, _ := History(final); !slices.Equal(promotions, []string{"run1-cnn"}) {
		t.Fatalf("promotions after the rollback %v", promotions)
	}
	// The previous champion's folder gone: what can be done instead.
	fakeModel(t, filepath.Join(ws, "m3"), "vgg19")
	fakeModel(t, filepath.Join(ws, "m4"), "cnn")
	applyDecision(t, ws, decision("m4", 0.90, 0), "run3")
	applyDecision(t, ws, decision("m3", 0.95, 0), "run4")
	os.RemoveAll(filepath.Join(root, "run3-cnn"))
	if _, _, err := Rollback(final); err == nil || err.Error() != "previous champion run3-cnn is missing from "+root+" (its folder was deleted); the champion is still run4-cnn; "+
		"`pipeline promote ID` makes another model promoted before the champion (run1-cnn, run2-cnn), or `pipeline promote RUN/FOLDER` makes a model of a run folder the champion "+
		"(`pipeline promote run3/cnn` would install run3-cnn again from its run folder, which is not in "+filepath.Dir(final)+")" {
		t.Fatalf("rollback to a deleted folder: %v", err)
	}
	// Its run folder kept beside the promotion folder: installing it from there is said plainly.
	os.MkdirAll(filepath.Join(filepath.Dir(final), "run3", "cnn"), 0o755)
	if _, _, err := Rollback(final); err == nil || !strings.HasSuffix(err.Error(), "(`pipeline promote run3/cnn` installs run3-cnn again from its run folder)") {
		t.Fatalf("rollback to a deleted folder whose run folder is kept: %v", err)
	}
	os.RemoveAll(filepath.Join(filepath.Dir(final), "run3"))
}

// TestInstallingOverTheChampionsOwnFolderSetsNothingAside checks that installing a model
// under the champion's own id, when the champion's card is unreadable and the card installed
// names no source, does not record the new champion as set aside.
func TestInstallingOverTheChampionsOwnFolderSetsNothingAside(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit")
	root := final + ".d"
	applyDecision(t, ws, decision("m1", 0.70, 0), "run1")
	applyDecision(t, ws, decision("m2", 0.80, 0), "run2")
	if err := os.WriteFile(filepath.Join(root, "run2-cnn", "model.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	card := Card{ID: "run2-cnn", Run: "run2"}
	_, aside, err := switchChampion(final, card.ID, card.Source, func(string) error { return nil },
		func() error { return install(final, filepath.Join(ws, "m2"), card) })
	if err != nil {
		t.Fatal(err)
	}
	if _, rolledBack, _ := History(final); aside != nil || len(rolledBack) != 0 {
		t.Fatalf("set aside %+v, rolled back %+v", aside, rolledBack)
	}
	if championID(t, final) != "run2-cnn" {
		t.Fatalf("champion %s", championID(t, final))
	}
}

// TestPromoteAgainReadsIdsAsAShellGivesThem checks that RUN/FOLDER/ with the trailing slash
// of a shell's completion is taken, and that a path that is neither an id nor RUN/FOLDER is
// called that, not mangled into an id.
func TestPromoteAgainReadsIdsAsAShellGivesThem(t *testing.T) {
	ws, final := modelsWorkspace(t, "cnn", "vit")
	applyDecision(t, ws, decision("m1", 0.70, 0), "run1")
	applyDecision(t, ws, decision("m2", 0.80, 0), "run2")
	if card, _, _, err := PromoteAgain(final, "run1/cnn/"); err != nil || card.ID != "run1-cnn" {
		t.Fatalf("RUN/FOLDER/: %+v %v", card, err)
	}
	for _, id := range []string{"../x", "run1/../x", "./cnn", "..", "/abs/x", "a/b/c"} {
		_, _, _, err := PromoteAgain(final, id)
		if err == nil || !strings.Contains(err.Error(), "is neither a model id") || !strings.Contains(err.Error(), "promoted models: run1-cnn, run2-cnn") {
			t.Errorf("%q: %v", id, err)
		}
	}
}
