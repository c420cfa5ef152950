package camera

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

// seg builds one length-carrying marker segment.
func seg(marker byte, payload ...byte) []byte {
	n := len(payload) + 2
	return append([]byte{0xFF, marker, byte(n >> 8), byte(n)}, payload...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	soiB = []byte{0xFF, 0xD8}
	eoiB = []byte{0xFF, 0xD9}
	// A frame header and a scan header; Trim only cares about structure.
	sofB = seg(0xC0, 8, 0, 16, 0, 32, 1, 1, 0x11, 0)
	sosB = seg(0xDA, 1, 1, 0, 0, 63, 0)
)

// stdJPEG encodes a small real image with image/jpeg.
func stdJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	img.Set(0, 0, color.White)
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// trimCases drives TestTrim and seeds FuzzTrim. want is the length Trim
// keeps, or -1 when err is expected.
func trimCases(t testing.TB) []struct {
	name string
	in   []byte
	want int
	err  error
} {
	std := stdJPEG(t, 32, 16)
	minimal := cat(soiB, sofB, sosB, []byte{1, 2, 3}, eoiB)
	// A full JPEG inside APP1, as an Exif thumbnail: its FFD9 must not end
	// the outer frame.
	thumb := cat(soiB, seg(0xE1, cat([]byte("Exif\x00\x00"), minimal)...), sofB, sosB, []byte{9, 9}, eoiB)
	return []struct {
		name string
		in   []byte
		want int
		err  error
	}{
		{"std jpeg", std, len(std), nil},
		{"junk after EOI", cat(std, []byte("junk\xff\xd9\x00\x00")), len(std), nil},
		{"zero padding after EOI", cat(minimal, make([]byte, 100)), len(minimal), nil},
		{"minimal", minimal, len(minimal), nil},
		{"missing SOI", std[2:], -1, ErrNoSOI},
		{"empty", nil, -1, ErrNoSOI},
		{"one byte", []byte{0xFF}, -1, ErrNoSOI},
		{"truncated in entropy data", std[:len(std)-2], -1, ErrTruncated},
		{"truncated in header", std[:20], -1, ErrTruncated},
		{"truncated after FF", cat(soiB, sofB, sosB, []byte{1, 0xFF}), -1, ErrTruncated},
		{"SOI only", soiB, -1, ErrTruncated},
		{"stuffed bytes", cat(soiB, sofB, sosB, []byte{0xFF, 0x00, 0xD9, 0xFF, 0x00, 0xFF, 0x00}, eoiB, []byte{7}), len(soiB) + len(sofB) + len(sosB) + 7 + 2, nil},
		{"RST markers", cat(soiB, sofB, sosB, []byte{1, 0xFF, 0xD0, 2, 0xFF, 0xD7, 3}, eoiB), len(soiB) + len(sofB) + len(sosB) + 7 + 2, nil},
		{"fill bytes before EOI", cat(soiB, sofB, sosB, []byte{1, 0xFF, 0xFF}, eoiB), len(soiB) + len(sofB) + len(sosB) + 3 + 2, nil},
		{"thumbnail in APP1 containing FFD9", cat(thumb, []byte{0xFF, 0xD9, 0xFF, 0xD9}), len(thumb), nil},
		{"two scans", cat(soiB, sofB, sosB, []byte{1}, seg(0xC4, 0, 1), sosB, []byte{2}, eoiB), len(soiB) + len(sofB) + 2*len(sosB) + 1 + 6 + 1 + 2, nil},
		{"no marker after SOI", cat(soiB, []byte{0x00, 0x01}), -1, ErrMalformed},
		{"segment length 1", cat(soiB, []byte{0xFF, 0xE0, 0x00, 0x01}), -1, ErrMalformed},
		{"EOI before scan", cat(soiB, sofB, eoiB), -1, ErrMalformed},
		{"SOI inside frame", cat(soiB, sofB, sosB, []byte{1}, soiB, eoiB), -1, ErrMalformed},
		{"RST outside scan", cat(soiB, []byte{0xFF, 0xD3}, sofB, sosB, eoiB), -1, ErrMalformed},
	}
}

func TestTrim(t *testing.T) {
	for _, tc := range trimCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Trim(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Trim error = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Trim: %v", err)
			}
			if !bytes.Equal(got, tc.in[:tc.want]) {
				t.Fatalf("Trim kept %d bytes, want %d", len(got), tc.want)
			}
		})
	}
}

func FuzzTrim(f *testing.F) {
	for _, tc := range trimCases(f) {
		f.Add(tc.in)
	}
	f.Add(withSOI(42, stdJPEG(f, 16, 16)[2:]))
	f.Fuzz(func(t *testing.T, in []byte) {
		FrameNumber(in)
		Size(in)
		out, err := Trim(in)
		if err != nil {
			if !errors.Is(err, ErrNoSOI) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Trim error %v is none of the sentinels", err)
			}
			return
		}
		if !bytes.HasPrefix(in, out) || !bytes.HasPrefix(out, soiB) || !bytes.HasSuffix(out, eoiB) {
			t.Fatalf("Trim returned %x from %x", out, in)
		}
		if again, err := Trim(out); err != nil || len(again) != len(out) {
			t.Fatalf("Trim not idempotent: %d bytes, %v", len(again), err)
		}
	})
}

func TestFrameNumber(t *testing.T) {
	body := stdJPEG(t, 16, 16)[2:]
	com := func(s string) []byte { return seg(0xFE, []byte(s)...) }
	tests := []struct {
		name string
		in   []byte
		want uint32
		ok   bool
	}{
		{"numbered", withSOI(1234, body), 1234, true},
		{"zero", withSOI(0, body), 0, true},
		{"max", withSOI(1<<32-1, body), 1<<32 - 1, true},
		{"after other segments", cat(soiB, seg(0xE0, 1, 2, 3), com("callbox frame=7"), body), 7, true},
		{"plain jpeg", stdJPEG(t, 16, 16), 0, false},
		{"other comment", cat(soiB, com("hello"), body), 0, false},
		{"not a number", cat(soiB, com("callbox frame=x1"), body), 0, false},
		{"overflow", cat(soiB, com("callbox frame=4294967296"), body), 0, false},
		{"comment after SOS ignored", cat(soiB, sofB, sosB, com("callbox frame=5"), eoiB), 0, false},
		{"no SOI", com("callbox frame=5"), 0, false},
		{"header only", withSOI(9, nil), 9, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := FrameNumber(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("FrameNumber = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSize(t *testing.T) {
	w, h, ok := Size(stdJPEG(t, 48, 20))
	if !ok || w != 48 || h != 20 {
		t.Fatalf("Size = %d x %d, %v; want 48 x 20, true", w, h, ok)
	}
	if _, _, ok := Size(cat(soiB, sosB, eoiB)); ok {
		t.Fatal("Size found a frame header in a JPEG without one")
	}
}
