package stages

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// Some image files no registered decoder reads are common in photo folders: HEIC, which
// iPhones save by default, AVIF, SVG drawings and ICO icons. Such a file is rejected as
// unsupported, with what to do about it, as an animated WebP is, rather than as not an
// image.

// unsupportedFormat names the image format of a file starting head that the decoders do not
// read, and what it is ("heic", "HEIF image"); ok is false for anything else.
func unsupportedFormat(head []byte) (format, what string, ok bool) {
	if brands := isoBrands(head); brands != nil {
		has := func(bs ...string) bool {
			return slices.ContainsFunc(brands, func(b string) bool { return slices.Contains(bs, b) })
		}
		switch {
		case has("avif", "avis"):
			return "avif", "AV1 image", true
		case has("heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs"):
			return "heic", "HEIF image", true
		case has("mif1", "msf1"):
			return "heif", "HEIF image", true
		}
		return "", "", false
	}
	if isSVG(head) {
		return "svg", "vector image", true
	}
	// ICONDIR: reserved 0, type 1 (icon) or 2 (cursor), then the number of images.
	if len(head) >= 6 && head[0] == 0 && head[1] == 0 && (head[2] == 1 || head[2] == 2) && head[3] == 0 && binary.LittleEndian.Uint16(head[4:6]) > 0 {
		if head[2] == 2 {
			return "cur", "Windows cursor", true
		}
		return "ico", "Windows icon", true
	}
	return "", "", false
}

// isoBrands returns the major and compatible brands of the ISO base media file (HEIF, AVIF,
// MP4, …) starting head, from its ftyp box (as much of it as head holds); nil when head does
// not start with one.
func isoBrands(head []byte) []string {
	if len(head) < 12 || string(head[4:8]) != "ftyp" {
		return nil
	}
	end := min(len(head), int(binary.BigEndian.Uint32(head[:4])))
	brands := []string{string(head[8:12])}
	for i := 16; i+4 <= end; i += 4 { // after the minor version
		brands = append(brands, string(head[i:i+4]))
	}
	return brands
}

// isSVG tells whether head starts an SVG file: after an optional UTF-8 byte-order mark and
// white space, an svg element, or an XML declaration, comment or document type followed by
// one (not by an html element: a web page that draws with SVG is not an SVG file).
func isSVG(head []byte) bool {
	text := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	if bytes.HasPrefix(text, []byte("<svg")) {
		return true
	}
	if !bytes.HasPrefix(text, []byte("<?xml")) && !bytes.HasPrefix(text, []byte("<!")) {
		return false
	}
	svg, html := bytes.Index(text, []byte("<svg")), bytes.Index(bytes.ToLower(text), []byte("<html"))
	return svg >= 0 && (html < 0 || html > svg)
}
