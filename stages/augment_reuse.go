package stages

import (
	"bufio"
	"container/heap"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

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
	f, err := os.CreateTemp(job.Work, "copies-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // read through f only; gone when closed, whatever happens
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
	// a k-way merge of the runs, the smallest head first (ties to the earlier run)
	var heads runHeads
	start := int64(0)
	for i, end := range c.ends {
		h := &runHead{r: bufio.NewReaderSize(io.NewSectionReader(c.runs, start, end-start), 4<<10), run: i}
		start = end
		if ok, err := h.next(c.path); err != nil {
			out.Close()
			return err
		} else if ok {
			heads = append(heads, h)
		}
	}
	heap.Init(&heads)
	n, last := 0, ""
	for len(heads) > 0 {
		h := heads[0]
		if n == 0 || h.stem != last {
			if n > 0 {
				w.WriteByte(',')
			}
			n++
			stem, _ := json.Marshal(h.stem)
			sum, _ := json.Marshal(h.sum)
			fmt.Fprintf(w, "\n    %s: %s", stem, sum)
			last = h.stem
		}
		if ok, err := h.next(c.path); err != nil {
			out.Close()
			return err
		} else if ok {
			heap.Fix(&heads, 0)
		} else {
			heap.Pop(&heads)
		}
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

// runHead is the next entry of one run of a copiesRecordWriter's scratch file.
type runHead struct {
	r         *bufio.Reader
	run       int
	stem, sum string
}

// next reads h's next entry, reporting false at the end of its run.
func (h *runHead) next(record string) (bool, error) {
	line, err := h.r.ReadString('\n')
	if err == io.EOF && line == "" {
		return false, nil
	}
	stem, sum, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	if err != nil || !ok {
		return false, fmt.Errorf("%s: its scratch records are damaged", record)
	}
	h.stem, h.sum = stem, sum
	return true, nil
}

// runHeads is a heap of runs by their next stem, then run.
type runHeads []*runHead

func (h runHeads) Len() int { return len(h) }
func (h runHeads) Less(i, j int) bool {
	return h[i].stem < h[j].stem || h[i].stem == h[j].stem && h[i].run < h[j].run
}
func (h runHeads) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeads) Push(x any)   { *h = append(*h, x.(*runHead)) }
func (h *runHeads) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
