package stages

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"pipeline/pipeline"
)

// PrunedModel is a promoted model's folder that PruneChampions removed (or would remove).
type PrunedModel struct {
	ID string
	// Freed is the size of its files that no other path links to (a promoted model's files
	// are hard links to the store's while the store keeps that output, and then free
	// nothing); Bytes is the size of all of them.
	Freed, Bytes int64
	// Promoted is when it was promoted (zero when its card cannot be read), and SetAside
	// what set it aside, when (RolledBack.How; "" for an earlier champion).
	Promoted time.Time
	SetAside string
}

// PruneChampions removes from <promoteTo>.d the folders of models that are neither the
// champion nor one of the keep champions before it whose folders are there (those --rollback
// goes back through, newest first): older champions, and models rolled back. A model the
// history does not name (a folder put there by hand) stays. history.json keeps every record, so
// select still does not promote a model rolled back again; --rollback and `pipeline promote
// ID` of a removed model say its folder was deleted, with the RUN/FOLDER that installs it
// again from its run folder while that is kept. The models come in the history's order, oldest
// first. With dryRun nothing is removed. The promotions' lock is held throughout, as by
// promote and select.
func PruneChampions(promoteTo string, keep int, dryRun bool) ([]PrunedModel, error) {
	root := promoteTo + ".d"
	if _, err := os.Stat(root); err != nil {
		return nil, nil // nothing was ever promoted there
	}
	lock := lockPromotions
	if dryRun {
		lock = lockPromotionsOnly // a dry run changes nothing, a cut-off promotion included
	}
	unlock, err := lock(root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	h, err := readHistory(root)
	if err != nil {
		return nil, err
	}
	present := func(id string) bool { return isModelFolder(filepath.Join(root, id)) }
	kept := map[string]bool{}
	if target, err := os.Readlink(promoteTo); err == nil {
		kept[filepath.Base(target)] = true // the champion, whatever the history says
	}
	n := len(h.Promotions)
	if n > 0 {
		kept[h.Promotions[n-1]] = true
	}
	for i, before := n-2, 0; i >= 0 && before < keep; i-- {
		if id := h.Promotions[i]; !kept[id] && present(id) {
			kept[id] = true
			before++
		}
	}
	// The history's models, oldest first: promotions, then those rolled back.
	var known []string
	aside := map[string]string{}
	for _, id := range h.Promotions {
		if !slices.Contains(known, id) {
			known = append(known, id)
		}
	}
	for _, r := range h.RolledBack {
		aside[r.ID] = r.How()
		if !slices.Contains(known, r.ID) {
			known = append(known, r.ID)
		}
	}
	var pruned []PrunedModel
	for _, id := range known {
		dir := filepath.Join(root, id)
		if kept[id] || !plainName(id) || !present(id) {
			continue
		}
		p := PrunedModel{ID: id, SetAside: aside[id]}
		p.Freed, p.Bytes = pipeline.FreedBytes([]string{dir}, root), pipeline.DirSize(dir)
		if c, err := ReadCard(dir); err == nil {
			p.Promoted = c.Promoted
		}
		if !dryRun {
			if err := os.RemoveAll(dir); err != nil {
				return pruned, err
			}
		}
		pruned = append(pruned, p)
	}
	return pruned, nil
}

// isModelFolder reports whether dir, in a .d folder, holds a promoted model (a card or a
// SavedModel): anything else put there is not the promotions' to remove.
func isModelFolder(dir string) bool {
	for _, name := range []string{"model.json", "saved_model"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// PromotionRemoved reports whether the promoted model id of promoteTo is on record but its
// folder is gone (removed by gc --keep-champions, or by hand), for listing the history.
func PromotionRemoved(promoteTo, id string) bool {
	_, err := os.Lstat(filepath.Join(promoteTo+".d", id))
	return errors.Is(err, fs.ErrNotExist)
}
