package camera

import (
	"bytes"
	"image"
	"image/color"
	"testing"
)

// yuyvBars makes a YUYV frame of vertical colour bars with lines padded to
// stride bytes (padding filled with 0x77).
func yuyvBars(w, h, stride int, bars []color.RGBA) []byte {
	raw := bytes.Repeat([]byte{0x77}, stride*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x += 2 {
			c := bars[x*len(bars)/w]
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			copy(raw[y*stride+2*x:], []byte{yy, cb, yy, cr})
		}
	}
	return raw
}

// checkBars decodes jpg and compares the centre of each bar.
func checkBars(t *testing.T, jpg []byte, w, h int, bars []color.RGBA) {
	t.Helper()
	img := decode(t, jpg)
	if img.Rect.Dx() != w || img.Rect.Dy() != h {
		t.Fatalf("decoded %v, want %dx%d", img.Rect, w, h)
	}
	for i, want := range bars {
		for _, y := range []int{1, h / 2, h - 2} {
			x := (2*i + 1) * w / (2 * len(bars))
			r, g, b, _ := img.At(x, y).RGBA()
			got := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}
			if !near(got.R, want.R, 12) || !near(got.G, want.G, 12) || !near(got.B, want.B, 12) {
				t.Errorf("bar %d at (%d,%d) = %v, want %v", i, x, y, got, want)
			}
		}
	}
}

func near(a, b, tol uint8) bool {
	if a > b {
		a, b = b, a
	}
	return b-a <= tol
}

// A 4x2 frame: luma differs per pixel, chroma per pixel pair (left pair
// reddish, right pair bluish), the same on both lines so that the
// encoder's 4:2:0 subsampling keeps it.
var (
	tiny = struct {
		y      [2][4]uint8
		cb, cr [2]uint8
	}{
		y:  [2][4]uint8{{60, 100, 150, 200}, {70, 110, 160, 210}},
		cb: [2]uint8{90, 240},
		cr: [2]uint8{240, 110},
	}
	tinyYUYV = []byte{
		60, 90, 100, 240, 150, 240, 200, 110,
		70, 90, 110, 240, 160, 240, 210, 110,
	}
	tinyUYVY = []byte{
		90, 60, 240, 100, 240, 150, 110, 200,
		90, 70, 240, 110, 240, 160, 110, 210,
	}
	tinyNV12 = []byte{
		60, 100, 150, 200,
		70, 110, 160, 210,
		90, 240, 240, 110,
	}
	tinyYU12 = []byte{
		60, 100, 150, 200,
		70, 110, 160, 210,
		90, 240,
		240, 110,
	}
)

func TestRawConvertExact(t *testing.T) {
	for _, c := range []struct {
		fourcc string
		raw    []byte
	}{{"YUYV", tinyYUYV}, {"UYVY", tinyUYVY}, {"NV12", tinyNV12}, {"YU12", tinyYU12}} {
		t.Run(c.fourcc, func(t *testing.T) {
			l, err := newRawLayout(c.fourcc, 4, 2, 0)
			if err != nil {
				t.Fatal(err)
			}
			if l.size != len(c.raw) {
				t.Fatalf("layout size %d, want %d", l.size, len(c.raw))
			}
			img := image.NewYCbCr(image.Rect(0, 0, 4, 2), l.subsample())
			l.convert(img, c.raw)
			for y := range 2 {
				for x := range 4 {
					got := img.YCbCrAt(x, y)
					want := color.YCbCr{Y: tiny.y[y][x], Cb: tiny.cb[x/2], Cr: tiny.cr[x/2]}
					if got != want {
						t.Errorf("pixel (%d,%d) = %v, want %v", x, y, got, want)
					}
				}
			}
		})
	}
}

func TestRawEncode4x2(t *testing.T) {
	for _, c := range []struct {
		fourcc string
		raw    []byte
	}{{"YUYV", tinyYUYV}, {"NV12", tinyNV12}, {"YU12", tinyYU12}} {
		t.Run(c.fourcc, func(t *testing.T) {
			l, _ := newRawLayout(c.fourcc, 4, 2, 0)
			enc := newRawEncoder(l, 100)
			for range 2 { // the second run reuses the encoder's image
				jpg, err := enc.encode(c.raw)
				if err != nil {
					t.Fatal(err)
				}
				img := decode(t, jpg)
				for y := range 2 {
					for x := range 4 {
						got := img.YCbCrAt(x, y)
						if !near(got.Y, tiny.y[y][x], 4) || !near(got.Cb, tiny.cb[x/2], 6) || !near(got.Cr, tiny.cr[x/2], 6) {
							t.Errorf("pixel (%d,%d) = %v, want Y %d Cb %d Cr %d", x, y, got, tiny.y[y][x], tiny.cb[x/2], tiny.cr[x/2])
						}
					}
				}
			}
			if _, err := enc.encode(c.raw[:len(c.raw)-1]); err == nil {
				t.Error("short frame encoded")
			}
		})
	}
}

func TestYUYV640x480(t *testing.T) {
	bars := []color.RGBA{{255, 255, 255, 255}, {255, 255, 0, 255}, {0, 255, 255, 255}, {0, 255, 0, 255},
		{255, 0, 255, 255}, {255, 0, 0, 255}, {0, 0, 255, 255}, {0, 0, 0, 255}}
	l, err := newRawLayout("YUYV", 640, 480, 0)
	if err != nil {
		t.Fatal(err)
	}
	jpg, err := newRawEncoder(l, 75).encode(yuyvBars(640, 480, 1280, bars))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Trim(jpg); err != nil {
		t.Fatalf("output is not a clean JPEG: %v", err)
	}
	checkBars(t, jpg, 640, 480, bars)
}

func TestRawLayoutErrors(t *testing.T) {
	for _, c := range []struct {
		fourcc string
		w, h   int
	}{{"YUYV", 641, 480}, {"NV12", 640, 481}, {"YU12", 0, 480}, {"RGB3", 640, 480}} {
		if _, err := newRawLayout(c.fourcc, c.w, c.h, 0); err == nil {
			t.Errorf("newRawLayout(%s, %dx%d) accepted", c.fourcc, c.w, c.h)
		}
	}
	if l, _ := newRawLayout("YUYV", 640, 480, 100); l.stride != 1280 {
		t.Errorf("a too small stride gave %d, want 1280", l.stride)
	}
}

func BenchmarkYUYVToJPEG640x480(b *testing.B) {
	bars := []color.RGBA{{255, 255, 255, 255}, {255, 255, 0, 255}, {0, 255, 255, 255}, {0, 255, 0, 255},
		{255, 0, 255, 255}, {255, 0, 0, 255}, {0, 0, 255, 255}, {0, 0, 0, 255}}
	raw := yuyvBars(640, 480, 1280, bars)
	l, _ := newRawLayout("YUYV", 640, 480, 0)
	enc := newRawEncoder(l, 75)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.encode(raw); err != nil {
			b.Fatal(err)
		}
	}
}
