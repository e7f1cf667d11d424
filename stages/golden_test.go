package stages

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"gonum.org/v1/plot"

	"pipeline/graphs"
	"pipeline/pipeline"
)

// A kind's Version is part of every cache key so that outputs made by an older binary rerun
// once when the kind's code comes to make something else. Bumping it by hand was forgotten
// more than once; these golden tests catch it: each runs a deterministic kind on a tiny fixed
// input (testdata/golden) and compares a digest of its whole output with the one recorded
// beside the kind's Version. The digest may change only with the Version, or with the
// environment the kind puts in its key (which reruns the stage anyway).

// updateGolden rewrites the golden records (also PIPELINE_UPDATE_GOLDEN=1). It refuses to
// record a new digest under an unchanged Version.
var updateGolden = flag.Bool("update", false, "rewrite testdata/golden/*.json after bumping a kind's Version")

func updatingGolden() bool { return *updateGolden || os.Getenv("PIPELINE_UPDATE_GOLDEN") != "" }

// goldenRecord is testdata/golden/<case>.json.
type goldenRecord struct {
	Kind    string `json:"kind"`
	Version int    `json:"version"`
	// Environment is the kind's environment key lines that can change this output (the
	// plot font line is left out: the fixtures' class names are drawn with the embedded
	// font), with the versions go.mod gives the modules those lines name (test binaries do
	// not record them).
	Environment []string          `json:"environment"`
	Digest      string            `json:"digest"` // of Files
	Files       map[string]string `json:"files"`  // SHA-256 of every file of the output, by path
}

// goldenCases are the kinds run on fixtures: the workspace holds copies of the named folders
// of testdata/golden and the pipeline file; addr is the stage whose output is compared.
var goldenCases = []struct {
	name, addr string
	kind       pipeline.Kind
	modules    []string // modules named in the kind's environment (buildOf)
	inputs     []string
	hcl        string
}{
	{"split", "split.main", Split{}, splitModules, []string{"raw"}, `
pipeline {
  seed = 7
}
stage "split" "main" {
  source     = "raw"
  image_size = 8
  val        = 0.25
  test       = 0.25
}
`},
	{"split-jpeg-grey", "split.main", Split{}, splitModules, []string{"raw"}, `
stage "split" "main" {
  source           = "raw"
  image_size       = 6
  channels         = 1
  resize           = "pad"
  format           = "jpeg"
  quality          = 90
  val              = 0.25
  test             = 0.25
  near_duplicates  = false
}
`},
	{"augment", "augment.balanced", Augment{}, augmentModules, []string{"trainset"}, `
pipeline {
  seed = 3
}
stage "augment" "balanced" {
  input       = "trainset"
  max_augment = 3
  ops         = ["flip_rotate_crop", "color_jitter", "affine", "blur", "noise"]
  compression = "fast"
}
`},
	// evaluate on a fixed model (made by TestMakeGoldenModel); its key holds what TensorFlow's
	// results depend on (the CPU's tier, the thread count, …), so the record is compared on
	// machines like the one it was made on and skipped on others.
	{"evaluate", "evaluate.test", Evaluate{}, nil, []string{"model", "trainset"}, `
stage "evaluate" "test" {
  model      = "model"
  data       = "trainset"
  batch_size = 4
}
`},
	{"select", "select.best", Select{}, nil, []string{"evals"}, `
stage "select" "best" {
  candidates = { cnn = "evals/cnn", vgg19 = "evals/vgg19", vit = "evals/vit" }
  min_value  = 0.9
}
`},
}

func TestGoldenOutputsMatchTheirVersion(t *testing.T) {
	// The fixtures' class names are drawn with gonum/plot's embedded font, whatever fonts
	// the machine has: the plot font line can be left out of the records.
	if f, missing := classLabelFont([]string{"Bag", "Coat", "Café"}); f != plot.DefaultFont || missing != nil {
		t.Fatalf("the fixtures' class names need another font than the embedded one (%v)", f)
	}
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			w := newWS(t, c.hcl)
			w.reg, _ = pipeline.NewRegistry(Split{}, Augment{}, Evaluate{}, Select{})
			for _, in := range c.inputs {
				if err := os.CopyFS(filepath.Join(w.dir, in), os.DirFS(filepath.Join("testdata", "golden", in))); err != nil {
					t.Fatal(err)
				}
			}
			rec, _ := w.run(false)
			res := rec.Result(c.addr)
			if res == nil || res.Output == "" {
				t.Fatalf("%s produced no output: %+v", c.addr, res)
			}
			files := outputFiles(t, filepath.Join(w.dir, pipeline.StoreDir, "objects", res.Output))
			got := goldenRecord{Kind: c.kind.Name(), Version: c.kind.Version(), Environment: goldenEnvironment(t, c.kind, c.modules),
				Digest: filesDigest(files), Files: files}
			checkGolden(t, filepath.Join("testdata", "golden", c.name+".json"), got)
		})
	}
}

// TestMakeGoldenModel writes testdata/golden/model, evaluate's fixture: a small CNN for the
// classes and size of testdata/golden/trainset, with the weights its seed initialises. It
// runs only with PIPELINE_MAKE_GOLDEN_MODEL=1 (then record evaluate's output with -update):
// the fixture must stay as it is for the record to mean anything.
func TestMakeGoldenModel(t *testing.T) {
	if os.Getenv("PIPELINE_MAKE_GOLDEN_MODEL") == "" {
		t.Skip("set PIPELINE_MAKE_GOLDEN_MODEL=1 to make the fixture again")
	}
	in := graphs.Input{Height: 8, Width: 8, Channels: 3, Mean: []float32{120, 120, 120}, Std: []float32{60, 60, 60}}
	tr, err := graphs.NewTrainer(graphs.TrainConfig{
		Model:     graphs.Classifier{Spec: graphs.Spec{Architecture: "cnn", CNN: &graphs.CNN{Channels: []int64{4}, Pool: 2, Dense: 8}}, Input: in, Classes: 3},
		Optimizer: graphs.DefaultOptimizer(),
		Seed:      5,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	dir := filepath.Join("testdata", "golden", "model")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := tr.Export(dir, []string{"Bag", "Coat", "Café"}, ResizeCenterCrop); err != nil {
		t.Fatal(err)
	}
}

// checkGolden compares got with the record at path, or records it when updating.
func checkGolden(t *testing.T, path string, got goldenRecord) {
	t.Helper()
	var old goldenRecord
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &old)
	}
	exists := err == nil
	sameEnv := exists && slices.Equal(old.Environment, got.Environment)
	unbumped := exists && sameEnv && old.Version == got.Version && old.Digest != got.Digest
	bump := fmt.Sprintf("%s's output changed (%s) but its Version is still %d: outputs made by the previous binary would stay cached. Bump %s's Version (stages/%s.go), then record the new output with go test ./stages -run TestGolden -update (or PIPELINE_UPDATE_GOLDEN=1)",
		got.Kind, changedFiles(old.Files, got.Files), got.Version, got.Kind, got.Kind)
	switch {
	case updatingGolden() && unbumped:
		t.Fatalf("not updating %s: %s", path, bump)
	case updatingGolden():
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s", path)
	case !exists:
		t.Fatalf("%s: %v; record it with go test ./stages -run TestGolden -update", path, err)
	case !sameEnv:
		t.Skipf("%s was recorded in another environment (%q; this is %q), which is in the kind's key: the output cannot be compared. Record this one with -update", path, old.Environment, got.Environment)
	case unbumped:
		t.Fatal(bump)
	case old.Version != got.Version:
		t.Fatalf("%s's Version is %d, %s records %d: record the output of this Version with go test ./stages -run TestGolden -update", got.Kind, got.Version, path, old.Version)
	}
}

// goldenEnvironment returns the environment lines of k that can change a fixture's output,
// with the go.mod versions of modules, sorted.
func goldenEnvironment(t *testing.T, k pipeline.Kind, modules []string) []string {
	env := []string{}
	if e, ok := k.(pipeline.Environmental); ok {
		lines, err := e.Environment(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, "plot_fonts ") {
				env = append(env, l)
			}
		}
	}
	for _, m := range modules {
		env = append(env, "module "+m+" "+goModVersion(t, m))
	}
	sort.Strings(env)
	return env
}

// goModVersion returns the version the module's go.mod requires of module.
func goModVersion(t *testing.T, module string) string {
	f, err := os.Open(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == module {
			return fields[1]
		}
	}
	t.Fatalf("go.mod does not require %s", module)
	return ""
}

// outputFiles returns the SHA-256 of every file under dir, by slash-separated relative path.
func outputFiles(t *testing.T, dir string) map[string]string {
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sum := sha256.Sum256(b)
		files[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// filesDigest is the SHA-256 of files' paths and digests in path order.
func filesDigest(files map[string]string) string {
	h := sha256.New()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(h, "%q %s\n", p, files[p])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// changedFiles describes how now differs from was, naming a few files.
func changedFiles(was, now map[string]string) string {
	var changed, added, removed []string
	for p, d := range now {
		switch w, ok := was[p]; {
		case !ok:
			added = append(added, p)
		case w != d:
			changed = append(changed, p)
		}
	}
	for p := range was {
		if _, ok := now[p]; !ok {
			removed = append(removed, p)
		}
	}
	var parts []string
	for _, g := range []struct {
		what  string
		paths []string
	}{{"changed", changed}, {"added", added}, {"removed", removed}} {
		if len(g.paths) == 0 {
			continue
		}
		sort.Strings(g.paths)
		if len(g.paths) > 3 {
			g.paths = append(g.paths[:3], "…")
		}
		parts = append(parts, g.what+" "+strings.Join(g.paths, ", "))
	}
	if len(parts) == 0 {
		return "the same files"
	}
	return strings.Join(parts, "; ")
}
