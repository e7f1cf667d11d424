package stages

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
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

// previousCopies are the copies of a previous augment output made the same way. A copy's
// path there follows from its class's label there, its stem and its index; what is held is
// the label of each class by name and the input digest of each stem with copies (44 bytes
// and the map's share), not a record per copy.
type previousCopies struct {
	inputs map[copyStemKey][sha256.Size]byte // SHA-256 of the input image, by stem
	labels map[string]int                    // the label of each class there, by name
	out    string
	// gone are the labels there of the classes the input no longer has by name, where a
	// class renamed since finds its copies (renamed); a copy depends on its original, not on
	// its class.
	gone    []int
	mu      sync.Mutex
	renamed map[string]int // the label there of a class the input has under a new name
}

// copyStemKey is a stem <16 hex digits>_<occurrence> as numbers.
type copyStemKey struct {
	prefix [8]byte
	occ    int64
}

// parseStem returns the key of stem, false when it is not a stem.
func parseStem(stem string) (copyStemKey, bool) {
	var k copyStemKey
	h, occ, ok := strings.Cut(stem, "_")
	if !ok || len(h) != 16 {
		return k, false
	}
	if _, err := hex.Decode(k.prefix[:], []byte(h)); err != nil {
		return k, false
	}
	n, err := strconv.ParseInt(occ, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != occ {
		return k, false
	}
	k.occ = n
	return k, true
}

// readPreviousCopies returns the copies of the previous output dir ("" for none) when they
// were made as made says and its records are intact; none otherwise, and none for a forced
// run (run --force), which makes every copy again. classes are the input's classes.
func readPreviousCopies(job *pipeline.Job, dir, made string, classes []string) *previousCopies {
	pc := &previousCopies{}
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
	inputs, ok := readCopiesInputs(record, made)
	if !ok {
		return pc
	}
	was, err := manifestClasses(filepath.Join(dir, "output"))
	if err != nil {
		return pc
	}
	pc.labels = map[string]int{}
	for l, c := range was {
		pc.labels[c] = l
		if !slices.Contains(classes, c) {
			pc.gone = append(pc.gone, l)
		}
	}
	pc.inputs, pc.out = inputs, filepath.Join(dir, "output")
	return pc
}

// readCopiesInputs reads the input digests of a copiesFile entry by entry, when it says its
// copies were made as made says; false otherwise, or when it cannot be read.
func readCopiesInputs(path, made string) (map[copyStemKey][sha256.Size]byte, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 64<<10))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	inputs := map[copyStemKey][sha256.Size]byte{}
	madeWith := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		switch t {
		case "made_with":
			var m string
			if dec.Decode(&m) != nil || m != made {
				return nil, false
			}
			madeWith = true
		case "inputs":
			if t, err := dec.Token(); err != nil || t != json.Delim('{') {
				return nil, false
			}
			for dec.More() {
				t, err := dec.Token()
				stem, isKey := t.(string)
				var d string
				if err != nil || !isKey || dec.Decode(&d) != nil {
					return nil, false
				}
				k, ok := parseStem(stem)
				var sum [sha256.Size]byte
				if !ok || len(d) != hex.EncodedLen(sha256.Size) {
					continue // not a record this build makes: no copy of it is reused
				}
				if _, err := hex.Decode(sum[:], []byte(d)); err != nil {
					continue
				}
				inputs[k] = sum
			}
			if _, err := dec.Token(); err != nil {
				return nil, false
			}
		default:
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return nil, false
			}
		}
	}
	return inputs, madeWith
}

// manifestClasses reads the class names of the manifest in dir, from its header: the writer
// puts them before the images, which are not read (EachManifestEntry when they come first).
func manifestClasses(dir string) ([]string, error) {
	path := filepath.Join(dir, ManifestFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 16<<10))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("%s: not a manifest", path)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		switch t {
		case "classes":
			var classes []string
			if err := dec.Decode(&classes); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return classes, nil
		case "images":
			m, err := EachManifestEntry(dir, func(Entry) error { return nil })
			if err != nil {
				return nil, err
			}
			return m.Classes, nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil, fmt.Errorf("%s: no classes", path)
}

// linkCopy links copy k of task t, of class class, from the previous output to dst; it
// reports false when the previous output has no such copy made from the same input image
// (t.input), or not as it was published.
func (pc *previousCopies) linkCopy(job *pipeline.Job, t *augmentTask, class string, k int, dst string) (bool, error) {
	key, ok := parseStem(t.stem)
	if !ok || t.input == "" {
		return false, nil
	}
	if sum, ok := pc.inputs[key]; !ok || hex.EncodeToString(sum[:]) != t.input {
		return false, nil
	}
	copyIn := func(label int) string {
		return filepath.Join(pc.out, "images", fmt.Sprint(label), fmt.Sprintf("%s_aug%d.png", t.stem, k))
	}
	label, known := pc.labels[class]
	if !known {
		// A class renamed since: its copies are under the label there of a class gone by
		// name, the one its last copy found was under first.
		pc.mu.Lock()
		last, bound := pc.renamed[class]
		pc.mu.Unlock()
		order := pc.gone
		if bound {
			order = append([]int{last}, slices.DeleteFunc(slices.Clone(pc.gone), func(l int) bool { return l == last })...)
		}
		for _, l := range order {
			if src := copyIn(l); intact(job, src) {
				pc.mu.Lock()
				if pc.renamed == nil {
					pc.renamed = map[string]int{}
				}
				pc.renamed[class] = l
				pc.mu.Unlock()
				return true, job.LinkFile(src, dst)
			}
		}
		return false, nil
	}
	src := copyIn(label)
	if !intact(job, src) {
		return false, nil
	}
	return true, job.LinkFile(src, dst)
}

// copiesRecordWriter writes copiesFile into an output as json.MarshalIndent writes a
// copiesRecord (its inputs sorted by stem), holding no list of them: the input digests of each
// class's originals with copies are written, sorted, to a scratch file as the class is done,
// and the record is merged from those runs when every class is.
type copiesRecordWriter struct {
	path, made string
	runs       *os.File
	w          *bufio.Writer
	ends       []int64 // where each run ends in runs
	at         int64
}

// createCopiesRecord starts copiesFile of job's report output, to say its copies were made as
// made says, with scratch space in job.Work.
func createCopiesRecord(job *pipeline.Job, made string) (*copiesRecordWriter, error) {
	f, err := pipeline.CreateScratch(job.Work, "copies-*")
	if err != nil {
		return nil, err
	}
	return &copiesRecordWriter{path: filepath.Join(job.Out, "report", copiesFile), made: made,
		runs: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// add records the inputs of the tasks of one class that have copies.
func (c *copiesRecordWriter) add(tasks []augmentTask) {
	var with []*augmentTask
	for i := range tasks {
		if len(tasks[i].ops) > 0 && tasks[i].input != "" {
			with = append(with, &tasks[i])
		}
	}
	if len(with) == 0 {
		return
	}
	slices.SortFunc(with, func(a, b *augmentTask) int { return strings.Compare(a.stem, b.stem) })
	for _, t := range with {
		n, _ := fmt.Fprintf(c.w, "%s %s\n", t.stem, t.input)
		c.at += int64(n)
	}
	c.ends = append(c.ends, c.at)
}

// close writes the record, one entry per stem (the first class's, should two classes hold the
// same image).
func (c *copiesRecordWriter) close() error {
	if err := c.w.Flush(); err != nil {
		return err
	}
	dir := filepath.Dir(c.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	out, err := os.Create(c.path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 64<<10)
	made, _ := json.Marshal(c.made)
	fmt.Fprintf(w, "{\n  \"made_with\": %s,\n  \"inputs\": {", made)
	// the runs merged by stem, ties to the earlier run (class)
	type entry struct{ stem, sum string }
	var damaged error
	var runs []func() (entry, bool)
	start := int64(0)
	for _, end := range c.ends {
		r := bufio.NewReaderSize(io.NewSectionReader(c.runs, start, end-start), 4<<10)
		start = end
		runs = append(runs, func() (entry, bool) {
			line, err := r.ReadString('\n')
			if err == io.EOF && line == "" {
				return entry{}, false
			}
			stem, sum, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
			if err != nil || !ok {
				damaged = fmt.Errorf("%s: its scratch records are damaged", c.path)
				return entry{}, false
			}
			return entry{stem, sum}, true
		})
	}
	n, last := 0, ""
	for e := range pipeline.MergeSorted(runs, func(a, b entry) int { return strings.Compare(a.stem, b.stem) }) {
		if n > 0 && e.stem == last {
			continue
		}
		if n > 0 {
			w.WriteByte(',')
		}
		n++
		stem, _ := json.Marshal(e.stem)
		sum, _ := json.Marshal(e.sum)
		fmt.Fprintf(w, "\n    %s: %s", stem, sum)
		last = e.stem
	}
	if damaged != nil {
		out.Close()
		return damaged
	}
	if n > 0 {
		w.WriteString("\n  ")
	}
	w.WriteString("}\n}\n")
	err = w.Flush()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// abandon drops the scratch file.
func (c *copiesRecordWriter) abandon() { c.runs.Close() }
