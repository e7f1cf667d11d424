package stages

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"pipeline/graphs"
	"pipeline/pipeline"
	"pipeline/pipeline/regular"
)

// A promoted model lives in <promote_to>.d/<id>/ (saved_model/ plus the model.json card), and
// <promote_to> is a symbolic link to the current one, replaced by one atomic rename, so
// readers (pipeline serve) see the old model or the new one, never a mix. history.json in the
// .d folder lists promotions in order, for rollback, and the models rolled back, which the
// select stage does not promote again by itself. history.json is the record: a promotion or
// a rollback writes it first, naming its model pending, and then switches the link (commit);
// whoever takes the promotions' lock next finishes one cut off between the two (a kill, a
// crash: settle), so that the link and the history never disagree for long.

// Card is model.json in a promoted model's folder.
type Card struct {
	ID           string            `json:"id"`
	Architecture string            `json:"architecture"`
	Classes      []string          `json:"classes"`
	Input        graphs.Input      `json:"preprocessing"`
	Metrics      map[string]metric `json:"metrics"`
	Metric       string            `json:"selected_by"`
	TestSet      string            `json:"test_set,omitempty"` // the id of the test set of Metrics (testSetID)
	// SeenInTraining counts the images of that test set the model (or the model it started
	// from) was trained on, whose Metrics flatter it (Evaluation.SeenInTraining).
	SeenInTraining int       `json:"test_images_seen_in_training,omitempty"`
	Source         string    `json:"source_model"` // the store path it was copied from
	Run            string    `json:"source_run"`
	Promoted       time.Time `json:"promoted_at"`
}

type promoteHistory struct {
	Promotions []string `json:"promotions"` // ids, oldest first; the last is current
	// RolledBack lists the models Rollback took back, which select does not promote again;
	// PromoteAgain removes a model from it.
	RolledBack []RolledBack `json:"rolled_back,omitempty"`
	// Pending is the champion a promotion or rollback has recorded but not yet pointed the
	// link to (commit); settle finishes it when that process was cut off.
	Pending string `json:"pending,omitempty"`
}

// RolledBack is a model that was champion until a rollback, or until another model was
// promoted by hand.
type RolledBack struct {
	ID     string    `json:"id"`           // its folder in the .d folder
	Source string    `json:"source_model"` // its card's Source, which names the model in the store
	At     time.Time `json:"rolled_back_at"`
	// By is what set it aside: SetAsideByRollback or SetAsideByPromotion ("" in a history
	// written before it was recorded).
	By string `json:"set_aside_by,omitempty"`
}

// What set a champion aside (RolledBack.By).
const (
	SetAsideByRollback  = "rollback"
	SetAsideByPromotion = "promotion"
)

// How says what set the model aside, and when: "rolled back on 2026-11-30 09:12", for a
// message.
func (r RolledBack) How() string {
	at := r.At.Local().Format("2006-01-02 15:04")
	switch r.By {
	case SetAsideByRollback:
		return "rolled back on " + at
	case SetAsideByPromotion:
		return "set aside by a promotion by hand on " + at
	}
	return "rolled back, or set aside by a promotion by hand, on " + at
}

// rolledBack returns the record of the rollback of the model source (a card's Source), nil
// when it was not rolled back or has been promoted by hand since.
func rolledBack(promoteTo, source string) (*RolledBack, error) {
	h, err := readHistory(promoteTo + ".d")
	if err != nil {
		return nil, err
	}
	for i := range h.RolledBack {
		if h.RolledBack[i].Source == source && source != "" {
			return &h.RolledBack[i], nil
		}
	}
	return nil, nil
}

// ReadCard reads the card of a champion folder; a card that is a named pipe or a device is
// not read (a *regular.Error).
func ReadCard(dir string) (*Card, error) {
	var c Card
	b, err := regular.Read(filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "model.json"), err)
	}
	return &c, nil
}

// promote copies a SavedModel (hard links) into a new champion folder, writes its card,
// records the promotion and switches the link to it.
func promote(promoteTo, savedModel string, card Card) error {
	root := promoteTo + ".d"
	if err := checkAdoptable(promoteTo); err != nil {
		return err
	}
	unlock, err := lockPromotions(root)
	if err != nil {
		return err
	}
	defer unlock()
	_, serr := os.Stat(filepath.Join(root, card.ID))
	if err := install(promoteTo, savedModel, card); err != nil {
		return err
	}
	h, err := readHistory(root) // after install, whose adoptLegacy may record a folder
	if err != nil {
		return err
	}
	old := h.clone()
	h.record(card.ID)
	if err := commit(promoteTo, card.ID, h, old); err != nil {
		dropUnrecorded(root, card.ID, serr != nil)
		return err
	}
	return nil
}

// commit records h as the history of promoteTo's promotions, with id as its pending champion,
// then points the link to id and clears the mark: the history first, so that a promotion or
// rollback cut off between the two is finished by the next holder of the lock (settle), and
// only it (a link switched by hand, or left by an older release, is no pending promotion).
// When the link cannot be switched, the history is put back as it was (old), and nothing has
// changed.
func commit(promoteTo, id string, h, old promoteHistory) error {
	path := filepath.Join(promoteTo+".d", "history.json")
	h.Pending = id
	if err := writeJSONAtomic(path, h); err != nil {
		return err
	}
	if err := pointTo(promoteTo, id); err != nil {
		if werr := writeJSONAtomic(path, old); werr != nil {
			return fmt.Errorf("%w; putting back %s failed too (%v): the next promotion or rollback points %s to %s, as it says", err, path, werr, promoteTo, id)
		}
		return err
	}
	h.Pending = ""
	writeJSONAtomic(path, h) // if this fails, the next holder of the lock clears it (settle)
	return nil
}

// dropUnrecorded removes the folder id a failed promotion made (made), unless the history
// still names it as pending (the history could not be put back, and the next holder of the
// lock finishes the promotion): not a model promoted before, which messages would offer.
func dropUnrecorded(root, id string, made bool) {
	if h, err := readHistory(root); made && err == nil && h.Pending != id {
		os.RemoveAll(filepath.Join(root, id))
	}
}

// settle finishes a promotion or rollback cut off between recording itself and switching the
// link (commit): it points promoteTo to the pending champion history.json names, when its
// folder is there, and clears the mark. It returns where the link led before and where it
// leads now when it switched it. The caller holds the promotions' lock.
func settle(promoteTo string) (was, now string, err error) {
	root := promoteTo + ".d"
	h, err := readHistory(root)
	if err != nil || h.Pending == "" {
		return "", "", nil
	}
	want := h.Pending
	h.Pending = ""
	if fi, serr := os.Stat(filepath.Join(root, want)); serr != nil || !fi.IsDir() {
		// Its folder deleted since: the change cannot be finished. A promotion cut off is
		// taken off the record when that leaves the record naming the champion the link
		// still leads to; a rollback (whose pending champion was already on the record) or a
		// reinstallation added no entry, and none is taken off.
		target, _ := os.Readlink(promoteTo)
		if n := len(h.Promotions); n > 1 && h.Promotions[n-1] == want && h.Promotions[n-2] == filepath.Base(target) {
			h.Promotions = h.Promotions[:n-1]
		}
		return "", "", writeJSONAtomic(filepath.Join(root, "history.json"), h)
	}
	target, lerr := os.Readlink(promoteTo)
	if lerr != nil || filepath.Base(target) != want || filepath.Dir(target) != filepath.Base(root) {
		if err := pointTo(promoteTo, want); err != nil {
			return "", "", err
		}
		was, now = "nothing", want
		if lerr == nil {
			was = filepath.Base(target)
		}
	}
	return was, now, writeJSONAtomic(filepath.Join(root, "history.json"), h)
}

// FinishCutOffPromotion finishes a promotion or rollback cut off between recording itself and
// switching the link promoteTo (named as shown), and says so; "" when there was none.
func FinishCutOffPromotion(promoteTo, shown string) (string, error) {
	if h, err := readHistory(promoteTo + ".d"); err != nil || h.Pending == "" {
		return "", nil // nothing pending; a promotion under way now is its own process's
	}
	unlock, err := lockPromotionsOnly(promoteTo + ".d")
	if err != nil {
		return "", err
	}
	defer unlock()
	was, now, err := settle(promoteTo) // under the lock: no promotion is under way
	switch {
	case err != nil:
		return "", fmt.Errorf("a promotion or rollback of %s was cut off, and it could not be finished: %w", shown, err)
	case now != "":
		return fmt.Sprintf("a promotion or rollback was cut off: %s led to %s, and now to %s, as history.json says", shown, was, now), nil
	}
	return "", nil
}

// clone returns a copy of h that changes to h leave alone.
func (h promoteHistory) clone() promoteHistory {
	return promoteHistory{Promotions: slices.Clone(h.Promotions), RolledBack: slices.Clone(h.RolledBack), Pending: h.Pending}
}

// reinstall installs the champion's model again, from savedModel (its store output), in its
// own folder under its card's id, which the link names already: a champion whose files were
// damaged on disk, repaired.
func reinstall(promoteTo, savedModel string, card Card) error {
	unlock, err := lockPromotions(promoteTo + ".d")
	if err != nil {
		return err
	}
	defer unlock()
	return install(promoteTo, savedModel, card)
}

// filesDiffer reports whether a folder of files (a champion's saved_model) differs from want
// (the store output it was installed from): a file of want missing from it, or another file
// (not a hard link to want's) of other content, or one that is not a regular file (a named
// pipe, a device), which is never read. Files of want are hard links to it unless it was
// copied from another file system, so this mostly costs a stat a file; a copy (which keeps its
// original's modification time) is read only when its size or time differs, and given the
// original's time when its content is the same, so that it is read once. A file of want that
// is not a regular one is an error (notModelFile).
func filesDiffer(dir, want string) (bool, error) {
	differs := false
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || differs {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		wi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if err := notModelFile(p, wi); err != nil {
			return err
		}
		gi, err := os.Stat(filepath.Join(dir, rel))
		switch {
		case err != nil:
			differs = true
		case os.SameFile(wi, gi):
		case !gi.Mode().IsRegular():
			differs = true
		case wi.Size() != gi.Size():
			differs = true
		case wi.ModTime().Equal(gi.ModTime()):
		default:
			a, err := hashRegular(p)
			if err != nil {
				return err
			}
			b, err := hashRegular(filepath.Join(dir, rel))
			same := err == nil && a == b // unreadable, or no longer a regular file: not the same
			differs = !same
			if same {
				os.Chtimes(filepath.Join(dir, rel), wi.ModTime(), wi.ModTime())
			}
		}
		return nil
	})
	return differs, err
}

// hashRegular returns the SHA-256 (hex) of the file at path, read only if it is a regular
// file (regular.Open): a named pipe would be waited on for ever.
func hashRegular(path string) (string, error) {
	f, _, err := regular.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return pipeline.HashReader(f)
}

// checkSavedModelFiles returns an error naming the first file of the SavedModel folder dir
// that is neither a regular file nor a folder after links (notModelFile): a named pipe, a
// device, a socket. A SavedModel holds none, and promoting a folder that does would put it in
// the champion's folder, where copying it, or reading it, waits for ever on a named pipe.
func checkSavedModelFiles(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil // a link leading nowhere: linked as it is
		}
		return notModelFile(p, fi)
	})
}

// notModelFile is the error for the file of a SavedModel folder at path, of info fi (after
// links), when it is neither a regular file nor a folder; nil when it is one.
func notModelFile(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() || fi.IsDir() {
		return nil
	}
	return fmt.Errorf("%w; a model holds only regular files and folders: remove it", &regular.Error{Path: path, Kind: fi.Mode().Type()})
}

// install puts a SavedModel (hard links) and its card into the champion folder card.ID; the
// caller holds the promotions' lock, and records the promotion and switches the link
// (commit). A SavedModel holding a named pipe or a device is refused (checkSavedModelFiles).
func install(promoteTo, savedModel string, card Card) error {
	root := promoteTo + ".d"
	if _, err := adoptLegacy(promoteTo); err != nil {
		return err
	}
	tmp, err := pipeline.MkdirTemp(root, ".promote-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := checkSavedModelFiles(savedModel); err != nil {
		return err
	}
	if err := pipeline.LinkTree(savedModel, filepath.Join(tmp, "saved_model")); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(tmp, "model.json"), card); err != nil {
		return err
	}
	final := filepath.Join(root, card.ID)
	os.RemoveAll(final)
	return os.Rename(tmp, final)
}

// switchChampion makes model id (of store path source) the champion of promoteTo under the
// promotions' lock: check may refuse, given the current champion's folder ("" for none; an
// adopted legacy folder is one in the .d folder); put makes id's folder ready; the history
// records the promotion, lifts a block on the model and blocks the champion set aside
// (returned), and the link is switched (commit).
func switchChampion(promoteTo, id, source string, check func(cur string) error, put func() error) (lifted, aside *RolledBack, err error) {
	root := promoteTo + ".d"
	if err := checkAdoptable(promoteTo); err != nil {
		return nil, nil, err
	}
	unlock, err := lockPromotions(root)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	cur, _ := ChampionDir(promoteTo)
	legacy, err := adoptLegacy(promoteTo)
	if err != nil {
		return nil, nil, err
	}
	if legacy != "" {
		cur = filepath.Join(root, legacy)
	}
	if err := check(cur); err != nil {
		return nil, nil, err
	}
	h, err := readHistory(root) // after adoptLegacy, which records the adopted folder; before any change
	if err != nil {
		return nil, nil, err
	}
	if err := put(); err != nil {
		return nil, nil, err
	}
	old := h.clone()
	h.record(id)
	lifted, aside = h.change(cur, id, source, SetAsideByPromotion) // cur is the champion's folder, not the link
	if err := commit(promoteTo, id, h, old); err != nil {
		return nil, nil, err
	}
	return lifted, aside, nil
}

// ErrNotPromoted is PromoteAgain's error for an id no promotion has, or RUN/FOLDER whose
// promoted folder is gone: the model may still be in a run folder (PromoteFromRun).
var ErrNotPromoted = errors.New("never promoted")

// AlreadyChampionError is PromoteAgain's and PromoteFromRun's error for a model that is the
// champion already (and can serve): nothing was changed.
type AlreadyChampionError struct{ Msg string }

func (e *AlreadyChampionError) Error() string { return e.Msg }

// PromoteFromRun makes the model trained in run folder runDir, in its folder there (cnn,
// cnn.fast; or the candidate name, the training's for_each key), the champion by hand, though
// select did not promote it: its card gets the metrics of its evaluation in that folder, if
// any. A model promoted before under another id (the same store object) is promoted again
// under that id (PromoteAgain). As with PromoteAgain, a block on the model is lifted
// (returned as lifted) and the champion it sets aside is not promoted again automatically
// (returned as aside).
func PromoteFromRun(promoteTo, runDir, folder string) (*Card, *RolledBack, *RolledBack, error) {
	folder = strings.TrimRight(folder, "/") // as a shell completes a folder
	var rec pipeline.RunRecord
	b, err := os.ReadFile(filepath.Join(runDir, "run.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, unfinishedRun(runDir, folder)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("run folder %s: %w", runDir, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", filepath.Join(runDir, "run.json"), err)
	}
	// A candidate name (select's ranking in the run names each candidate's model) stands for
	// the folder of the training whose output that model is.
	candidate := map[string]bool{}
	decisions, _ := filepath.Glob(filepath.Join(runDir, "*", "decision", "decision.json"))
	for _, f := range decisions {
		var dec Decision
		if readJSONFileIfExists(f, &dec) {
			for _, c := range dec.Ranking {
				if c.Name == folder {
					candidate[c.Model] = true
				}
			}
		}
	}
	var source string
	var folders []string
	for _, st := range rec.Stages {
		if _, ok := PromotedSavedModel(filepath.Join(runDir, st.Artifacts)); !ok || st.Output == "" || !strings.HasPrefix(st.Addr, "train.") {
			continue
		}
		folders = append(folders, st.Artifacts)
		model := filepath.ToSlash(filepath.Join(pipeline.ObjectRel(st.Output), "saved_model"))
		if st.Artifacts == folder || candidate[model] {
			source, folder = model, st.Artifacts
		}
	}
	if source == "" {
		return nil, nil, nil, fmt.Errorf("run %s has no trained model in a folder %q; its models: %s", filepath.Base(runDir), folder, cmp.Or(strings.Join(folders, ", "), "none"))
	}
	saved := filepath.Join(runDir, folder, "saved_model")
	info, err := graphs.ReadModelInfo(saved)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := graphs.CheckModel(saved); err != nil {
		return nil, nil, nil, fmt.Errorf("not promoted: %w; the champion is unchanged", err)
	}
	// The same model promoted before under another id (from the run that trained it, this
	// run having found it cached): that promotion again, not a second copy of the model.
	for _, id := range promotedIDList(promoteTo + ".d") {
		dir := filepath.Join(promoteTo+".d", id)
		if c, err := ReadCard(dir); err == nil && c.Source == source && id != sanitizeID(filepath.Base(runDir)+"-"+folder) && checkPromoted(dir) == nil {
			return PromoteAgain(promoteTo, id)
		}
	}
	card := Card{ID: sanitizeID(filepath.Base(runDir) + "-" + folder), Architecture: info.Spec.Architecture, Classes: info.Classes,
		Input: info.Input, Metrics: map[string]metric{}, Source: source, Run: filepath.Base(runDir), Promoted: time.Now().UTC()}
	var ev Evaluation
	if readJSONFileIfExists(filepath.Join(runDir, folder, "evaluation", "metrics.json"), &ev) {
		card.Metrics, card.Metric, card.TestSet, card.SeenInTraining = ev.MetricMap(), EvaluationMetrics[0], ev.TestSet, ev.SeenInTraining
	}
	root := promoteTo + ".d"
	// The champion, when it is this model but broken (its weights deleted, say), is installed
	// again in its folder, under its id: the champion repaired, not a new promotion.
	repair := ""
	if cur, _ := ChampionDir(promoteTo); cur != "" && filepath.Base(filepath.Dir(cur)) == filepath.Base(root) {
		if c, err := ReadCard(cur); err == nil && c.Source == source && checkPromoted(cur) != nil {
			repair, card.ID = cur, filepath.Base(cur)
		}
	}
	made := false // the folder card.ID is this promotion's
	lifted, aside, err := switchChampion(promoteTo, card.ID, source, func(cur string) error {
		if cur != "" && cur != repair {
			if c, err := ReadCard(cur); err == nil && c.Source == source {
				return &AlreadyChampionError{fmt.Sprintf("%s is already the champion in %s (as %s)", filepath.Join(filepath.Base(runDir), folder), promoteTo, c.ID)}
			}
		}
		// A folder of that id whose model is broken is installed again.
		if dir := filepath.Join(root, card.ID); repair == "" {
			if _, err := os.Stat(dir); err == nil && checkPromoted(dir) == nil {
				return fmt.Errorf("%s holds a model %s already; pipeline promote %[2]s makes it the champion", root, card.ID)
			}
		}
		return nil
	}, func() error {
		_, serr := os.Stat(filepath.Join(root, card.ID))
		made = serr != nil
		return install(promoteTo, saved, card)
	})
	if err != nil {
		if made {
			dropUnrecorded(root, card.ID, true)
		}
		return nil, nil, nil, err
	}
	return &card, lifted, aside, nil
}

// unfinishedRun is PromoteFromRun's error for a run folder without run.json: there is no such
// folder, or the run was killed (or is still running), so which store object each of its
// models is cannot be told.
func unfinishedRun(runDir, folder string) error {
	if _, err := os.Stat(runDir); err != nil {
		return fmt.Errorf("there is no run folder %s; `pipeline runs` lists the run folders", runDir)
	}
	models := modelFolders(runDir)
	run := filepath.Base(runDir)
	if strings.HasSuffix(run, "-selftest") {
		return fmt.Errorf("%s is a folder of pipeline selftest, whose models learn synthetic images to check the TensorFlow build: they are not promoted; promote a model of a pipeline run (`pipeline runs` lists them)", run)
	}
	if slices.Contains(models, folder) {
		return fmt.Errorf("run %s did not finish (its folder has no run.json: it was killed, or is still running), so its model %s cannot be promoted by hand; run the pipeline again, which reuses what that run finished", run, folder)
	}
	return fmt.Errorf("run %s has no model %s: it did not finish (its folder has no run.json: it was killed, or is still running); models in its folder: %s", run, folder, cmp.Or(strings.Join(models, ", "), "none"))
}

// adoptLegacy moves a real folder at promoteTo (from an older layout or put there by hand)
// into the .d folder as a promotion, so that promoteTo can become a link, and returns its id
// ("" when there was none). Only a folder that holds a model (its model.json or saved_model/)
// or nothing is moved: any other folder or file there (the runs folder, a source folder of
// photos, named as promote_to by mistake) is refused, left where it is.
func adoptLegacy(promoteTo string) (string, error) {
	fi, err := os.Lstat(promoteTo)
	if err != nil || fi.Mode()&os.ModeSymlink != 0 {
		return "", nil
	}
	if err := adoptable(promoteTo, fi); err != nil {
		return "", err
	}
	root := promoteTo + ".d"
	legacy := fmt.Sprintf("legacy-%s", time.Now().UTC().Format("20060102_150405"))
	if err := os.Rename(promoteTo, filepath.Join(root, legacy)); err != nil {
		return "", err
	}
	return legacy, appendHistory(root, legacy)
}

// checkAdoptable is adoptable for whatever is at promoteTo: nil when nothing or a link is
// there. Promotions call it before they make the .d folder beside promoteTo.
func checkAdoptable(promoteTo string) error {
	fi, err := os.Lstat(promoteTo)
	if err != nil || fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	return adoptable(promoteTo, fi)
}

// adoptable is adoptLegacy's check that the real folder at promoteTo, of info fi, is a
// champion put there by hand or by an older layout (it holds model.json or saved_model/), or
// an empty folder: nil when it is, else an error saying that promoteTo holds something else.
func adoptable(promoteTo string, fi fs.FileInfo) error {
	what := "a file"
	if fi.IsDir() {
		entries, err := os.ReadDir(promoteTo)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		for _, e := range entries {
			if e.Name() == "model.json" || e.Name() == "saved_model" {
				return nil
			}
		}
		what = "a folder that holds no model (no model.json or saved_model/ in it) but other files"
	}
	return fmt.Errorf("%s is %s: a promotion makes it a link to the champion, and would move it aside; promote_to (or promote's --to) names a folder for the champion alone, such as models/final_models, not the runs folder or a folder of photos", promoteTo, what)
}

// lockPromotionsOnly takes the lock of the promotions kept in root (<promoteTo>.d/.lock),
// waiting while another process holds it, and returns its release: a run's select and the
// promote command each change the champion link and history.json in one go, whatever
// workspace they were started from.
func lockPromotionsOnly(root string) (func(), error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", root, err)
	}
	return func() { f.Close() }, nil // closing releases the flock
}

// lockPromotions is lockPromotionsOnly for a change to the promotions: holding the lock, it
// first finishes a promotion or rollback that was cut off (settle) and removes what a
// promotion killed while it copied a model left (none is being written now).
func lockPromotions(root string) (func(), error) {
	unlock, err := lockPromotionsOnly(root)
	if err != nil {
		return nil, err
	}
	settle(strings.TrimSuffix(root, ".d")) // best effort: its error is said by the next change's own
	if tmps, err := filepath.Glob(filepath.Join(root, ".promote-*")); err == nil {
		for _, t := range tmps {
			os.RemoveAll(t)
		}
	}
	return unlock, nil
}

// pointTo atomically makes promoteTo a link to <promoteTo>.d/<id>.
func pointTo(promoteTo, id string) error {
	target := filepath.Join(filepath.Base(promoteTo)+".d", id)
	tmp := promoteTo + ".link-tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, promoteTo)
}

// History returns what <promoteTo>.d/history.json records: the promotions, oldest first
// (the last is the champion), and the models set aside, which select does not promote again.
func History(promoteTo string) ([]string, []RolledBack, error) {
	h, err := readHistory(promoteTo + ".d")
	return h.Promotions, h.RolledBack, err
}

// PromotedRuns returns the runs (their folders' names) a model of which promoteTo's history
// records as promoted, by select or by hand, each with the folders of its models promoted (the
// candidates, as in the promoted ids RUN-FOLDER), each once in the order first promoted; none
// when it has no history.
func PromotedRuns(promoteTo string) map[string][]string {
	h, _ := readHistory(promoteTo + ".d")
	runs := map[string][]string{}
	for _, id := range h.Promotions {
		if run, folder, ok := RunOfPromotion(id); ok && !slices.Contains(runs[run], folder) {
			runs[run] = append(runs[run], folder)
		}
	}
	return runs
}

// SetAsideRuns returns the models promoteTo's history records as set aside since (rolled back,
// or replaced by a promotion by hand), by run (their folders' names) and, in each, by the
// model's folder there (the candidate, as in the promoted id RUN-FOLDER): how it was set aside
// (RolledBack.By).
func SetAsideRuns(promoteTo string) map[string]map[string]string {
	h, _ := readHistory(promoteTo + ".d")
	runs := map[string]map[string]string{}
	for _, r := range h.RolledBack {
		if run, folder, ok := RunOfPromotion(r.ID); ok {
			if runs[run] == nil {
				runs[run] = map[string]string{}
			}
			runs[run][folder] = r.By
		}
	}
	return runs
}

// readHistory reads the .d folder's history.json (empty when there is none yet). A file that
// cannot be read or parsed is an error: writing a new history over it would lose every
// promotion and rollback it records. A named pipe or a device there is not read (a
// *regular.Error): serve's watcher reads it too.
func readHistory(root string) (promoteHistory, error) {
	var h promoteHistory
	path := filepath.Join(root, "history.json")
	b, err := regular.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%s: %w; it records the promotions and rollbacks: repair or move it", path, err)
	}
	return h, nil
}

func appendHistory(root, id string) error {
	h, err := readHistory(root)
	if err != nil {
		return err
	}
	h.record(id)
	return writeJSONAtomic(filepath.Join(root, "history.json"), h)
}

// record adds the promotion of id, unless id is the champion already (its folder installed
// again, as when a champion whose folder was deleted is promoted from its run again): a
// rollback goes back to the previous champion, which is never the current one.
func (h *promoteHistory) record(id string) {
	if n := len(h.Promotions); n == 0 || h.Promotions[n-1] != id {
		h.Promotions = append(h.Promotions, id)
	}
}

// Rollback makes the previous champion current again and returns its id. The rolled-back
// model stays on disk (in the .d folder) but leaves the promotions, and is recorded as rolled
// back, so that the select stage does not promote it again; PromoteAgain can. The record
// of the model set aside is returned too (nil when it is the previous champion's model under
// another id). The previous champion is the last promotion of another id (a history written
// before record existed may list the champion twice in a row); one whose folder is gone or
// whose model is broken is not gone back to: the error says what else can be.
func Rollback(promoteTo string) (string, *RolledBack, error) {
	root := promoteTo + ".d"
	if _, err := os.Stat(root); err != nil {
		return "", nil, fmt.Errorf("%s has no previous champion to roll back to: no promotion is on record; %s", promoteTo, otherModels(root))
	}
	unlock, err := lockPromotions(root)
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	h, err := readHistory(root)
	if err != nil {
		return "", nil, err
	}
	i := h.previous()
	if i < 0 {
		if len(h.Promotions) == 0 {
			return "", nil, fmt.Errorf("%s has no previous champion to roll back to: no promotion is on record; %s", promoteTo, otherModels(root))
		}
		cur := h.Promotions[len(h.Promotions)-1]
		off := "" // rollbacks take champions off the record; say so when some were
		if n := len(h.RolledBack); n > 0 {
			off = fmt.Sprintf(" (%s rolled back or set aside, which --rollback does not go back to)", pipeline.Plural(n, "model", "models"))
		}
		return "", nil, fmt.Errorf("%s has no previous champion to roll back to: %s is the only champion on record%s; %s", promoteTo, cur, off, otherModels(root, cur))
	}
	cur, prev := h.Promotions[len(h.Promotions)-1], h.Promotions[i]
	next := otherModels(root, cur, prev)
	if _, err := os.Stat(filepath.Join(root, prev)); err != nil {
		return "", nil, fmt.Errorf("previous champion %s is missing from %s (its folder was deleted); the champion is still %s; %s%s",
			prev, root, cur, next, reinstallHint(root, prev))
	}
	if err := checkPromoted(filepath.Join(root, prev)); err != nil {
		return "", nil, fmt.Errorf("not rolled back: the previous champion %s cannot serve: %w; the champion is still %s; %s%s", prev, err, cur, next, reinstallHint(root, prev))
	}
	var prevSource string
	if c, err := ReadCard(filepath.Join(root, prev)); err == nil {
		prevSource = c.Source
	}
	old := h.clone()
	h.Promotions = h.Promotions[:i+1]
	_, aside := h.change(filepath.Join(root, cur), prev, prevSource, SetAsideByRollback)
	if err := commit(promoteTo, prev, h, old); err != nil {
		return "", nil, err
	}
	return prev, aside, nil
}

// previous returns the index in the promotions of the previous champion, the last promotion
// of another id than the champion's (a history written before record existed may list the
// champion twice in a row); -1 when there is none.
func (h promoteHistory) previous() int {
	n := len(h.Promotions)
	i := n - 1
	for i >= 0 && h.Promotions[i] == h.Promotions[n-1] {
		i--
	}
	return i
}

// otherModels says, for a message, how a model can be made the champion: by `pipeline
// promote ID` of a model in the .d folder root whose files are there (graphs.CheckFiles), but
// those of the ids not (the champion, say), or by `pipeline promote RUN/FOLDER`.
func otherModels(root string, not ...string) string {
	next := "`pipeline promote RUN/FOLDER` makes a model of a run folder the champion"
	h, _ := readHistory(root)
	onRecord := func(id string) bool { // promoted before, not a folder a failed promotion left
		return slices.Contains(h.Promotions, id) || slices.ContainsFunc(h.RolledBack, func(r RolledBack) bool { return r.ID == id })
	}
	others := slices.DeleteFunc(promotedIDList(root), func(id string) bool {
		return slices.Contains(not, id) || !onRecord(id) || graphs.CheckFiles(SavedModelOf(filepath.Join(root, id))) != nil
	})
	if len(others) > 0 {
		next = fmt.Sprintf("`pipeline promote ID` makes another model promoted before the champion (%s), or ", strings.Join(others, ", ")) + next
	}
	return next
}

// reinstallHint suggests, for a promoted model id of the promotion folder root (the .d
// folder) whose folder is gone or broken, installing it again from its run folder ("" for an
// id that does not name one). Run folders are most often beside the promotion folder
// (models/): when its run folder is not there, the hint says so (gc may have removed it).
func reinstallHint(root, id string) string {
	run, folder, ok := RunOfPromotion(id)
	if !ok {
		return ""
	}
	if runs := filepath.Dir(root); !isDir(filepath.Join(runs, run)) {
		return fmt.Sprintf(" (`pipeline promote %s/%s` would install %s again from its run folder, which is not in %s)", run, folder, id, runs)
	}
	return fmt.Sprintf(" (`pipeline promote %s/%s` installs %s again from its run folder)", run, folder, id)
}

// RunOfPromotion splits a promoted model's id into its run folder and the model's folder there:
// ids are RUN-FOLDER, and run folders are named by their time (20261206_120000), with -N after
// it for the second run started in the same second. ok is false for an id that is not such
// (legacy-…).
func RunOfPromotion(id string) (run, folder string, ok bool) {
	run, folder, ok = strings.Cut(id, "-")
	if n, rest, two := strings.Cut(folder, "-"); two && n != "" && strings.Trim(n, "0123456789") == "" {
		run, folder = run+"-"+n, rest
	}
	return run, folder, ok && run != "" && folder != "" && run != "legacy"
}

// change records in h that the champion folder cur gives way to the model id (whose card
// names source): any block on that model is lifted (returned as lifted), and the champion
// is set aside so that select does not promote it again (returned as aside; nil when cur is
// "", the folder of id itself, or the same model under another id); by says what sets it
// aside (RolledBack.By).
func (h *promoteHistory) change(cur, id, source, by string) (lifted, aside *RolledBack) {
	same := func(r RolledBack, id, source string) bool { return r.ID == id || (source != "" && r.Source == source) }
	h.RolledBack = slices.DeleteFunc(h.RolledBack, func(r RolledBack) bool {
		if same(r, id, source) {
			lifted = &r
			return true
		}
		return false
	})
	// The champion's own folder, installed again (its card unreadable, say), is not set aside:
	// it is the champion still, whatever its card says of its source.
	if cur == "" || filepath.Base(cur) == id {
		return lifted, nil
	}
	rb := RolledBack{ID: filepath.Base(cur), At: time.Now().UTC(), By: by}
	if c, err := ReadCard(cur); err == nil {
		rb.Source = c.Source
	}
	if rb.Source != "" && rb.Source == source {
		return lifted, nil
	}
	h.RolledBack = append(slices.DeleteFunc(h.RolledBack, func(r RolledBack) bool { return same(r, rb.ID, rb.Source) }), rb)
	return lifted, &rb
}

// PromoteAgain makes the model <promoteTo>.d/<id>, promoted before (a rolled-back one, say),
// the champion again and returns its card; when it had been rolled back, the record of that
// rollback, which it removes so that the select stage treats the model as any other; and the
// record of the champion it sets aside, as a rollback would (nil for none, or for the same
// model under another id).
// id may also be given as RUN/CANDIDATE, or RUN/FOLDER with the run folder's name for the
// model (cnn.fast for the candidate fast), with or without a trailing slash. The model is
// checked first (graphs.CheckModel): a broken one is refused, with a *graphs.BrokenModelError
// in the chain, and the champion stays.
func PromoteAgain(promoteTo, id string) (*Card, *RolledBack, *RolledBack, error) {
	root := promoteTo + ".d"
	given := id
	id = strings.TrimRight(id, "/") // as a shell completes a folder
	run, cand, isRun := strings.Cut(id, "/")
	if isRun {
		if !plainName(run) || !plainName(cand) {
			return nil, nil, nil, fmt.Errorf("%q is neither a model id nor RUN/FOLDER (a run folder's name, then the folder of one of its models); promoted models: %s", given, promotedIDs(root))
		}
		id = sanitizeID(run + "-" + cand)
		// RUN/FOLDER as the run folder names it (cnn.fast for the candidate fast).
		if _, err := os.Stat(filepath.Join(root, id)); err != nil {
			if _, key, ok := strings.Cut(cand, "."); ok {
				id = sanitizeID(run + "-" + key)
			}
		}
	} else if !plainName(id) {
		return nil, nil, nil, fmt.Errorf("%q is neither a model id (a folder in %s) nor RUN/FOLDER; promoted models: %s", given, root, promotedIDs(root))
	}
	dir := filepath.Join(root, id)
	if _, err := os.Stat(dir); err != nil {
		h, _ := readHistory(root)
		if !isRun && (slices.Contains(h.Promotions, id) || slices.ContainsFunc(h.RolledBack, func(r RolledBack) bool { return r.ID == id })) {
			return nil, nil, nil, fmt.Errorf("%s was promoted before, but its folder %s is gone%s; promoted models: %s", id, dir, reinstallHint(root, id), promotedIDs(root))
		}
		if like := pipeline.Suggest(id, promotedIDList(root)); like != "" {
			return nil, nil, nil, fmt.Errorf("%s holds no model %s (%w); did you mean %s? promoted models: %s", root, id, ErrNotPromoted, like, promotedIDs(root))
		}
		return nil, nil, nil, fmt.Errorf("%s holds no model %s (%w); promoted models: %s", root, id, ErrNotPromoted, promotedIDs(root))
	}
	card, err := ReadCard(dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("model %s cannot be promoted: %w", id, err)
	}
	if err := checkPromoted(dir); err != nil {
		if cur, _ := ChampionDir(promoteTo); cur != "" && filepath.Base(cur) == id {
			return nil, nil, nil, fmt.Errorf("%s is the champion in %s, but %w; promoting it again cannot repair it: %s", id, promoteTo, err, BrokenChampionNext(promoteTo, id))
		}
		return nil, nil, nil, fmt.Errorf("not promoted: %w; the champion is unchanged%s", err, reinstallHint(root, id))
	}
	restore := false
	lifted, aside, err := switchChampion(promoteTo, id, card.Source, func(cur string) error {
		if cur != "" && filepath.Base(cur) == id {
			return &AlreadyChampionError{fmt.Sprintf("%s is already the champion in %s", id, promoteTo)}
		}
		restore = restoresLink(promoteTo, id)
		return nil
	}, func() error {
		if !restore {
			card.Promoted = time.Now().UTC()
			return writeJSONAtomic(filepath.Join(dir, "model.json"), card)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return card, lifted, aside, nil
}

// restoresLink reports whether making id the champion of promoteTo only puts back the link:
// promoteTo is missing while the history names id as the champion, whose folder is there.
// The champion keeps its promotion time, and the history is as it was.
func restoresLink(promoteTo, id string) bool {
	var missing *MissingChampionError
	_, err := ChampionDir(promoteTo)
	return errors.As(err, &missing) && missing.Target == "" && missing.Present && missing.Champion == id
}

// NotPromotedHint says, for an id PromoteAgain found never promoted in promoteTo, how a model
// of the runs folder runsDir it may mean is promoted: for the name of a run folder, `pipeline
// promote RUN/FOLDER` of each of its models (or, for one promoted before as RUN-FOLDER, that
// it is the champion, or `pipeline promote RUN-FOLDER`); for RUN-FOLDER whose run folder
// holds the model, `pipeline promote RUN/FOLDER`. It returns "" when id names neither.
func NotPromotedHint(promoteTo, runsDir, id string) string {
	id = strings.TrimRight(id, "/")
	if !plainName(id) {
		return ""
	}
	if isDir(filepath.Join(runsDir, id)) {
		models := modelFolders(filepath.Join(runsDir, id))
		if len(models) == 0 {
			return fmt.Sprintf("%s is a run folder, which holds no model", id)
		}
		var cmds, promoted []string
		champion := ""
		if card, err := ReadCard(promoteTo); err == nil {
			champion = card.ID
		}
		for _, m := range models {
			switch pid := id + "-" + m; {
			case pid == champion:
				promoted = append(promoted, fmt.Sprintf("its model %s is the champion (%s)", m, pid))
			case isDir(filepath.Join(promoteTo+".d", pid)):
				promoted = append(promoted, fmt.Sprintf("`pipeline promote %s` makes its model %s the champion again", pid, m))
			default:
				cmds = append(cmds, fmt.Sprintf("`pipeline promote %s/%s`", id, m))
			}
		}
		if len(cmds) > 0 {
			promoted = append(promoted, fmt.Sprintf("%s makes its model the champion", strings.Join(cmds, " or ")))
		}
		return fmt.Sprintf("%s is a run folder: %s", id, strings.Join(promoted, "; "))
	}
	run, folder, ok := RunOfPromotion(id)
	if !ok {
		return ""
	}
	for _, m := range modelFolders(filepath.Join(runsDir, run)) {
		if m == folder || strings.HasSuffix(m, "."+folder) {
			return fmt.Sprintf("`pipeline promote %s/%s` makes the model of run %[1]s in its folder %[2]s the champion", run, m)
		}
	}
	return ""
}

// BrokenChampionNext says how to repair or replace the champion id of promoteTo, whose model
// is broken: the promote commands to run, for a message. --rollback is suggested only when
// the history has a previous champion whose files are there (graphs.CheckFiles).
func BrokenChampionNext(promoteTo, id string) string {
	var next []string
	if run, folder, ok := RunOfPromotion(id); ok {
		hint := fmt.Sprintf("`pipeline promote %s/%s` installs it again from its run folder", run, folder)
		// Run folders are most often beside the promotion folder (models/).
		if runs := filepath.Dir(promoteTo); !isDir(filepath.Join(runs, run)) {
			hint = fmt.Sprintf("`pipeline promote %s/%s` would install it again from its run folder, which is not in %s", run, folder, runs)
		}
		next = append(next, hint)
	}
	root := promoteTo + ".d"
	h, _ := readHistory(root)
	not := []string{id}
	if i := h.previous(); i >= 0 && h.Promotions[len(h.Promotions)-1] == id {
		prev := h.Promotions[i]
		if _, err := os.Stat(filepath.Join(root, prev)); err == nil && graphs.CheckFiles(SavedModelOf(filepath.Join(root, prev))) == nil {
			next = append(next, fmt.Sprintf("`pipeline promote --rollback` goes back to the previous champion (%s)", prev))
			not = append(not, prev)
		}
	}
	next = append(next, otherModels(root, not...))
	return strings.Join(next, "; ")
}

// plainName reports whether s names a folder inside another: not empty, no separator, not
// hidden, not . or ..
func plainName(s string) bool {
	return s != "" && !strings.ContainsAny(s, `/\`) && !strings.HasPrefix(s, ".")
}

// PromotedFolder is the folder part of the id a model promoted from select candidate name
// gets (RUN-FOLDER): the name, with any /, \, space, double quote or bracket as _.
func PromotedFolder(name string) string { return sanitizeID(name) }

// sanitizeID makes a folder-safe id.
func sanitizeID(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == '"' || r == '[' || r == ']' {
			return '_'
		}
		return r
	}, s)
}

// ClassChange describes how the class list now differs from was ("" when it is the same):
// the classes it adds and drops, and the classes of both whose ids (indexes) move, or a new
// order (class ids then differ): `adds "Amanita"; the ids of 2 classes move ("Boletus" 0 → 1,
// "Russula" 1 → 2)`.
func ClassChange(was, now []string) string {
	if slices.Equal(was, now) {
		return ""
	}
	added, dropped := classDiff(was, now)
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "adds "+quoteList(added))
	}
	if len(dropped) > 0 {
		parts = append(parts, "drops "+quoteList(dropped))
	}
	if len(parts) == 0 {
		return "the same classes in another order (class ids differ)"
	}
	if moved := movedIDs(was, now); len(moved) > 0 {
		parts = append(parts, fmt.Sprintf("the ids of %s move (%s)", plural(len(moved), "class", "classes"), pipeline.ListSome(moved, 3)))
	}
	return strings.Join(parts, "; ")
}

// movedIDs lists the classes of was, each as "NAME i → j", whose id (index) differs in now;
// classes now lacks are not listed.
func movedIDs(was, now []string) []string {
	var moved []string
	for i, c := range was {
		if j := slices.Index(now, c); j >= 0 && j != i {
			moved = append(moved, fmt.Sprintf("%q %d → %d", c, i, j))
		}
	}
	return moved
}

// classDiff returns the classes of now that was lacks and those of was that now lacks, each
// in its list's order.
func classDiff(was, now []string) (added, dropped []string) {
	for _, c := range now {
		if !slices.Contains(was, c) {
			added = append(added, c)
		}
	}
	for _, c := range was {
		if !slices.Contains(now, c) {
			dropped = append(dropped, c)
		}
	}
	return added, dropped
}

// isDir reports whether path is a folder (or a link to one).
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
