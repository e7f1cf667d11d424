package stages

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"

	"pipeline/pipeline"
)

// Like the split, augment reruns whenever its input changes (a few photos added), and each
// copy depends only on its original's pixels, the seed, the copy's index and the operations'
// settings: a rerun links the copies its previous output made from the same original instead
// of making them again, byte for byte the same. A forced run (run --force) links none.

// copiesFile records, in augment's report output, what its copies were made with and from.
// It is in report/, not beside the training images, because it names every setting of every
// operation: one for an operation not in ops changes it, not the images, and training, given
// the output folder, must not rerun for it. (Outputs made before kept it at the top.)
const copiesFile = "copies.json"

// copiesRecord is copiesFile.
type copiesRecord struct {
	// MadeWith names everything a copy depends on besides its original (madeWith).
	MadeWith string `json:"made_with"`
	// Inputs is the SHA-256 of each original's input image, by the copies' stem.
	Inputs map[string]string `json:"inputs"`
}

// madeWith names everything a copy depends on besides its original's pixels and its stem and
// index. The parameters of operations not in ops are named as their defaults, as the stage's
// key has them (Augment.KeyValues): changing one leaves the stage cached, and must not make the
// next rerun remake every copy.
func madeWith(seed int64, cfg AugmentConfig, in *Manifest) string {
	s := fmt.Sprintf("augment %d: seed %d, ops %q, %+v, compression %s, %d channels; %s",
		Augment{}.Version(), seed, cfg.Ops, usedParams(cfg.Ops, cfg.params), cfg.Compression, in.Channels,
		buildOf(augmentModules...))
	if in.FittedWith != "" {
		// originals not stored are fitted here, and an input's digest is its original's
		s += "; originals fitted by " + in.FittedWith
	}
	if in.ReadWith != "" {
		s += "; originals read by " + in.ReadWith
	}
	return s
}

// usedParams returns p with the parameters no operation of ops reads set to their defaults.
func usedParams(ops []string, p OpParams) OpParams {
	defaults := attributeDefaults(Augment{}.Attributes())
	v := reflect.ValueOf(&p).Elem()
	for _, name := range unusedParams(ops) {
		for i := range v.NumField() {
			if v.Type().Field(i).Tag.Get("cty") == name {
				f, _ := defaults[name].AsBigFloat().Float64()
				v.Field(i).SetFloat(f)
			}
		}
	}
	return p
}

// previousCopies are the copies of a previous augment output made the same way.
type previousCopies struct {
	inputs map[string]string // SHA-256 of the input image, by stem
	// paths are the copies' paths in the output folder out (slash-separated), by
	// "<stem>/<index>": relative, a third of the memory of absolute paths into the store.
	paths map[string]string
	out   string
}

// readPreviousCopies returns the copies of the previous output dir ("" for none) when they
// were made as made says and its records are intact; none otherwise, and none for a forced
// run (run --force), which makes every copy again.
func readPreviousCopies(job *pipeline.Job, dir, made string) previousCopies {
	var pc previousCopies
	if dir == "" {
		return pc
	}
	if job.Forced {
		job.Logf("forced: making every copy again, linking none from the previous output")
		return pc
	}
	record := filepath.Join(dir, "report", copiesFile)
	if _, err := os.Stat(record); err != nil {
		record = filepath.Join(dir, copiesFile)
	}
	if !intact(job, record) || !intact(job, filepath.Join(dir, "output", ManifestFile)) {
		return pc
	}
	var rec copiesRecord
	if b, err := os.ReadFile(record); err != nil || json.Unmarshal(b, &rec) != nil || rec.MadeWith != made {
		return pc
	}
	paths := map[string]string{}
	_, err := EachManifestEntry(filepath.Join(dir, "output"), func(e Entry) error {
		if e.Copy != nil {
			paths[copyKey(copyStem(e.Path), e.Copy.Index)] = e.Path
		}
		return nil
	})
	if err != nil {
		return pc
	}
	pc.inputs, pc.paths, pc.out = rec.Inputs, paths, filepath.Join(dir, "output")
	return pc
}

// copyStem is the stem of a copy's path images/<label>/<stem>_aug<k>.png.
func copyStem(path string) string {
	base := filepath.Base(filepath.FromSlash(path))
	for i := len(base) - 1; i >= 0; i-- {
		if base[i] == '_' {
			return base[:i]
		}
	}
	return base
}

func copyKey(stem string, k int) string { return fmt.Sprintf("%s/%d", stem, k) }

// linkCopy links copy k of the original stem, whose input image has SHA-256 input, from the
// previous output to dst; it reports false when the previous output has no such copy, or not
// as it was published.
func (pc previousCopies) linkCopy(job *pipeline.Job, stem, input string, k int, dst string) (bool, error) {
	if pc.inputs[stem] != input || input == "" {
		return false, nil
	}
	rel, ok := pc.paths[copyKey(stem, k)]
	src := filepath.Join(pc.out, filepath.FromSlash(rel))
	if !ok || !intact(job, src) {
		return false, nil
	}
	return true, job.LinkFile(src, dst)
}

// inputDigests collects the SHA-256 of each original's input image for copiesFile.
type inputDigests struct {
	mu sync.Mutex
	m  map[string]string
}

func (d *inputDigests) add(stem string, data []byte) string {
	sum := sha256.Sum256(data)
	return d.addDigest(stem, hex.EncodeToString(sum[:]))
}

// addDigest records digest as the input of stem's copies and returns it.
func (d *inputDigests) addDigest(stem, digest string) string {
	d.mu.Lock()
	if d.m == nil {
		d.m = map[string]string{}
	}
	d.m[stem] = digest
	d.mu.Unlock()
	return digest
}

// write writes copiesFile into the output.
func (d *inputDigests) write(job *pipeline.Job, made string) error {
	if d.m == nil {
		d.m = map[string]string{}
	}
	b, err := json.MarshalIndent(copiesRecord{MadeWith: made, Inputs: d.m}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(job.Out, "report"), 0o755); err != nil {
		return err
	}
	_, err = job.WriteFile(filepath.Join(job.Out, "report", copiesFile), append(b, '\n'))
	return err
}
