package stages

import (
	"os"
	"path/filepath"
	"testing"
)

// benchFit measures the split's JPEG path (decode, crop and resize to 224 by center_crop) on
// one of the data benchmark's photos (DATABENCH_PHOTOS, made by tools/bench/data/run.sh), or on
// a synthetic photo of the same size when that is not set.
func benchFit(b *testing.B, name string, w, h int) {
	var data []byte
	if dir := os.Getenv("DATABENCH_PHOTOS"); dir != "" {
		var err error
		if data, err = os.ReadFile(filepath.Join(dir, "species_01", name)); err != nil {
			b.Fatal(err)
		}
	} else {
		data = smoothJPEG(b, w, h)
	}
	d, err := sharedJPEGDecoder()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		img, _, err := d.fit(data, w, h, 1, 224, ResizeCenterCrop)
		if err != nil {
			b.Fatal(err)
		}
		pixelBufs.put(img.Pix)
	}
}

func BenchmarkJPEGFitLandscape(b *testing.B) { benchFit(b, "IMG_0001.jpg", 500, 375) }

func BenchmarkJPEGFitPortrait(b *testing.B) { benchFit(b, "IMG_0005.jpg", 375, 500) }
