// Command load is the HTTP load generator of tools/bench/serve: it POSTs multipart images
// (field "image") to a /predict URL with C concurrent clients over keep-alive connections,
// cycling through a fixed set of test PNGs, and prints one JSON line with the latency
// percentiles and the throughput. Warm-up requests are sent first and not counted.
//
//	load -url http://127.0.0.1:5000/predict -images data/raw/test -c 4 -n 2000 -warmup 100
//
// Bodies are encoded once before the run, so the generator spends its CPU on HTTP only; it
// still shares the machine's cores with the server under test. A server that closes the
// connection after each response (Werkzeug's development server and gunicorn's sync workers
// both do) is reconnected to transparently; the JSON reports how many connections were
// dialled. -no-keepalive makes the generator do the same to any server.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pipeline/tools/bench/serve/images"
)

type body struct {
	data        []byte
	contentType string
}

type result struct {
	URL      string  `json:"url"`
	Clients  int     `json:"clients"`
	Requests int     `json:"requests"`
	Warmup   int     `json:"warmup"`
	Images   int     `json:"images"`
	Errors   int     `json:"errors"`
	Status   string  `json:"first_error,omitempty"`
	Dials    int64   `json:"dials"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	Maxms    float64 `json:"max_ms"`
	Meanms   float64 `json:"mean_ms"`
	RPS      float64 `json:"rps"`
	WallS    float64 `json:"wall_s"`
	Label    string  `json:"label,omitempty"`
	LoadAvg  string  `json:"loadavg_at_start,omitempty"` // /proc/loadavg 1, 5, 15 min
}

func main() {
	url := flag.String("url", "http://127.0.0.1:5000/predict", "the /predict URL")
	dir := flag.String("images", "data/raw/test", "folder of test images (searched recursively for .png)")
	maxImages := flag.Int("max-images", 200, "how many images to cycle through (spread over the sorted list)")
	clients := flag.Int("c", 1, "concurrent clients (one keep-alive connection each)")
	n := flag.Int("n", 2000, "measured requests")
	warmup := flag.Int("warmup", 100, "warm-up requests, not counted")
	label := flag.String("label", "", "a label copied into the JSON")
	timeout := flag.Duration("timeout", 60*time.Second, "per-request timeout")
	noKeepAlive := flag.Bool("no-keepalive", false, "a new connection per request (what the Python servers impose)")
	flag.Parse()

	bodies, err := loadBodies(*dir, *maxImages)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	var dials atomic.Int64
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns: *clients, MaxIdleConnsPerHost: *clients, MaxConnsPerHost: *clients,
		DisableCompression: true, IdleConnTimeout: 90 * time.Second, DisableKeepAlives: *noKeepAlive,
	}
	client := &http.Client{Transport: tr, Timeout: *timeout}

	// Warm-up: the same clients, not timed.
	if *warmup > 0 {
		run(client, *url, bodies, *clients, *warmup, 0)
	}
	dials.Store(0)
	loadavg := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			loadavg = strings.Join(f[:3], " ")
		}
	}
	start := time.Now()
	lat, errs, first := run(client, *url, bodies, *clients, *n, *warmup)
	wall := time.Since(start)

	res := result{URL: *url, Clients: *clients, Requests: *n, Warmup: *warmup, Images: len(bodies),
		Errors: errs, Status: first, Dials: dials.Load(), WallS: round(wall.Seconds(), 3),
		RPS: round(float64(*n)/wall.Seconds(), 2), Label: *label, LoadAvg: loadavg}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		res.P50ms = ms(percentile(lat, 50))
		res.P90ms = ms(percentile(lat, 90))
		res.P99ms = ms(percentile(lat, 99))
		res.Maxms = ms(lat[len(lat)-1])
		res.Meanms = ms(sum / time.Duration(len(lat)))
	}
	json.NewEncoder(os.Stdout).Encode(res)
	if errs > 0 {
		os.Exit(2)
	}
}

// run sends n requests with c workers; request i uses body (offset+i) mod len(bodies).
// It returns the latencies of the successful (200) requests.
func run(client *http.Client, url string, bodies []body, c, n, offset int) ([]time.Duration, int, string) {
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	var next atomic.Int64
	var errs atomic.Int64
	var firstErr sync.Once
	var first string
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				b := bodies[(offset+i)%len(bodies)]
				t0 := time.Now()
				status, err := post(client, url, b)
				d := time.Since(t0)
				if err != nil || status != http.StatusOK {
					errs.Add(1)
					firstErr.Do(func() {
						if err != nil {
							first = err.Error()
						} else {
							first = fmt.Sprintf("HTTP %d", status)
						}
					})
					continue
				}
				lat[i], ok[i] = d, true
			}
		}()
	}
	wg.Wait()
	out := lat[:0]
	for i, d := range lat {
		if ok[i] {
			out = append(out, d)
		}
	}
	return out, int(errs.Load()), first
}

func post(client *http.Client, url string, b body) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b.data))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", b.contentType)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// loadBodies encodes up to max images of dir (sorted, taken evenly spread) as multipart bodies.
func loadBodies(dir string, max int) ([]body, error) {
	paths, err := images.Paths(dir, max)
	if err != nil {
		return nil, err
	}
	var out []body
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		b, ct, err := images.Multipart("image", filepath.Base(p), data)
		if err != nil {
			return nil, err
		}
		out = append(out, body{b, ct})
	}
	return out, nil
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
