package stages

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Standard input is read as a file is: a header that runs past the first 64 KB (a JPEG with
// large metadata) is read on, the whole image comes back, and input that is not an image, or
// goes on far past what an image of its header's size can take, is refused after a bounded read.
func TestReadImageFromReadsAsReadImageDoes(t *testing.T) {
	photo := randomJPEG(21, 0, 40, 30)
	big := withComment(withComment(photo, strings.Repeat("a", 60000)), strings.Repeat("b", 60000))
	for _, data := range [][]byte{photo, big} {
		got, err := ReadImageFrom(bytes.NewReader(data), DefaultMaxPixels)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: got %d bytes, %v", len(data), len(got), err)
		}
	}
	for name, c := range map[string]struct {
		r    io.Reader
		want string
	}{
		"empty":              {bytes.NewReader(nil), "empty file"},
		"endless zeros":      {zeros{}, "not an image"},
		"a photo, then more": {io.MultiReader(bytes.NewReader(photo), zeros{}), "jpeg of 40x30 in a file of more than"},
		"over max pixels":    {bytes.NewReader(hugePNG(20000, 20000)), "exceeds --max-pixels"},
	} {
		if _, err := ReadImageFrom(c.r, DefaultMaxPixels); err == nil || !IsRejected(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a rejection saying %q", name, err, c.want)
		}
	}
}
