package stages

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// strayBytes is data with n bytes of garbage inserted before its end marker: libjpeg-turbo
// decodes the whole picture and warns "Corrupt JPEG data: n extraneous bytes before marker
// 0xd9".
func strayBytes(data []byte, n int) []byte {
	end := len(data) - 2
	out := append([]byte{}, data[:end]...)
	out = append(out, bytes.Repeat([]byte{0x11}, n)...)
	return append(out, data[end:]...)
}

// cutScan is data with its coded data cut to a third and the end marker put back: the file
// looks complete, and libjpeg-turbo warns "Corrupt JPEG data: premature end of data segment"
// and fills the rest of the picture in.
func cutScan(data []byte) []byte {
	sos := bytes.LastIndex(data, []byte{0xff, 0xda})
	cut := sos + (len(data)-sos)/3
	out := append([]byte{}, data[:cut]...)
	return append(out, 0xff, 0xd9)
}

// What libjpeg-turbo says while it decodes a file goes to the code that decodes it, which
// knows the file (graphs.CaptureCallerStderr): each decode gets its own file's warning and
// nothing else, with decodes of good and damaged files running at once.
func TestLibjpegWarningsReachTheDecodeOfTheirFile(t *testing.T) {
	good := randomJPEG(11, 0, 64, 48)
	files := map[string][]byte{
		"good":  good,
		"stray": strayBytes(randomJPEG(11, 1, 64, 48), 100),
		"cut":   cutScan(randomJPEG(11, 2, 64, 48)),
	}
	want := map[string]string{
		"good":  "",
		"stray": " extraneous bytes before marker 0xd9", // libjpeg has read a few of them ahead
		"cut":   "Corrupt JPEG data: premature end of data segment",
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				name := []string{"good", "stray", "cut"}[(g+i)%3]
				_, note, err := prepare(files[name], "jpeg", 64, 48, 32, ResizeCenterCrop, 3)
				if err != nil || note.fallback || !strings.Contains(note.libjpeg, want[name]) || (want[name] == "") != (note.libjpeg == "") {
					errs <- fmt.Errorf("%s: %+v, %v; want libjpeg %q", name, note, err, want[name])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The stages name the JPEGs libjpeg-turbo decoded past damage in, with what it said: a split
// that decodes its photos in report/split.json and its log, again on a rerun that reuses its
// other images; without stored images, augment names the originals it decoded for copies.
func TestDamagedJPEGsAreNamed(t *testing.T) {
	for _, store := range []string{"", "store_images    = false\n  near_duplicates = false"} {
		w := newWS(t, unstoredHCL(store))
		writePhotos(w)
		var damaged []string
		for i := range 3 {
			damaged = append(damaged, fmt.Sprintf("tiny/stray%d.jpg", i)) // a small class: its train images get copies
			w.write("raw/"+damaged[i], strayBytes(randomJPEG(12, uint64(i), 40, 30), 60))
		}
		for round := 0; round < 2; round++ {
			if round == 1 {
				w.write("raw/big/new.jpg", randomJPEG(12, 9, 40, 30)) // reruns both stages
			}
			rec := mustRun(t, w)
			log, err := os.ReadFile(filepath.Join(rec.Dir(), "run.log"))
			if err != nil {
				t.Fatal(err)
			}
			var rep splitReport
			readJSONFile(t, w.output(rec, "split.main", "report/split.json"), &rep)
			var want string
			if store == "" {
				if len(rep.Damaged) != len(damaged) {
					t.Fatalf("round %d: damaged_jpegs %+v", round, rep.Damaged)
				}
				for i, d := range rep.Damaged {
					if d.Path != "raw/"+damaged[i] || !strings.HasPrefix(d.Libjpeg, "Corrupt JPEG data: ") || !strings.HasSuffix(d.Libjpeg, " extraneous bytes before marker 0xd9") {
						t.Errorf("round %d: damaged_jpegs %+v", round, rep.Damaged)
					}
				}
				if round == 0 {
					path, err := Summarize(rec).WriteHTML()
					if err != nil {
						t.Fatal(err)
					}
					html, _ := os.ReadFile(path)
					if note := "JPEGs with damaged data, kept as libjpeg-turbo decoded them: 3 (split.json: damaged_jpegs)"; !strings.Contains(string(html), note) {
						t.Errorf("report.html lacks %q", note)
					}
				}
				want = fmt.Sprintf("split.main: warning: 3 JPEGs have damaged data that libjpeg-turbo decoded past (kept as decoded; replace any whose damage shows), e.g. %q: %s (all in report/split.json: damaged_jpegs)\n", "raw/"+damaged[0], rep.Damaged[0].Libjpeg)
			} else {
				if len(rep.Damaged) != 0 {
					t.Fatalf("not decoding JPEGs, the split lists damaged ones: %+v", rep.Damaged)
				}
				if round == 1 {
					continue // the copies are reused: nothing decoded
				}
				m, err := ReadManifest(w.output(rec, "augment.balanced", "output"))
				if err != nil {
					t.Fatal(err)
				}
				var copied []string // damaged originals with copies
				for _, e := range m.Images {
					if e.Copy != nil && slices.Contains(damaged, e.Source) && !slices.Contains(copied, e.Source) {
						copied = append(copied, e.Source)
					}
				}
				if len(copied) == 0 {
					t.Fatal("no damaged photo has copies: the test shows nothing")
				}
				slices.Sort(copied)
				want = fmt.Sprintf("augment.balanced: warning: %s among the originals copied %s damaged data that libjpeg-turbo decoded past (kept as decoded; replace any whose damage shows), %q: Corrupt JPEG data: ",
					plural(len(copied), "JPEG", "JPEGs"), agree(len(copied), "has", "have"), "raw/"+copied[0])
				if len(copied) > 1 {
					want = strings.Replace(want, "shows), ", "shows), e.g. ", 1)
				}
				for _, c := range copied {
					if line := fmt.Sprintf("augment.balanced:   damaged raw/%s: Corrupt JPEG data: ", c); !strings.Contains(string(log), line) {
						t.Errorf("run.log lacks %q:\n%s", line, log)
					}
				}
			}
			if !strings.Contains(string(log), want) {
				t.Errorf("%q, round %d: run.log lacks %q:\n%s", store, round, want, log)
			}
		}
	}
}

// What libjpeg-turbo says of no damage (a JFIF version it does not know) is left out, and its
// messages are one line.
func TestDamageSaidLeavesOutHarmlessMessages(t *testing.T) {
	for said, want := range map[string]string{
		"Warning: unknown JFIF revision number 3.01\n":                                   "",
		"Unknown Adobe color transform code 7\nCorrupt JPEG data: bad Huffman code\n":    "Corrupt JPEG data: bad Huffman code",
		"Corrupt JPEG data: premature end of data segment\nPremature end of JPEG file\n": "Corrupt JPEG data: premature end of data segment; Premature end of JPEG file",
		"": "",
	} {
		if got := damageSaid(said); got != want {
			t.Errorf("damageSaid(%q) = %q, want %q", said, got, want)
		}
	}
}
