package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"pipeline/graphs"
	"pipeline/stages"
)

var testClasses = []string{"circle", "square", "stripes", "dots", "cross", "ring", "wave"}

// tinyModel trains a small CNN for a few steps on synthetic 8×8 images and exports it as a
// promotion folder (saved_model/ with examples, and a card) in dir.
func tinyModel(t testing.TB, dir string, seed uint64) string {
	t.Helper()
	in := graphs.Input{Height: 8, Width: 8, Channels: 3, Mean: []float32{90, 90, 90}, Std: []float32{80, 80, 80}}
	spec := graphs.Spec{Architecture: "cnn", CNN: &graphs.CNN{Channels: []int64{4}, Pool: 2, Dense: 8}}
	tr, err := graphs.NewTrainer(graphs.TrainConfig{Model: graphs.Classifier{Spec: spec, Input: in, Classes: int64(len(testClasses))},
		Optimizer: graphs.Optimizer{Name: "adam", Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-7}, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	data := graphs.Synthetic(64, int64(len(testClasses)), 8, 8, 3, seed)
	for i := 0; i < 5; i++ {
		if _, err := tr.Step(data, 1e-2); err != nil {
			t.Fatal(err)
		}
	}
	sm := filepath.Join(dir, "saved_model")
	if err := tr.Export(sm, testClasses, "squash"); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(sm, "examples"), 0o755)
	os.WriteFile(filepath.Join(sm, "examples", "1.png"), pngBytes(8, 8, 1), 0o644)
	card := map[string]any{"id": filepath.Base(dir), "architecture": "cnn", "classes": testClasses}
	b, _ := json.Marshal(card)
	os.WriteFile(filepath.Join(dir, "model.json"), b, 0o644)
	return dir
}

func pngBytes(w, h int, seed byte) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i)*seed + seed
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}

// hugePNGHeader claims a width×height image (valid header, no pixel data).
func hugePNGHeader(width, height uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], width)
	binary.BigEndian.PutUint32(ihdr[4:], height)
	ihdr[8], ihdr[9] = 8, 2
	binary.Write(&b, binary.BigEndian, uint32(13))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// multipartBody builds a form with one file in field, after a text field when before is set.
func multipartBody(field string, data []byte, before ...string) (io.Reader, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, v := range before {
		w.WriteField("note", v)
	}
	if field != "" {
		fw, _ := w.CreateFormFile(field, "upload.png")
		fw.Write(data)
	} else {
		w.WriteField("other", "x")
	}
	w.Close()
	return &buf, w.FormDataContentType()
}

func newTestServer(t *testing.T, modelDir string, opts serveOptions) (*server, *httptest.Server) {
	t.Helper()
	s := newServer(modelDir, opts, log.New(io.Discard, "", 0))
	s.reload()
	ts := httptest.NewServer(s.routes())
	t.Cleanup(func() { ts.Close(); s.close() })
	return s, ts
}

func post(t *testing.T, url string, body io.Reader, ct string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, ct, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("status %d: body is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, m
}

// An upload cut off anywhere in its form (in a part's headers, in the image, before the
// closing boundary) is answered 400 saying so, with the field to send the image in, not with
// the multipart reader's words ("multipart: NextPart: EOF"); a form malformed otherwise, or a
// Content-Type without a boundary, says that.
func TestServeSaysAnUploadIsCutOff(t *testing.T) {
	dir := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	_, ts := newTestServer(t, dir, defaultServeOptions())
	body, ct := multipartBody("image", pngBytes(20, 12, 3))
	full, _ := io.ReadAll(body)
	_, params, _ := mime.ParseMediaType(ct)
	end := bytes.Index(full, []byte("--"+params["boundary"]+"--"))
	headers := bytes.Index(full, []byte("Content-Type: application/octet-stream"))
	for _, n := range []int{10, headers - 20, headers + 5, end - 200, end - 1, end + 5} {
		code, m := post(t, ts.URL+"/predict", bytes.NewReader(full[:n]), ct)
		msg := fmt.Sprint(m["error"])
		if code != http.StatusBadRequest || !strings.HasPrefix(msg, "the upload is cut off: ") || !strings.Contains(msg, `field "image"`) {
			t.Errorf("cut at %d of %d bytes: %d %q, want 400 saying the upload is cut off", n, len(full), code, msg)
		}
	}
	// Not cut off: empty, another boundary than the Content-Type's, or no form at all.
	for _, c := range []struct{ body, ct, want string }{
		{"", ct, "the body is empty; "},
		{string(full), "multipart/form-data; boundary=AAA", `the body holds no part of a multipart/form-data form with the boundary its Content-Type names ("AAA"); `},
		{"just some text, long enough to be no cut-off delimiter", "multipart/form-data; boundary=b", "the body holds no part of a multipart/form-data form"},
		// A boundary that is the start of the body's: its delimiters are not the form's.
		{string(full), "multipart/form-data; boundary=" + params["boundary"][:20], "the body holds no part of a multipart/form-data form"},
	} {
		code, m := post(t, ts.URL+"/predict", strings.NewReader(c.body), c.ct)
		if msg := fmt.Sprint(m["error"]); code != http.StatusBadRequest || !strings.HasPrefix(msg, c.want) || !strings.Contains(msg, `field "image"`) {
			t.Errorf("%.20q as %s: %d %q, want 400 %q", c.body, c.ct, code, msg, c.want)
		}
	}
	malformed := "--b\r\nno colon here\r\n\r\nxx\r\n--b--\r\n"
	code, m := post(t, ts.URL+"/predict", strings.NewReader(malformed), "multipart/form-data; boundary=b")
	if msg := fmt.Sprint(m["error"]); code != http.StatusBadRequest || !strings.HasPrefix(msg, "the body is not valid multipart/form-data (") {
		t.Errorf("a malformed form: %d %q", code, msg)
	}
	code, m = post(t, ts.URL+"/predict", bytes.NewReader(full), "multipart/form-data")
	if msg := fmt.Sprint(m["error"]); code != http.StatusBadRequest || !strings.HasPrefix(msg, "the Content-Type multipart/form-data names no boundary") {
		t.Errorf("no boundary: %d %q", code, msg)
	}
}

func TestServeEndpointsAndErrors(t *testing.T) {
	dir := tinyModel(t, filepath.Join(t.TempDir(), "m1"), 1)
	opts := defaultServeOptions()
	opts.MaxBody, opts.MaxPixels = 64<<10, 10_000
	s, ts := newTestServer(t, dir, opts)

	body, ct := multipartBody("image", pngBytes(20, 12, 3))
	code, m := post(t, ts.URL+"/predict", body, ct)
	if code != 200 {
		t.Fatalf("predict: %d %v", code, m)
	}
	preds := m["predictions"].([]any)
	if len(preds) != 5 {
		t.Fatalf("%d predictions", len(preds))
	}
	last := 2.0
	var sum float64
	for _, p := range preds {
		pm := p.(map[string]any)
		c := pm["confidence"].(float64)
		if c > last {
			t.Fatal("predictions not ordered by confidence")
		}
		last = c
		sum += c
		if testClasses[int(pm["class_id"].(float64))] != pm["class_name"] {
			t.Fatalf("class id and name disagree: %v", pm)
		}
	}
	// A barely trained model is unsure: the warning must be there exactly when the rule says.
	first := preds[0].(map[string]any)["confidence"].(float64)
	if _, warned := m["warning"]; warned != (sum < 0.9 || first < 0.6) {
		t.Fatalf("warning %v with sum %.3f, first %.3f", m["warning"], sum, first)
	}
	// ?top= answers that many classes (all of them at most), the same first ones, with the
	// same warning, which looks at the top five.
	for top, want := range map[string]int{"2": 2, "7": len(testClasses), "5": 5} {
		body, ct := multipartBody("image", pngBytes(20, 12, 3))
		code, mt := post(t, ts.URL+"/predict?top="+top, body, ct)
		got, _ := mt["predictions"].([]any)
		if code != 200 || len(got) != want || fmt.Sprint(got[:min(want, 5)]) != fmt.Sprint(preds[:min(want, 5)]) || fmt.Sprint(mt["warning"]) != fmt.Sprint(m["warning"]) {
			t.Errorf("top=%s: %d %v, want the first %d of %v", top, code, mt, want, preds)
		}
	}
	for _, top := range []string{"0", "-1", "two", ""} {
		body, ct := multipartBody("image", pngBytes(20, 12, 3))
		if code, mt := post(t, ts.URL+"/predict?top="+top, body, ct); code != 400 || !strings.Contains(fmt.Sprint(mt["error"]), "top="+top+": the number of classes") {
			t.Errorf("top=%s: %d %v, want 400", top, code, mt)
		}
	}
	// A repeated top is refused, not answered with its first value.
	for _, tops := range []string{"2&top=3", "2&top=2"} {
		body, ct := multipartBody("image", pngBytes(20, 12, 3))
		if code, mt := post(t, ts.URL+"/predict?top="+tops, body, ct); code != 400 || !strings.Contains(fmt.Sprint(mt["error"]), "top="+tops+": top is given 2 times; give it once") {
			t.Errorf("top=%s: %d %v, want 400", tops, code, mt)
		}
	}

	cases := []struct {
		name string
		body func() (io.Reader, string)
		want int
	}{
		{"no image field", func() (io.Reader, string) { return multipartBody("", nil) }, 400},
		{"empty file", func() (io.Reader, string) { return multipartBody("image", nil) }, 400},
		{"corrupt image", func() (io.Reader, string) { return multipartBody("image", pngBytes(20, 20, 5)[:60]) }, 400},
		{"not an image", func() (io.Reader, string) { return multipartBody("image", []byte("hello, this is text")) }, 415},
		{"not multipart", func() (io.Reader, string) { return strings.NewReader(`{"image": 1}`), "application/json" }, 415},
		{"an iPhone's HEIC", func() (io.Reader, string) {
			return multipartBody("image", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"))
		}, 415},
		{"a BMP with RLE compression, which the decoder lacks", func() (io.Reader, string) {
			var b bytes.Buffer
			bmp.Encode(&b, image.NewPaletted(image.Rect(0, 0, 8, 6), color.Palette{color.Black, color.White}))
			rle := b.Bytes()
			binary.LittleEndian.PutUint32(rle[30:34], 1) // BI_RLE8
			return multipartBody("image", rle)
		}, 415},
		{"a TIFF with JPEG compression, found decoding (its header reads)", func() (io.Reader, string) {
			var b bytes.Buffer
			tiff.Encode(&b, image.NewRGBA(image.Rect(0, 0, 8, 6)), nil)
			data := b.Bytes()
			ifd := binary.LittleEndian.Uint32(data[4:8])
			for i := uint32(0); i < uint32(binary.LittleEndian.Uint16(data[ifd:])); i++ {
				if e := data[ifd+2+12*i:]; binary.LittleEndian.Uint16(e) == 259 { // Compression
					binary.LittleEndian.PutUint16(e[8:], 7) // JPEG
				}
			}
			return multipartBody("image", data)
		}, 415},
		{"body too large", func() (io.Reader, string) { return multipartBody("image", bytes.Repeat([]byte("x"), 100<<10)) }, 413},
		{"too many pixels", func() (io.Reader, string) { return multipartBody("image", hugePNGHeader(5000, 5000)) }, 413},
		{"image after another field", func() (io.Reader, string) { return multipartBody("image", pngBytes(20, 12, 3), "a note") }, 200},
		{"two image fields", func() (io.Reader, string) {
			var buf bytes.Buffer
			w := multipart.NewWriter(&buf)
			for _, seed := range []byte{3, 4} {
				fw, _ := w.CreateFormFile("image", fmt.Sprintf("%d.png", seed))
				fw.Write(pngBytes(20, 12, seed))
			}
			w.Close()
			return &buf, w.FormDataContentType()
		}, 400},
		{"too large before the image", func() (io.Reader, string) {
			return multipartBody("image", pngBytes(20, 12, 3), strings.Repeat("x", 100<<10))
		}, 413},
	}
	for _, c := range cases {
		b, ct := c.body()
		code, m := post(t, ts.URL+"/predict", b, ct)
		if code != c.want || (m["error"] == nil) != (c.want == 200) {
			t.Errorf("%s: %d %v, want %d with an error message", c.name, code, m, c.want)
		}
		if c.name == "an iPhone's HEIC" && !strings.HasPrefix(fmt.Sprint(m["error"]), "unsupported heic (HEIF image): convert it to PNG or JPEG") {
			t.Errorf("HEIC: error %q", m["error"])
		}
		if c.name == "two image fields" && !strings.HasPrefix(fmt.Sprint(m["error"]), "more than one image field") {
			t.Errorf("two image fields: error %q", m["error"])
		}
		if strings.HasPrefix(c.name, "body too large") || strings.HasPrefix(c.name, "too large before") {
			if m["error"] != "request exceeds --max-body 64 KiB" {
				t.Errorf("%s: error %q, want it to name the flag and its value", c.name, m["error"])
			}
		}
	}

	get := func(path string) (int, []byte, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header.Get("Content-Type")
	}
	if code, b, _ := get("/classes"); code != 200 || !strings.Contains(string(b), `"circle","square","stripes"`) {
		t.Errorf("/classes: %d %s", code, b)
	}
	if code, b, ct := get("/classes/square/example"); code != 200 || ct != "image/png" || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("/classes/square/example: %d %s", code, ct)
	}
	// Cached only as long as the served model is the one it came from: asked revalidated each
	// time, answered 304 while it is (another folder, another tag).
	exReq, _ := http.NewRequest("GET", ts.URL+"/classes/square/example", nil)
	fresh, err := http.DefaultClient.Do(exReq)
	if err != nil {
		t.Fatal(err)
	}
	fresh.Body.Close()
	tag := fresh.Header.Get("ETag")
	exReq.Header.Set("If-None-Match", tag)
	revalidated, err := http.DefaultClient.Do(exReq)
	if err != nil {
		t.Fatal(err)
	}
	revalidated.Body.Close()
	if fresh.Header.Get("Cache-Control") != "no-cache" || tag == "" || revalidated.StatusCode != http.StatusNotModified ||
		exampleETag("/m/final_models.d/a", 1) == exampleETag("/m/final_models.d/b", 1) || exampleETag("/m/a", 1) == exampleETag("/m/a", 2) {
		t.Errorf("example caching: Cache-Control %q, ETag %q, conditional GET %d", fresh.Header.Get("Cache-Control"), tag, revalidated.StatusCode)
	}
	if code, _, _ := get("/classes/circle/example"); code != 404 {
		t.Errorf("example of a class without one: %d", code)
	}
	if code, _, _ := get("/classes/nope/example"); code != 404 {
		t.Errorf("example of an unknown class: %d", code)
	}
	if code, b, _ := get("/model"); code != 200 || !strings.Contains(string(b), `"id": "m1"`) {
		t.Errorf("/model: %d %s", code, b)
	}
	if code, b, _ := get("/healthz"); code != 200 || string(b) != `{"status":"ok","model":"m1","in_flight":0,"capacity":34,"inferring":0,"busy":false}`+"\n" {
		t.Errorf("/healthz: %d %s", code, b)
	}
	var spec map[string]any
	if code, b, _ := get("/openapi.json"); code != 200 || json.Unmarshal(b, &spec) != nil || spec["openapi"] == nil {
		t.Errorf("/openapi.json: %d", code)
	}
	// The upload page lists the formats the server accepts.
	if code, b, _ := get("/"); code != 200 || !strings.Contains(string(b), "Drop an image") || !strings.Contains(string(b), ">"+stages.ImageFormats+"<") {
		t.Errorf("/: %d", code)
	}

	// Busy: with every admission slot taken, a request is turned away at once.
	for i := 0; i < cap(s.queue); i++ {
		s.queue <- struct{}{}
	}
	b2, ct2 := multipartBody("image", pngBytes(8, 8, 2))
	if code, _ := post(t, ts.URL+"/predict", b2, ct2); code != 503 {
		t.Errorf("busy: %d, want 503", code)
	}
	// ... which /healthz says, still answering 200: the server is alive.
	s.slots <- struct{}{}
	if code, b, _ := get("/healthz"); code != 200 || !strings.Contains(string(b), `"in_flight":34,"capacity":34,"inferring":1,"busy":true}`) {
		t.Errorf("/healthz when busy: %d %s", code, b)
	}
	<-s.slots
	// ... before its upload is read: waiting uploads do not pile up in memory.
	b4, ct4 := multipartBody("image", pngBytes(8, 8, 2))
	counted := &countingReader{r: b4}
	req := httptest.NewRequest("POST", "/predict", counted)
	req.Header.Set("Content-Type", ct4)
	rec := httptest.NewRecorder()
	s.routes().ServeHTTP(rec, req)
	if rec.Code != 503 || counted.n != 0 || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("busy: %d after reading %d bytes of the upload, Retry-After %q; want 503 after none, and to retry in a second", rec.Code, counted.n, rec.Header().Get("Retry-After"))
	}
	for i := 0; i < cap(s.queue); i++ {
		<-s.queue
	}

	// Inference failure: a closed session answers 500, not a crash.
	m0 := s.acquire()
	m0.inflight.Done()
	m0.p.Model.Close()
	b3, ct3 := multipartBody("image", pngBytes(8, 8, 2))
	if code, m := post(t, ts.URL+"/predict", b3, ct3); code != 500 || !strings.Contains(fmt.Sprint(m["error"]), "inference failed") {
		t.Errorf("closed model: %d %v", code, m)
	}
}

// request sends a body-less request with the given headers and decodes the JSON answer.
func request(t *testing.T, method, url string, header map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: status %d: body is not JSON: %q", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, m
}

// TestServeErrorsAreJSON checks that the errors net/http writes itself (unknown path, wrong
// method, bad range) come in the API's JSON shape, the 405 with its Allow header.
func TestServeErrorsAreJSON(t *testing.T) {
	_, ts := newTestServer(t, tinyModel(t, filepath.Join(t.TempDir(), "m1"), 1), defaultServeOptions())
	cases := []struct {
		method, path string
		header       map[string]string
		want         int
		allow, says  string
	}{
		{"GET", "/predict", nil, 405, "POST", "GET is not allowed on /predict"},
		{"DELETE", "/classes", nil, 405, "GET, HEAD", "DELETE is not allowed on /classes"},
		{"POST", "/", nil, 405, "GET, HEAD", "POST is not allowed on /"},
		{"GET", "/nope", nil, 404, "", "nothing at /nope"},
		{"GET", "/classes/square", nil, 404, "", "nothing at /classes/square"},
		{"GET", "/classes/nope/example", nil, 404, "", `no class "nope"; GET /classes lists them`},
		{"GET", "/classes/squar/example", nil, 404, "", `no class "squar"; did you mean "square"?`},
		{"GET", "/classes/STRIPE/example", nil, 404, "", `did you mean "stripes"?`},
		{"GET", "/classes/square/example", map[string]string{"Range": "bytes=100000-"}, 416, "", "range"},
	}
	for _, c := range cases {
		code, h, m := request(t, c.method, ts.URL+c.path, c.header)
		msg, _ := m["error"].(string)
		if code != c.want || h.Get("Content-Type") != "application/json" || !strings.Contains(msg, c.says) || h.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d %q Allow %q %v; want %d, a JSON error saying %q, Allow %q",
				c.method, c.path, code, h.Get("Content-Type"), h.Get("Allow"), m, c.want, c.says, c.allow)
		}
	}
}

// TestMaxPixelsDefaultIsTheSameEverywhere checks that serve and predict refuse images from
// the same size on as the split stage does.
func TestMaxPixelsDefaultIsTheSameEverywhere(t *testing.T) {
	if got := defaultServeOptions().MaxPixels; got != stages.DefaultMaxPixels {
		t.Errorf("serve options: %d, want stages.DefaultMaxPixels (%d)", got, stages.DefaultMaxPixels)
	}
	for _, cmd := range []*cli.Command{serveCommand(), predictCommand()} {
		for _, f := range cmd.Flags {
			if f, ok := f.(*cli.Int64Flag); ok && f.Name == "max-pixels" && f.Value != stages.DefaultMaxPixels {
				t.Errorf("%s --max-pixels defaults to %d, want stages.DefaultMaxPixels (%d)", cmd.Name, f.Value, stages.DefaultMaxPixels)
			}
		}
	}
}

func TestServeWithoutModelAnswers503(t *testing.T) {
	_, ts := newTestServer(t, filepath.Join(t.TempDir(), "nothing"), defaultServeOptions())
	b, ct := multipartBody("image", pngBytes(8, 8, 2))
	if code, _ := post(t, ts.URL+"/predict", b, ct); code != 503 {
		t.Errorf("predict without a model: %d", code)
	}
	resp, _ := http.Get(ts.URL + "/healthz")
	if resp.StatusCode != 503 {
		t.Errorf("healthz without a model: %d", resp.StatusCode)
	}
}

// TestReloadDuringRequestsDropsNothing switches the served model (as a promotion does, by
// replacing a link) while clients keep sending requests: none may fail, and the new model
// must be answering afterwards.
func TestReloadDuringRequestsDropsNothing(t *testing.T) {
	root := t.TempDir()
	tinyModel(t, filepath.Join(root, "final_models.d", "a"), 1)
	tinyModel(t, filepath.Join(root, "final_models.d", "b"), 2)
	link := filepath.Join(root, "final_models")
	os.Symlink(filepath.Join("final_models.d", "a"), link)
	opts := defaultServeOptions()
	s, ts := newTestServer(t, link, opts)

	var ok, failed atomic.Int64
	var seenB atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				body, ct := multipartBody("image", pngBytes(8, 8, 4))
				resp, err := http.Post(ts.URL+"/predict", ct, body)
				if err != nil {
					failed.Add(1)
					continue
				}
				var m map[string]any
				json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				ok.Add(1)
				if m["model"] == "b" {
					seenB.Store(true)
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	tmp := link + ".tmp"
	os.Symlink(filepath.Join("final_models.d", "b"), tmp)
	os.Rename(tmp, link)
	if changed, err := s.reload(); !changed || err != nil {
		t.Fatalf("reload: %v %v", changed, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !seenB.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 10 || !seenB.Load() {
		t.Fatalf("%d ok, %d failed, new model answered: %v", ok.Load(), failed.Load(), seenB.Load())
	}
}

// TestSwitchDoesNotWaitForStamp checks that a newly promoted model answers requests while the
// watcher still reads its files for their stamp (a second read of weights the load has just
// read, over 500 MB for a VGG19), and that the stamp, taken then, still tells damage.
func TestSwitchDoesNotWaitForStamp(t *testing.T) {
	root, s, _ := servedChampion(t)
	tinyModel(t, filepath.Join(root, "final_models.d", "b"), 2)
	link := filepath.Join(root, "final_models")
	reading, release := make(chan string, 1), make(chan struct{})
	s.stampFiles = func(dir string) map[string]fileStamp {
		reading <- dir
		<-release
		return stampFiles(dir)
	}
	os.Symlink(filepath.Join("final_models.d", "b"), link+".tmp")
	os.Rename(link+".tmp", link)
	polled := make(chan struct{})
	go func() {
		s.poll()
		close(polled)
	}()
	var dir string
	select {
	case dir = <-reading:
	case <-time.After(30 * time.Second):
		t.Fatal("the new model's files were never stamped")
	}
	served := s.currentID()
	close(release)
	<-polled
	if served != "b" {
		t.Fatalf("while the files of %s were read, %q was served, want b", dir, served)
	}
	weights, _ := filepath.Glob(filepath.Join(root, "final_models.d", "b", "saved_model", "variables", "variables.data-*"))
	if len(weights) != 1 {
		t.Fatalf("weights %v", weights)
	}
	if err := os.Truncate(weights[0], 10); err != nil {
		t.Fatal(err)
	}
	s.poll()
	if got := s.pendingError(); !strings.Contains(got, "changed on disk since it was loaded") {
		t.Fatalf("truncated weights of the model switched to: pending_model_error %q", got)
	}
}

// FuzzPredictBody sends arbitrary bytes as the image: the answer is always JSON with a 2xx or
// 4xx status, never a 5xx or a crash.
func FuzzPredictBody(f *testing.F) {
	f.Add(pngBytes(8, 8, 1))
	f.Add(hugePNGHeader(100, 100))
	f.Add([]byte("GIF89a"))
	f.Add([]byte{0xff, 0xd8, 0xff, 0xe0})
	dir := tinyModel(f, filepath.Join(f.TempDir(), "m"), 1)
	s := newServer(dir, defaultServeOptions(), log.New(io.Discard, "", 0))
	if _, err := s.reload(); err != nil {
		f.Fatal(err)
	}
	defer s.close()
	h := s.routes()
	f.Fuzz(func(t *testing.T, data []byte) {
		body, ct := multipartBody("image", data)
		req := httptest.NewRequest("POST", "/predict", body)
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %d bytes: %s", rec.Code, len(data), rec.Body.String())
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %s", rec.Body.String())
		}
	})
}

// TestPredictTopMustBeAtLeastOne checks that predict refuses --top below 1 with an error
// naming the flag, and prints as many classes as asked otherwise.
func TestPredictTopMustBeAtLeastOne(t *testing.T) {
	dir := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	img := filepath.Join(t.TempDir(), "x.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	for _, k := range []string{"-3", "0"} {
		code, out, errs := runCLI("predict", "--model", dir, "--top", k, img)
		if code != exitErr || !strings.Contains(errs, "--top "+k+":") || out != "" {
			t.Errorf("--top %s: exit %d, stdout %q, stderr %q; want exit %d and an error naming --top", k, code, out, errs, exitErr)
		}
	}
	code, out, errs := runCLI("predict", "--model", dir, "--top", "3", img)
	if code != exitOK || strings.Count(out, "%") != 3 {
		t.Errorf("--top 3: exit %d\n%s%s", code, out, errs)
	}
	// One line per class: rank, confidence, then the class name, which may be any width;
	// then the low-confidence warning where it applies.
	line := regexp.MustCompile(`^  [1-3]\. [ \d]{3}\d\.\d%  (` + strings.Join(testClasses, "|") + `)$`)
	lines := strings.Split(strings.TrimSpace(out), "\n")[1:]
	if len(lines) == 4 && lines[3] == "  warning: "+lowConfidence {
		lines = lines[:3]
	}
	for _, l := range lines {
		if !line.MatchString(l) {
			t.Errorf("prediction line %q", l)
		}
	}
}

// TestPredictTakesAFolder checks that a folder stands for the images directly in it, in name
// order, without hidden files, subfolders or files that are not images, and that a folder
// without images is an error.
func TestPredictTakesAFolder(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	dir := filepath.Join(t.TempDir(), "photos")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	for _, name := range []string{"b.png", "a.png", ".hidden.png", "sub/c.png"} {
		os.WriteFile(filepath.Join(dir, name), pngBytes(8, 8, 3), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("taken in May"), 0o644)
	code, out, errs := runCLI("predict", "--model", model, "--json", dir)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	var res []struct {
		File, Skipped string
		Predictions   []stages.Prediction
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got, skipped []string
	for _, r := range res {
		if r.Skipped != "" {
			skipped = append(skipped, r.File)
			continue
		}
		got = append(got, r.File)
		if len(r.Predictions) != 5 {
			t.Errorf("%s: %d predictions", r.File, len(r.Predictions))
		}
	}
	if want := []string{filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")}; !slices.Equal(got, want) {
		t.Errorf("classified %q, want %q", got, want)
	}
	if want := []string{filepath.Join(dir, "notes.txt")}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
	if !strings.Contains(errs, "skipped 1 file in the folders given") || !strings.Contains(errs, "notes.txt") {
		t.Errorf("stderr %q does not name the skipped file", errs)
	}

	textOnly := filepath.Join(t.TempDir(), "texts")
	os.MkdirAll(textOnly, 0o755)
	os.WriteFile(filepath.Join(textOnly, "notes.txt"), []byte("taken in May"), 0o644)
	if code, _, errs := runCLI("predict", "--model", model, textOnly); code != exitErr || !strings.Contains(errs, "no image in "+textOnly) {
		t.Errorf("a folder without images: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI("predict", "--model", model, t.TempDir()); code != exitErr || !strings.Contains(errs, "the folder holds no files") {
		t.Errorf("an empty folder: exit %d, %q", code, errs)
	}

	// A folder of class folders (a test set): its subfolders are said, and -r looks in them,
	// each folder's files before its subfolders', hidden folders left out, and a link back up
	// not followed again.
	set := filepath.Join(t.TempDir(), "test")
	for _, name := range []string{"Bag/b.png", "Bag/a.png", "Coat/c.png", "Coat/deep/d.png", ".cache/h.png"} {
		os.MkdirAll(filepath.Dir(filepath.Join(set, name)), 0o755)
		os.WriteFile(filepath.Join(set, name), pngBytes(8, 8, 3), 0o644)
	}
	os.Symlink("..", filepath.Join(set, "Coat", "up"))             // the folder named
	os.Symlink("../Coat", filepath.Join(set, "Bag", "coats"))      // listed where it is
	os.Symlink("../..", filepath.Join(set, "Coat", "deep", "top")) // above the folder named
	outside := filepath.Join(t.TempDir(), "more")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "e.png"), pngBytes(8, 8, 3), 0o644)
	os.Symlink(outside, filepath.Join(set, "Coat", "more")) // outside: followed, once
	os.Symlink(outside, filepath.Join(set, "Coat", "again"))
	os.MkdirAll(filepath.Join(set, ".versions", "v2", "Hats"), 0o755) // hidden: shown by its link
	os.WriteFile(filepath.Join(set, ".versions", "v2", "Hats", "h.png"), pngBytes(8, 8, 3), 0o644)
	os.Symlink(".versions/v2/Hats", filepath.Join(set, "Hats"))
	if code, _, errs := runCLI("predict", "--model", model, set); code != exitErr || errs != "pipeline: "+set+": the folder holds no files, only 3 subfolders: --recursive (-r) looks in them\n" {
		t.Errorf("a folder of class folders: exit %d, %q, want that said once", code, errs)
	}
	code, out, errs = runCLI("predict", "--model", model, "-r", "--json", set)
	res = nil
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("-r: exit %d\n%s%s", code, out, errs)
	}
	got = nil
	for _, r := range res {
		got = append(got, strings.TrimPrefix(r.File, set+"/"))
	}
	if want := []string{"Bag/a.png", "Bag/b.png", "Coat/c.png", "Coat/again/e.png", "Coat/deep/d.png", "Hats/h.png"}; !slices.Equal(got, want) {
		t.Errorf("-r classified %q, want %q", got, want)
	}
	// The same through ./ and a trailing slash.
	t.Chdir(filepath.Dir(set))
	for _, arg := range []string{"./test", "test/"} {
		code, out, errs = runCLI("predict", "--model", model, "-r", arg)
		if code != exitOK || strings.Count(out, ".png\n") != 6 {
			t.Errorf("-r %s: exit %d\n%s%s", arg, code, out, errs)
		}
	}
	if code, _, errs := runCLI("predict", "--model", model, "-r", textOnly); code != exitErr || !strings.Contains(errs, "no image in "+textOnly) {
		t.Errorf("-r on a folder without images: exit %d, %q", code, errs)
	}
}

// TestPredictWarnsOfLowConfidenceAsServeDoes checks predict's warning follows serve's rule
// on the top five, whatever --top shows, in text and in JSON.
func TestPredictWarnsOfLowConfidenceAsServeDoes(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	img := filepath.Join(t.TempDir(), "x.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	// A barely trained model is never certain: its best confidence is below 1, and the top
	// five of seven classes sum to less than 1. None is below 0.
	code, out, errs := runCLI("predict", "--model", model, "--top", "1", "--warn-top", "1", img)
	if code != exitOK || !strings.HasSuffix(out, "\n  warning: "+lowConfidence+"\n") || strings.Count(out, "%") != 1 {
		t.Errorf("--warn-top 1: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI("predict", "--model", model, "--json", "--warn-top", "0", "--warn-sum", "0", img)
	if code != exitOK || strings.Contains(out, "warning") {
		t.Errorf("no threshold: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI("predict", "--model", model, "--json", "--warn-top", "0", "--warn-sum", "1", img)
	if code != exitOK || !strings.Contains(out, `"warning": "`+lowConfidence+`"`) {
		t.Errorf("--warn-sum 1: exit %d\n%s%s", code, out, errs)
	}
	for _, c := range []struct {
		conf []float64
		want bool
	}{
		{[]float64{0.7, 0.25}, false},
		{[]float64{0.55, 0.4}, true},                                    // the first below 0.6
		{[]float64{0.6, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05}, true}, // the top five sum to 0.85
		{[]float64{0.6, 0.15, 0.1, 0.03, 0.03, 0.03}, false},            // to 0.91
	} {
		var preds []stages.Prediction
		for _, v := range c.conf {
			preds = append(preds, stages.Prediction{Confidence: v})
		}
		if got := lowConfidence5(preds, 0.9, 0.6); got != c.want {
			t.Errorf("%v: warning %v, want %v", c.conf, got, c.want)
		}
	}
}

func TestClassIndexTakesEitherUnicodeForm(t *testing.T) {
	classes := []string{"Sac \u00e0 main", "Ce\u0301pe"}
	for name, want := range map[string]int{"Sac \u00e0 main": 0, "Sac a\u0300 main": 0, "C\u00e9pe": 1, "Ce\u0301pe": 1, "Sac a main": -1} {
		if got := classIndex(classes, name); got != want {
			t.Errorf("classIndex(%+q) = %d, want %d", name, got, want)
		}
	}
}

// A promoted model that fails to load is reported once, not at every reload tick, until it
// changes; the server keeps serving the previous model meanwhile.
func TestBrokenModelIsReportedOnce(t *testing.T) {
	root := t.TempDir()
	good := tinyModel(t, filepath.Join(root, "final_models.d", "a"), 1)
	broken := filepath.Join(root, "final_models.d", "b")
	os.MkdirAll(broken, 0o755)
	os.WriteFile(filepath.Join(broken, "model.json"), []byte(`{"format_version": 1`), 0o644)
	link := filepath.Join(root, "final_models")
	os.Symlink(filepath.Join("final_models.d", "a"), link)
	s := newServer(link, defaultServeOptions(), log.New(io.Discard, "", 0))
	defer s.close()
	if changed, err := s.reload(); !changed || err != nil {
		t.Fatalf("first load: %v %v", changed, err)
	}
	os.Remove(link)
	os.Symlink(filepath.Join("final_models.d", "b"), link)
	if _, err := s.reload(); err == nil || errors.Is(err, errLoadFailedBefore) {
		t.Fatalf("the broken model: %v, want its load error", err)
	}
	for range 3 {
		if _, err := s.reload(); !errors.Is(err, errLoadFailedBefore) {
			t.Fatalf("again: %v, want errLoadFailedBefore", err)
		}
	}
	if m := s.acquire(); m == nil || m.resolved != mustEval(t, good) {
		t.Fatal("the previous model is no longer served")
	} else {
		m.inflight.Done()
	}
	// Fixed in place (a new stamp), it loads.
	os.RemoveAll(broken)
	tinyModel(t, broken, 2)
	later := time.Now().Add(time.Second)
	os.Chtimes(filepath.Join(broken, "model.json"), later, later)
	if changed, err := s.reload(); !changed || err != nil {
		t.Fatalf("the repaired model: %v %v", changed, err)
	}
}

// servedChampion returns a folder holding a promotion folder (final_models, a link to the
// tiny model final_models.d/a) and a server of it that has loaded it, logging into logged.
func servedChampion(t *testing.T) (root string, s *server, logged *bytes.Buffer) {
	t.Helper()
	root = t.TempDir()
	tinyModel(t, filepath.Join(root, "final_models.d", "a"), 1)
	link := filepath.Join(root, "final_models")
	os.Symlink(filepath.Join("final_models.d", "a"), link)
	logged = &bytes.Buffer{}
	s = newServer(link, defaultServeOptions(), log.New(logged, "", 0))
	t.Cleanup(s.close)
	s.poll()
	return root, s, logged
}

// TestDamagedServedModelIsReported checks that the files of the model served, damaged on disk
// (its weights deleted), are reported once in the log and in /healthz's pending_model_error
// while it is still served from memory, and that this clears once they are whole again.
func TestDamagedServedModelIsReported(t *testing.T) {
	root, s, logged := servedChampion(t)
	vars := filepath.Join(root, "final_models.d", "a", "saved_model", "variables")
	aside := filepath.Join(root, "variables")
	if err := os.Rename(vars, aside); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.poll()
	}
	if n := strings.Count(logged.String(), "still serving a from memory, but its files are damaged"); n != 1 || !strings.Contains(logged.String(), "its weights (variables/) are missing") {
		t.Fatalf("said %d times, want once, naming the weights:\n%s", n, logged.String())
	}
	if got := s.pendingError(); !strings.Contains(got, "its weights (variables/) are missing") {
		t.Fatalf("pending_model_error %q", got)
	}
	if m := s.acquire(); m == nil {
		t.Fatal("the model is no longer served")
	} else {
		m.inflight.Done()
	}
	os.Rename(aside, vars)
	s.poll()
	if got := s.pendingError(); got != "" || !strings.Contains(logged.String(), "the files of a are whole again") {
		t.Fatalf("after repair: pending %q\n%s", got, logged.String())
	}
}

// TestTruncatedServedModelIsReported checks that a file of the model served that changes on
// disk (truncated weights: every name of a hard-linked file at once), which leaves every file
// in place, is reported as damaged too.
func TestTruncatedServedModelIsReported(t *testing.T) {
	root, s, logged := servedChampion(t)
	s.poll()
	if got := s.pendingError(); got != "" {
		t.Fatalf("an intact model: pending_model_error %q", got)
	}
	weights, _ := filepath.Glob(filepath.Join(root, "final_models.d", "a", "saved_model", "variables", "variables.data-*"))
	if len(weights) != 1 {
		t.Fatalf("weights %v", weights)
	}
	whole, err := os.ReadFile(weights[0])
	if err != nil {
		t.Fatal(err)
	}
	// Touched only: the same content.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(weights[0], later, later); err != nil {
		t.Fatal(err)
	}
	s.poll()
	if got := s.pendingError(); got != "" {
		t.Fatalf("touched weights: pending_model_error %q", got)
	}
	if err := os.Truncate(weights[0], 10); err != nil {
		t.Fatal(err)
	}
	s.poll()
	s.poll()
	if got := s.pendingError(); !strings.Contains(got, "changed on disk since it was loaded") || !strings.Contains(got, "variables/variables.data-") {
		t.Fatalf("truncated weights: pending_model_error %q\n%s", got, logged.String())
	}
	// Put back as they were (cp -a from a backup, say): whole again.
	if err := os.WriteFile(weights[0], whole, 0o644); err != nil {
		t.Fatal(err)
	}
	s.poll()
	if got := s.pendingError(); got != "" || !strings.Contains(logged.String(), "whole again") {
		t.Fatalf("weights put back: pending_model_error %q\n%s", got, logged.String())
	}
}

// pollWithin polls s, and fails the test if the poll has not returned within 30 seconds (it
// blocks reading a named pipe), after opening each of pipes for writing, which lets a read
// blocked on one return.
func pollWithin(t *testing.T, s *server, pipes ...string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		s.poll()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		for _, p := range pipes {
			if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		}
		<-done
		t.Fatal("the watcher blocks reading a named pipe in the model folder")
	}
}

// TestANamedPipeInTheModelFolderIsNotRead checks that a named pipe in the folder of a model
// switched to, which would block the watcher for ever if read, is not read: the server
// switches to the model and keeps telling its files damaged on disk, the pipe's removal
// included, and a file replaced by a named pipe is damaged too, without being read.
func TestANamedPipeInTheModelFolderIsNotRead(t *testing.T) {
	root, s, logged := servedChampion(t)
	saved := filepath.Join(tinyModel(t, filepath.Join(root, "final_models.d", "b"), 2), "saved_model")
	pipe := filepath.Join(saved, "requests.fifo")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skip("no named pipes:", err)
	}
	link := filepath.Join(root, "final_models")
	os.Symlink(filepath.Join("final_models.d", "b"), link+".tmp")
	os.Rename(link+".tmp", link)
	pollWithin(t, s, pipe)
	pollWithin(t, s, pipe)
	if got, pending := s.currentID(), s.pendingError(); got != "b" || pending != "" {
		t.Fatalf("serving %q, pending_model_error %q; want b, none\n%s", got, pending, logged.String())
	}

	os.Remove(pipe)
	pollWithin(t, s)
	if got := s.pendingError(); !strings.Contains(got, "its file requests.fifo is gone") {
		t.Fatalf("the named pipe removed: pending_model_error %q", got)
	}
	syscall.Mkfifo(pipe, 0o644)
	pollWithin(t, s, pipe)
	if got := s.pendingError(); got != "" {
		t.Fatalf("the named pipe back: pending_model_error %q", got)
	}

	example := filepath.Join(saved, "examples", "1.png")
	os.Remove(example)
	syscall.Mkfifo(example, 0o644)
	pollWithin(t, s, pipe, example)
	if got := s.pendingError(); !strings.Contains(got, "its file examples/1.png changed on disk since it was loaded (now a named pipe)") {
		t.Fatalf("an example replaced by a named pipe: pending_model_error %q", got)
	}
	os.Remove(example)
	os.WriteFile(example, pngBytes(8, 8, 1), 0o644)
	pollWithin(t, s, pipe)
	if got := s.pendingError(); got != "" {
		t.Fatalf("the example put back: pending_model_error %q", got)
	}
}

// TestModelFilesReplacedByNamedPipesAreNotRead checks that the watcher and the example
// handler do not wait for ever on a named pipe in the place of a file of a model they read:
// the served model's model.json replaced by one is damage named as such, its example image
// is not found, and a newly promoted model whose card and saved_model.pb are named pipes is
// not switched to, its saved_model.pb named.
func TestModelFilesReplacedByNamedPipesAreNotRead(t *testing.T) {
	root, s, logged := servedChampion(t)
	saved := filepath.Join(root, "final_models.d", "a", "saved_model")
	info := filepath.Join(saved, graphs.ModelInfoFile)
	os.Remove(info)
	if err := syscall.Mkfifo(info, 0o644); err != nil {
		t.Skip("no named pipes:", err)
	}
	pollWithin(t, s, info)
	if got, want := s.pendingError(), "its model.json is a named pipe, not a regular file"; !strings.Contains(got, want) {
		t.Fatalf("model.json replaced by a named pipe: pending_model_error %q, want it to say %q\n%s", got, want, logged.String())
	}

	example := filepath.Join(saved, "examples", "1.png")
	os.Remove(example)
	syscall.Mkfifo(example, 0o644)
	rec := httptest.NewRecorder()
	answered := make(chan struct{})
	go func() {
		s.routes().ServeHTTP(rec, httptest.NewRequest("GET", "/classes/square/example", nil))
		close(answered)
	}()
	select {
	case <-answered:
	case <-time.After(30 * time.Second):
		if f, err := os.OpenFile(example, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-answered
		t.Fatal("GET /classes/square/example blocks on a named pipe")
	}
	if rec.Code != 404 {
		t.Errorf("an example that is a named pipe: %d %s, want 404", rec.Code, rec.Body)
	}

	b := tinyModel(t, filepath.Join(root, "final_models.d", "b"), 2)
	card, graph := filepath.Join(b, "model.json"), filepath.Join(b, "saved_model", "saved_model.pb")
	for _, p := range []string{card, graph} {
		os.Remove(p)
		syscall.Mkfifo(p, 0o644)
	}
	link := filepath.Join(root, "final_models")
	os.Symlink(filepath.Join("final_models.d", "b"), link+".tmp")
	os.Rename(link+".tmp", link)
	pollWithin(t, s, info, card, graph)
	if got, want := logged.String(), "its saved_model.pb is a named pipe, not a regular file"; s.currentID() != "a" || !strings.Contains(got, want) {
		t.Fatalf("a model whose card and graph are named pipes: serving %q, want a still, and a log saying %q:\n%s", s.currentID(), want, got)
	}
}

func mustEval(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testJPEG is a 64×48 photo-like JPEG.
func testJPEG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = byte(i*7 + i/13)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPredictAndServeCallATruncatedJPEGTruncated checks that predict and serve say of a JPEG
// cut short in its scan what the split's rejected.json says ("truncated jpeg"), not the
// decoder's "short Huffman data".
func TestPredictAndServeCallATruncatedJPEGTruncated(t *testing.T) {
	data := testJPEG(t)
	cut := data[:len(data)*6/10]
	file := filepath.Join(t.TempDir(), "cut.jpg")
	os.WriteFile(file, cut, 0o644)
	dir := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	code, _, errs := runCLI("predict", "--model", dir, file)
	if code != exitErr || !strings.Contains(errs, "cut.jpg: truncated jpeg\n") {
		t.Errorf("predict: exit %d, stderr %q; want %q", code, errs, file+": truncated jpeg")
	}
	_, ts := newTestServer(t, dir, defaultServeOptions())
	body, ct := multipartBody("image", cut)
	if code, m := post(t, ts.URL+"/predict", body, ct); code != http.StatusBadRequest || m["error"] != "truncated jpeg" {
		t.Errorf("serve: %d %v, want 400 and \"truncated jpeg\"", code, m)
	}
}

// Predict and serve classify a JPEG that libjpeg-turbo decodes past damage in, and say what
// it said of the file, where the file is named.
func TestPredictAndServeSayAJPEGIsDamaged(t *testing.T) {
	data := testJPEG(t)
	damaged := append(append(append([]byte{}, data[:len(data)-2]...), bytes.Repeat([]byte{0x11}, 40)...), 0xff, 0xd9)
	file := filepath.Join(t.TempDir(), "stray.jpg")
	os.WriteFile(file, damaged, 0o644)
	dir := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	const said = " extraneous bytes before marker 0xd9"
	code, out, errs := runCLI("predict", "--model", dir, file)
	if code != 0 || !strings.Contains(out, "stray.jpg\n") || !strings.Contains(out, "\n  damaged: the JPEG's coded data is damaged, and was classified as libjpeg-turbo decoded it (Corrupt JPEG data: ") ||
		!strings.HasSuffix(out, said+")\n") || errs != "" {
		t.Errorf("predict: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, _ = runCLI("predict", "--json", "--model", dir, file)
	var res []map[string]any
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || len(res) != 1 || !strings.HasSuffix(fmt.Sprint(res[0]["damaged"]), said) {
		t.Errorf("predict --json: exit %d, %v, %s", code, err, out)
	}
	_, ts := newTestServer(t, dir, defaultServeOptions())
	body, ct := multipartBody("image", damaged)
	if code, m := post(t, ts.URL+"/predict", body, ct); code != http.StatusOK || !strings.HasSuffix(fmt.Sprint(m["damaged"]), said) || m["predictions"] == nil {
		t.Errorf("serve: %d %v", code, m)
	}
	body, ct = multipartBody("image", data)
	if code, m := post(t, ts.URL+"/predict", body, ct); code != http.StatusOK || m["damaged"] != nil {
		t.Errorf("serve, the file undamaged: %d %v", code, m)
	}
}

// An admitted upload that stops arriving gives its queue place back with 408, so clients
// trickling bytes cannot turn everyone else away.
func TestSlowUploadGivesBackItsPlace(t *testing.T) {
	opts := defaultServeOptions()
	opts.Concurrency, opts.Queue = 1, 0
	// Grace enough for the busy request below to be turned away on a loaded machine.
	opts.UploadRate, opts.UploadGrace, opts.UploadLimit = 1000, 2*time.Second, 10*time.Second
	s, ts := newTestServer(t, filepath.Join(t.TempDir(), "nothing"), opts)

	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000\r\n\r\n--b\r\n")
	deadline := time.Now().Add(5 * time.Second)
	for len(s.queue) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b, ct := multipartBody("image", pngBytes(8, 8, 2))
	if code, m := post(t, ts.URL+"/predict", b, ct); code != 503 || !strings.HasPrefix(fmt.Sprint(m["error"]), "busy") {
		t.Fatalf("with the only place taken by an upload: %d %v, want 503 busy", code, m)
	}
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the stalled upload got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 408 || !strings.Contains(string(body), "too slowly") {
		t.Fatalf("the stalled upload: %d %s, want 408", resp.StatusCode, body)
	}
	b, ct = multipartBody("image", pngBytes(8, 8, 2))
	if code, m := post(t, ts.URL+"/predict", b, ct); code != 503 || fmt.Sprint(m["error"]) != "no model loaded yet" {
		t.Fatalf("after the stalled upload was cut off: %d %v, want it admitted (and told there is no model)", code, m)
	}
}

// TestServeRefusesBadStartups checks that positional arguments, flag values that make no
// sense, and a --model that is no promotion folder and holds no model end serve at once with
// an error naming what to change, and that a promotion folder with nothing in it yet is
// accepted (waited for).
func TestServeRefusesBadStartups(t *testing.T) {
	root := t.TempDir()
	final := filepath.Join(root, "models", "final_models") // nothing promoted yet
	os.MkdirAll(filepath.Join(root, "models", "champ.d"), 0o755)
	os.MkdirAll(filepath.Join(root, "photos"), 0o755)
	os.Symlink("gone", filepath.Join(root, "link"))
	// A port that cannot be listened on: serve ends there at the latest, without a lookup.
	const port = "127.0.0.1:99999"
	cases := []struct {
		args []string
		says string
	}{
		{[]string{"serve", "/some/model"}, `serve takes no arguments, got ["/some/model"]; to serve the model there, give it with --model /some/model`},
		{[]string{"serve", "a", "b"}, `serve takes no arguments, got ["a" "b"]; give the model folder with --model PATH`},
		{[]string{"serve", "--model", final, "--max-body", "-1"}, "--max-body -1: the largest request must be at least 1 byte"},
		{[]string{"serve", "--model", final, "--max-body", "0"}, "--max-body 0:"},
		{[]string{"serve", "--model", final, "--concurrency", "0"}, "--concurrency 0: the number of inferences at once must be at least 1"},
		{[]string{"serve", "--model", final, "--queue", "-1"}, "--queue -1: the number of requests waiting must be 0 or more"},
		{[]string{"serve", "--model", final, "--max-pixels", "0"}, "--max-pixels 0: the largest image must be at least 1 pixel"},
		{[]string{"serve", "--model", final, "--warn-sum", "1.5"}, "--warn-sum 1.5: a confidence threshold must be between 0 and 1"},
		{[]string{"serve", "--model", final, "--warn-top", "-0.1"}, "--warn-top -0.1: a confidence threshold must be between 0 and 1"},
		{[]string{"serve", "--model", filepath.Join(root, "models", "nope")}, "--model " + filepath.Join(root, "models", "nope") + ": nothing is there; give a model folder that exists"},
		{[]string{"serve", "--model", filepath.Join(root, "photos")}, filepath.Join(root, "photos")},
		{[]string{"serve", "--model", filepath.Join(root, "link")}, "--model " + filepath.Join(root, "link") + " is a symbolic link to gone, which does not exist"},
		{[]string{"serve", "--model", filepath.Join(root, "nodir", "final_models")}, "--model " + filepath.Join(root, "nodir", "final_models") + ": its folder " + filepath.Join(root, "nodir") + " does not exist: run the pipeline here first"},
		{[]string{"serve", "--model", root}, "--model " + root + " holds no model: a model folder is a SavedModel as pipeline exports it"},
		{[]string{"predict", "--max-pixels", "-5", "x.png"}, "--max-pixels -5:"},
		{[]string{"predict", "--warn-top", "1.01", "x.png"}, "--warn-top 1.01:"},
	}
	for _, c := range cases {
		code, out, errs := runCLI(append(c.args, "--addr", port)...)
		if c.args[0] == "predict" {
			code, out, errs = runCLI(c.args...)
		}
		if code != exitErr || !strings.Contains(errs, c.says) || strings.Contains(errs, "99999") || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d and an error saying %q", c.args, code, out, errs, exitErr, c.says)
		}
	}
	// Accepted, as far as listening: the limits at their edges, and promotion folders that
	// hold nothing yet (final_models, or any folder with its .d folder beside it), or a link
	// that leads nowhere, which is said once listening.
	dangling := filepath.Join(root, "other", "final_models")
	os.MkdirAll(filepath.Join(root, "other", "final_models.d"), 0o755)
	os.Symlink(filepath.Join("final_models.d", "gone"), dangling)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--model", final, "--queue", "0", "--max-body", "1", "--max-pixels", "1", "--warn-sum", "0", "--warn-top", "1"}, "no model to serve at " + final + " (nothing is promoted there yet); answering 503"},
		{[]string{"--model", filepath.Join(root, "models", "champ")}, "no model to serve at " + filepath.Join(root, "models", "champ")},
		{[]string{"--model", dangling}, "no model to serve at " + dangling + " (" + dangling + " points to " + filepath.Join(root, "other", "final_models.d", "gone") + ", which is gone: there is no champion;"},
	} {
		code, out, errs := runCLI(append(append([]string{"serve"}, c.args...), "--addr", port)...)
		if want := "pipeline: --addr " + port + ": "; code != exitErr || !strings.HasPrefix(errs, want) || strings.Contains(errs, "no model to serve") {
			t.Errorf("%q: exit %d\n%s%s; want it to fail to listen (%q), before saying what it serves", c.args, code, out, errs, want)
		}
		p := startPipeline(t, append(append([]string{"serve"}, c.args...), "--addr", "127.0.0.1:0")...)
		p.waitUntil("it listens", func() bool { return strings.Contains(p.stderr(), "listening on http://127.0.0.1:") })
		p.signal(syscall.SIGTERM)
		if code := p.exitCode(); code != exitOK || !strings.Contains(p.stderr(), c.says) || !strings.Contains(p.stderr(), "answering 503 until a model that loads is promoted there") {
			t.Errorf("%q: exit %d\n%s; want it to say %q and wait for a model", c.args, code, p.stderr(), c.says)
		}
	}
}

// An address in use is said so, naming it, before anything is announced: serve says the model
// it serves only once it listens.
func TestServeSaysTheAddressIsInUse(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	code, out, errs := runCLI("serve", "--model", model, "--addr", addr)
	want := "pipeline: --addr " + addr + ": the address is in use: another program (another serve?) listens there; stop it, or give another port with --addr\n"
	if code != exitErr || out != "" || errs != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and only %q", code, out, errs, exitErr, want)
	}
}

// stalledUpload starts a /predict upload to addr that sends its first bytes and no more: a
// request in flight until the server answers or closes it.
func stalledUpload(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000\r\n\r\n--b\r\n")
	return conn
}

// syncBuffer is a log destination read while the server writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestServeShutdown checks the shutdown: with no request in flight the server stops at the
// signal; with one, it waits for it up to the grace period, then closes it, says so and
// ends without an error, as it does at a second signal.
func TestServeShutdown(t *testing.T) {
	opts := defaultServeOptions()
	opts.UploadGrace, opts.UploadLimit = time.Minute, time.Minute // the upload stays in flight
	start := func(t *testing.T, grace time.Duration) (chan os.Signal, *syncBuffer, string, chan bool, *connStates) {
		var logged syncBuffer
		s := newServer(filepath.Join(t.TempDir(), "nothing"), opts, log.New(&logged, "", 0))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conns := &connStates{}
		srv := &http.Server{Handler: s.routes(), ConnState: conns.track}
		sigs := make(chan os.Signal, 2)
		done := make(chan bool, 1)
		go func() {
			finished, err := serveUntilStopped(srv, ln, conns, sigs, grace, s.logger)
			if err != nil {
				t.Errorf("serveUntilStopped: %v", err)
			}
			done <- finished
		}()
		return sigs, &logged, ln.Addr().String(), done, conns
	}
	wait := func(t *testing.T, what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
		}
	}
	ended := func(t *testing.T, done chan bool, logged *syncBuffer) bool {
		t.Helper()
		select {
		case finished := <-done:
			return finished
		case <-time.After(10 * time.Second):
			t.Fatalf("the server did not stop:\n%s", logged)
		}
		return false
	}
	t.Run("idle", func(t *testing.T) {
		sigs, logged, _, done, _ := start(t, time.Minute)
		sigs <- syscall.SIGTERM
		if !ended(t, done, logged) || !strings.Contains(logged.String(), "SIGTERM: no request in flight; shutting down\nstopped\n") {
			t.Fatalf("log:\n%s", logged)
		}
	})
	t.Run("grace period over", func(t *testing.T) {
		sigs, logged, addr, done, conns := start(t, 300*time.Millisecond)
		conn := stalledUpload(t, addr)
		wait(t, "the upload is in flight", func() bool { return conns.active() == 1 })
		began := time.Now()
		sigs <- os.Interrupt
		if ended(t, done, logged) || time.Since(began) < 300*time.Millisecond {
			t.Fatalf("stopped after %s, every request finished; want it closed after 0.3 s:\n%s", time.Since(began), logged)
		}
		want := "SIGINT: shutting down; 1 request in flight finishes for up to 0.3 s; SIGINT or SIGTERM again closes it at once\n" +
			"1 request still in flight after 0.3 s: closed; stopped\n"
		if !strings.Contains(logged.String(), want) {
			t.Fatalf("log:\n%s\nwant:\n%s", logged, want)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the closed request's connection: %v, want it closed", err)
		}
	})
	t.Run("second signal", func(t *testing.T) {
		sigs, logged, addr, done, conns := start(t, time.Hour)
		stalledUpload(t, addr)
		stalledUpload(t, addr)
		wait(t, "the uploads are in flight", func() bool { return conns.active() == 2 })
		sigs <- os.Interrupt
		wait(t, "the server is shutting down", func() bool { return strings.Contains(logged.String(), "2 requests in flight finish for up to 3600 s") })
		sigs <- syscall.SIGTERM
		if ended(t, done, logged) || !strings.Contains(logged.String(), "SIGTERM: 2 requests still in flight closed; stopped\n") {
			t.Fatalf("log:\n%s", logged)
		}
	})
}

// TestListenURL checks that serve logs a URL that opens: localhost for a server on every
// interface, the host as given otherwise, and the port it got.
func TestListenURL(t *testing.T) {
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	every := " (every interface: from another machine, this one's name or address, port 5786)"
	for _, c := range []struct {
		addr string
		ln   net.Addr
		want string
	}{
		{":5786", tcp("::", 5786), "http://localhost:5786/" + every},
		{"0.0.0.0:5786", tcp("0.0.0.0", 5786), "http://localhost:5786/" + every},
		{"[::]:5786", tcp("::", 5786), "http://localhost:5786/" + every},
		{"localhost:5000", tcp("127.0.0.1", 5000), "http://localhost:5000/"},
		{"127.0.0.1:0", tcp("127.0.0.1", 41234), "http://127.0.0.1:41234/"},
		{"[::1]:5000", tcp("::1", 5000), "http://[::1]:5000/"},
	} {
		if got := listenURL(c.addr, c.ln); got != c.want {
			t.Errorf("--addr %s on %s: %q, want %q", c.addr, c.ln, got, c.want)
		}
	}
}

// TestUnreachableModelFolderIsReported checks that a model folder the server cannot read
// (its link leads nowhere, the folder is gone) is let be at one reload check, as a promotion
// switching the link may cause, but from the second is logged once and shown in /healthz as
// pending_model_error, until it is readable again; and that a promotion folder where nothing
// was promoted yet is only waited for.
func TestUnreachableModelFolderIsReported(t *testing.T) {
	root := t.TempDir()
	tinyModel(t, filepath.Join(root, "final_models.d", "a"), 1)
	link := filepath.Join(root, "final_models")
	os.Symlink(filepath.Join("final_models.d", "a"), link)
	switchTo := func(id string) {
		tmp := link + ".tmp"
		os.Symlink(filepath.Join("final_models.d", id), tmp)
		os.Rename(tmp, link)
	}
	var logged syncBuffer
	s, ts := newTestServer(t, link, defaultServeOptions())
	s.logger = log.New(&logged, "", 0)
	// said is what the server logged, but for its requests.
	said := func() string {
		var lines []string
		for _, l := range strings.SplitAfter(logged.String(), "\n") {
			if !strings.HasPrefix(l, "GET /healthz ") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "")
	}
	health := func() map[string]any {
		t.Helper()
		code, _, m := request(t, "GET", ts.URL+"/healthz", nil)
		if code != 200 || m["model"] != "a" {
			t.Fatalf("/healthz: %d %v, want 200 and model a", code, m)
		}
		return m
	}

	// A promotion replacing the link: one check finds nothing, the next the new model.
	switchTo("gone")
	s.poll()
	switchTo("a")
	s.poll()
	if said() != "" || s.pendingError() != "" {
		t.Fatalf("a link gone for one check: log %q, pending %q; want nothing said", said(), s.pendingError())
	}

	switchTo("gone")
	s.poll()
	if said() != "" || health()["pending_model_error"] != nil {
		t.Fatalf("after one check: log %q, pending %q; want nothing said yet", said(), s.pendingError())
	}
	for range 3 {
		s.poll()
	}
	gone := link + " points to " + filepath.Join(root, "final_models.d", "gone") + ", which is gone"
	want := "not switching to the model now in " + link + ", still serving a: " + gone
	if n := strings.Count(said(), "\n"); n != 1 || !strings.HasPrefix(said(), want) {
		t.Fatalf("after four checks, log:\n%s\nwant one line: %s…", said(), want)
	}
	if m := health(); !strings.HasPrefix(fmt.Sprint(m["pending_model_error"]), gone) {
		t.Fatalf("/healthz: %v, want pending_model_error: %s…", m, gone)
	}
	switchTo("a")
	s.poll()
	if !strings.HasSuffix(said(), link+" is back: serving a\n") || health()["pending_model_error"] != nil {
		t.Fatalf("the link back: log:\n%s/healthz %v", said(), health())
	}

	// A model folder (no link) that disappears while served.
	saved := filepath.Join(root, "final_models.d", "a", "saved_model")
	s2, _ := newTestServer(t, saved, defaultServeOptions())
	os.Rename(saved, saved+".moved")
	s2.poll()
	s2.poll()
	if s2.pendingError() != saved+" is gone" {
		t.Fatalf("a served folder moved away: pending %q", s2.pendingError())
	}
	os.Rename(saved+".moved", saved)

	// Nothing promoted yet: waited for, not reported.
	var logged3 syncBuffer
	s3, _ := newTestServer(t, filepath.Join(t.TempDir(), "models", "final_models"), defaultServeOptions())
	s3.logger = log.New(&logged3, "", 0)
	for range 3 {
		s3.poll()
	}
	if logged3.String() != "" || s3.pendingError() != "" {
		t.Fatalf("nothing promoted yet: log %q, pending %q; want nothing said", logged3.String(), s3.pendingError())
	}
}

// TestServeNamesTheModelOneWay checks that the log, /healthz and /predict call a served model
// by the same name: its card's id for a promoted folder, else the path given (or, for a link,
// the folder it leads to).
func TestServeNamesTheModelOneWay(t *testing.T) {
	root := t.TempDir()
	tinyModel(t, filepath.Join(root, "a"), 1)
	saved := filepath.Join(root, "a", "saved_model")
	link := filepath.Join(root, "current")
	os.Symlink(saved, link)
	folderLink := filepath.Join(root, "champion")
	os.Symlink(filepath.Join(root, "a"), folderLink)
	// A model with no card (a run's folder) is named by its path, or where links lead.
	tinyModel(t, filepath.Join(root, "b"), 2)
	os.Remove(filepath.Join(root, "b", "model.json"))
	plain := filepath.Join(root, "b", "saved_model")
	runLink := filepath.Join(root, "latest")
	os.Symlink(filepath.Join(root, "b"), runLink)
	for dir, want := range map[string]string{filepath.Join(root, "a"): "a", saved: "a", saved + "/": "a", link: "a",
		filepath.Join(folderLink, "saved_model"): "a", plain: plain, filepath.Join(runLink, "saved_model"): plain} {
		s, ts := newTestServer(t, dir, defaultServeOptions())
		_, _, health := request(t, "GET", ts.URL+"/healthz", nil)
		body, ct := multipartBody("image", pngBytes(8, 8, 3))
		_, pred := post(t, ts.URL+"/predict", body, ct)
		if s.currentID() != want || health["model"] != want || pred["model"] != want {
			t.Errorf("--model %s: the log says %q, /healthz %q, /predict %q; want %q everywhere", dir, s.currentID(), health["model"], pred["model"], want)
		}
	}
}

// TestServeProcessStopsAtASecondSignal runs serve in a process of its own: it names the model
// as /healthz does, says where it listens, and with a request in flight stops at a second
// signal, exiting 0.
func TestServeProcessStopsAtASecondSignal(t *testing.T) {
	saved := filepath.Join(tinyModel(t, filepath.Join(t.TempDir(), "m"), 1), "saved_model")
	p := startPipeline(t, "serve", "--model", saved, "--addr", "127.0.0.1:0")
	listening := regexp.MustCompile(`listening on http://127\.0\.0\.1:(\d+)/\n`)
	p.waitUntil("it listens", func() bool { return listening.MatchString(p.stderr()) })
	addr := "127.0.0.1:" + listening.FindStringSubmatch(p.stderr())[1]
	// Its folder's card names it (tinyModel writes one, as promotion does).
	if _, _, m := request(t, "GET", "http://"+addr+"/healthz", nil); m["model"] != "m" || !strings.Contains(p.stderr(), "serving model m\n") {
		t.Errorf("/healthz %v; log:\n%s\nwant both to name the model m", m, p.stderr())
	}
	trickleUpload(t, addr)
	p.waitUntil("the upload is in flight", func() bool {
		_, _, m := request(t, "GET", "http://"+addr+"/healthz", nil)
		return m["in_flight"] == 1.0
	})
	p.signal(syscall.SIGINT)
	// (a /healthz connection just answered may still count as in flight)
	shutting := regexp.MustCompile(`SIGINT: shutting down; \d+ requests? in flight finish(es)? for up to 30 s; SIGINT or SIGTERM again closes (it|them) at once`)
	p.waitUntil("it is shutting down", func() bool { return shutting.MatchString(p.stderr()) })
	p.signal(syscall.SIGINT)
	closed := regexp.MustCompile(`SIGINT: \d+ requests? still in flight closed; stopped\n`)
	if code := p.exitCode(); code != exitOK || !closed.MatchString(p.stderr()) {
		t.Fatalf("exit %d, want 0 and the request closed:\n%s", code, p.stderr())
	}
}

// trickleUpload starts an upload to the server at addr that keeps arriving, 40 KB/s (above
// the pace an admitted upload must keep), for longer than a test takes.
func trickleUpload(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); conn.Close() })
	fmt.Fprintf(conn, "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 8000000\r\n\r\n"+
		"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n")
	go func() {
		chunk := bytes.Repeat([]byte("x"), 2048)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	}()
}

// With the server's own timeouts, an upload cut off at its time limit still gets its 408:
// the write deadline, set when the headers are in, leaves room for it.
func TestAnUploadCutOffAtItsLimitIsAnswered(t *testing.T) {
	opts := defaultServeOptions()
	opts.UploadRate, opts.UploadGrace, opts.UploadLimit, opts.Wait = 1, 200*time.Millisecond, 700*time.Millisecond, 100*time.Millisecond
	s := newServer(filepath.Join(t.TempDir(), "nothing"), opts, log.New(io.Discard, "", 0))
	t.Cleanup(s.close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := s.httpServer(log.New(io.Discard, "", 0))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000\r\n\r\n")
	// A byte every 100 ms keeps up the rate (1 byte/s) until the limit cuts the upload off.
	stop := make(chan struct{})
	go func() {
		for _, b := range []byte("--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n") {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	defer close(stop)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the upload cut off at its limit got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 408 || !strings.Contains(string(body), "too slowly") {
		t.Fatalf("the upload cut off at its limit: %d %s, want 408", resp.StatusCode, body)
	}
}

// A promotion folder is waited for only where a run could make it: its parent must exist.
func TestPromotionFolderNeedsItsParent(t *testing.T) {
	dir := t.TempDir()
	if !isPromotionFolder(filepath.Join(dir, "final_models")) {
		t.Error("final_models in an existing folder is not taken for a promotion folder")
	}
	if isPromotionFolder(filepath.Join(dir, "modles", "final_models")) {
		t.Error("final_models in a folder that does not exist is taken for a promotion folder")
	}
}

// TestARunFolderGivenAsModelNamesItsModels checks that predict and serve, given a run folder
// (a model per folder), name the models to give instead.
func TestARunFolderGivenAsModelNamesItsModels(t *testing.T) {
	run := filepath.Join(t.TempDir(), "20261206_110000")
	tinyModel(t, filepath.Join(run, "cnn"), 1)
	tinyModel(t, filepath.Join(run, "vit"), 2)
	want := run + " holds no model itself but 2, one per folder: give one of " + filepath.Join(run, "cnn") + " or " + filepath.Join(run, "vit")
	img := filepath.Join(t.TempDir(), "a.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	for _, args := range [][]string{{"predict", "--model", run, img}, {"serve", "--model", run, "--addr", "127.0.0.1:0"}} {
		if code, out, errs := runCLI(args...); code == exitOK || !strings.Contains(errs, want) {
			t.Errorf("%s: exit %d\n%s%s\nwant %s", args[0], code, out, errs, want)
		}
	}
	// A file of a model, given for the model, is said to be one.
	card := filepath.Join(run, "cnn", "model.json")
	if _, err := os.Stat(card); err == nil {
		want := card + " is a file: a model is a folder; give the folder it is in, " + filepath.Join(run, "cnn")
		if code, out, errs := runCLI("predict", "--model", card, img); code == exitOK || !strings.Contains(errs, want) {
			t.Errorf("predict of a model's file: exit %d\n%s%s\nwant %s", code, out, errs, want)
		}
	} else {
		t.Fatalf("the test model has no card: %v", err)
	}
	// A run folder of one model names it alone.
	one := filepath.Join(t.TempDir(), "20261206_120000")
	tinyModel(t, filepath.Join(one, "cnn"), 1)
	want = one + " holds no model itself but one in a folder: give " + filepath.Join(one, "cnn")
	if code, out, errs := runCLI("predict", "--model", one, img); code == exitOK || !strings.Contains(errs, want) {
		t.Errorf("predict: exit %d\n%s%s\nwant %s", code, out, errs, want)
	}
}

// TestADivergedModelIsRefusedForPromotion checks that promotion's check refuses a model whose
// training diverged (its weights NaN, so it answers NaN), naming the cause.
func TestADivergedModelIsRefusedForPromotion(t *testing.T) {
	sm := divergedModel(t, filepath.Join(t.TempDir(), "saved_model"))
	if err := graphs.CheckModel(sm); !errors.Is(err, graphs.ErrDiverged) || !strings.Contains(err.Error(), "it answers NaN (not a number): its training diverged") {
		t.Fatalf("CheckModel of a diverged model: %v", err)
	}
	if err := graphs.CheckModel(filepath.Join(tinyModel(t, filepath.Join(t.TempDir(), "m"), 1), "saved_model")); err != nil {
		t.Fatalf("CheckModel of a trained model: %v", err)
	}
}

// divergedModel exports into sm a SavedModel for 8×8 colour images whose training diverged
// (its weights NaN, so it answers NaN), and returns sm.
func divergedModel(t *testing.T, sm string) string {
	t.Helper()
	in := graphs.Input{Height: 8, Width: 8, Channels: 3, Mean: []float32{90, 90, 90}, Std: []float32{80, 80, 80}}
	spec := graphs.Spec{Architecture: "cnn", CNN: &graphs.CNN{Channels: []int64{4}, Pool: 2, Dense: 8}}
	tr, err := graphs.NewTrainer(graphs.TrainConfig{Model: graphs.Classifier{Spec: spec, Input: in, Classes: int64(len(testClasses))},
		Optimizer: graphs.Optimizer{Name: "adam", Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-7}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	data := graphs.Synthetic(64, int64(len(testClasses)), 8, 8, 3, 1)
	for i := 0; i < 5; i++ {
		if _, err := tr.Step(data, 1e30); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Export(sm, testClasses, "squash"); err != nil {
		t.Fatal(err)
	}
	return sm
}

// TestPredictAdvisesOnADivergedModelByWhatItIs checks predict's advice for a model that
// answers NaN: a run's model is to be retrained, a promoted one (the champion) rolled back.
func TestPredictAdvisesOnADivergedModelByWhatItIs(t *testing.T) {
	run := filepath.Join(t.TempDir(), "20261206_110000")
	sm := divergedModel(t, filepath.Join(run, "cnn", "saved_model"))
	img := filepath.Join(t.TempDir(), "a.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	for _, model := range []string{sm, filepath.Dir(sm)} {
		code, out, errs := runCLI("predict", "--model", model, img)
		if code == exitOK || !strings.Contains(out+errs, "it diverged in training; retrain it, with a lower learning_rate for instance") || strings.Contains(out+errs, "roll back") {
			t.Errorf("predict --model %s (a run's model): exit %d\n%s%s", model, code, out, errs)
		}
	}
	champion := filepath.Join(t.TempDir(), "final_models")
	os.CopyFS(filepath.Join(champion, "saved_model"), os.DirFS(sm))
	os.WriteFile(filepath.Join(champion, "model.json"), []byte(`{"id": "20261206_110000-cnn"}`), 0o644)
	code, out, errs := runCLI("predict", "--model", champion, img)
	if code == exitOK || !strings.Contains(out+errs, "it diverged in training; roll back to an earlier champion or retrain") {
		t.Errorf("predict --model %s (the champion): exit %d\n%s%s", champion, code, out, errs)
	}
}

// TestPredictSaysWhatAMissingModelFolderNeeds checks the advice for a --model that does not
// exist: a promotion folder where nothing was promoted yet needs a run, another path a look.
func TestPredictSaysWhatAMissingModelFolderNeeds(t *testing.T) {
	models := filepath.Join(t.TempDir(), "models")
	os.MkdirAll(models, 0o755)
	img := filepath.Join(t.TempDir(), "a.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	for dir, want := range map[string]string{
		filepath.Join(models, "final_models"): "run the pipeline so that its select stage promotes one",
		filepath.Join(models, "nope"):         "check the path given to --model",
	} {
		if code, out, errs := runCLI("predict", "--model", dir, img); code == exitOK || !strings.Contains(errs, "no model at "+dir) || !strings.Contains(errs, want) {
			t.Errorf("--model %s: exit %d\n%s%s\nwant %q", dir, code, out, errs, want)
		}
	}
}

// A server whose log no one reads any more (its stderr a pipe whose reader is gone, as
// `pipeline serve 2>&1 | tee serve.log` leaves it once tee is stopped) goes on answering:
// SIGPIPE at the next request's log line killed it, and the request with it.
func TestServeOutlivesTheReaderOfItsLog(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(tinyModel(t, filepath.Join(t.TempDir(), "m"), 1), "saved_model")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "serve", "--model", saved, "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), mainHelperVar+"=1")
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	}()
	listening := regexp.MustCompile(`listening on http://127\.0\.0\.1:(\d+)/`)
	var addr string
	for sc := bufio.NewScanner(r); addr == "" && sc.Scan(); {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			addr = "127.0.0.1:" + m[1]
		}
	}
	r.Close() // the log's reader is gone
	if addr == "" {
		t.Fatal("the server did not say where it listens")
	}
	for i := 0; i < 3; i++ {
		if status, _, m := request(t, "GET", "http://"+addr+"/healthz", nil); status != http.StatusOK {
			t.Fatalf("/healthz %d %v, want 200", status, m)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err // for the deferred check: the process has ended
		if err != nil {
			t.Fatalf("serve ended with %v after SIGTERM, want exit status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop at SIGTERM")
	}
}

// fullDisk is a standard output whose writes fail, as a file on a full disk's do.
type fullDisk struct{}

func (fullDisk) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// predict whose results cannot be written (`predict --json *.jpg > out.json` on a full disk)
// fails, saying why, in text and in JSON: a script must not take the empty file for results.
func TestPredictFailsWhenItsResultsCannotBeWritten(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	img := filepath.Join(t.TempDir(), "a.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	for _, format := range [][]string{nil, {"--json"}} {
		var errb bytes.Buffer
		args := append([]string{"pipeline", "predict", "--model", model, img}, format...)
		code := run(args, fullDisk{}, &errb)
		if code != exitErr || !strings.Contains(errb.String(), "the results could not be written: no space left on device") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d saying the results could not be written", format, code, errb.String(), exitErr)
		}
	}
}

// A request whose Content-Length is over --max-body is answered 413 at once: a client that
// waits to be told to continue (Expect: 100-continue, as curl does for uploads over 1 MB) is
// not told to send an upload that would be refused.
func TestServeRefusesADeclaredLengthOverMaxBodyBeforeItsUpload(t *testing.T) {
	opts := defaultServeOptions()
	opts.MaxBody = 1 << 20
	_, ts := newTestServer(t, tinyModel(t, filepath.Join(t.TempDir(), "m1"), 1), opts)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"+
		"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", 30<<20)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "request exceeds --max-body 1 MiB") {
		t.Errorf("status %d %s, want 413 request exceeds --max-body 1 MiB before the upload", resp.StatusCode, b)
	}
}

// A request whose client goes away while it waits for an inference slot is logged as closed
// by the client (499, as nginx logs it), not as answered 200: nothing was answered.
func TestARequestAbandonedInTheQueueIsNotLoggedAsAnswered(t *testing.T) {
	opts := defaultServeOptions()
	opts.Concurrency = 1
	var logb syncBuffer
	s := newServer(tinyModel(t, filepath.Join(t.TempDir(), "m1"), 1), opts, log.New(&logb, "", 0))
	s.reload()
	t.Cleanup(s.close)
	s.slots <- struct{}{} // the only slot, busy
	body, ct := multipartBody("image", pngBytes(8, 8, 3))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req := httptest.NewRequest("POST", "/predict", body).WithContext(ctx)
	req.Header.Set("Content-Type", ct)
	s.routes().ServeHTTP(httptest.NewRecorder(), req)
	<-s.slots
	if got := logb.String(); !strings.Contains(got, "POST /predict 499 ") {
		t.Errorf("log %q, want the request logged 499", got)
	}
}

// predict through a promotion folder whose link a promotion switches while the model loads
// names the model that answered: the card and the weights come from one champion, never the
// card of one and the weights of the other (or a mix of their files, refused as broken).
func TestPredictLoadsOneChampionWhileTheLinkSwitches(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "final_models.d")
	want := map[string]float64{}
	img := filepath.Join(root, "a.png")
	os.WriteFile(img, pngBytes(8, 8, 3), 0o644)
	for i, id := range []string{"a", "b"} {
		dir := tinyModel(t, filepath.Join(d, id), uint64(i+1))
		code, out, errs := runCLI("predict", "--model", dir, "--json", img)
		var res []struct{ Predictions []stages.Prediction }
		if err := json.Unmarshal([]byte(out), &res); code != exitOK || err != nil {
			t.Fatalf("exit %d %v\n%s%s", code, err, out, errs)
		}
		want[id] = res[0].Predictions[0].Confidence
	}
	if want["a"] == want["b"] {
		t.Fatal("the two models answer alike: the test cannot tell them apart")
	}
	link := filepath.Join(root, "final_models")
	os.Symlink(filepath.Join("final_models.d", "a"), link)
	stop := make(chan struct{})
	var flipping sync.WaitGroup
	flipping.Add(1)
	go func() { // promotions, one after the other, each replacing the link at once
		defer flipping.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tmp := filepath.Join(root, ".final_models.tmp")
			os.Symlink(filepath.Join("final_models.d", []string{"b", "a"}[i%2]), tmp)
			os.Rename(tmp, link)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	defer func() { close(stop); flipping.Wait() }()
	for i := 0; i < 30; i++ {
		code, out, errs := runCLI("predict", "--model", link, "--json", img)
		var res []struct {
			Model       string
			Predictions []stages.Prediction
		}
		if err := json.Unmarshal([]byte(out), &res); code != exitOK || err != nil || len(res) != 1 {
			t.Fatalf("exit %d %v\n%s%s", code, err, out, errs)
		}
		if got := res[0].Predictions[0].Confidence; got != want[res[0].Model] {
			t.Fatalf("answered as model %q with confidence %v, which is %q's (%v)", res[0].Model, got, map[bool]string{true: "a", false: "b"}[got == want["a"]], want)
		}
	}
}

// onFirstWrite is a standard output that calls f at its first write.
type onFirstWrite struct {
	once sync.Once
	f    func()
	b    bytes.Buffer
}

func (o *onFirstWrite) Write(p []byte) (int, error) {
	o.once.Do(o.f)
	return o.b.Write(p)
}

// predict reads a folder of large images a few at a time, not predictBatch of them: files
// of 9 MB are classified about 64 MiB at a time (the files still to read are deleted when
// the first results are written, so those read before are the ones classified).
func TestPredictHoldsAFewLargeImagesAtOnce(t *testing.T) {
	model := tinyModel(t, filepath.Join(t.TempDir(), "m"), 1)
	root := t.TempDir()
	img := image.NewNRGBA(image.Rect(0, 0, 1500, 1500))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	if err := tiff.Encode(&buf, img, &tiff.Options{Compression: tiff.Uncompressed}); err != nil {
		t.Fatal(err)
	}
	scan := filepath.Join(root, "scan.tif")
	os.WriteFile(scan, buf.Bytes(), 0o644)
	dir := filepath.Join(root, "scans")
	os.Mkdir(dir, 0o755)
	for i := range predictBatch {
		os.Symlink(scan, filepath.Join(dir, fmt.Sprintf("s%02d.tif", i)))
	}
	out := &onFirstWrite{f: func() {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}}
	var errb bytes.Buffer
	run([]string{"pipeline", "predict", "--model", model, "-k", "1", dir}, out, &errb)
	classified := strings.Count(out.b.String(), "\n  1. ")
	if most := (64<<20)/buf.Len() + 1; classified == 0 || classified > most {
		t.Errorf("%d files of %d bytes read before the first results, want at most %d:\n%s%s", classified, buf.Len(), most, out.b.String(), errb.String())
	}
}
