package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

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
