package main

import (
	"context"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds the browser: PIPELINE_CHROMIUM, else Debian's.
func chromium() string {
	if p := os.Getenv("PIPELINE_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	return ""
}

// TestUploadPageInChromium opens the upload page in headless Chromium, uploads an image
// through the file picker and waits for the five predictions to be drawn.
func TestUploadPageInChromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium (make test installs Debian's chromium; or set PIPELINE_CHROMIUM)")
	}
	dir := tinyModel(t, filepath.Join(t.TempDir(), "m1"), 1)
	_, ts := newTestServer(t, dir, defaultServeOptions())
	img := filepath.Join(t.TempDir(), "photo.png")
	os.WriteFile(img, pngBytes(16, 16, 7), 0o644)

	ctx := browserContext(t, bin)

	steps := []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(ts.URL + "/"),
		chromedp.WaitVisible(chromedp.CSS("#drop")),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{img}),
		chromedp.WaitVisible(chromedp.CSS("#bars .prediction:nth-child(5)")),
	}
	for _, step := range steps {
		if _, err := chromedp.Run(ctx, step); err != nil {
			t.Fatal(err)
		}
	}
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#bars .prediction .name')].map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	model, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#model")))
	if err != nil {
		t.Fatal(err)
	}
	warning, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('warning').textContent`))
	if len(names) != 5 {
		t.Fatalf("page shows %d predictions: %v", len(names), names)
	}
	for _, n := range names {
		if !contains(testClasses, n) {
			t.Fatalf("page shows unknown class %q", n)
		}
	}
	if !strings.Contains(model, "m1") {
		t.Errorf("model line %q", model)
	}
	t.Logf("page: %v (warning %q)", names, warning)
}

// TestUploadPageShowsTheLatestImagesAnswer sends two images from the upload page, the first
// answered after the second (a slow upload), then one a proxy in front of the server refuses
// with a page of its own: the page shows the second image's answer, not the first's beside
// the second image, and says the proxy's status rather than that its page is not JSON.
func TestUploadPageShowsTheLatestImagesAnswer(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium (make test installs Debian's chromium; or set PIPELINE_CHROMIUM)")
	}
	s := newServer(tinyModel(t, filepath.Join(t.TempDir(), "m1"), 1), defaultServeOptions(), log.New(io.Discard, "", 0))
	s.reload()
	t.Cleanup(s.close)
	h := s.routes()
	var n atomic.Int32
	secondAnswered := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/predict" {
			h.ServeHTTP(w, r)
			return
		}
		switch n.Add(1) {
		case 1: // answered once the second is, and then some
			io.Copy(io.Discard, r.Body)
			select {
			case <-secondAnswered:
			case <-time.After(20 * time.Second):
			}
			time.Sleep(300 * time.Millisecond)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"predictions":[{"class_id":0,"class_name":"stale answer","confidence":1}],"model":"m1"}`)
		case 2:
			h.ServeHTTP(w, r)
			close(secondAnswered)
		default: // as nginx answers past its client_max_body_size
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			io.WriteString(w, "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
		}
	}))
	t.Cleanup(ts.Close)

	ctx := browserContext(t, bin)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(ts.URL+"/")); err != nil {
		t.Fatal(err)
	}
	png := func(seed byte) string {
		return "atob('" + base64.StdEncoding.EncodeToString(pngBytes(16, 16, seed)) + "')"
	}
	two := `(async () => {
		const file = (b, name) => new File([Uint8Array.from(b, c => c.charCodeAt(0))], name, {type: 'image/png'});
		send(file(` + png(7) + `, 'first.png'), 0);
		await new Promise(r => setTimeout(r, 200));
		send(file(` + png(9) + `, 'second.png'), 0);
		await new Promise(r => setTimeout(r, 3000)); // the first's answer has come
		return [...document.querySelectorAll('#bars .prediction .name')].map(e => e.textContent).join(',');
	})()`
	names, err := chromedp.Run(ctx, chromedp.Evaluate[string](two, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(names, "stale answer") || len(strings.Split(names, ",")) != 5 {
		t.Errorf("the page shows %q, want the second image's five classes", names)
	}
	refused := `(async () => {
		send(new File([Uint8Array.from(` + png(5) + `, c => c.charCodeAt(0))], 'third.png', {type: 'image/png'}), 0);
		for (let i = 0; i < 100 && document.getElementById('error').style.display !== 'block'; i++) await new Promise(r => setTimeout(r, 100));
		return document.getElementById('error').textContent;
	})()`
	said, err := chromedp.Run(ctx, chromedp.Evaluate[string](refused, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(said, "HTTP 413") || strings.Contains(said, "JSON") {
		t.Errorf("the page says %q of a proxy's 413 page, want its status", said)
	}
}

// browserContext starts the Chromium at bin, headless, for the test (closed at its end), and
// returns a context that drives it for at most a minute.
func browserContext(t *testing.T, bin string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}
