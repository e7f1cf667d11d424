package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pipeline/graphs"
	"pipeline/stages"
)

// fakeRun writes the run folder models/<id> of workspace ws as a finished run leaves it, with
// a trained model in its folder folder, whose store output is digest (repeated to 64 hex
// digits), and returns the run folder.
func fakeRun(t *testing.T, ws, id, folder, digest string) string {
	t.Helper()
	run := filepath.Join(ws, "models", id)
	smallModel(t, filepath.Join(run, folder, "saved_model"), id)
	rec := `{"id":"` + id + `","status":"succeeded","stages":[{"stage":"train.model[cnn]","status":"ran","output":"` + strings.Repeat(digest, 64/len(digest)) +
		`","artifacts":"` + folder + `","duration_s":1}]}`
	if err := os.WriteFile(filepath.Join(run, "run.json"), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	return run
}

// history reads the promotions of final_models in ws.
func history(t *testing.T, ws string) []string {
	t.Helper()
	promotions, _, err := stages.History(filepath.Join(ws, "models/final_models"))
	if err != nil {
		t.Fatal(err)
	}
	return promotions
}

// TestPromoteRefusesABrokenModel checks that promote RUN/FOLDER refuses a model whose
// variables/ were deleted, naming its folder, and keeps the champion; that promote of the
// champion, broken, says how to repair it, and promote RUN/FOLDER of its run does (installed
// again under its id, the history unchanged).
func TestPromoteRefusesABrokenModel(t *testing.T) {
	ws := t.TempDir()
	to := filepath.Join(ws, "models/final_models")
	promoteFake(t, ws, "20261206_110000", "m1", 0.7)
	run := fakeRun(t, ws, "20261206_120000", "cnn", "ab")
	os.RemoveAll(filepath.Join(run, "cnn/saved_model/variables"))
	args := []string{"promote", "--to", to, "--runs-dir", filepath.Join(ws, "models")}
	code, out, errs := runCLI(append(args, "20261206_120000/cnn")...)
	if code != exitErr || !strings.Contains(errs, "not promoted: model "+filepath.Join(run, "cnn/saved_model")+" is broken: its weights (variables/) are missing") ||
		!strings.Contains(errs, "the champion is unchanged") || strings.Contains(out, "promoted") {
		t.Fatalf("promote a broken model: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runCLI(args...); code != exitOK || !strings.HasPrefix(out, "champion 20261206_110000-cnn") || strings.Contains(out, "not promoted again automatically") {
		t.Fatalf("the champion after: exit %d\n%s", code, out)
	}

	// The champion broken: promote ID says what to do; promote RUN/FOLDER of its run repairs it.
	smallModel(t, filepath.Join(run, "cnn/saved_model"), "again")
	if code, out, errs := runCLI(append(args, "20261206_120000/cnn/")...); code != exitOK || !strings.Contains(out, "now points to final_models.d/20261206_120000-cnn") {
		t.Fatalf("promote RUN/FOLDER/: exit %d\n%s%s", code, out, errs)
	}
	os.RemoveAll(filepath.Join(to, "saved_model/variables"))
	code, out, errs = runCLI(append(args, "20261206_120000-cnn")...)
	if code != exitErr || !strings.Contains(errs, "20261206_120000-cnn is the champion in "+to+", but model ") ||
		!strings.Contains(errs, "`pipeline promote 20261206_120000/cnn` installs it again from its run folder") {
		t.Fatalf("promote the broken champion: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(append(args, run+"/cnn/")...) // the path of the model's folder, as a shell completes it
	if code != exitOK || !strings.Contains(out, "repaired: the champion 20261206_120000-cnn, which was broken, is installed again from run 20261206_120000") {
		t.Fatalf("repairing the champion: exit %d\n%s%s", code, out, errs)
	}
	if err := graphs.CheckModel(filepath.Join(to, "saved_model")); err != nil {
		t.Fatalf("the repaired champion: %v", err)
	}
	if h := history(t, ws); !slices.Equal(h, []string{"20261206_110000-cnn", "20261206_120000-cnn"}) {
		t.Fatalf("history %v", h)
	}
}

// TestPromoteAgainAfterTheChampionsFolderIsDeleted checks that promoting the champion from
// its run again, after its folder was deleted, does not list it twice in the history, so that
// a rollback goes to the champion before it.
func TestPromoteAgainAfterTheChampionsFolderIsDeleted(t *testing.T) {
	ws := t.TempDir()
	to := filepath.Join(ws, "models/final_models")
	promoteFake(t, ws, "20261206_110000", "m1", 0.7)
	fakeRun(t, ws, "20261206_120000", "cnn", "ab")
	args := []string{"promote", "--to", to, "--runs-dir", filepath.Join(ws, "models")}
	if code, out, errs := runCLI(append(args, "20261206_120000/cnn")...); code != exitOK {
		t.Fatalf("promote: exit %d\n%s%s", code, out, errs)
	}
	os.RemoveAll(filepath.Join(to+".d", "20261206_120000-cnn"))
	code, out, errs := runCLI(args...)
	if code != exitErr || !strings.Contains(errs, to+" points to "+to+".d/20261206_120000-cnn, which is gone: there is no champion; `pipeline promote ID` makes a model promoted before the champion again (20261206_110000-cnn)") {
		t.Fatalf("showing a champion whose folder is gone: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI(append(args, "20261206_120000/cnn")...); code != exitOK || !strings.Contains(out, "reinstalled: the champion 20261206_120000-cnn, whose folder was gone, is installed again from run 20261206_120000") {
		t.Fatalf("promoting it again: exit %d\n%s%s", code, out, errs)
	}
	if h := history(t, ws); !slices.Equal(h, []string{"20261206_110000-cnn", "20261206_120000-cnn"}) {
		t.Fatalf("history %v", h)
	}
	if code, out, errs := runCLI(append(args, "--rollback")...); code != exitOK || !strings.Contains(out, "now points to final_models.d/20261206_110000-cnn") {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errs)
	}
}

// TestPromoteSaysWhatIsWrongWithAnId checks the messages for a run folder that does not
// exist, a run that never trained the model asked for (killed before it wrote run.json), a
// path that is no id, a deleted champion link, and a rollback to a deleted folder.
func TestPromoteSaysWhatIsWrongWithAnId(t *testing.T) {
	ws := t.TempDir()
	to := filepath.Join(ws, "models/final_models")
	models := filepath.Join(ws, "models")
	promoteFake(t, ws, "20261206_110000", "m1", 0.7)
	promoteFake(t, ws, "20261206_113000", "m2", 0.8)
	fakeRun(t, ws, "20261206_130000", "vit", "ab")
	fakeRun(t, ws, "20261206_113000", "cnn", "cd") // the champion's run
	fakeRun(t, ws, "20261206_110000", "cnn", "ef") // promoted before
	smallModel(t, filepath.Join(models, "20261206_140000-selftest", "cnn", "saved_model"), "cnn")
	killed := filepath.Join(models, "20261206_120000")
	smallModel(t, filepath.Join(killed, "vit", "saved_model"), "vit")
	os.WriteFile(filepath.Join(killed, "run.log"), nil, 0o644)
	args := []string{"promote", "--to", to, "--runs-dir", models}
	for _, c := range []struct{ id, want string }{
		{"29991206_151333/cnn", "there is no run folder " + filepath.Join(models, "29991206_151333") + "; `pipeline runs` lists the run folders"},
		{"20261206_120000/cnn", "run 20261206_120000 has no model cnn: it did not finish (its folder has no run.json: it was killed, or is still running); models in its folder: vit"},
		{"20261206_120000/vit", "run 20261206_120000 did not finish (its folder has no run.json: it was killed, or is still running), so its model vit cannot be promoted by hand"},
		{"../x", `"../x" is neither a model id nor RUN/FOLDER (a run folder's name, then the folder of one of its models); promoted models: 20261206_110000-cnn, 20261206_113000-cnn`},
		{"20261206_999999-cnn", "holds no model 20261206_999999-cnn (never promoted); promoted models: 20261206_110000-cnn, 20261206_113000-cnn"},
		{"20261206_11300-cnn", "holds no model 20261206_11300-cnn (never promoted); did you mean 20261206_113000-cnn? promoted models: "},
		// A run id, and RUN-FOLDER of a model never promoted: the RUN/FOLDER that promotes it.
		{"20261206_130000", "holds no model 20261206_130000 (never promoted); promoted models: 20261206_110000-cnn, 20261206_113000-cnn; " +
			"20261206_130000 is a run folder: `pipeline promote 20261206_130000/vit` makes its model the champion"},
		// A run whose model is the champion, or was promoted before, under RUN-FOLDER.
		{"20261206_113000", "holds no model 20261206_113000 (never promoted); promoted models: 20261206_110000-cnn, 20261206_113000-cnn; " +
			"20261206_113000 is a run folder: its model cnn is the champion (20261206_113000-cnn)"},
		{"20261206_110000", "holds no model 20261206_110000 (never promoted); promoted models: 20261206_110000-cnn, 20261206_113000-cnn; " +
			"20261206_110000 is a run folder: `pipeline promote 20261206_110000-cnn` makes its model cnn the champion again"},
		{"20261206_140000-selftest/cnn", "20261206_140000-selftest is a folder of pipeline selftest, whose models learn synthetic images to check the TensorFlow build: they are not promoted"},
		{"20261206_130000-vit", "holds no model 20261206_130000-vit (never promoted); promoted models: 20261206_110000-cnn, 20261206_113000-cnn; " +
			"`pipeline promote 20261206_130000/vit` makes the model of run 20261206_130000 in its folder vit the champion"},
	} {
		code, out, errs := runCLI(append(args, c.id)...)
		if code != exitErr || !strings.Contains(errs, c.want) || strings.Contains(errs, "never promoted") != strings.Contains(c.want, "never promoted") {
			t.Errorf("promote %s: exit %d\n%s%s\nwant %s", c.id, code, out, errs, c.want)
		}
	}
	// The link deleted: what history.json says, and how to restore it. Restoring it is no new
	// promotion: the champion keeps its promotion time, and the history stays as it was.
	was, err := stages.ReadCard(to)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(to)
	code, out, errs := runCLI(args...)
	if code != exitErr || !strings.Contains(errs, to+" is missing but "+to+".d/history.json names champion 20261206_113000-cnn: `pipeline promote 20261206_113000-cnn` restores it") {
		t.Fatalf("the link deleted: exit %d\n%s%s", code, out, errs)
	}
	time.Sleep(10 * time.Millisecond)
	code, out, errs = runCLI(append(args, "20261206_113000-cnn")...)
	if code != exitOK || !strings.HasPrefix(out, "restored: "+to+", which was missing, points to the champion final_models.d/20261206_113000-cnn again\nchampion 20261206_113000-cnn") {
		t.Fatalf("restoring the link: exit %d\n%s%s", code, out, errs)
	}
	if now, err := stages.ReadCard(to); err != nil || !now.Promoted.Equal(was.Promoted) {
		t.Fatalf("the champion's promotion time after the link was restored: %v, was %v (%v)", now.Promoted, was.Promoted, err)
	}
	if h := history(t, ws); !slices.Equal(h, []string{"20261206_110000-cnn", "20261206_113000-cnn"}) {
		t.Fatalf("history after the link was restored %v", h)
	}
	// A rollback to a deleted folder, whose run folder is gone too, says what else can be done.
	os.RemoveAll(filepath.Join(to+".d", "20261206_110000-cnn"))
	os.RemoveAll(filepath.Join(models, "20261206_110000"))
	code, out, errs = runCLI(append(args, "--rollback")...)
	if code != exitErr || !strings.Contains(errs, "previous champion 20261206_110000-cnn is missing from "+to+".d (its folder was deleted); the champion is still 20261206_113000-cnn; `pipeline promote RUN/FOLDER` makes a model of a run folder the champion (`pipeline promote 20261206_110000/cnn` would install") {
		t.Fatalf("rollback to a deleted folder: exit %d\n%s%s", code, out, errs)
	}
}

// TestPromoteShowsABrokenChampion checks that showing a champion whose weights were deleted
// says it cannot serve and how to repair it, suggesting --rollback only when there is a
// champion to go back to, as predict and promote ID do; and that --rollback without a
// previous champion says what can be done instead.
func TestPromoteShowsABrokenChampion(t *testing.T) {
	ws := t.TempDir()
	to := filepath.Join(ws, "models/final_models")
	args := []string{"promote", "--to", to, "--runs-dir", filepath.Join(ws, "models")}
	promoteFake(t, ws, "20261206_110000", "m1", 0.7)
	code, out, errs := runCLI(append(args, "--rollback")...)
	if code != exitErr || !strings.Contains(errs, to+" has no previous champion to roll back to: 20261206_110000-cnn is the only champion on record; `pipeline promote RUN/FOLDER` makes a model of a run folder the champion") {
		t.Fatalf("rollback with one champion: exit %d\n%s%s", code, out, errs)
	}
	os.RemoveAll(filepath.Join(to, "saved_model/variables"))
	// predict names the folder the link leads to, as promote does
	saved := filepath.Join(to+".d", "20261206_110000-cnn", "saved_model")
	notThere := " would install it again from its run folder, which is not in " + filepath.Dir(to) // the fake champions have no run folders
	repair := "`pipeline promote 20261206_110000/cnn`" + notThere + "; `pipeline promote RUN/FOLDER` makes a model of a run folder the champion"
	code, out, errs = runCLI(args...)
	if code != exitErr || !strings.HasPrefix(out, "champion 20261206_110000-cnn") ||
		!strings.Contains(errs, "the champion 20261206_110000-cnn cannot serve: model "+filepath.Join(to+".d", "20261206_110000-cnn", "saved_model")+" is broken: its weights (variables/) are missing; "+repair) || strings.Contains(errs, "--rollback") {
		t.Fatalf("showing a broken champion, the only one: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(append(args, "20261206_110000-cnn")...)
	if code != exitErr || !strings.Contains(errs, "promoting it again cannot repair it: "+repair) || strings.Contains(errs, "--rollback") {
		t.Fatalf("promoting the broken champion, the only one: exit %d\n%s%s", code, out, errs)
	}
	img := filepath.Join(ws, "x.png")
	os.WriteFile(img, pngBytes(8, 8, 1), 0o644)
	code, out, errs = runCLI("predict", "--model", to, img)
	if code != exitErr || !strings.Contains(errs, "cannot predict: model "+saved+" is broken: its weights (variables/) are missing: it loads but cannot predict; "+repair) || strings.Contains(errs, "--rollback") {
		t.Fatalf("predict with the broken champion, the only one: exit %d\n%s%s", code, out, errs)
	}
	// Two more champions, the last broken: --rollback goes back to the one before it, while
	// its files are there; promote ID is suggested of models whose files are there.
	promoteFake(t, ws, "20261206_113000", "m2", 0.8)
	promoteFake(t, ws, "20261206_120000", "m3", 0.9)
	os.Remove(filepath.Join(to, "saved_model/saved_model.pb"))
	code, out, errs = runCLI(args...)
	if code != exitErr || !strings.Contains(errs, "the champion 20261206_120000-cnn cannot serve: model "+filepath.Join(to+".d", "20261206_120000-cnn", "saved_model")+" is broken: its saved_model.pb is missing; "+
		"`pipeline promote 20261206_120000/cnn`"+notThere+"; `pipeline promote --rollback` goes back to the previous champion (20261206_113000-cnn); "+
		"`pipeline promote RUN/FOLDER`") { // 20261206_110000-cnn, broken, is not suggested
		t.Fatalf("showing a broken champion with one before it: exit %d\n%s%s", code, out, errs)
	}
	os.RemoveAll(filepath.Join(to+".d", "20261206_113000-cnn", "saved_model", "variables"))
	if code, out, errs = runCLI(args...); code != exitErr || strings.Contains(errs, "--rollback") {
		t.Fatalf("showing a broken champion, the one before it broken too: exit %d\n%s%s", code, out, errs)
	}
	// A card that does not parse is a broken champion too, with what to do.
	os.WriteFile(filepath.Join(to, "model.json"), []byte("{not json"), 0o644)
	if code, out, errs = runCLI(args...); code != exitErr || !strings.Contains(errs, "the champion 20261206_120000-cnn cannot serve: ") ||
		!strings.Contains(errs, "`pipeline promote 20261206_120000/cnn`"+notThere) {
		t.Fatalf("showing a champion whose card does not parse: exit %d\n%s%s", code, out, errs)
	}

	// --rollback past the first champion on record lists the models set aside.
	ws = t.TempDir()
	to = filepath.Join(ws, "models/final_models")
	promoteFake(t, ws, "20261206_110000", "m1", 0.7)
	promoteFake(t, ws, "20261206_113000", "m2", 0.8)
	if code, out, errs := runCLI("promote", "--to", to, "--rollback"); code != exitOK {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI("promote", "--to", to, "--rollback")
	if code != exitErr || !strings.Contains(errs, "20261206_110000-cnn is the only champion on record (1 model rolled back or set aside, which --rollback does not go back to); `pipeline promote ID` makes another model promoted before the champion (20261206_113000-cnn), or `pipeline promote RUN/FOLDER`") {
		t.Fatalf("rollback past the first champion: exit %d\n%s%s", code, out, errs)
	}
}

// TestPredictNamesABrokenChampion checks that predict with a champion whose weights were
// deleted says the model is broken and how to replace it, not TensorFlow's "Could not find
// variable".
func TestPredictNamesABrokenChampion(t *testing.T) {
	ws := t.TempDir()
	to := filepath.Join(ws, "models/final_models")
	promoteFake(t, ws, "20261206_110000", "m1", 0.7)
	promoteFake(t, ws, "20261206_113000", "m2", 0.8)
	img := filepath.Join(ws, "x.png")
	os.WriteFile(img, pngBytes(8, 8, 1), 0o644)
	if code, out, errs := runCLI("predict", "--model", to, img); code != exitOK {
		t.Fatalf("predict: exit %d\n%s%s", code, out, errs)
	}
	os.RemoveAll(filepath.Join(to, "saved_model/variables"))
	code, out, errs := runCLI("predict", "--model", to, img)
	if code != exitErr || !strings.Contains(errs, "the promoted model 20261206_113000-cnn in "+to+" cannot predict: model "+filepath.Join(to+".d", "20261206_113000-cnn", "saved_model")+" is broken: its weights (variables/) are missing") ||
		!strings.Contains(errs, "`pipeline promote --rollback` goes back to the previous champion") || strings.Contains(errs, "Could not find variable") {
		t.Fatalf("predict with a broken champion: exit %d\n%s%s", code, out, errs)
	}
	os.Remove(to)
	code, out, errs = runCLI("predict", "--model", to, img)
	if code != exitErr || !strings.Contains(errs, "`pipeline promote 20261206_113000-cnn` restores it") {
		t.Fatalf("predict without the link: exit %d\n%s%s", code, out, errs)
	}
}

// TestServeDoesNotSwitchToABrokenModel checks that serve keeps the model it serves when the
// folder switches to one that cannot predict, logs why, and reports it in /healthz until the
// folder points to a model that loads.
func TestServeDoesNotSwitchToABrokenModel(t *testing.T) {
	root := t.TempDir()
	tinyModel(t, filepath.Join(root, "final_models.d", "a"), 1)
	tinyModel(t, filepath.Join(root, "final_models.d", "b"), 2)
	os.RemoveAll(filepath.Join(root, "final_models.d", "b", "saved_model", "variables"))
	link := filepath.Join(root, "final_models")
	os.Symlink(filepath.Join("final_models.d", "a"), link)
	s, ts := newTestServer(t, link, defaultServeOptions())
	health := func() (int, map[string]string) {
		t.Helper()
		resp, err := http.Get(ts.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	switchTo := func(id string) {
		tmp := link + ".tmp"
		os.Symlink(filepath.Join("final_models.d", id), tmp)
		os.Rename(tmp, link)
	}
	switchTo("b")
	var logged strings.Builder
	s.logger = log.New(&logged, "", 0)
	s.poll()
	if !strings.Contains(logged.String(), "not switching to the model now in "+link+", still serving a: the promoted model b in "+link+" cannot predict: model ") ||
		!strings.Contains(logged.String(), "its weights (variables/) are missing") {
		t.Fatalf("log: %s", logged.String())
	}
	code, m := health()
	if code != 200 || m["model"] != "a" || !strings.Contains(m["pending_model_error"], "final_models.d/b/saved_model is broken: its weights (variables/) are missing") {
		t.Fatalf("/healthz: %d %v", code, m)
	}
	body, ct := multipartBody("image", pngBytes(8, 8, 3))
	if code, resp := post(t, ts.URL+"/predict", body, ct); code != 200 || resp["model"] != "a" {
		t.Fatalf("predict: %d %v", code, resp)
	}
	// Back to the served model (a rollback): nothing pending.
	switchTo("a")
	if changed, err := s.reload(); changed || err != nil {
		t.Fatalf("reload back: %v %v", changed, err)
	}
	if code, m := health(); code != 200 || m["pending_model_error"] != "" {
		t.Fatalf("/healthz after the rollback: %d %v", code, m)
	}
}
