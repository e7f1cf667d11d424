package stages

import (
	"bytes"
	"encoding/binary"
	"image"

	"github.com/anthonynsimon/bild/clone"

	"pipeline/stages/raster"
)

// Phones store a photo's pixels the way the sensor read them and say in the EXIF Orientation
// tag how to turn them for display; every image viewer and browser does. Stored and served
// images are fitted in that displayed frame, so a portrait photo is not trained on, or
// predicted, lying on its side, and pad and squash see its real aspect ratio.

// exifOrientation returns the EXIF Orientation (1–8) of a JPEG: the value of tag 0x0112 in
// the first IFD of its first Exif APP1 segment, or 1 (as stored) when there is none or it
// cannot be read.
func exifOrientation(data []byte) int {
	if len(data) < 4 || data[0] != 0xff || data[1] != 0xd8 {
		return 1
	}
	for i := 2; i+4 <= len(data); {
		if data[i] != 0xff {
			return 1
		}
		marker := data[i+1]
		switch {
		case marker == 0xff: // fill byte
			i++
			continue
		case marker == 0xda || marker == 0xd9: // start of scan, end of image: no more headers
			return 1
		case marker == 0x01 || marker >= 0xd0 && marker <= 0xd7: // no length
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 || i+2+n > len(data) {
			return 1
		}
		seg := data[i+4 : i+2+n]
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 1
}

// imageOrientation returns the EXIF Orientation (1–8) of an image of format ("jpeg", "png",
// "webp", "tiff", …): from a JPEG's Exif APP1 segment, a PNG's eXIf chunk, a WebP's EXIF
// chunk, as browsers read them, or a TIFF's own first IFD, as scanners and cameras write it;
// 1 (as stored) for other formats, or when there is none or it cannot be read.
func imageOrientation(data []byte, format string) int {
	switch format {
	case "jpeg":
		return exifOrientation(data)
	case "png":
		return pngOrientation(data)
	case "webp":
		return webpOrientation(data)
	case "tiff":
		return tiffOrientation(data)
	}
	return 1
}

// pngOrientation reads the Orientation of a PNG's eXIf chunk (a TIFF header), looking at the
// chunks before the image data, where the chunk belongs.
func pngOrientation(data []byte) int {
	const sig = "\x89PNG\r\n\x1a\n"
	if len(data) < len(sig) || string(data[:len(sig)]) != sig {
		return 1
	}
	for p := data[len(sig):]; len(p) >= 12; {
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-12) {
			return 1
		}
		switch string(p[4:8]) {
		case "eXIf":
			return tiffOrientation(bytes.TrimPrefix(p[8:8+n], []byte("Exif\x00\x00")))
		case "IDAT", "IEND":
			return 1
		}
		p = p[12+n:]
	}
	return 1
}

// webpOrientation reads the Orientation of a WebP's EXIF chunk (a TIFF header, which some
// writers put after an "Exif\0\0" prefix as in a JPEG).
func webpOrientation(data []byte) int {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return 1
	}
	for p := data[12:]; len(p) >= 8; {
		n := binary.LittleEndian.Uint32(p[4:])
		if uint64(n) > uint64(len(p)-8) {
			return 1
		}
		if string(p[:4]) == "EXIF" {
			return tiffOrientation(bytes.TrimPrefix(p[8:8+n], []byte("Exif\x00\x00")))
		}
		p = p[8+n:]
		if n%2 == 1 && len(p) > 0 {
			p = p[1:] // chunks are padded to an even size
		}
	}
	return 1
}

// tiffOrientation reads the Orientation tag from the first IFD of a TIFF header (the body of
// an Exif segment); 1 when it is missing or malformed.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(t[2:]) != 42 {
		return 1
	}
	ifd := uint64(bo.Uint32(t[4:]))
	if ifd+2 > uint64(len(t)) {
		return 1
	}
	count := uint64(bo.Uint16(t[ifd:]))
	for e := ifd + 2; e+12 <= uint64(len(t)) && count > 0; e, count = e+12, count-1 {
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		var v uint32
		switch typ, n := bo.Uint16(t[e+2:]), bo.Uint32(t[e+4:]); {
		case typ == 3 && n == 1: // SHORT
			v = uint32(bo.Uint16(t[e+8:]))
		case typ == 4 && n == 1: // LONG, which some writers use
			v = bo.Uint32(t[e+8:])
		}
		if v >= 1 && v <= 8 {
			return int(v)
		}
		return 1
	}
	return 1
}

// orientedSize is the displayed size of a w×h image stored with orientation o.
func orientedSize(o, w, h int) (int, int) {
	if o >= 5 {
		return h, w
	}
	return w, h
}

// storedRect maps r, a rectangle of the displayed frame of a w×h (as stored) image with
// orientation o, to the stored frame.
func storedRect(o int, r image.Rectangle, w, h int) image.Rectangle {
	x0, y0, x1, y1 := r.Min.X, r.Min.Y, r.Max.X, r.Max.Y
	switch o {
	case 2: // mirrored left to right
		return image.Rect(w-x1, y0, w-x0, y1)
	case 3: // turned 180°
		return image.Rect(w-x1, h-y1, w-x0, h-y0)
	case 4: // mirrored top to bottom
		return image.Rect(x0, h-y1, x1, h-y0)
	case 5: // transposed
		return image.Rect(y0, x0, y1, x1)
	case 6: // shown turned 90° clockwise
		return image.Rect(y0, h-x1, y1, h-x0)
	case 7: // transversed
		return image.Rect(w-y1, h-x1, w-y0, h-x0)
	case 8: // shown turned 90° counter-clockwise
		return image.Rect(w-y1, x0, w-y0, x1)
	}
	return r
}

// storedPoint is the stored pixel shown at (x, y) of a w×h (as stored) image with
// orientation o.
func storedPoint(o, x, y, w, h int) (int, int) {
	switch o {
	case 2:
		return w - 1 - x, y
	case 3:
		return w - 1 - x, h - 1 - y
	case 4:
		return x, h - 1 - y
	case 5:
		return y, x
	case 6:
		return y, h - 1 - x
	case 7:
		return w - 1 - y, h - 1 - x
	case 8:
		return w - 1 - y, x
	}
	return x, y
}

// orientPixels returns the displayed frame of w×h pixels of bpp bytes, stride apart, stored
// with orientation o, packed in a new buffer from pixelBufs.
func orientPixels(pix []uint8, stride, bpp, w, h, o int) (out []uint8, ow, oh int) {
	ow, oh = orientedSize(o, w, h)
	out = pixelBufs.get(bpp * ow * oh)
	for y := 0; y < oh; y++ {
		row := out[bpp*ow*y : bpp*ow*(y+1)]
		for x := 0; x < ow; x++ {
			sx, sy := storedPoint(o, x, y, w, h)
			copy(row[bpp*x:bpp*(x+1)], pix[sy*stride+bpp*sx:])
		}
	}
	return out, ow, oh
}

// orientRGB returns img turned to its displayed frame; img's pixels go back to pixelBufs.
func orientRGB(img *raster.RGB, o int) *raster.RGB {
	if o <= 1 || o > 8 {
		return img
	}
	b := img.Bounds()
	pix, w, h := orientPixels(img.Pix, img.Stride, 3, b.Dx(), b.Dy(), o)
	pixelBufs.put(img.Pix)
	return &raster.RGB{Pix: pix, Stride: 3 * w, Rect: image.Rect(0, 0, w, h)}
}

// orientImage returns img (decoded by Go) turned to its displayed frame, as RGBA, or as
// NRGBA for an NRGBA image (a PNG or WebP with alpha), which raster.Resize composites over
// black to the nearest level (clone.AsRGBA would round its translucent colour down first).
func orientImage(img image.Image, o int) image.Image {
	if o <= 1 || o > 8 {
		return img
	}
	if n, ok := img.(*image.NRGBA); ok {
		b := n.Bounds()
		pix, w, h := orientPixels(n.Pix[n.PixOffset(b.Min.X, b.Min.Y):], n.Stride, 4, b.Dx(), b.Dy(), o)
		return &image.NRGBA{Pix: pix, Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}
	}
	rgba := clone.AsRGBA(img)
	b := rgba.Bounds()
	pix, w, h := orientPixels(rgba.Pix, rgba.Stride, 4, b.Dx(), b.Dy(), o)
	return &image.RGBA{Pix: pix, Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}
}

// jpegComplete reports whether data, a JPEG, reaches its end-of-image marker: it walks the
// segments by their lengths and each scan's entropy-coded data to the next marker (a 0xFF
// not followed by a stuffed zero or a restart marker). A file cut off before its end, the
// usual damage to a photo, has none; libjpeg-turbo decodes such a file up to the cut and
// refuses it only then, logging a line of its own, so prepare leaves it to image/jpeg.
func jpegComplete(data []byte) bool { return jpegWalk(data, nil) }

// jpegPlausible reports whether data, a JPEG, is complete (jpegComplete) and its markers and
// tables are as libjpeg-turbo requires them (jpegChecker): a file that is not is decoded to
// decide whether it is usable, even where a JPEG is otherwise checked from its markers alone
// (a split that stores no images). Flagging a good file only costs its decode.
func jpegPlausible(data []byte) bool {
	var c jpegChecker
	return jpegWalk(data, func(m byte, _ int, p []byte) bool { return c.segment(m, p) })
}

// jpegChecker follows a JPEG's segments for jpegPlausible, refusing what libjpeg-turbo
// refuses a file for: a second start-of-image or frame header; a reserved marker (as a
// damaged byte in coded data makes); a Huffman table with a bad class or slot, no codes or
// more than 256, codes that do not fit their lengths (the all-ones code left out) or, for a
// DC table, a symbol over 15; a quantization table with a bad precision or slot, or cut
// short; an arithmetic-conditioning segment of an odd size, with a bad slot or a DC bound
// pair out of order; a restart interval segment of another size; a frame header of another size than its
// components need, of a process or precision libjpeg-turbo lacks (it decodes 8-bit baseline,
// extended and progressive, Huffman or arithmetic), of a side over 65,500 or none, or with
// sampling factors outside 1–4 or not dividing the largest (fractional sampling); a scan header of another size, with 0 or
// over 4 components, naming a component twice or one the frame lacks or a table not defined
// before it, with more than 10 blocks in its MCU, or with spectral selection or successive
// approximation values its process does not allow (for a sequential scan libjpeg-turbo only
// warns: decoding decides); and an end of image without a scan.
type jpegChecker struct {
	dc, ac, quant        [4]bool
	frame                []byte // the frame header's payload, nil before it
	huffman, progressive bool
	scanned              bool // a scan header was seen
}

// segment reports whether the segment with marker m and payload p (nil for a marker
// without one) is as libjpeg-turbo requires, given the segments before it.
func (c *jpegChecker) segment(m byte, p []byte) bool {
	switch {
	case m == 0xd8, m >= 0x02 && m <= 0xbf, m >= 0xf0 && m <= 0xfd:
		return false
	case m == 0xd9:
		return c.scanned
	case m == 0xc4: // DHT
		for len(p) > 0 {
			if len(p) < 17 || p[0]>>4 > 1 || p[0]&15 > 3 {
				return false
			}
			total, code := 0, 0
			for l := 1; l <= 16; l++ {
				n := int(p[l])
				total += n
				code += n
				if code >= 1<<l {
					return false
				}
				code <<= 1
			}
			if total == 0 || total > 256 || 17+total > len(p) {
				return false
			}
			if p[0]>>4 == 0 {
				for _, s := range p[17 : 17+total] {
					if s > 15 {
						return false
					}
				}
				c.dc[p[0]&15] = true
			} else {
				c.ac[p[0]&15] = true
			}
			p = p[17+total:]
		}
	case m == 0xdb: // DQT
		for len(p) > 0 {
			if p[0]>>4 > 1 || p[0]&15 > 3 || 1+64<<(p[0]>>4) > len(p) {
				return false
			}
			c.quant[p[0]&15] = true
			p = p[1+64<<(p[0]>>4):]
		}
	case m == 0xdd: // DRI
		return len(p) == 2
	case m == 0xcc: // DAC: (slot, value) pairs; a DC slot's lower bound not above its upper
		if len(p)%2 != 0 {
			return false
		}
		for ; len(p) > 0; p = p[2:] {
			if p[0] >= 32 || p[0] < 16 && p[1]&15 > p[1]>>4 {
				return false
			}
		}
	case m >= 0xc0 && m <= 0xcf && m != 0xc8 && m != 0xcc: // SOFn
		if c.frame != nil || len(p) < 6 || p[5] < 1 || p[5] > 4 || len(p) != 6+3*int(p[5]) {
			return false
		}
		if m != 0xc0 && m != 0xc1 && m != 0xc2 && m != 0xc9 && m != 0xca || p[0] != 8 {
			return false // a process or precision libjpeg-turbo (8-bit) lacks
		}
		if h, w := int(p[1])<<8|int(p[2]), int(p[3])<<8|int(p[4]); h < 1 || w < 1 || h > 65500 || w > 65500 {
			return false
		}
		var maxH, maxV byte
		for k := 0; k < int(p[5]); k++ {
			if h, v := p[7+3*k]>>4, p[7+3*k]&15; h < 1 || h > 4 || v < 1 || v > 4 {
				return false
			}
			maxH, maxV = max(maxH, p[7+3*k]>>4), max(maxV, p[7+3*k]&15)
		}
		for k := 0; k < int(p[5]); k++ {
			if maxH%(p[7+3*k]>>4) != 0 || maxV%(p[7+3*k]&15) != 0 {
				return false // fractional sampling: libjpeg-turbo's upsampler refuses it
			}
		}
		c.frame = p
		c.huffman = m < 0xc8
		c.progressive = m == 0xc2 || m == 0xc6 || m == 0xca || m == 0xce
	case m == 0xda: // SOS
		if c.frame == nil || len(p) < 1 || p[0] < 1 || p[0] > 4 || len(p) != 1+2*int(p[0])+3 {
			return false
		}
		n := int(p[0])
		ss, se, ah, al := p[1+2*n], p[2+2*n], p[3+2*n]>>4, p[3+2*n]&15
		if c.progressive {
			if ss == 0 && se != 0 || ss > 0 && (ss > se || se > 63 || n != 1) || ah != 0 && al != ah-1 || al > 13 {
				return false
			}
		} else if ss != 0 || se != 63 || ah != 0 || al != 0 {
			return false
		}
		c.scanned = true
		blocks := 0
		for i := 0; i < n; i++ {
			id, td, ta := p[1+2*i], int(p[2+2*i]>>4), int(p[2+2*i]&15)
			for j := 0; j < i; j++ {
				if p[1+2*j] == id {
					return false
				}
			}
			tq := -1
			for k := 0; k < int(c.frame[5]); k++ {
				if c.frame[6+3*k] == id {
					tq = int(c.frame[8+3*k])
					blocks += int(c.frame[7+3*k]>>4) * int(c.frame[7+3*k]&15)
				}
			}
			if tq < 0 || tq > 3 || !c.quant[tq] || td > 3 || ta > 3 || n > 1 && blocks > 10 {
				return false
			}
			if !c.huffman {
				continue
			}
			switch {
			case !c.progressive:
				if !c.dc[td] || !c.ac[ta] {
					return false
				}
			case ss == 0:
				if ah == 0 && !c.dc[td] {
					return false
				}
			case !c.ac[ta]:
				return false
			}
		}
	}
	return true
}

// jpegWalk walks data, a JPEG, as jpegComplete describes, passing each segment's marker, the
// offset of the 0xFF before it and its payload (after its length) to seg when seg is not nil,
// and a start-of-image marker after the first and the end-of-image marker with a nil payload;
// it reports whether data reaches its end-of-image marker and seg accepted every segment.
func jpegWalk(data []byte, seg func(m byte, at int, payload []byte) bool) bool {
	if len(data) < 4 || data[0] != 0xff || data[1] != 0xd8 {
		return false
	}
	for i := 2; ; {
		// The next marker: libjpeg skips stray bytes and fill bytes before one, and so
		// does this; in a scan's data, 0xFF 0x00 is a data byte and 0xFF 0xD0–D7 a restart.
		j := bytes.IndexByte(data[i:], 0xff)
		if j < 0 {
			return false
		}
		i += j + 1
		for i < len(data) && data[i] == 0xff {
			i++
		}
		if i >= len(data) {
			return false
		}
		switch m := data[i]; {
		case m == 0xd9:
			return seg == nil || seg(m, i-1, nil)
		case m == 0xd8 && seg != nil && !seg(m, i-1, nil):
			return false // a second start of image
		case m == 0x00, m == 0x01, m >= 0xd0 && m <= 0xd8:
			i++ // a data byte, or a marker without a length
		default: // a segment (a scan's header too; its data follows)
			if i+3 > len(data) {
				return false
			}
			n := int(binary.BigEndian.Uint16(data[i+1:]))
			if n < 2 || i+1+n > len(data) {
				return false
			}
			if seg != nil && !seg(m, i-1, data[i+3:i+1+n]) {
				return false
			}
			i += 1 + n
		}
	}
}
