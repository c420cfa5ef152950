package camera

import (
	"bytes"
	"context"
	"errors"
	"github.com/callbox/callbox/internal/bitfont"
	"image"
	"image/jpeg"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
)

func newSynth(t testing.TB, cfg SyntheticConfig) *Synthetic {
	t.Helper()
	s, err := NewSynthetic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func decode(t testing.TB, b []byte) *image.YCbCr {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	y, ok := img.(*image.YCbCr)
	if !ok {
		t.Fatalf("decoded %T, want *image.YCbCr", img)
	}
	return y
}

// readText reads n glyphs drawn by canvas.text at (x, y) with the given
// scale, sampling the centre of each font cell; unknown shapes read as '!'.
func readText(img *image.YCbCr, x, y, scale, n int) string {
	var sb strings.Builder
	for i := range n {
		var g [glyphH]uint8
		for r := range glyphH {
			for c := range glyphW {
				px := x + i*(glyphW+1)*scale + c*scale + scale/2
				py := y + r*scale + scale/2
				if img.YCbCrAt(px, py).Y > 128 {
					g[r] |= 1 << (glyphW - 1 - c)
				}
			}
		}
		ch, ok := bitfont.Lookup(g)
		if !ok {
			ch = '!'
		}
		sb.WriteRune(ch)
	}
	return sb.String()
}

// readNumber reads the frame number drawn on a decoded synthetic picture
// that is expected to have digits digits.
func readNumber(img *image.YCbCr, digits int) string {
	x, y, s := numberLayout(img.Rect.Dx(), img.Rect.Dy(), digits)
	return readText(img, x, y, s, digits)
}

func TestSyntheticFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		format := media.VideoFormat{Width: 320, Height: 240, FPS: 15}
		s := newSynth(t, SyntheticConfig{Format: format, Name: "Box-1"})
		if s.Format() != format {
			t.Fatalf("Format = %+v, want %+v", s.Format(), format)
		}
		var prev []byte
		for i := range uint32(12) {
			f, err := s.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if f.Seq != i {
				t.Fatalf("Seq = %d, want %d", f.Seq, i)
			}
			if n, ok := FrameNumber(f.JPEG); !ok || n != i {
				t.Fatalf("FrameNumber = %d, %v; want %d", n, ok, i)
			}
			if !bytes.Equal(f.JPEG[2:4], []byte{0xFF, 0xFE}) {
				t.Fatalf("frame %d: segment after SOI is %x, want COM", i, f.JPEG[2:4])
			}
			if trimmed, err := Trim(f.JPEG); err != nil || len(trimmed) != len(f.JPEG) {
				t.Fatalf("frame %d: Trim = %d bytes, %v", i, len(trimmed), err)
			}
			img := decode(t, f.JPEG)
			if img.Rect.Dx() != 320 || img.Rect.Dy() != 240 {
				t.Fatalf("decoded %v, want 320x240", img.Rect)
			}
			want := itoa(i)
			if got := readNumber(img, len(want)); got != want {
				t.Fatalf("frame %d: number drawn reads %q", i, got)
			}
			if bytes.Equal(prev, f.JPEG[20:]) {
				t.Fatalf("frame %d: picture did not change", i)
			}
			prev = f.JPEG[20:]
		}
	})
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// TestSyntheticLegible checks the number and name survive encoding at
// several sizes, including the longest number.
func TestSyntheticLegible(t *testing.T) {
	tests := []struct {
		w, h int
		n    uint32
		name string
	}{
		{640, 480, 7, "front door"},
		{640, 480, 1234567890, "callbox"},
		{640, 480, 1<<32 - 1, "a very long box name that will not fit on one line"},
		{320, 240, 99999, "gate"},
		{160, 120, 42, "x"},
		{1280, 720, 305, "hall"},
	}
	for _, tc := range tests {
		s := newSynth(t, SyntheticConfig{Format: media.VideoFormat{Width: tc.w, Height: tc.h, FPS: 30}, Name: tc.name})
		body, err := s.encode(tc.n, 75)
		if err != nil {
			t.Fatal(err)
		}
		img := decode(t, withSOI(tc.n, body))
		want := itoa(tc.n)
		if got := readNumber(img, len(want)); got != want {
			t.Errorf("%dx%d: number %d reads %q", tc.w, tc.h, tc.n, got)
		}
		scale := max(tc.h/96, 1)
		if scale < 2 {
			continue // too small to survive chroma subsampling reliably
		}
		fit := min(len(tc.name), (tc.w-scale)/((glyphW+1)*scale))
		wantName := strings.ToUpper(tc.name[:fit])
		band := (glyphH + 2) * scale
		if got := readText(img, scale, tc.h-band+scale, scale, fit); got != wantName {
			t.Errorf("%dx%d: name reads %q, want %q", tc.w, tc.h, got, wantName)
		}
	}
}

func TestSyntheticPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const fps = 30
		s := newSynth(t, SyntheticConfig{Format: media.VideoFormat{Width: 64, Height: 48, FPS: fps}})
		start := time.Now()
		for i := range fps * 2 {
			f, err := s.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if want := start.Add(time.Duration(i+1) * time.Second / fps); !f.Time.Equal(want) {
				t.Fatalf("frame %d at %v, want %v", i, f.Time.Sub(start), want.Sub(start))
			}
		}
		if el := time.Since(start); el != 2*time.Second {
			t.Fatalf("%d frames took %v, want 2s", fps*2, el)
		}
		if st := s.Stats(); st != (Stats{Captured: fps * 2}) {
			t.Fatalf("Stats = %+v", st)
		}
	})
}

func TestSyntheticSkipsAfterStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSynth(t, SyntheticConfig{Format: media.VideoFormat{Width: 64, Height: 48, FPS: 10}})
		start := time.Now()
		if _, err := s.Read(t.Context()); err != nil { // slot 0 at 100ms
			t.Fatal(err)
		}
		time.Sleep(350 * time.Millisecond) // now 450ms: slots 1..3 are past
		f, err := s.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != 1 || time.Since(start) != 450*time.Millisecond {
			t.Fatalf("after stall: Seq %d at %v, want Seq 1 at once", f.Seq, time.Since(start))
		}
		if f, err = s.Read(t.Context()); err != nil {
			t.Fatal(err)
		}
		if f.Seq != 2 || f.Time.Sub(start) != 500*time.Millisecond {
			t.Fatalf("next: Seq %d at %v, want Seq 2 at 500ms (no burst)", f.Seq, f.Time.Sub(start))
		}
		if st := s.Stats(); st != (Stats{Captured: 3, Skipped: 2}) {
			t.Fatalf("Stats = %+v, want 3 captured, 2 skipped", st)
		}
	})
}

// A reader that paused (nobody needed frames) and restarts the clock gets
// its next frame one frame time later, with the pause not counted as
// skipped slots; frame numbers go on.
func TestSyntheticRestartClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSynth(t, SyntheticConfig{Format: media.VideoFormat{Width: 64, Height: 48, FPS: 10}})
		if _, err := s.Read(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		s.RestartClock()
		back := time.Now()
		f, err := s.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != 1 || time.Since(back) != 100*time.Millisecond {
			t.Fatalf("after the pause: Seq %d at %v, want Seq 1 one frame time later", f.Seq, time.Since(back))
		}
		if st := s.Stats(); st != (Stats{Captured: 2}) {
			t.Fatalf("Stats = %+v, want 2 captured, none skipped", st)
		}
	})
}

func TestSyntheticPrecomputed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSynth(t, SyntheticConfig{Format: media.VideoFormat{Width: 160, Height: 120, FPS: 25}, Precomputed: 3})
		for i := range uint32(7) {
			f, err := s.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if n, ok := FrameNumber(f.JPEG); !ok || n != i || f.Seq != i {
				t.Fatalf("frame %d: Seq %d, FrameNumber %d %v", i, f.Seq, n, ok)
			}
			if got, want := readNumber(decode(t, f.JPEG), 1), itoa(i%3); got != want {
				t.Fatalf("frame %d shows image %q, want %q", i, got, want)
			}
		}
	})
}

func TestSyntheticCloseAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSynth(t, SyntheticConfig{Format: media.VideoFormat{Width: 64, Height: 48, FPS: 1}})
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { _, err := s.Read(ctx); errc <- err }()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Read after cancel: %v", err)
		}
		go func() { _, err := s.Read(t.Context()); errc <- err }()
		synctest.Wait()
		s.Close()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("Read during Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := s.Read(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	})
}

func TestSyntheticConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  SyntheticConfig
		bad  string // substring of the error; empty when valid
	}{
		{"zero value", SyntheticConfig{}, ""},
		{"full", SyntheticConfig{Format: media.VideoFormat{Width: 320, Height: 240, FPS: 5}, Quality: 100, Precomputed: MaxPrecomputed, Name: "x"}, ""},
		{"quality", SyntheticConfig{Quality: 101}, "quality"},
		{"negative quality", SyntheticConfig{Quality: -1}, "quality"},
		{"precomputed", SyntheticConfig{Precomputed: MaxPrecomputed + 1}, "precomputed"},
		{"format", SyntheticConfig{Format: media.VideoFormat{Width: 320, Height: 240}}, "fps"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.bad == "") || (err != nil && !strings.Contains(err.Error(), tc.bad)) {
				t.Fatalf("Validate = %v, want error about %q", err, tc.bad)
			}
		})
	}
	s := newSynth(t, SyntheticConfig{})
	if s.Format() != media.DefaultVideo {
		t.Fatalf("default Format = %+v", s.Format())
	}
}

// BenchmarkSyntheticLive measures drawing and encoding one live 640x480 frame.
func BenchmarkSyntheticLive(b *testing.B) {
	s := newSynth(b, SyntheticConfig{Name: "bench"})
	var size int
	for i := 0; b.Loop(); i++ {
		body, err := s.encode(uint32(i), 75)
		if err != nil {
			b.Fatal(err)
		}
		size = len(withSOI(uint32(i), body))
	}
	b.ReportMetric(float64(size), "B/frame")
}

// BenchmarkSyntheticPrecomputed measures handing out a precomputed frame.
func BenchmarkSyntheticPrecomputed(b *testing.B) {
	s := newSynth(b, SyntheticConfig{Precomputed: 4})
	for i := 0; b.Loop(); i++ {
		withSOI(uint32(i), s.pre[0].img[i%4])
	}
}

func BenchmarkTrim(b *testing.B) {
	s := newSynth(b, SyntheticConfig{})
	body, err := s.encode(1, 75)
	if err != nil {
		b.Fatal(err)
	}
	f := withSOI(1, body)
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if _, err := Trim(f); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSyntheticSetFormat(t *testing.T) {
	for _, pre := range []int{0, 3} {
		s, err := NewSynthetic(SyntheticConfig{Format: media.VideoFormat{Width: 640, Height: 480, FPS: 30}, Precomputed: pre})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if f, err := s.Read(ctx); err != nil {
			t.Fatal(err)
		} else if w, h, _ := Size(f.JPEG); w != 640 || h != 480 {
			t.Fatalf("first frame %dx%d", w, h)
		}
		if err := s.SetFormat(media.VideoFormat{Width: 320, Height: 240, FPS: 30}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetFormat(media.VideoFormat{Width: 8, Height: 240, FPS: 30}); err == nil {
			t.Error("SetFormat accepted 8x240")
		}
		f, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w, h, _ := Size(f.JPEG); w != 320 || h != 240 {
			t.Errorf("precomputed %d: frame after SetFormat %dx%d, want 320x240", pre, w, h)
		}
		if got := s.Format(); got != (media.VideoFormat{Width: 320, Height: 240, FPS: 30}) {
			t.Errorf("Format() = %v", got)
		}
		if n, ok := FrameNumber(f.JPEG); !ok || n != 1 {
			t.Errorf("frame number %d %v, want 1: numbering goes on", n, ok)
		}
		s.Close()
	}
}
