package stages

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pipeline/graphs"
	"pipeline/pipeline"
)

// A promoted model lives in <promote_to>.d/<id>/ (saved_model/ plus the model.json card), and
// <promote_to> is a symbolic link to the current one, replaced by one atomic rename, so
// readers (pipeline serve) see the old model or the new one, never a mix. history.json in the
// .d folder lists promotions in order, for rollback.

// Card is model.json in a promoted model's folder.
type Card struct {
	ID           string            `json:"id"`
	Architecture string            `json:"architecture"`
	Classes      []string          `json:"classes"`
	Input        graphs.Input      `json:"preprocessing"`
	Metrics      map[string]metric `json:"metrics"`
	Metric       string            `json:"selected_by"`
	Source       string            `json:"source_model"` // the store path it was copied from
	Run          string            `json:"source_run"`
	Promoted     time.Time         `json:"promoted_at"`
}

type promoteHistory struct {
	Promotions []string `json:"promotions"` // ids, oldest first; the last is current
}

// ChampionDir resolves the current champion's folder (nil error and "" when none).
func ChampionDir(promoteTo string) (string, error) {
	fi, err := os.Lstat(promoteTo)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return promoteTo, nil // a folder put there by hand
	}
	return filepath.EvalSymlinks(promoteTo)
}

// ReadCard reads the card of a champion folder.
func ReadCard(dir string) (*Card, error) {
	var c Card
	b, err := os.ReadFile(filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "model.json"), err)
	}
	return &c, nil
}

// promote copies a SavedModel (hard links) into a new champion folder, writes its card and
// switches the link to it.
func promote(promoteTo, savedModel string, card Card) error {
	root := promoteTo + ".d"
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	// A real folder at promoteTo (from an older layout or by hand) is kept as a promotion.
	if fi, err := os.Lstat(promoteTo); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		legacy := fmt.Sprintf("legacy-%s", time.Now().UTC().Format("20060102_150405"))
		if err := os.Rename(promoteTo, filepath.Join(root, legacy)); err != nil {
			return err
		}
		appendHistory(root, legacy)
	}
	tmp, err := pipeline.MkdirTemp(root, ".promote-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := pipeline.LinkTree(savedModel, filepath.Join(tmp, "saved_model")); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(tmp, "model.json"), card); err != nil {
		return err
	}
	final := filepath.Join(root, card.ID)
	os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if err := pointTo(promoteTo, card.ID); err != nil {
		return err
	}
	return appendHistory(root, card.ID)
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

func readHistory(root string) promoteHistory {
	var h promoteHistory
	b, err := os.ReadFile(filepath.Join(root, "history.json"))
	if err == nil {
		json.Unmarshal(b, &h)
	}
	return h
}

func appendHistory(root, id string) error {
	h := readHistory(root)
	h.Promotions = append(h.Promotions, id)
	return writeJSONAtomic(filepath.Join(root, "history.json"), h)
}

// Rollback makes the previous champion current again and returns its id. The rolled-back
// model stays on disk (in the .d folder) but leaves the history.
func Rollback(promoteTo string) (string, error) {
	root := promoteTo + ".d"
	h := readHistory(root)
	if len(h.Promotions) < 2 {
		return "", fmt.Errorf("%s has no previous champion to roll back to", promoteTo)
	}
	prev := h.Promotions[len(h.Promotions)-2]
	if _, err := os.Stat(filepath.Join(root, prev)); err != nil {
		return "", fmt.Errorf("previous champion %s is missing from %s", prev, root)
	}
	if err := pointTo(promoteTo, prev); err != nil {
		return "", err
	}
	h.Promotions = h.Promotions[:len(h.Promotions)-1]
	return prev, writeJSONAtomic(filepath.Join(root, "history.json"), h)
}

// sanitizeID makes a folder-safe id.
func sanitizeID(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == '"' || r == '[' || r == ']' {
			return '_'
		}
		return r
	}, s)
}
