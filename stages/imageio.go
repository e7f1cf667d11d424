package stages

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif" // registered decoders: formats are recognised by content
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/anthonynsimon/bild/clone"
	"golang.org/x/image/bmp"
	"golang.org/x/image/math/f64"
	"golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"pipeline/stages/raster"
)

// ImageFormats names the formats the registered decoders read (the imports above), as the
// split's discovery, predict and the serve upload page list them.
const ImageFormats = "JPEG, PNG, GIF, BMP, TIFF or WebP"

// DefaultMaxPixels bounds the size of an image the split's discovery, predict and serve accept
// (checked from the header, before decoding): larger files are usually corrupt headers or
// decompression bombs.
const DefaultMaxPixels = 50_000_000

// DefaultMinSide is the split's default min_side: an image narrower or lower than this many
// pixels is rejected, as a web page's 1×1 tracking pixel saved with its photos (scaled up to
// image_size it is a flat picture of nothing). Small, so that tiny synthetic images pass; a
// photo collection sets it higher (32, say) to reject icons and thumbnails.
const DefaultMinSide = 2

// ErrTooSmall is the kind of a file the split rejects for a side under min_side.
var ErrTooSmall = errors.New("the image is too small")

// Resize policies for stored images.
const (
	ResizeSquash     = "squash"      // stretch to the target size (the original's behaviour)
	ResizeCenterCrop = "center_crop" // keep aspect ratio, cut the longer side's edges
	ResizePad        = "pad"         // keep aspect ratio, pad the shorter side with black
)

// ResizePolicies lists the valid resize values.
var ResizePolicies = []string{ResizeCenterCrop, ResizePad, ResizeSquash}

// loaded is an image file's identity and its pixels, fitted to the stored size.
type loaded struct {
	Digest   string
	Size     int64
	Format   string
	Img      image.Image
	Fallback bool   // a JPEG decoded by image/jpeg after libjpeg-turbo refused it
	Libjpeg  string // what libjpeg-turbo said of a JPEG (decodeNote)
	// PixelsKey is set, when asked for, for a JPEG that need not be decoded to check it
	// (jpegPixelsKey).
	PixelsKey string
}

// errRejected marks problems with an image file itself, which reject one file without
// failing the split; its reason is what the split's rejected.json says, and predict and serve
// say the same of the same file. kind, when set, is the input error (ErrEmptyFile,
// ErrNotImage, ErrBadImage, ErrTooLarge) it is one of, which a server maps to a status code.
type errRejected struct {
	reason string
	kind   error
}

func (e errRejected) Error() string { return e.reason }

// Unwrap returns the input error e is one of (nil when none).
func (e errRejected) Unwrap() error { return e.kind }

// rejectAs is reject for a problem of kind.
func rejectAs(kind error, format string, args ...any) error {
	return errRejected{fmt.Sprintf(format, args...), kind}
}

// emptyFile is the problem with a file of no bytes.
func emptyFile() error { return rejectAs(ErrEmptyFile, "empty file") }

// checkHeader reads an image's header from r with image.DecodeConfig (r is read from the
// file's start and may implement io.ReaderAt for TIFF) and checks it: a file that is not an
// image of a supported format, is truncated or corrupt in its header, has no pixels, or has
// more than maxPixels (limit names that setting: max_pixels for the split, --max-pixels for
// predict and serve) is an errRejected; a photo in a format the decoders do not read (HEIC,
// AVIF, SVG, ICO: unsupportedFormat) is not an image to them (ErrUnsupportedFormat), with a
// reason that says what it is, as an animated WebP's does. head
// returns the file's first bytes (up to headLen), only called to name what a corrupt header
// lacks or what an unrecognised file is.
func checkHeader(r io.Reader, head func() []byte, maxPixels int64, limit string) (image.Config, string, error) {
	cfg, format, err := image.DecodeConfig(r)
	var unsupported jpeg.UnsupportedError
	if ra, ok := r.(io.ReaderAt); ok && format == "jpeg" && errors.As(err, &unsupported) {
		// A JPEG image/jpeg cannot decode (arithmetic coding, unusual sampling factors) that
		// libjpeg-turbo may: its size from its frame header, and decoding decides.
		if c, ok := jpegFrameConfig(ra); ok {
			cfg, err = c, nil
		}
	}
	switch {
	case errors.Is(err, image.ErrFormat):
		if format, what, ok := unsupportedFormat(head()); ok {
			return cfg, format, rejectAs(ErrUnsupportedFormat, "unsupported %s (%s): convert it to PNG or JPEG", format, what)
		}
		return cfg, "", rejectAs(ErrNotImage, "not an image (content is not %s)", ImageFormats)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return cfg, format, rejectAs(ErrBadImage, "truncated %s (header incomplete)", format)
	case err != nil:
		return cfg, format, errRejected{decodeReason(format, " header", err, head()), decodeKind(format, err, head())}
	case cfg.Width <= 0 || cfg.Height <= 0:
		return cfg, format, rejectAs(ErrBadImage, "%s with zero size %dx%d", format, cfg.Width, cfg.Height)
	case int64(cfg.Width)*int64(cfg.Height) > maxPixels:
		return cfg, format, rejectAs(ErrTooLarge, "%s of %dx%d exceeds %s %d", format, cfg.Width, cfg.Height, limit, maxPixels)
	}
	return cfg, format, nil
}

// jpegFrameConfig reads the size and colour model of the JPEG at r from its frame header,
// walking its segments by their lengths from the start (at most 256 of them, as a header's
// metadata goes); it reports false when it finds none before a scan or the end, meets a
// marker without a length (from which a walk by lengths would find another frame header than
// the decoders do), or finds one of a process, precision or size libjpeg-turbo does not
// decode.
func jpegFrameConfig(r io.ReaderAt) (image.Config, bool) {
	var b [10]byte
	off := int64(2)
	if n, _ := r.ReadAt(b[:2], 0); n < 2 || b[0] != 0xff || b[1] != 0xd8 {
		return image.Config{}, false
	}
	for range 256 {
		if n, _ := r.ReadAt(b[:4], off); n < 4 || b[0] != 0xff {
			return image.Config{}, false
		}
		if b[1] == 0xff { // a fill byte
			off++
			continue
		}
		m, length := b[1], int64(b[2])<<8|int64(b[3])
		switch {
		case m == 0xda || m == 0xd9 || length < 2:
			return image.Config{}, false
		case m == 0x00 || m == 0x01 || m >= 0xd0 && m <= 0xd8:
			// No length to libjpeg and image/jpeg (a stuffed zero, TEM, RSTn, SOI): walking on
			// by the next two bytes would find another frame header than the one they decode.
			return image.Config{}, false
		case m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc:
			if m != 0xc0 && m != 0xc1 && m != 0xc2 && m != 0xc9 && m != 0xca {
				return image.Config{}, false // a process libjpeg-turbo lacks
			}
			if n, _ := r.ReadAt(b[:8], off+2); n < 8 || b[2] != 8 {
				return image.Config{}, false
			}
			cfg := image.Config{Height: int(b[3])<<8 | int(b[4]), Width: int(b[5])<<8 | int(b[6])}
			if cfg.Width > 65500 || cfg.Height > 65500 { // libjpeg-turbo's JPEG_MAX_DIMENSION
				return image.Config{}, false
			}
			switch b[7] {
			case 1:
				cfg.ColorModel = color.GrayModel
			case 3:
				cfg.ColorModel = color.YCbCrModel
			case 4:
				cfg.ColorModel = color.CMYKModel
			default:
				return image.Config{}, false
			}
			return cfg, true
		}
		off += 2 + length
	}
	return image.Config{}, false
}

// decodeError is the errRejected for err, the failure of decoding data, a whole file of format
// (prepare) whose header checkHeader passed.
func decodeError(format string, err error, data []byte) error {
	// image/jpeg reports a cut-off scan as "short Huffman data" rather than an EOF, and
	// image/png a cut-off image data stream as "not enough pixel data": a PNG without its
	// closing IEND chunk was cut off.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "short") ||
		format == "png" && !bytes.Contains(data, pngEnd) {
		return rejectAs(ErrBadImage, "truncated %s", format)
	}
	head := data[:min(len(data), headLen)]
	return errRejected{decodeReason(format, "", err, head), decodeKind(format, err, head)}
}

// decodeKind is the input error decodeReason's reason goes with: ErrUnsupportedFeature for a
// valid file with a feature the decoders lack, ErrBadImage for the rest.
func decodeKind(format string, err error, head []byte) error {
	if _, ok := unsupportedFeature(format, err, head); ok {
		return ErrUnsupportedFeature
	}
	return ErrBadImage
}

// openSource opens source files (tests make some unreadable, which permissions cannot do for
// root).
var openSource = os.Open

// headerReader reads an image file from its start through a buffer, for DecodeConfig: it
// has the Peek image.DecodeConfig looks for (so it does not wrap it in a bufio.Reader of its
// own) and the file's ReadAt, which x/image/tiff uses to reach the directory a TIFF header
// points to (possibly near the end) instead of reading everything up to it.
type headerReader struct {
	*bufio.Reader
	f *os.File
}

// ReadAt implements io.ReaderAt.
func (h headerReader) ReadAt(p []byte, off int64) (int, error) { return h.f.ReadAt(p, off) }

// maxBytesPerPixel and metadataAllowance bound the size of an image file from its header:
// no supported format takes more than 8 bytes a pixel (16-bit RGBA, uncompressed: a TIFF, or
// a PNG of stored deflate blocks), and 64 MiB is room for what may come with the pixels (EXIF,
// XMP, ICC profiles, thumbnails). A file larger than that for the size its header gives is
// most likely something else (a video or an archive behind an image's first bytes, say) and is
// rejected before it is read, so reading an image never takes an unbounded amount of memory.
// Only the first frame of an animated GIF or the first page of a TIFF is used; a file whose
// other frames or pages go past the bound is rejected too.
const (
	maxBytesPerPixel  = 8
	metadataAllowance = 64 << 20
)

// maxImageFileSize is the largest file an image of cfg's size may take.
func maxImageFileSize(cfg image.Config) int64 {
	return maxBytesPerPixel*int64(cfg.Width)*int64(cfg.Height) + metadataAllowance
}

// tooLargeFile is the problem with a file of size bytes holding an image of cfg's size in
// format, whose limit is maxImageFileSize; size is -1 when only more than the limit is known.
func tooLargeFile(format string, cfg image.Config, size int64) error {
	limit := maxImageFileSize(cfg)
	of := "more than " + megabytes(limit)
	if size >= 0 {
		of = megabytes(size)
	}
	return rejectAs(ErrTooLarge, "%s of %dx%d in a file of %s: far more than such an image takes (at most %s)",
		format, cfg.Width, cfg.Height, of, megabytes(limit))
}

// megabytes writes n bytes in MB (10⁶ bytes), with one decimal.
func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// readRest reads f, open and read from somewhere, from its start: at most limit bytes (a file
// that holds more, grown since its stat fi, fails with errFileGrew).
func readRest(f *os.File, fi os.FileInfo, limit int64) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(fi.Size(), limit)+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > limit {
		return nil, errFileGrew
	}
	return buf.Bytes(), nil
}

// errFileGrew is readRest's error for a file that holds more than its limit.
var errFileGrew = errors.New("the file holds more than its size said")

// ErrNotRegular is the input error of a path that is not a regular file (a named pipe, a
// device, a socket), which would block or never end if read: the split's discovery rejects it
// as predict refuses it, "not a regular file".
var ErrNotRegular = errors.New("not a regular file")

// imageFile is an image file read whole after its header was checked.
type imageFile struct {
	data   []byte
	fi     os.FileInfo
	cfg    image.Config
	format string
}

// readImageFile reads path as loadImage does (see there): the header first, and the whole
// file only when it is a supported image within maxPixels (limit names that setting) and
// within maxImageFileSize of the size its header gives. Problems with the file itself are
// errRejected; I/O failures are plain errors.
func readImageFile(path string, maxPixels int64, limit string) (imageFile, error) {
	f, err := openSource(path)
	if errors.Is(err, fs.ErrPermission) {
		return imageFile{}, reject("unreadable: permission denied")
	}
	if err != nil {
		return imageFile{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return imageFile{}, err
	}
	if !fi.Mode().IsRegular() {
		return imageFile{}, rejectAs(ErrNotRegular, "not a regular file")
	}
	br := bufio.NewReader(f)
	if _, err := br.Peek(1); err == io.EOF {
		return imageFile{}, emptyFile()
	} else if err != nil {
		return imageFile{}, err
	}
	head := func() []byte {
		head := make([]byte, headLen)
		n, _ := f.ReadAt(head, 0)
		return head[:n]
	}
	cfg, format, err := checkHeader(headerReader{br, f}, head, maxPixels, limit)
	if err != nil {
		return imageFile{}, err
	}
	if fi.Size() > maxImageFileSize(cfg) {
		return imageFile{}, tooLargeFile(format, cfg, fi.Size())
	}
	data, err := readRest(f, fi, maxImageFileSize(cfg))
	if errors.Is(err, errFileGrew) {
		return imageFile{}, tooLargeFile(format, cfg, -1)
	}
	if err != nil {
		return imageFile{}, err
	}
	return imageFile{data, fi, cfg, format}, nil
}

// ReadImage reads the image file path for predict, as the split reads a photo: a path that
// is not a regular file after following links (a named pipe, which would block, or a device
// such as /dev/zero, which never ends) is refused before it is opened (ErrNotRegular); a file
// that is not an image of a supported format, or is one over maxPixels, is refused from its
// first bytes (ErrNotImage, ErrTooLarge), and one far larger than an image of the size its
// header gives can be is refused before it is read (ErrTooLarge). Only then is the file read
// whole. Errors say what is wrong without naming path, which the caller names: the reasons of
// the split's rejected.json ("not an image (…)", "empty file", "broken symbolic link"),
// "--max-pixels" for the limit, and an I/O failure's cause ("no such file or directory").
func ReadImage(path string, maxPixels int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if _, lerr := os.Lstat(path); lerr == nil && (os.IsNotExist(err) || errors.Is(err, syscall.ELOOP)) {
			return nil, reject("%s", statReason(err)) // a link that leads nowhere, or loops
		}
		return nil, WithoutPath(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, rejectAs(ErrNotRegular, "not a regular file")
	}
	im, err := readImageFile(path, maxPixels, "--max-pixels")
	if err != nil {
		return nil, WithoutPath(err)
	}
	return im.data, nil
}

// ReadImageFrom reads an image from r (standard input) as ReadImage reads a file: its header
// first (64 KB, more while a header, such as a JPEG's EXIF block, runs past what was read, up
// to 64 MiB), and the rest only when it is a supported image within maxPixels, and no more than
// an image of its header's size can take (maxImageFileSize): endless input is refused after
// that much.
func ReadImageFrom(r io.Reader, maxPixels int64) ([]byte, error) {
	var buf bytes.Buffer
	for want := int64(64 << 10); ; want = min(2*want, metadataAllowance) {
		if _, err := io.CopyN(&buf, r, want-int64(buf.Len())); err != nil && err != io.EOF {
			return nil, err
		}
		data := buf.Bytes()
		ended := int64(len(data)) < want
		cfg, format, err := checkImage(data, maxPixels)
		if err != nil {
			if !ended && want < metadataAllowance {
				if _, _, derr := image.DecodeConfig(bytes.NewReader(data)); errors.Is(derr, io.ErrUnexpectedEOF) || errors.Is(derr, io.EOF) {
					continue // the header goes on past what was read
				}
			}
			return nil, err
		}
		if ended {
			return data, nil
		}
		limit := maxImageFileSize(cfg)
		if _, err := io.CopyN(&buf, r, limit+1-int64(buf.Len())); err != nil && err != io.EOF {
			return nil, err
		}
		if int64(buf.Len()) > limit {
			return nil, tooLargeFile(format, cfg, -1)
		}
		return buf.Bytes(), nil
	}
}

// WithoutPath is err without the path and operation of the *fs.PathError it is, if it is one
// ("no such file or directory", not "open photo.jpg: no such file or directory"), for a
// message that names the path already.
func WithoutPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// IsRejected reports whether err is a problem with an image file itself, one the split
// lists in rejected.json (empty, not an image, truncated or corrupt, too large, unreadable, not
// a regular file, a link that leads nowhere), rather than an I/O failure or the model's.
func IsRejected(err error) bool {
	var r errRejected
	return errors.As(err, &r)
}

func reject(format string, args ...any) error {
	return errRejected{reason: fmt.Sprintf(format, args...)}
}

// digests knows the digests of some files already (*pipeline.Job: the engine's, of a
// stage's sources).
type digests interface {
	KnownDigest(path string, fi os.FileInfo) (string, bool)
}

// loadImage reads, hashes, decodes and fits path to size×size by policy in channels (see
// prepareImage). It reads the header first: a file that is not an image of a supported
// format, or is one over maxPixels, is rejected from its first bytes, and only a supported
// image is read whole (a video in a class folder costs a few kilobytes, not its size in
// memory), and only if it is no larger than an image of its header's size can be
// (maxImageFileSize); an image with a side under minSide is rejected from its header too. The digest comes from known when it has it for the file as read (known
// may be nil). Problems with the file itself (empty, not a regular file, not an image,
// truncated, too large) are errRejected; I/O failures are plain errors. With keyed (a split
// that stores no images), a JPEG whose markers and tables are as libjpeg-turbo requires them
// (jpegPlausible) gets its PixelsKey, and then, without fit, is not decoded: the result has
// no Img. Every other file is decoded, to reject it when it cannot be.
func loadImage(path string, known digests, maxPixels int64, minSide, size int, policy string, channels int, fit, keyed bool) (loaded, error) {
	im, err := readImageFile(path, maxPixels, "max_pixels")
	if err != nil {
		return loaded{}, err
	}
	data, fi, cfg, format := im.data, im.fi, im.cfg, im.format
	if cfg.Width < minSide || cfg.Height < minSide {
		return loaded{}, rejectAs(ErrTooSmall, "%s of %dx%d is smaller than min_side %d", format, cfg.Width, cfg.Height, minSide)
	}
	l := loaded{Size: int64(len(data)), Format: format}
	if known != nil {
		if d, ok := known.KnownDigest(path, fi); ok && fi.Size() == l.Size {
			l.Digest = d
		}
	}
	if l.Digest == "" {
		sum := sha256.Sum256(data)
		l.Digest = hex.EncodeToString(sum[:])
	}
	if keyed && format == "jpeg" && jpegPlausible(data) {
		l.PixelsKey = jpegPixelsKey(data, imageOrientation(data, format))
		if !fit {
			return l, nil
		}
	}
	img, note, err := prepare(data, format, cfg.Width, cfg.Height, size, policy, channels)
	if err != nil {
		return l, decodeError(format, err, data)
	}
	l.Img, l.Fallback, l.Libjpeg = img, note.fallback, note.libjpeg
	return l, nil
}

// pngEnd is a PNG's closing chunk: IEND, empty, with its CRC.
var pngEnd = []byte{0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82}

// headLen is how much of a file's start decodeReason and unsupportedFormat look at (an SVG
// file's svg element may follow an XML declaration and comments).
const headLen = 1024

// decodeReason is the reason to reject a file of format whose decoder failed with err (what
// says where: " header" or ""), given the file's first bytes (up to headLen). A valid file
// with a feature Go's decoders lack is "unsupported <format> (<feature>): convert it to PNG
// or JPEG", not corrupt: the decoders say so with their UnsupportedError types (image/jpeg,
// image/png, x/image/tiff), bmp.ErrUnsupported or a message saying "unsupported", and an
// animated WebP, which x/image/webp calls an invalid format, is one too. Anything else is
// "corrupt <format><what>: <err>".
func decodeReason(format, what string, err error, head []byte) string {
	if feature, ok := unsupportedFeature(format, err, head); ok {
		return fmt.Sprintf("unsupported %s (%s): convert it to PNG or JPEG", format, feature)
	}
	// Go's decoders start their messages with the format ("png: invalid format: …"), which
	// the reason says already.
	return fmt.Sprintf("corrupt %s%s: %s", format, what, strings.TrimPrefix(err.Error(), format+": "))
}

// unsupportedFeature names the feature of a valid file that err says the decoder of format
// lacks, if it says so.
func unsupportedFeature(format string, err error, head []byte) (string, bool) {
	var je jpeg.UnsupportedError
	var pe png.UnsupportedError
	var te tiff.UnsupportedError
	switch {
	case errors.As(err, &je):
		return jpegFeature(string(je), head), true
	case errors.As(err, &pe):
		return string(pe), true
	case errors.As(err, &te):
		return tiffFeature(string(te)), true
	case errors.Is(err, bmp.ErrUnsupported):
		return bmpFeature(head), true
	case format == "webp" && webpAnimated(head):
		return "animated", true
	case strings.Contains(err.Error(), "unsupported"):
		return strings.TrimPrefix(err.Error(), format+": "), true
	}
	return "", false
}

// jpegFeature says in a user's words what image/jpeg calls a feature it lacks ("unknown
// marker", "precision") in a JPEG whose first bytes are head: the coding process or the
// sample precision of its frame, when head reaches the frame header; else image/jpeg's words.
func jpegFeature(feature string, head []byte) string {
	said := feature
	jpegWalk(head, func(m byte, _ int, p []byte) bool {
		if m < 0xc0 || m > 0xcf || m == 0xc4 || m == 0xc8 || m == 0xcc {
			return true // not a frame header (DHT, JPG, DAC)
		}
		switch {
		case m == 0xc3 || m == 0xc7 || m == 0xcb || m == 0xcf:
			said = "lossless coding"
		case m >= 0xc5 && m <= 0xc7 || m >= 0xcd:
			said = "hierarchical coding"
		case len(p) > 0 && p[0] != 8:
			said = fmt.Sprintf("%d-bit samples", p[0])
		}
		return false
	})
	return said
}

// tiffFeature says in a user's words what x/image/tiff calls a feature it lacks: the
// compression by its name rather than its number, the colour models it does not read.
func tiffFeature(feature string) string {
	var n int
	if _, err := fmt.Sscanf(feature, "compression value %d", &n); err == nil {
		if name, ok := map[int]string{2: "CCITT fax", 3: "CCITT fax", 4: "CCITT fax", 6: "old-style JPEG", 7: "JPEG",
			34712: "JPEG 2000", 34925: "LZMA", 50000: "Zstandard", 50001: "WebP"}[n]; ok {
			return fmt.Sprintf("%s compression, value %d", name, n)
		}
		return feature
	}
	if feature == "color model" {
		return "colour model: CMYK, YCbCr or Lab"
	}
	return feature
}

// bmpFeature names what x/image/bmp does not read in a BMP whose header starts head: its
// compression (RLE is common) or its bits per pixel.
func bmpFeature(head []byte) string {
	if len(head) < 34 {
		return "header"
	}
	bpp, compression := binary.LittleEndian.Uint16(head[28:30]), binary.LittleEndian.Uint32(head[30:34])
	switch compression {
	case 0: // none
	case 1:
		return "RLE8 compression"
	case 2:
		return "RLE4 compression"
	case 3:
		return "bit-field colour masks"
	case 4:
		return "embedded JPEG"
	case 5:
		return "embedded PNG"
	default:
		return fmt.Sprintf("compression %d", compression)
	}
	if !slices.Contains([]uint16{1, 2, 4, 8, 24, 32}, bpp) {
		return fmt.Sprintf("%d bits per pixel", bpp)
	}
	return "header layout"
}

// webpAnimated reports whether the WebP starting head is animated (the animation flag of its
// VP8X chunk), which x/image/webp does not decode.
func webpAnimated(head []byte) bool {
	return len(head) >= 21 && string(head[:4]) == "RIFF" && string(head[8:16]) == "WEBPVP8X" && head[20]&0x02 != 0
}

// fitImage resizes img to size×size by policy (see layout) with raster.Resize and converts it
// to channels (1: grey, 3: RGB), alpha composited over black.
func fitImage(img image.Image, size int, policy string, channels int) image.Image {
	b := img.Bounds()
	sr, dr := layout(b.Dx(), b.Dy(), size, policy)
	out := image.NewRGBA(image.Rect(0, 0, size, size))
	raster.Resize(out, dr, img, sr.Add(b.Min))
	return opaque(out, channels)
}

// warp fills out so that its pixel p shows src at m⁻¹(p), where m maps source coordinates
// to destination coordinates (pixel centres at +0.5); uncovered pixels are transparent black.
// One bilinear resampling (raster.Warp), whatever m combines. It returns out.
func warp(out *image.RGBA, src image.Image, m f64.Aff3) *image.RGBA {
	rgba, ok := src.(*image.RGBA)
	if !ok {
		rgba = clone.AsRGBA(src)
	}
	raster.Warp(out, m, rgba)
	return out
}

// dataWorkers is how many images the split and augment stages work on at once: one more than
// the cores, since each worker also spends time in the kernel writing files (an ad hoc
// comparison on the data benchmark's photos: 4 of 4 back-to-back runs faster by 3–7 %; two
// more gained nothing further).
func dataWorkers() int { return runtime.NumCPU() + 1 }

// bufPool recycles the byte buffers of images that are dead once written (encoded files,
// decoded and augmented pixels), so that the data stages do not allocate, clear and collect
// a few hundred kilobytes per image.
type bufPool struct{ p sync.Pool }

// get returns a buffer of length n holding old contents.
func (b *bufPool) get(n int) []byte {
	if s, ok := b.p.Get().(*[]byte); ok && cap(*s) >= n {
		return (*s)[:n]
	}
	return make([]byte, n)
}

// put gives s back for reuse; nothing may use it afterwards.
func (b *bufPool) put(s []byte) { b.p.Put(&s) }

var (
	// encodedBufs holds buffers of encoded images (stored files).
	encodedBufs bufPool
	// pixelBufs holds buffers of decoded or augmented pixels.
	pixelBufs bufPool
)

// mul returns the affine map a∘b (b applied first).
func mul(a, b f64.Aff3) f64.Aff3 {
	return f64.Aff3{
		a[0]*b[0] + a[1]*b[3], a[0]*b[1] + a[1]*b[4], a[0]*b[2] + a[1]*b[5] + a[2],
		a[3]*b[0] + a[4]*b[3], a[3]*b[1] + a[4]*b[4], a[3]*b[2] + a[4]*b[5] + a[5],
	}
}

// opaque finishes an image this package allocated (*image.RGBA or *raster.RGB): with
// channels 3 it sets every alpha of an RGBA image to opaque in place (premultiplied colour is
// the colour composited over black); with 1 it returns the grey image, the way
// color.GrayModel converts. Other types go through toChannels.
func opaque(img image.Image, channels int) image.Image {
	var pix []uint8
	var stride, bpp int
	switch m := img.(type) {
	case *image.RGBA:
		pix, stride, bpp = m.Pix, m.Stride, 4
	case *raster.RGB:
		pix, stride, bpp = m.Pix, m.Stride, 3
	default:
		return toChannels(img, channels)
	}
	b := img.Bounds()
	if channels == 1 {
		g := image.NewGray(b)
		for y := 0; y < b.Dy(); y++ {
			row := pix[y*stride : y*stride+bpp*b.Dx()]
			out := g.Pix[y*g.Stride : y*g.Stride+b.Dx()]
			for x := range out {
				r, gg, bb := uint32(row[bpp*x])*0x101, uint32(row[bpp*x+1])*0x101, uint32(row[bpp*x+2])*0x101
				out[x] = uint8((19595*r + 38470*gg + 7471*bb + 1<<15) >> 24)
			}
		}
		return g
	}
	if bpp == 4 {
		for i := 3; i < len(pix); i += 4 {
			pix[i] = 0xff
		}
	}
	return img
}

// toChannels converts to an opaque grey or RGB image (alpha composited over black).
func toChannels(img image.Image, channels int) image.Image {
	b := img.Bounds()
	if channels == 1 {
		g := image.NewGray(b)
		draw.Draw(g, b, img, b.Min, draw.Src)
		return g
	}
	rgba := image.NewRGBA(b)
	draw.Draw(rgba, b, image.NewUniform(color.Black), image.Point{}, draw.Src)
	draw.Draw(rgba, b, img, b.Min, draw.Over)
	return rgba
}

// Stored image formats.
const (
	FormatPNG  = "png"
	FormatJPEG = "jpeg"
)

// PNG compression of stored images.
const (
	CompressionNone = "none" // stored deflate blocks, no filtering: fastest to write and to read
	CompressionFast = "fast" // filtered and deflated at zlib's fastest level: about half the size
)

// storedFormat is how a stage stores images: png (lossless, deterministic; compression none,
// written by raster.AppendPNG, or fast) or jpeg at quality, encoded by libjpeg-turbo through
// TensorFlow when jpeg is set (3× faster than image/jpeg) and by image/jpeg otherwise.
type storedFormat struct {
	format, compression string
	quality             int
	jpeg                *jpegEncoder
}

// newStoredFormat returns a storedFormat and a function that releases it; for jpeg it starts
// a libjpeg-turbo encoder, or falls back to image/jpeg when TensorFlow is unusable.
func newStoredFormat(format string, quality int, compression string) (storedFormat, func()) {
	f := storedFormat{format: format, quality: quality, compression: compression}
	if format != FormatJPEG {
		return f, func() {}
	}
	enc, err := newJPEGEncoder(quality)
	if err != nil {
		return f, func() {}
	}
	f.jpeg = enc
	return f, enc.close
}

// encode returns img encoded in the format.
func (f storedFormat) encode(img image.Image) ([]byte, error) {
	return f.appendEncoded(nil, img)
}

// appendEncoded appends img encoded in the format to dst (whose capacity it may reuse).
func (f storedFormat) appendEncoded(dst []byte, img image.Image) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	switch {
	case f.format == FormatJPEG && f.jpeg != nil:
		data, err := f.jpeg.encode(img)
		return append(dst, data...), err
	case f.format == FormatJPEG:
		if rgb, ok := img.(*raster.RGB); ok {
			img = rgb.ToRGBA() // image/jpeg's fast path
		}
		if err := jpeg.Encode(buf, img, &jpeg.Options{Quality: f.quality}); err != nil {
			return nil, err
		}
	case f.compression == CompressionFast:
		if rgb, ok := img.(*raster.RGB); ok {
			img = rgb.ToRGBA() // image/png's fast path
		}
		if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(buf, img); err != nil {
			return nil, err
		}
	default:
		return raster.AppendPNG(dst, img)
	}
	return buf.Bytes(), nil
}

// extension returns the file extension of a stored format.
func extension(format string) string {
	if format == FormatJPEG {
		return ".jpg"
	}
	return ".png"
}
