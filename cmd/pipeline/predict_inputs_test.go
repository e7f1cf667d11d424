package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"pipeline/stages"
)

// Predict checks a file's header before reading it, and does not read a file far larger than
// an image of the size its header gives: a video is refused after a few kilobytes, and an
// image followed by a gigabyte of something else is refused, named, without being read.
func TestPredictChecksTheHeaderBeforeReadingAFile(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	dir := t.TempDir()
	sparse := func(name string, head []byte, size int64) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, head, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil { // sparse: nothing written
			t.Fatal(err)
		}
		return p
	}
	clip := sparse("clip.mp4", []byte("\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"), 256<<20)
	padded := sparse("padded.png", pngBytes(8, 8, 3), 128<<20)
	good := filepath.Join(dir, "good.png")
	os.WriteFile(good, pngBytes(8, 8, 3), 0o644)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	code, out, errs := runCLI("predict", "--model", model, clip, padded, good)
	runtime.ReadMemStats(&after)
	if code != exitErr || !strings.HasPrefix(out, good+"\n") {
		t.Errorf("exit %d, stdout %q; want exit %d and good.png classified", code, out, exitErr)
	}
	for _, want := range []string{
		clip + ": not an image",
		padded + ": png of 8x8 in a file of 134.2 MB: far more than such an image takes (at most 67.1 MB)",
		"2 of 3 files could not be classified",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q does not say %q", errs, want)
		}
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
		t.Errorf("predict allocated %d MB: a refused file was read", n>>20)
	}
}

// A named pipe (which would block predict for ever) or any other file that is not a regular
// one is refused when named, and skipped with a note in a folder.
func TestPredictRefusesWhatIsNotARegularFile(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	dir := filepath.Join(t.TempDir(), "photos")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "a.png"), pngBytes(8, 8, 3), 0o644)
	fifo, inDir := filepath.Join(t.TempDir(), "x.png"), filepath.Join(dir, "y.png")
	for _, p := range []string{fifo, inDir} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skip("no named pipes:", err)
		}
	}
	type ran struct {
		code      int
		out, errs string
	}
	done := make(chan ran, 1)
	go func() {
		code, out, errs := runCLI("predict", "--model", model, fifo, dir)
		done <- ran{code, out, errs}
	}()
	var r ran
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		for _, p := range []string{fifo, inDir} { // let a blocked open return
			if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		}
		t.Fatal("predict blocks on a named pipe")
	}
	if r.code != exitErr || !strings.HasPrefix(r.out, filepath.Join(dir, "a.png")+"\n") {
		t.Errorf("exit %d, stdout %q; want exit %d and a.png classified", r.code, r.out, exitErr)
	}
	for _, want := range []string{
		"pipeline: " + fifo + ": not a regular file\n",
		"pipeline: skipped 1 file in the folders given, not a regular file: " + inDir + "\n",
	} {
		if !strings.Contains(r.errs, want) {
			t.Errorf("stderr %q does not say %q", r.errs, want)
		}
	}
	if code, _, errs := runCLI("predict", "--model", model, "/dev/null"); code != exitErr || !strings.Contains(errs, "/dev/null: not a regular file") {
		t.Errorf("/dev/null: exit %d, %q", code, errs)
	}
}

// Every file in a folder that cannot be classified for what it is (empty, not an image,
// truncated) is skipped the same way: a note by reason naming it, in --json with its reason,
// and the exit status that of the images classified. The same file named on the command line
// is an error.
func TestPredictSkipsEveryBadFileInAFolderAlike(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	dir := filepath.Join(t.TempDir(), "photos")
	os.MkdirAll(dir, 0o755)
	good := pngBytes(8, 8, 3)
	files := map[string][]byte{"a.png": good, "empty.jpg": nil, "empty2.jpg": nil, "notes.png": []byte("taken in May"), "cut.png": good[:len(good)/2]}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in := func(name string) string { return filepath.Join(dir, name) }
	reason := map[string]string{} // each bad file's error when named
	for _, name := range []string{"empty.jpg", "notes.png", "cut.png"} {
		code, _, errs := runCLI("predict", "--model", model, in(name))
		reason[name], _, _ = strings.Cut(strings.TrimPrefix(errs, "pipeline: "+in(name)+": "), "\n")
		if code != exitErr || !strings.HasPrefix(errs, "pipeline: "+in(name)+": ") || strings.Contains(errs, "skipped") {
			t.Errorf("%s named: exit %d, stderr %q; want exit %d and an error naming it", name, code, errs, exitErr)
		}
	}
	if !strings.HasPrefix(reason["cut.png"], "corrupt png") && !strings.HasPrefix(reason["cut.png"], "truncated png") {
		t.Fatalf("cut.png named: %q", reason["cut.png"])
	}

	code, out, errs := runCLI("predict", "--model", model, dir)
	if code != exitOK || !strings.HasPrefix(out, in("a.png")+"\n") || strings.Count(out, "%") != 5 {
		t.Errorf("exit %d, stdout %q; want exit %d and a.png alone classified", code, out, exitOK)
	}
	// By reason, in the order first met (files in name order); the reason as when named.
	want := "pipeline: skipped 1 file in the folders given, " + reason["cut.png"] + ": " + in("cut.png") + "\n" +
		"pipeline: skipped 2 files in the folders given, empty file: " + in("empty.jpg") + ", " + in("empty2.jpg") + "\n" +
		"pipeline: skipped 1 file in the folders given, not an image (content is not " + stages.ImageFormats + "): " + in("notes.png") + "\n"
	if !strings.HasSuffix(errs, want) || strings.Contains(errs, "could not be classified") {
		t.Errorf("stderr %q\nwant it to end with %q", errs, want)
	}

	code, out, errs = runCLI("predict", "--model", model, "--json", dir)
	var res []struct {
		File, Error, Skipped string
		Predictions          []stages.Prediction
	}
	got := map[string]string{}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("--json: exit %d, stdout %q, stderr %q; want exit %d", code, out, errs, exitOK)
	}
	for _, r := range res {
		got[r.File] = r.Skipped
		if (r.Skipped == "") != (len(r.Predictions) > 0) || r.Error != "" {
			t.Errorf("--json: %+v, want predictions or why it was skipped", r)
		}
	}
	if len(res) != 5 || got[in("a.png")] != "" || got[in("cut.png")] != reason["cut.png"] || got[in("empty.jpg")] != "empty file" || got[in("notes.png")] != "not an image (content is not "+stages.ImageFormats+")" {
		t.Errorf("--json: %q, want a.png classified and the others skipped with their reasons", got)
	}
	// A folder of which nothing can be classified gives no image, which is an error.
	os.Remove(in("a.png"))
	if code, _, errs := runCLI("predict", "--model", model, dir); code != exitErr || !strings.HasSuffix(errs, "pipeline: no image in "+dir+"\n") {
		t.Errorf("no image left: exit %d, stderr %q", code, errs)
	}
}

// A folder that holds no files is an error of its own: the other inputs are still classified,
// and predict exits with status 1 as for a bad file. With --json, inputs of which none could
// be classified are an empty list, not null.
func TestPredictGoesOnPastAnEmptyFolder(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	img := filepath.Join(t.TempDir(), "bag.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	empty := t.TempDir()
	code, out, errs := runCLI("predict", "--model", model, img, empty)
	if code != exitErr || !strings.HasPrefix(out, img+"\n") || strings.Count(out, "%") != 5 {
		t.Errorf("exit %d, stdout %q; want exit %d and bag.png classified", code, out, exitErr)
	}
	if !strings.Contains(errs, "pipeline: "+empty+": the folder holds no files") || !strings.Contains(errs, "no image in "+empty+"\n") {
		t.Errorf("stderr %q does not name the empty folder", errs)
	}

	texts := t.TempDir()
	os.WriteFile(filepath.Join(texts, "notes.txt"), []byte("taken in May"), 0o644)
	// In --json each such folder has an entry with its error, after its files' entries.
	want := map[string]string{texts: "no image in it: every file was skipped", empty: "the folder holds no files (hidden files are not looked in)"}
	for _, args := range [][]string{{texts}, {empty}, {texts, empty}} {
		code, out, _ := runCLI(append([]string{"predict", "--model", model, "--json"}, args...)...)
		var list []struct{ File, Error, Skipped string }
		if code != exitErr || json.Unmarshal([]byte(out), &list) != nil {
			t.Fatalf("--json %q: exit %d, stdout %q; want exit %d and a list", args, code, out, exitErr)
		}
		var said []string
		for _, e := range list {
			if e.Error != "" {
				said = append(said, e.File+": "+e.Error)
			}
		}
		var wantErrors []string
		for _, a := range args {
			wantErrors = append(wantErrors, a+": "+want[a])
		}
		if !slices.Equal(said, wantErrors) {
			t.Errorf("--json %q: errors %q, want %q", args, said, wantErrors)
		}
	}
}

// --json says which model answered, as serve's JSON does.
func TestPredictJSONNamesTheModel(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	img := filepath.Join(t.TempDir(), "x.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	code, out, errs := runCLI("predict", "--model", model, "--json", img, img+".missing")
	var res []struct {
		File, Model, Error string
		Predictions        []stages.Prediction
	}
	if code != exitErr || json.Unmarshal([]byte(out), &res) != nil || len(res) != 2 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if res[0].Model != "m" || len(res[0].Predictions) != 5 {
		t.Errorf("the classified image: %+v, want model \"m\"", res[0])
	}
	if res[1].Model != "" || res[1].Error != "no such file or directory" {
		t.Errorf("the missing file: %+v, want no model and the error without its path", res[1])
	}
}

// --top beyond the model's classes shows them all and says so once; ranks are right-aligned,
// so that the columns line up from the 10th row on.
func TestPredictTopBeyondTheClasses(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	img := filepath.Join(t.TempDir(), "x.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	code, out, errs := runCLI("predict", "--model", model, "--top", "20", img, img)
	n := len(testClasses)
	if code != exitOK || strings.Count(out, "%") != 2*n {
		t.Errorf("exit %d, stdout %q; want all %d classes of each", code, out, n)
	}
	// The untrained model is unsure of both: the warning in full once, then in short, and
	// counted at the end.
	if want := "pipeline: the model has 7 classes: showing all 7\npipeline: low confidence for 2 of 2 images classified (--warn-sum 0.9, --warn-top 0.6)\n"; errs != want {
		t.Errorf("stderr %q, want %q", errs, want)
	}
	if strings.Count(out, "  warning: "+lowConfidence+"\n") != 1 || strings.Count(out, "  warning: low confidence\n") != 1 {
		t.Errorf("stdout %q: want the warning in full once, then in short", out)
	}

	var preds []stages.Prediction
	for i := range 12 {
		preds = append(preds, stages.Prediction{ClassName: string(rune('a' + i)), Confidence: 0.5 / float64(i+1)})
	}
	var b bytes.Buffer
	writePredictions(&b, "x.png", preds, "", "", 2)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")[1:]
	for _, l := range lines {
		if len(l) != len(lines[0]) || !strings.HasSuffix(l[:len("   1.")], ".") {
			t.Errorf("row %q is out of line with %q", l, lines[0])
		}
	}
}

// The default --top 5 of a model of fewer classes shows them all without a word: only a --top
// asked for is said to be beyond the classes.
func TestPredictDefaultTopOfFewerClassesIsNotSaid(t *testing.T) {
	model := smallModel(t, filepath.Join(t.TempDir(), "m"), "m", "a", "b", "c", "d")
	img := filepath.Join(t.TempDir(), "x.png")
	os.WriteFile(img, pngBytes(8, 8, 1), 0o644)
	code, out, errs := runCLI("predict", "--model", model, "--warn-sum", "0", "--warn-top", "0", img)
	if code != exitOK || strings.Count(out, "%") != 4 || errs != "" {
		t.Errorf("default --top: exit %d, stdout %q, stderr %q; want the 4 classes and nothing on stderr", code, out, errs)
	}
	for _, top := range []string{"--top", "-k"} {
		code, out, errs := runCLI("predict", "--model", model, top, "5", "--warn-sum", "0", "--warn-top", "0", img)
		if want := "pipeline: the model has 4 classes: showing all 4\n"; code != exitOK || strings.Count(out, "%") != 4 || errs != want {
			t.Errorf("%s 5: exit %d, stdout %q, stderr %q; want the 4 classes and %q", top, code, out, errs, want)
		}
	}
}

// A file name that is not valid UTF-8 is written with \xNN for each bad byte, as the split's
// reports write it, in JSON (which would otherwise put U+FFFD there) and in text alike, so
// that the name leads back to the file.
func TestPredictNamesANonUTF8FileAsTheSplitDoes(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	dir := t.TempDir()
	img, notes := filepath.Join(dir, "caf\xe9.png"), filepath.Join(dir, "notes\xff.png")
	if err := os.WriteFile(img, pngBytes(8, 8, 3), 0o644); err != nil {
		t.Skip("no file names that are not UTF-8 here:", err)
	}
	os.WriteFile(notes, []byte("taken in May"), 0o644)
	shown, shownNotes := filepath.Join(dir, `caf\xe9.png`), filepath.Join(dir, `notes\xff.png`)

	code, out, errs := runCLI("predict", "--model", model, "--json", img)
	var res []struct{ File string }
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || len(res) != 1 || res[0].File != shown {
		t.Errorf("--json: exit %d, stdout %q, stderr %q; want the file named %q", code, out, errs, shown)
	}
	code, out, errs = runCLI("predict", "--model", model, dir)
	if code != exitOK || !strings.HasPrefix(out, shown+"\n") {
		t.Errorf("text: exit %d, stdout %q; want the file named %q", code, out, shown)
	}
	if want := "in the folders given, not an image (content is not " + stages.ImageFormats + "): " + shownNotes + "\n"; !strings.Contains(errs, want) {
		t.Errorf("stderr %q does not say %q", errs, want)
	}
	if code, _, errs := runCLI("predict", "--model", model, notes); code != exitErr || !strings.HasPrefix(errs, "pipeline: "+shownNotes+": not an image") {
		t.Errorf("a bad file named: exit %d, stderr %q; want it named %q", code, errs, shownNotes)
	}
}

// A missing model says what to do; no error names a path twice.
func TestPredictErrorsNameAPathOnce(t *testing.T) {
	img := filepath.Join(t.TempDir(), "x.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	missing := filepath.Join(t.TempDir(), "final_models")
	code, _, errs := runCLI("predict", "--model", missing, img)
	if code != exitErr || strings.Count(errs, missing) != 1 || !strings.Contains(errs, "select") || !strings.Contains(errs, "--model") {
		t.Errorf("a missing model: exit %d, %q; want the path once and what to do", code, errs)
	}
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	gone := img + ".missing"
	code, _, errs = runCLI("predict", "--model", model, gone)
	if want := "pipeline: " + gone + ": no such file or directory\n"; code != exitErr || !strings.HasPrefix(errs, want) {
		t.Errorf("a missing file: exit %d, %q; want %q", code, errs, want)
	}
	// A link that leads nowhere is one, not a promotion folder; a folder without a model says
	// what a model folder is.
	dir := t.TempDir()
	link := filepath.Join(dir, "current")
	os.Symlink("gone", link)
	code, _, errs = runCLI("predict", "--model", link, img)
	if want := link + " is a symbolic link to gone, which does not exist"; code != exitErr || !strings.Contains(errs, want) || strings.Contains(errs, "promot") {
		t.Errorf("a link to nowhere: exit %d, %q; want %q", code, errs, want)
	}
	code, _, errs = runCLI("predict", "--model", dir, img)
	if want := dir + " holds no model: a model folder is a SavedModel as pipeline exports it"; code != exitErr || !strings.Contains(errs, want) {
		t.Errorf("a folder without a model: exit %d, %q; want %q", code, errs, want)
	}
}

// - reads the image from standard input, once; ./- is a file named -.
func TestPredictReadsStandardInput(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	dir := t.TempDir()
	img := filepath.Join(dir, "in.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdin
	defer func() { os.Stdin = saved }()
	os.Stdin = f
	code, out, errs := runCLI("predict", "--model", model, "-", img, "-")
	if code != exitErr || !strings.HasPrefix(out, "-\n") || strings.Count(out, "%") != 10 ||
		!strings.Contains(errs, "pipeline: -: standard input was read for an earlier -\n") {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, out, errs)
	}
	// The same classes as the file's.
	classes := map[string][]string{}
	file := ""
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "  ") {
			file = l
		} else if strings.Contains(l, "%") {
			classes[file] = append(classes[file], l)
		}
	}
	if len(classes["-"]) != 5 || !slices.Equal(classes["-"], classes[img]) {
		t.Errorf("standard input and the file classified differently:\n%s", out)
	}
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	// A folder named - where it runs does not hide standard input.
	other := t.TempDir()
	os.Mkdir(filepath.Join(other, "-"), 0o755)
	os.Chdir(other)
	f.Seek(0, 0)
	if code, out, errs := runCLI("predict", "--model", model, "-"); code != exitOK || !strings.HasPrefix(out, "-\n") {
		t.Errorf("- beside a folder named -: exit %d\n%s%s", code, out, errs)
	}
	os.Rename(img, filepath.Join(dir, "-"))
	os.Chdir(dir)
	if code, out, errs := runCLI("predict", "--model", model, "./-"); code != exitOK || !strings.HasPrefix(out, "./-\n") {
		t.Errorf("./-: exit %d\n%s%s", code, out, errs)
	}
}
