package raster

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"slices"
)

// maxStored is the largest payload of one stored (uncompressed) deflate block.
const maxStored = 65535

// AppendPNG appends img encoded as an 8-bit PNG whose image data is stored uncompressed and
// unfiltered to buf: the fastest PNG to write and to read, 3 bytes per RGB pixel. *RGB and
// opaque *image.RGBA images become RGB PNGs (alpha is dropped, so it must be opaque),
// *image.Gray images grey ones; other types are an error.
func AppendPNG(buf []byte, img image.Image) ([]byte, error) {
	var pix []uint8
	var stride, bpp, colorType, ch int
	b := img.Bounds()
	switch m := img.(type) {
	case *RGB:
		pix, stride, bpp, colorType, ch = m.Pix, m.Stride, 3, 2, 3
	case *image.RGBA:
		pix, stride, bpp, colorType, ch = m.Pix, m.Stride, 4, 2, 3
	case *image.Gray:
		pix, stride, bpp, colorType, ch = m.Pix, m.Stride, 1, 0, 1
	default:
		return buf, fmt.Errorf("raster: cannot write %T as PNG", img)
	}
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return buf, fmt.Errorf("raster: cannot write a %dx%d PNG", w, h)
	}
	rowLen := 1 + w*ch
	raw := h * rowLen
	blocks := max(1, (raw+maxStored-1)/maxStored)
	zlen := 2 + raw + 5*blocks + 4
	if zlen > 1<<31-1 {
		return buf, fmt.Errorf("raster: a %dx%d image is too large for one uncompressed PNG chunk", w, h)
	}

	buf = slices.Grow(buf, 8+25+12+zlen+12)
	buf = append(buf, "\x89PNG\r\n\x1a\n"...)
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, byte(colorType) // bit depth, colour type; compression, filter, interlace 0
	buf = appendChunk(buf, "IHDR", ihdr[:])

	// The IDAT chunk: length, type, then the zlib stream written in place: stored blocks of
	// up to maxStored bytes of rows (a filter byte of 0, then the pixels), cut wherever they
	// fill up.
	buf = binary.BigEndian.AppendUint32(buf, uint32(zlen))
	start := len(buf)
	buf = append(buf, "IDAT"...)
	buf = append(buf, 0x78, 0x01) // zlib header: deflate, 32K window, no dictionary, fastest
	data := len(buf)
	buf = buf[:data+raw+5*blocks]
	out := buf[data:]
	left, room := raw, 0 // bytes still to write, and room left in the current block
	header := func() {
		n := min(left, maxStored)
		final := byte(0)
		if n == left {
			final = 1
		}
		out[0], out[1], out[2], out[3], out[4] = final, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8)
		out, room = out[5:], n
	}
	put := func(b []byte) {
		for len(b) > 0 {
			if room == 0 {
				header()
			}
			n := copy(out[:min(room, len(b))], b)
			out, b, room, left = out[n:], b[n:], room-n, left-n
		}
	}
	row := make([]byte, rowLen)
	for y := 0; y < h; y++ {
		src := pix[y*stride:]
		if bpp == 4 {
			PackRGB(row[1:], src[:4*w])
		} else {
			copy(row[1:], src[:bpp*w])
		}
		put(row)
	}
	// The Adler-32 of the uncompressed data, i.e. of the block payloads.
	adler := uint32(1)
	for p := buf[data:]; len(p) > 0; {
		n := min(len(p)-5, maxStored)
		adler = adler32Update(adler, p[5:5+n])
		p = p[5+n:]
	}
	buf = binary.BigEndian.AppendUint32(buf, adler)
	buf = binary.BigEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf[start:]))
	return appendChunk(buf, "IEND", nil), nil
}

// adler32Update returns the Adler-32 checksum adler extended by p (hash/adler32's, 16 bytes
// per step instead of one: the sums of each 8 bytes come from multiplications of the bytes
// spread into 16-bit lanes).
func adler32Update(adler uint32, p []byte) uint32 {
	const (
		mod   = 65521
		nmax  = 5552                      // the most bytes before s2 could overflow 32 bits (zlib's NMAX)
		lanes = 0x00ff00ff00ff00ff        // the even bytes of a word in 16-bit lanes
		ones  = 0x0001000100010001        // sums the lanes into the top one
		wEven = 8<<48 | 6<<32 | 4<<16 | 2 // weights of bytes 0, 2, 4, 6 in the top lane
		wOdd  = 7<<48 | 5<<32 | 3<<16 | 1 // of bytes 1, 3, 5, 7
	)
	s1, s2 := adler&0xffff, adler>>16
	for len(p) > 0 {
		q := p[:min(len(p), nmax)]
		p = p[len(q):]
		for ; len(q) >= 16; q = q[16:] {
			// Over bytes b0…b7, s2 gains s1 + b0, s1 + b0 + b1, …: 8·s1 + 8·b0 + 7·b1 + … +
			// 1·b7. Two such words per step, the second's s1 including the first's sum.
			v, w := binary.LittleEndian.Uint64(q), binary.LittleEndian.Uint64(q[8:16])
			ve, vo, we, wo := v&lanes, v>>8&lanes, w&lanes, w>>8&lanes
			sv := uint32((ve + vo) * ones >> 48)
			s2 += 16*s1 + 8*sv + uint32((ve*wEven+vo*wOdd)>>48) + uint32((we*wEven+wo*wOdd)>>48)
			s1 += sv + uint32((we+wo)*ones>>48)
		}
		for _, b := range q {
			s1 += uint32(b)
			s2 += s1
		}
		s1, s2 = s1%mod, s2%mod
	}
	return s2<<16 | s1
}

// appendChunk appends a PNG chunk: length, type, data and the CRC of type and data.
func appendChunk(buf []byte, typ string, data []byte) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(data)))
	start := len(buf)
	buf = append(buf, typ...)
	buf = append(buf, data...)
	return binary.BigEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf[start:]))
}
