package media

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"testing"
)

func encode(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCheckJPEG(t *testing.T) {
	good := encode(t, 64, 48)
	cases := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"a real frame", good, true},
		{"empty", nil, false},
		{"text", []byte("hello, this is not a picture"), false},
		{"SOI and EOI around junk", append([]byte{0xFF, 0xD8, 1, 2, 3, 4}, 0xFF, 0xD9), false},
		{"cut short", good[:len(good)/2], false},
		{"no EOI", good[:len(good)-2], false},
		{"junk after EOI", append(append([]byte(nil), good...), 0, 0), false},
		{"too large", encode(t, MaxDimension+1, 8), false},
	}
	for _, c := range cases {
		err := CheckJPEG(c.b)
		if (err == nil) != c.ok {
			t.Errorf("%s: CheckJPEG = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrNotJPEG) {
			t.Errorf("%s: %v does not wrap ErrNotJPEG", c.name, err)
		}
	}
}

func FuzzCheckJPEG(f *testing.F) {
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xD9})
	f.Fuzz(func(t *testing.T, b []byte) {
		CheckJPEG(b) // must not panic or hang
	})
}
