package stages

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"pipeline/graphs"
)

// MissingChampionError is ChampionDir's error when the promotions say there is a champion but
// it cannot be found: promoteTo is a link to a folder that is gone (the champion's folder, or
// the whole .d folder, deleted), or promoteTo itself is gone while history.json names a
// champion. A run's select takes it for no champion; the promote command reports it.
type MissingChampionError struct {
	PromoteTo string
	Target    string   // the link's target, "" when the link itself is missing
	Champion  string   // the champion history.json names, "" when it names none
	Present   bool     // whether the folder of Champion is there, so that promoting it restores the link
	RootGone  bool     // the .d folder, which holds the promoted models and history.json, is gone
	IDs       []string // the promoted models that are there, for the next step
}

// What says what is missing, without the next step.
func (e *MissingChampionError) What() string {
	root := e.PromoteTo + ".d"
	switch {
	case e.Target == "" && e.Present:
		return fmt.Sprintf("%s is missing but %s names champion %s", e.PromoteTo, filepath.Join(root, "history.json"), e.Champion)
	case e.Target == "":
		return fmt.Sprintf("%s is missing, and so is the folder of the champion %s that %s names", e.PromoteTo, e.Champion, filepath.Join(root, "history.json"))
	case e.RootGone:
		return fmt.Sprintf("%s points to %s, but %s, which holds the promoted models and their history, is gone", e.PromoteTo, e.Target, root)
	}
	return fmt.Sprintf("%s points to %s, which is gone", e.PromoteTo, e.Target)
}

func (e *MissingChampionError) Error() string {
	if e.Target == "" && e.Present {
		return fmt.Sprintf("%s: `pipeline promote %s` restores it", e.What(), e.Champion)
	}
	next := "a run's select promotes its winner, and `pipeline promote RUN/FOLDER` a model of a run folder by hand"
	if len(e.IDs) > 0 {
		next = fmt.Sprintf("`pipeline promote ID` makes a model promoted before the champion again (%s); ", strings.Join(e.IDs, ", ")) + next
	}
	return fmt.Sprintf("%s: there is no champion; %s", e.What(), next)
}

// DefaultPromoteTo is a select stage's promote_to when the file does not set one.
const DefaultPromoteTo = "models/final_models"

// HasDefaultPromotionName reports whether dir is named as select's default promotion folder
// (final_models), which commands take for one before any run has filled it.
func HasDefaultPromotionName(dir string) bool {
	return filepath.Base(filepath.Clean(dir)) == filepath.Base(DefaultPromoteTo)
}

// ChampionDir resolves the current champion's folder: "" and a nil error when there is none
// yet, and a *MissingChampionError when the promotions name one that cannot be found.
func ChampionDir(promoteTo string) (string, error) {
	root := promoteTo + ".d"
	fi, err := os.Lstat(promoteTo)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		h, err := readHistory(root)
		if err != nil || len(h.Promotions) == 0 {
			return "", err
		}
		e := &MissingChampionError{PromoteTo: promoteTo, Champion: h.Promotions[len(h.Promotions)-1], IDs: promotedIDList(root)}
		_, serr := os.Stat(filepath.Join(root, e.Champion))
		e.Present = serr == nil
		return "", e
	case err != nil:
		return "", err
	case fi.Mode()&os.ModeSymlink == 0:
		return promoteTo, nil // a folder put there by hand
	}
	dir, err := filepath.EvalSymlinks(promoteTo)
	if errors.Is(err, fs.ErrNotExist) {
		target, _ := os.Readlink(promoteTo)
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(promoteTo), target)
		}
		e := &MissingChampionError{PromoteTo: promoteTo, Target: target, IDs: promotedIDList(root)}
		if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
			e.RootGone = true
		}
		return "", e
	}
	return dir, err
}

// PromotedSavedModel returns the SavedModel folder of dir and true when dir is laid out as a
// promoted model's folder (or a run folder's model folder): saved_model/ holding its
// model.json; otherwise it returns dir and false.
func PromotedSavedModel(dir string) (string, bool) {
	saved := filepath.Join(dir, "saved_model")
	if _, err := os.Stat(filepath.Join(saved, graphs.ModelInfoFile)); err == nil {
		return saved, true
	}
	return dir, false
}

// modelFolders names the folders of run folder runDir that hold a model (cnn/saved_model),
// in name order.
func modelFolders(runDir string) []string {
	var models []string
	entries, _ := os.ReadDir(runDir)
	for _, e := range entries {
		if _, ok := PromotedSavedModel(filepath.Join(runDir, e.Name())); ok {
			models = append(models, e.Name())
		}
	}
	return models
}

// SavedModelOf returns the SavedModel folder of a promoted model's folder dir: its saved_model/,
// or dir itself for a folder put in place by hand that is a SavedModel.
func SavedModelOf(dir string) string {
	if saved, ok := PromotedSavedModel(dir); ok {
		return saved
	}
	if _, err := os.Stat(filepath.Join(dir, graphs.ModelInfoFile)); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "saved_model.pb")); err == nil {
			return dir
		}
	}
	return filepath.Join(dir, "saved_model")
}

// HoldsModel reports whether dir holds a model exported by pipeline: is one, or holds one as
// a run's or a promotion's folder does (SavedModelOf).
func HoldsModel(dir string) bool {
	_, err := os.Stat(filepath.Join(SavedModelOf(dir), graphs.ModelInfoFile))
	return err == nil
}

// checkPromoted checks the model of the promoted folder dir with graphs.CheckModel: it loads
// and answers a prediction on a blank image.
func checkPromoted(dir string) error { return graphs.CheckModel(SavedModelOf(dir)) }

// promotedIDList lists the model folders in a .d folder, for a next step in a message.
func promotedIDList(root string) []string {
	entries, _ := os.ReadDir(root)
	var ids []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// promotedIDs lists the model folders in a .d folder, for an error message.
func promotedIDs(root string) string {
	ids := promotedIDList(root)
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}
