//go:build ignore

// This file is a template, not a package of its own: run.sh (PROFILE=1) or prof.sh copies it,
// without the build line, next to copies of cmd/pipeline/serve.go and serve_handlers.go (and
// their web/ files) in tools/bench/serve/_work/prof, so that it can call the real /predict
// handler, which lives in package main and cannot be imported. There:
//
//	go test -run '^$' -bench . -benchtime 2000x -cpuprofile cpu.out ./tools/bench/serve/_work/prof
//
// BenchmarkHandler* time the whole handler (routes(), so logging and the admission queue
// included) through httptest; the other benchmarks take its parts apart: multipart parsing,
// CheckImage + decode + fit (PredictBytes minus the session run), the session run alone, and
// the JSON encoding.

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"log"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
)

type benchBody struct {
	png, multipart []byte
	contentType    string
}

func benchInputs(b *testing.B) (string, []benchBody) {
	model := os.Getenv("BENCH_MODEL")
	images := os.Getenv("BENCH_IMAGES")
	if model == "" || images == "" {
		b.Skip("set BENCH_MODEL (a promotion folder) and BENCH_IMAGES (a folder of PNGs)")
	}
	var paths []string
	filepath.WalkDir(images, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".png") {
			paths = append(paths, p)
		}
		return nil
	})
	sort.Strings(paths)
	if len(paths) == 0 {
		b.Fatalf("no PNGs under %s", images)
	}
	const max = 200
	var out []benchBody
	for i := 0; i < min(max, len(paths)); i++ {
		p := paths[i*len(paths)/min(max, len(paths))]
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("image", filepath.Base(p))
		fw.Write(data)
		mw.Close()
		out = append(out, benchBody{data, buf.Bytes(), mw.FormDataContentType()})
	}
	return model, out
}

func benchServer(b *testing.B, model string) *server {
	logger := log.New(io.Discard, "", log.LstdFlags)
	if os.Getenv("BENCH_LOG") != "" { // the real server logs every request to stderr
		f, err := os.Create(os.DevNull)
		if err != nil {
			b.Fatal(err)
		}
		logger = log.New(f, "", log.LstdFlags)
	}
	s := newServer(model, defaultServeOptions(), logger)
	if _, err := s.reload(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.close)
	return s
}

func serveOne(b *testing.B, h http.Handler, in benchBody) {
	req := httptest.NewRequest(http.MethodPost, "/predict", bytes.NewReader(in.multipart))
	req.Header.Set("Content-Type", in.contentType)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		b.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
	}
}

// BenchmarkHandler is one client: requests one after the other.
func BenchmarkHandler(b *testing.B) {
	model, in := benchInputs(b)
	h := benchServer(b, model).routes()
	for i := 0; i < 20; i++ {
		serveOne(b, h, in[i%len(in)])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		serveOne(b, h, in[i%len(in)])
	}
}

// BenchmarkHandlerParallel is GOMAXPROCS×-cpu clients at once (RunParallel).
func BenchmarkHandlerParallel(b *testing.B) {
	model, in := benchInputs(b)
	h := benchServer(b, model).routes()
	for i := 0; i < 20; i++ {
		serveOne(b, h, in[i%len(in)])
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serveOne(b, h, in[int(next.Add(1))%len(in)])
		}
	})
}

// BenchmarkMultipart is ParseMultipartForm + FormFile + read, as the handler does it.
func BenchmarkMultipart(b *testing.B) {
	_, in := benchInputs(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		x := in[i%len(in)]
		req := httptest.NewRequest(http.MethodPost, "/predict", bytes.NewReader(x.multipart))
		req.Header.Set("Content-Type", x.contentType)
		if err := req.ParseMultipartForm(10 << 20); err != nil {
			b.Fatal(err)
		}
		f, _, err := req.FormFile("image")
		if err != nil {
			b.Fatal(err)
		}
		readAllLimited(f, 10<<20)
		f.Close()
		req.MultipartForm.RemoveAll()
	}
}

// BenchmarkSessionRun is the TensorFlow session alone on one image (graphs.Model.Predict).
func BenchmarkSessionRun(b *testing.B) {
	model, _ := benchInputs(b)
	s := benchServer(b, model)
	m := s.acquire()
	defer m.inflight.Done()
	in := m.p.Model.Info.Input
	px := make([]float32, in.Height*in.Width*in.Channels)
	for i := range px {
		px[i] = float32(i % 256)
	}
	m.p.Model.Predict(px)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.p.Model.Predict(px); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionRunParallel is the session with GOMAXPROCS callers at once.
func BenchmarkSessionRunParallel(b *testing.B) {
	model, _ := benchInputs(b)
	s := benchServer(b, model)
	m := s.acquire()
	defer m.inflight.Done()
	in := m.p.Model.Info.Input
	px := make([]float32, in.Height*in.Width*in.Channels)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.p.Model.Predict(px); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPredictBytes is CheckImage + decode + fit + session run + top-5 (no HTTP).
func BenchmarkPredictBytes(b *testing.B) {
	model, in := benchInputs(b)
	s := benchServer(b, model)
	m := s.acquire()
	defer m.inflight.Done()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, errs := m.p.PredictBytes([][]byte{in[i%len(in)].png}, 5, defaultServeOptions().MaxPixels); errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
}

// BenchmarkEncodeJSON is the response encoding.
func BenchmarkEncodeJSON(b *testing.B) {
	model, in := benchInputs(b)
	s := benchServer(b, model)
	m := s.acquire()
	defer m.inflight.Done()
	preds, _, _ := m.p.PredictBytes([][]byte{in[0].png}, 5, defaultServeOptions().MaxPixels)
	resp := predictResponse{Predictions: preds[0], Model: modelID(m)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		json.NewEncoder(io.Discard).Encode(resp)
	}
}
