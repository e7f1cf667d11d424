package raster

import (
	"encoding/binary"
	"hash/crc32"
	"image"
)

// ReadStoredPNG decodes the PNGs AppendPNG writes: 8-bit RGB or grey, not interlaced, image
// data stored uncompressed (deflate stored blocks) with no row filters. It returns what
// image/png's Decode returns for them, an opaque *image.RGBA or an *image.Gray, checking the
// chunk CRCs and the Adler-32 as image/png does, in about a third of its time. For any other
// PNG, and for damaged ones, ok is false: decode those with image/png, which says what is
// wrong.
func ReadStoredPNG(data []byte) (img image.Image, ok bool) {
	const sig = "\x89PNG\r\n\x1a\n"
	if len(data) < len(sig) || string(data[:len(sig)]) != sig {
		return nil, false
	}
	be := binary.BigEndian
	p := data[len(sig):]
	var w, h, ch int
	var idat [][]byte
	for first := true; ; first = false {
		if len(p) < 12 {
			return nil, false
		}
		if uint64(be.Uint32(p)) > uint64(len(p)-12) {
			return nil, false
		}
		n := int(be.Uint32(p))
		typ, body := string(p[4:8]), p[8:8+n]
		if crc32.ChecksumIEEE(p[4:8+n]) != be.Uint32(p[8+n:]) {
			return nil, false
		}
		p = p[12+n:]
		switch {
		case first:
			// IHDR: width, height, bit depth 8, colour type 0 or 2, no interlace.
			if typ != "IHDR" || n != 13 || body[8] != 8 || (body[9] != 0 && body[9] != 2) ||
				body[10] != 0 || body[11] != 0 || body[12] != 0 {
				return nil, false
			}
			w, h, ch = int(be.Uint32(body)), int(be.Uint32(body[4:])), 1
			if body[9] == 2 {
				ch = 3
			}
			if w <= 0 || h <= 0 || w > 1<<24 || h > 1<<24 || int64(w)*int64(h) > 1<<28 {
				return nil, false
			}
		case typ == "IDAT":
			idat = append(idat, body)
		case typ == "IEND":
			if n != 0 {
				return nil, false // image/png refuses an IEND with data
			}
			return decodeStored(idat, w, h, ch)
		case typ == "tRNS":
			return nil, false // transparency: image/png returns another image type
		case typ[0]&0x20 == 0 || len(idat) > 0 && typ != "IDAT":
			// A critical chunk this reader does not handle (PLTE, …), or ancillary chunks
			// between the image data chunks: leave it to image/png.
			return nil, false
		}
	}
}

// decodeStored decodes the zlib stream split over the IDAT chunk bodies of a w×h image with
// ch bytes per pixel, when it holds stored blocks only and every row has filter 0.
func decodeStored(idat [][]byte, w, h, ch int) (image.Image, bool) {
	// The stream, over chunk boundaries: the zlib header, stored blocks, the Adler-32.
	var stream []byte
	if len(idat) == 1 {
		stream = idat[0]
	} else {
		for _, b := range idat {
			stream = append(stream, b...)
		}
	}
	if len(stream) < 2+4 || stream[0]&0x0f != 8 || stream[0]>>4 > 7 || stream[1]&0x20 != 0 ||
		(uint(stream[0])<<8|uint(stream[1]))%31 != 0 {
		return nil, false
	}
	rowLen := 1 + w*ch
	// Every row is there, stored: check the size before allocating the image.
	if int64(len(stream)) < 2+int64(h)*int64(rowLen)+4 {
		return nil, false
	}
	var out image.Image
	var pix []uint8
	var stride int
	if ch == 3 {
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		out, pix, stride = m, m.Pix, m.Stride
	} else {
		m := image.NewGray(image.Rect(0, 0, w, h))
		out, pix, stride = m, m.Pix, m.Stride
	}
	row := make([]uint8, 0, rowLen)
	y := 0
	adler := uint32(1)
	s := stream[2:]
	for final := false; !final; {
		// A stored block: BFINAL and BTYPE 00 in the low bits of a byte (the rest is padding
		// to the byte boundary), then LEN and its complement.
		if len(s) < 5 || s[0]>>1&3 != 0 {
			return nil, false
		}
		final = s[0]&1 == 1
		n := int(binary.LittleEndian.Uint16(s[1:]))
		if binary.LittleEndian.Uint16(s[3:]) != ^uint16(n) || len(s) < 5+n {
			return nil, false
		}
		payload := s[5 : 5+n]
		s = s[5+n:]
		adler = adler32Update(adler, payload)
		for len(payload) > 0 {
			if y == h {
				return nil, false // more data than rows
			}
			if len(row) == 0 && len(payload) >= rowLen {
				// The whole row is in this block: no copy into row.
				if !putRow(pix[y*stride:], payload[:rowLen], w, ch) {
					return nil, false
				}
				payload = payload[rowLen:]
				y++
				continue
			}
			k := min(rowLen-len(row), len(payload))
			row, payload = append(row, payload[:k]...), payload[k:]
			if len(row) == rowLen {
				if !putRow(pix[y*stride:], row, w, ch) {
					return nil, false
				}
				row = row[:0]
				y++
			}
		}
	}
	if y != h || len(row) != 0 || len(s) != 4 || binary.BigEndian.Uint32(s) != adler {
		return nil, false
	}
	return out, true
}

// putRow writes one unfiltered row (its filter byte first) into dst: grey bytes as they are,
// RGB samples as opaque RGBA pixels. It reports false for a filtered row.
func putRow(dst, row []uint8, w, ch int) bool {
	if row[0] != 0 {
		return false
	}
	row = row[1:]
	if ch == 1 {
		copy(dst[:w], row)
		return true
	}
	UnpackRGB(dst[:4*w], row)
	return true
}
