package screen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/callbox/callbox/internal/bitfont"
)

func TestLetterbox(t *testing.T) {
	for _, tc := range []struct {
		w, h, sw, sh int
		want         image.Rectangle
	}{
		{640, 480, 1920, 1080, image.Rect(240, 0, 1680, 1080)}, // pillarbox
		{1280, 720, 1920, 1080, image.Rect(0, 0, 1920, 1080)},  // exact fit
		{1280, 720, 800, 480, image.Rect(0, 15, 800, 465)},     // letterbox: 800x450
		{640, 480, 800, 480, image.Rect(80, 0, 720, 480)},
		{480, 640, 800, 480, image.Rect(220, 0, 580, 480)}, // portrait
		{64, 48, 160, 100, image.Rect(13, 0, 146, 100)},    // 133.3 rounds to 133
		{0, 48, 160, 100, image.Rectangle{}},
	} {
		if got := Letterbox(tc.w, tc.h, tc.sw, tc.sh); got != tc.want {
			t.Errorf("Letterbox(%dx%d on %dx%d) = %v, want %v", tc.w, tc.h, tc.sw, tc.sh, got, tc.want)
		}
	}
}

func TestSelfViewRect(t *testing.T) {
	for _, tc := range []struct {
		w, h, sw, sh int
		want         image.Rectangle
	}{
		{640, 480, 1920, 1080, image.Rect(1410, 690, 1890, 1050)}, // 480x360, margin 30
		{640, 480, 800, 480, image.Rect(588, 318, 788, 468)},      // 200x150, margin 12
		{480, 640, 800, 480, image.Rect(608, 228, 788, 468)},      // tall: bound by half the height
	} {
		got := SelfViewRect(tc.w, tc.h, tc.sw, tc.sh)
		if got != tc.want {
			t.Errorf("SelfViewRect(%dx%d on %dx%d) = %v, want %v", tc.w, tc.h, tc.sw, tc.sh, got, tc.want)
		}
		if !got.In(image.Rect(0, 0, tc.sw, tc.sh)) {
			t.Errorf("%v is not on the %dx%d screen", got, tc.sw, tc.sh)
		}
	}
}

func TestPixelFormats(t *testing.T) {
	bgr := PixelFormat{BitsPerPixel: 32, Red: Field{0, 8}, Green: Field{8, 8}, Blue: Field{16, 8}, Alpha: Field{24, 8}}
	for _, tc := range []struct {
		f       PixelFormat
		r, g, b uint8
		want    uint32
	}{
		{RGB565, 255, 0, 0, 0xF800},
		{RGB565, 0, 255, 0, 0x07E0},
		{RGB565, 0, 0, 255, 0x001F},
		{RGB565, 255, 255, 255, 0xFFFF},
		{RGB565, 0x84, 0x82, 0x08, 0x8401}, // 10000 100000 00001
		{XRGB8888, 0x12, 0x34, 0x56, 0x00123456},
		{bgr, 0x12, 0x34, 0x56, 0xFF563412}, // alpha written opaque
	} {
		if got := newPacker(tc.f).pack(tc.r, tc.g, tc.b); got != tc.want {
			t.Errorf("%v: pack(%#x, %#x, %#x) = %#x, want %#x", tc.f, tc.r, tc.g, tc.b, got, tc.want)
		}
	}
	for _, bad := range []PixelFormat{
		{BitsPerPixel: 24, Red: Field{16, 8}, Green: Field{8, 8}, Blue: Field{0, 8}},
		{BitsPerPixel: 8, Red: Field{5, 3}, Green: Field{2, 3}, Blue: Field{0, 2}},
		{BitsPerPixel: 16, Red: Field{11, 5}, Green: Field{4, 6}, Blue: Field{0, 5}}, // overlap
		{BitsPerPixel: 32, Red: Field{24, 10}, Green: Field{8, 8}, Blue: Field{0, 8}},
		{BitsPerPixel: 32},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v: Validate = %v, want ErrUnsupported", bad, err)
		}
		if _, err := NewFramebuffer(64, 48, 0, bad); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v: NewFramebuffer = %v, want ErrUnsupported", bad, err)
		}
	}
	if _, err := NewFramebuffer(64, 48, 100, XRGB8888); !errors.Is(err, ErrUnsupported) {
		t.Errorf("stride shorter than a row: %v, want ErrUnsupported", err)
	}
	short := &Framebuffer{Width: 64, Height: 48, Stride: 256, Format: XRGB8888, Pix: make([]byte, 1000)}
	if _, err := NewRenderer(short, false); !errors.Is(err, ErrUnsupported) {
		t.Errorf("memory shorter than the rows: %v, want ErrUnsupported", err)
	}
}

// halves is a w x h picture, red on the left half and blue on the right,
// in 4:4:4 so that scaling is exact.
func halves(w, h int, left, right color.RGBA) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio444)
	for y := range h {
		for x := range w {
			c := left
			if x >= w/2 {
				c = right
			}
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			img.Y[img.YOffset(x, y)], img.Cb[img.COffset(x, y)], img.Cr[img.COffset(x, y)] = yy, cb, cr
		}
	}
	return img
}

var (
	red   = color.RGBA{255, 0, 0, 255}
	blue  = color.RGBA{0, 0, 255, 255}
	green = color.RGBA{0, 255, 0, 255}
)

// near says two colours are within tol per channel.
func near(r, g, b uint8, c color.RGBA, tol int) bool {
	d := func(a, b uint8) bool { return int(a)-int(b) <= tol && int(b)-int(a) <= tol }
	return d(r, c.R) && d(g, c.G) && d(b, c.B)
}

// checkPeer checks a frame drawn by halves: black bars, red left, blue
// right, within tol, and the padding past each row untouched (0xAA).
func checkPeer(t *testing.T, fb *Framebuffer, want image.Rectangle, self image.Rectangle, tol int) {
	t.Helper()
	bad := 0
	for y := 0; y < fb.Height; y++ {
		for x := 0; x < fb.Width; x++ {
			r, g, b := fb.RGB(x, y)
			var c color.RGBA
			switch {
			case image.Pt(x, y).In(self):
				continue
			case !image.Pt(x, y).In(want):
				c = color.RGBA{0, 0, 0, 255}
			case x < (want.Min.X+want.Max.X)/2-1:
				c = red
			case x > (want.Min.X+want.Max.X)/2+1:
				c = blue
			default:
				continue // the edge between the halves
			}
			if !near(r, g, b, c, tol) && bad < 5 {
				t.Errorf("pixel (%d,%d) = %d,%d,%d, want %v", x, y, r, g, b, c)
				bad++
			}
		}
		for i, p := range fb.Pix[y*fb.Stride+fb.Width*fb.bpp() : min(len(fb.Pix), (y+1)*fb.Stride)] {
			if p != 0xAA {
				t.Fatalf("row %d: padding byte %d written (%#x)", y, i, p)
			}
		}
	}
}

func paddedFB(t *testing.T, w, h, pad int, f PixelFormat) *Framebuffer {
	fb, err := NewFramebuffer(w, h, w*f.BitsPerPixel/8+pad, f)
	if err != nil {
		t.Fatal(err)
	}
	for i := range fb.Pix {
		fb.Pix[i] = 0xAA // what must survive in the padding; the visible part must be drawn over
	}
	return fb
}

func TestPeerLetterboxedInEachFormat(t *testing.T) {
	for _, f := range []PixelFormat{XRGB8888, RGB565,
		{BitsPerPixel: 32, Red: Field{0, 8}, Green: Field{8, 8}, Blue: Field{16, 8}}} {
		t.Run(f.String(), func(t *testing.T) {
			fb := paddedFB(t, 160, 100, 24, f)
			r, err := NewRenderer(fb, false)
			if err != nil {
				t.Fatal(err)
			}
			r.PeerImage(halves(64, 48, red, blue))
			want := image.Rect(13, 0, 146, 100)
			if r.PeerRect() != want {
				t.Fatalf("peer rect %v, want %v", r.PeerRect(), want)
			}
			checkPeer(t, fb, want, image.Rectangle{}, 8)
			// A wider frame next: the old pillarbox area must be cleared.
			r.PeerImage(halves(160, 50, red, blue))
			checkPeer(t, fb, image.Rect(0, 25, 160, 75), image.Rectangle{}, 8)
		})
	}
}

func TestRGB565Bytes(t *testing.T) {
	fb := paddedFB(t, 32, 16, 0, RGB565)
	r, _ := NewRenderer(fb, false)
	r.PeerImage(halves(32, 16, red, blue))
	if got := binary.NativeEndian.Uint16(fb.Pix[0:]); got != 0xF800 {
		t.Errorf("first pixel %#04x, want red 0xF800", got)
	}
	if got := binary.NativeEndian.Uint16(fb.Pix[31*2:]); got != 0x001F {
		t.Errorf("last pixel of row 0 %#04x, want blue 0x001F", got)
	}
}

func TestSelfViewOverPeer(t *testing.T) {
	fb := paddedFB(t, 320, 180, 8, XRGB8888)
	r, _ := NewRenderer(fb, true)
	self := halves(64, 48, green, green)
	r.SelfImage(self) // before any peer frame: kept, not drawn
	if !r.SelfRect().Empty() {
		t.Fatalf("self-view shown before the peer's video: %v", r.SelfRect())
	}
	r.PeerImage(halves(64, 48, red, blue))
	sr := r.SelfRect()
	if want := SelfViewRect(64, 48, 320, 180); sr != want || sr.Empty() {
		t.Fatalf("self rect %v, want %v", sr, want)
	}
	checkPeer(t, fb, Letterbox(64, 48, 320, 180), sr, 8)
	for y := sr.Min.Y; y < sr.Max.Y; y++ {
		for x := sr.Min.X; x < sr.Max.X; x++ {
			if r, g, b := fb.RGB(x, y); !near(r, g, b, green, 8) {
				t.Fatalf("self-view pixel (%d,%d) = %d,%d,%d, want green", x, y, r, g, b)
			}
		}
	}
	// Idle hides it; the next peer frame brings it back.
	r.Idle(nil)
	if !r.SelfRect().Empty() {
		t.Errorf("self-view on the idle screen")
	}
	for i := 0; i < len(fb.Pix); i += fb.Stride {
		if bytes.ContainsFunc(fb.Pix[i:i+fb.Width*4], func(c rune) bool { return c != 0 }) {
			t.Fatalf("blank idle screen not black at row %d", i/fb.Stride)
		}
	}
}

func TestRendererWithoutSelfViewIgnoresSelf(t *testing.T) {
	fb := paddedFB(t, 160, 100, 0, XRGB8888)
	r, _ := NewRenderer(fb, false)
	r.PeerImage(halves(64, 48, red, blue))
	if err := r.Self(encode(t, halves(64, 48, green, green))); err != nil {
		t.Fatal(err)
	}
	checkPeer(t, fb, Letterbox(64, 48, 160, 100), image.Rectangle{}, 8)
}

func encode(t *testing.T, img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPeerJPEG(t *testing.T) {
	for _, sub := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio422} {
		fb := paddedFB(t, 200, 150, 12, XRGB8888)
		r, _ := NewRenderer(fb, false)
		src := halves(128, 96, red, blue)
		img := image.NewYCbCr(src.Rect, sub) // what a camera sends: chroma subsampled
		for y := range 96 {
			for x := range 128 {
				img.Y[img.YOffset(x, y)] = src.Y[src.YOffset(x, y)]
				img.Cb[img.COffset(x, y)], img.Cr[img.COffset(x, y)] = src.Cb[src.COffset(x, y)], src.Cr[src.COffset(x, y)]
			}
		}
		if err := r.Peer(encode(t, img)); err != nil {
			t.Fatal(err)
		}
		// JPEG blurs the edge between the halves: check away from it.
		checkPeer(t, fb, image.Rect(0, 0, 200, 150), image.Rect(90, 0, 110, 150), 24)
	}
	gray := image.NewGray(image.Rect(0, 0, 64, 48))
	for i := range gray.Pix {
		gray.Pix[i] = 200
	}
	fb := paddedFB(t, 64, 48, 0, RGB565)
	r, _ := NewRenderer(fb, false)
	if err := r.Peer(encode(t, gray)); err != nil {
		t.Fatal(err)
	}
	if rr, g, b := fb.RGB(10, 10); !near(rr, g, b, color.RGBA{200, 200, 200, 255}, 8) {
		t.Errorf("grey JPEG drawn as %d,%d,%d", rr, g, b)
	}
}

func TestCorruptJPEGLeavesTheScreen(t *testing.T) {
	fb := paddedFB(t, 160, 100, 0, XRGB8888)
	r, _ := NewRenderer(fb, false)
	good := encode(t, halves(64, 48, red, blue))
	if err := r.Peer(good); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(fb.Pix)
	for _, bad := range [][]byte{nil, []byte("not a jpeg"), good[:len(good)/2], good[:len(good)-10], append([]byte{0xFF, 0xD8}, make([]byte, 100)...)} {
		if err := r.Peer(bad); !errors.Is(err, ErrBadFrame) {
			t.Errorf("Peer(%d bad bytes) = %v, want ErrBadFrame", len(bad), err)
		}
	}
	if !bytes.Equal(before, fb.Pix) {
		t.Error("a bad frame changed the screen")
	}
}

// readLine reads text drawn by Idle back, sampling the centre of each
// font cell.
func readLine(fb *Framebuffer, x, y, s, n int) string {
	var out []rune
	for i := range n {
		var g [bitfont.H]uint8
		for row := range bitfont.H {
			for col := range bitfont.W {
				if r, _, _ := fb.RGB(x+i*(bitfont.W+1)*s+col*s+s/2, y+row*s+s/2); r > 128 {
					g[row] |= 1 << (bitfont.W - 1 - col)
				}
			}
		}
		c, ok := bitfont.Lookup(g)
		if !ok {
			c = '!'
		}
		out = append(out, c)
	}
	return string(out)
}

func TestIdleStatusText(t *testing.T) {
	for _, f := range []PixelFormat{XRGB8888, RGB565} {
		fb := paddedFB(t, 320, 240, 16, f)
		r, _ := NewRenderer(fb, true)
		r.PeerImage(halves(64, 48, red, blue))
		r.Idle([]string{"hall", "calling door"})
		// 12 cells of 6 wide fit 320/73 = 4 pixel cells; 2 lines of 10
		// fit 240/21 = 11; at most 240/16/7 = 2. So s = 2.
		s := 2
		lineH := 10 * s
		top := (240 - 2*lineH + 3*s) / 2
		for i, want := range []string{"HALL", "CALLING DOOR"} {
			w := len(want)*6*s - s
			if got := readLine(fb, (320-w)/2, top+i*lineH, s, len(want)); got != want {
				t.Errorf("%v: line %d reads %q, want %q", f, i, got, want)
			}
		}
		if r, g, b := fb.RGB(5, 5); r|g|b != 0 {
			t.Errorf("%v: idle background %d,%d,%d, want black", f, r, g, b)
		}
	}
}

func TestListReadsSysfs(t *testing.T) {
	dir := t.TempDir()
	for name, files := range map[string]map[string]string{
		"fb0":     {"name": "vc4drmfb\n", "virtual_size": "1920,1080\n", "bits_per_pixel": "32\n", "stride": "7680\n"},
		"fb1":     {"name": "fb_ili9341\n", "virtual_size": "320,240\n", "bits_per_pixel": "16\n", "stride": "640\n"},
		"fbcon":   {"name": "x"},
		"notanfb": {"name": "x"},
	} {
		os.MkdirAll(filepath.Join(dir, name), 0o755)
		for f, v := range files {
			os.WriteFile(filepath.Join(dir, name, f), []byte(v), 0o644)
		}
	}
	got, err := listIn(dir, "/dev")
	if err != nil {
		t.Fatal(err)
	}
	want := []DeviceInfo{{"/dev/fb0", "vc4drmfb", 1920, 1080, 32, 7680}, {"/dev/fb1", "fb_ili9341", 320, 240, 16, 640}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("listIn = %+v, want %+v", got, want)
	}
	if l, err := listIn(filepath.Join(dir, "none"), "/dev"); err != nil || len(l) != 0 {
		t.Errorf("no sysfs class: %v, %v; want empty, nil", l, err)
	}
}
