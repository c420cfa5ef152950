package camera

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// JPEG markers used by the segment walk (ITU T.81 table B.1).
const (
	markTEM  = 0x01
	markRST0 = 0xD0
	markRST7 = 0xD7
	markSOI  = 0xD8
	markEOI  = 0xD9
	markSOS  = 0xDA
	markCOM  = 0xFE
)

// Sentinel errors for frame validation.
var (
	ErrNoSOI     = errors.New("camera: jpeg does not start with SOI")
	ErrTruncated = errors.New("camera: jpeg ends before EOI")
	ErrMalformed = errors.New("camera: malformed jpeg")
)

// comPrefix starts the COM segment every callbox JPEG carries after SOI.
const comPrefix = "callbox frame="

// Trim validates one JPEG frame and returns b cut right after its EOI marker,
// dropping any padding a driver left behind. It walks the marker segments to
// SOS and scans the entropy-coded data (skipping 0xFF00 stuffing and RSTn)
// rather than searching for FFD9, which may occur inside an embedded
// thumbnail. The result aliases b.
func Trim(b []byte) ([]byte, error) {
	end, err := scan(b)
	if err != nil {
		return nil, err
	}
	return b[:end:end], nil
}

// scan returns the offset just after the EOI of the JPEG at the start of b.
func scan(b []byte) (int, error) {
	if len(b) < 2 || b[0] != 0xFF || b[1] != markSOI {
		return 0, ErrNoSOI
	}
	i := 2
	scans := 0
	for {
		next, m, err := walk(b, i, nil)
		if err != nil {
			return 0, err
		}
		if m == markEOI {
			if scans == 0 {
				return 0, fmt.Errorf("%w: EOI before any scan", ErrMalformed)
			}
			return next, nil
		}
		scans++
		// Entropy-coded data runs to the next marker that is not stuffing
		// or a restart; progressive files then carry more segments.
		i, err = entropy(b, next)
		if err != nil {
			return 0, err
		}
	}
}

// entropy skips entropy-coded data starting at i and returns the offset of
// the 0xFF that begins the next real marker.
func entropy(b []byte, i int) (int, error) {
	for {
		j := bytes.IndexByte(b[i:], 0xFF)
		if j < 0 || i+j+1 >= len(b) {
			return 0, ErrTruncated
		}
		i += j
		switch c := b[i+1]; {
		case c == 0x00, c >= markRST0 && c <= markRST7:
			i += 2
		case c == 0xFF: // fill byte before a marker
			i++
		default:
			return i, nil
		}
	}
}

// walk reads marker segments from offset i until SOS or EOI, calling visit
// (if not nil) with each length-carrying segment's marker and payload; visit
// returning false ends the walk early with marker 0. It returns the offset
// after the SOS header or after EOI, and which of the two it reached.
func walk(b []byte, i int, visit func(marker byte, payload []byte) bool) (int, byte, error) {
	for {
		if i >= len(b) {
			return 0, 0, ErrTruncated
		}
		if b[i] != 0xFF {
			return 0, 0, fmt.Errorf("%w: byte 0x%02x where a marker belongs at offset %d", ErrMalformed, b[i], i)
		}
		for i < len(b) && b[i] == 0xFF { // optional fill bytes
			i++
		}
		if i >= len(b) {
			return 0, 0, ErrTruncated
		}
		m := b[i]
		i++
		switch {
		case m == markEOI:
			return i, m, nil
		case m == markTEM:
			continue
		case m == 0x00, m == markSOI, m >= markRST0 && m <= markRST7:
			return 0, 0, fmt.Errorf("%w: marker 0x%02x outside entropy data at offset %d", ErrMalformed, m, i-1)
		}
		if i+2 > len(b) {
			return 0, 0, ErrTruncated
		}
		n := int(b[i])<<8 | int(b[i+1])
		if n < 2 {
			return 0, 0, fmt.Errorf("%w: segment 0x%02x length %d at offset %d", ErrMalformed, m, n, i)
		}
		if i+n > len(b) {
			return 0, 0, ErrTruncated
		}
		if visit != nil && !visit(m, b[i+2:i+n]) {
			return i + n, 0, nil
		}
		i += n
		if m == markSOS {
			return i, m, nil
		}
	}
}

// headers visits the segments between SOI and the first SOS.
func headers(b []byte, visit func(marker byte, payload []byte) bool) bool {
	if len(b) < 2 || b[0] != 0xFF || b[1] != markSOI {
		return false
	}
	_, _, err := walk(b, 2, visit)
	return err == nil
}

// FrameNumber returns the number in the "callbox frame=<n>" COM segment of a
// JPEG, looking only at the segments between SOI and SOS.
func FrameNumber(jpeg []byte) (uint32, bool) {
	var (
		n  uint32
		ok bool
	)
	headers(jpeg, func(m byte, p []byte) bool {
		if m != markCOM || !bytes.HasPrefix(p, []byte(comPrefix)) {
			return m != markSOS
		}
		if v, err := strconv.ParseUint(string(p[len(comPrefix):]), 10, 32); err == nil {
			n, ok = uint32(v), true
		}
		return false
	})
	return n, ok
}

// Size returns the width and height from a JPEG's start-of-frame segment.
func Size(jpeg []byte) (width, height int, ok bool) {
	headers(jpeg, func(m byte, p []byte) bool {
		// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
		if m < 0xC0 || m > 0xCF || m == 0xC4 || m == 0xC8 || m == 0xCC {
			return m != markSOS
		}
		if len(p) >= 5 {
			height = int(p[1])<<8 | int(p[2])
			width = int(p[3])<<8 | int(p[4])
			ok = width > 0 && height > 0
		}
		return false
	})
	return width, height, ok
}

// appendCOM appends the COM segment that numbers a callbox frame.
func appendCOM(dst []byte, n uint32) []byte {
	var num [10]byte
	digits := strconv.AppendUint(num[:0], uint64(n), 10)
	l := 2 + len(comPrefix) + len(digits)
	dst = append(dst, 0xFF, markCOM, byte(l>>8), byte(l))
	dst = append(dst, comPrefix...)
	return append(dst, digits...)
}
