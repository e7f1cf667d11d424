// Command agree checks that two /predict servers answer alike: it POSTs the same test images
// to both (one at a time) and prints one JSON line with the top-1 agreement rate, the largest
// |Δ| of the top-1 confidence, the largest |Δ| of any top-5 confidence (matched by class),
// how often the top-5 lists, the warnings, the whole decoded responses and the top-1 against the
// true class (the image's folder name) agree.
//
//	agree -a http://127.0.0.1:5000/predict -b http://127.0.0.1:5001/predict -images data/raw/test -max-images 200
//
// With -resized K it also sends K images enlarged to a non-square RGB PNG (56×40, tinted),
// which exercises the resize path (center crop + bilinear + grey conversion) of both servers;
// those are reported separately because Pillow's and bild's bilinear filters need not agree
// to the last bit.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"pipeline/tools/bench/serve/images"
)

type prediction struct {
	ClassID    int     `json:"class_id"`
	ClassName  string  `json:"class_name"`
	Confidence float64 `json:"confidence"`
}

type response struct {
	Predictions []prediction `json:"predictions"`
	Warning     string       `json:"warning"`
	Model       string       `json:"model"`
}

type stats struct {
	Images        int     `json:"images"`
	Top1Agree     int     `json:"top1_agree"`
	Top1AgreeRate float64 `json:"top1_agree_rate"`
	Top5Same      int     `json:"top5_lists_identical"`
	WarningSame   int     `json:"warning_agree"`
	BodySame      int     `json:"responses_equal"` // decoded: same predictions (to the bit), warning, model
	MaxDTop1      float64 `json:"max_abs_delta_top1_conf"`
	MaxDTop5      float64 `json:"max_abs_delta_top5_conf"`
	TrueTop1A     int     `json:"true_class_top1_a"`
	TrueTop1B     int     `json:"true_class_top1_b"`
}

func main() {
	a := flag.String("a", "http://127.0.0.1:5000/predict", "first server's /predict")
	b := flag.String("b", "http://127.0.0.1:5001/predict", "second server's /predict")
	dir := flag.String("images", "data/raw/test", "folder of test images, one sub-folder per class")
	maxImages := flag.Int("max-images", 200, "how many images (spread over the sorted list)")
	resized := flag.Int("resized", 20, "also send this many images enlarged to 56×40 RGB")
	flag.Parse()

	paths, err := images.Paths(*dir, *maxImages)
	if err != nil {
		fail(err)
	}
	client := &http.Client{Timeout: 60 * time.Second}
	var direct, resize stats
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			fail(err)
		}
		truth := filepath.Base(filepath.Dir(p))
		compare(client, *a, *b, filepath.Base(p), data, truth, &direct)
		if i < *resized {
			big, err := enlarge(data)
			if err != nil {
				fail(err)
			}
			compare(client, *a, *b, "big-"+filepath.Base(p), big, truth, &resize)
		}
	}
	finish(&direct)
	finish(&resize)
	json.NewEncoder(os.Stdout).Encode(map[string]any{"a": *a, "b": *b, "test_images": direct, "resized_rgb_56x40": resize})
}

func compare(client *http.Client, a, b, name string, data []byte, truth string, s *stats) {
	ra := predict(client, a, name, data)
	rb := predict(client, b, name, data)
	s.Images++
	if reflect.DeepEqual(ra, rb) {
		s.BodySame++
	}
	if len(ra.Predictions) == 0 || len(rb.Predictions) == 0 {
		fail(fmt.Errorf("%s: empty predictions", name))
	}
	if ra.Predictions[0].ClassID == rb.Predictions[0].ClassID {
		s.Top1Agree++
	}
	if ra.Predictions[0].ClassName == truth {
		s.TrueTop1A++
	}
	if rb.Predictions[0].ClassName == truth {
		s.TrueTop1B++
	}
	s.MaxDTop1 = math.Max(s.MaxDTop1, math.Abs(ra.Predictions[0].Confidence-rb.Predictions[0].Confidence))
	same := len(ra.Predictions) == len(rb.Predictions)
	byClass := map[int]float64{}
	for _, p := range rb.Predictions {
		byClass[p.ClassID] = p.Confidence
	}
	for i, p := range ra.Predictions {
		if i >= len(rb.Predictions) || rb.Predictions[i].ClassID != p.ClassID || rb.Predictions[i].ClassName != p.ClassName {
			same = false
		}
		if c, ok := byClass[p.ClassID]; ok {
			s.MaxDTop5 = math.Max(s.MaxDTop5, math.Abs(p.Confidence-c))
		}
	}
	if same {
		s.Top5Same++
	}
	if ra.Warning == rb.Warning {
		s.WarningSame++
	}
}

func finish(s *stats) {
	if s.Images > 0 {
		s.Top1AgreeRate = float64(s.Top1Agree) / float64(s.Images)
	}
}

func predict(client *http.Client, url, name string, data []byte) response {
	body, ctype, err := images.Multipart("image", name, data)
	if err != nil {
		fail(err)
	}
	resp, err := client.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		fail(fmt.Errorf("%s %s: HTTP %d: %s", url, name, resp.StatusCode, raw))
	}
	var r response
	if err := json.Unmarshal(raw, &r); err != nil {
		fail(fmt.Errorf("%s %s: %v", url, name, err))
	}
	return r
}

// enlarge turns a grey PNG into a 56×40 RGB PNG (each pixel doubled across, the picture
// centred between side bars, and a slight tint so the grey conversion matters).
func enlarge(data []byte) ([]byte, error) {
	src, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	b := src.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, 56, 40))
	for y := 0; y < 40; y++ {
		for x := 0; x < 56; x++ {
			// The centre 40×40 square holds the image scaled by 40/28 (nearest); bars outside.
			var g uint8
			if cx := x - 8; cx >= 0 && cx < 40 {
				sx, sy := b.Min.X+cx*b.Dx()/40, b.Min.Y+y*b.Dy()/40
				g = color.GrayModel.Convert(src.At(sx, sy)).(color.Gray).Y
			} else {
				g = 30
			}
			out.SetRGBA(x, y, color.RGBA{g, uint8(float64(g) * 0.9), uint8(float64(g) * 0.8), 255})
		}
	}
	var buf bytes.Buffer
	err = png.Encode(&buf, out)
	return buf.Bytes(), err
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "agree:", err)
	os.Exit(1)
}
