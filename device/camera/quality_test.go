package camera

import (
	"context"
	"image/color"
	"testing"
	"testing/synctest"

	"github.com/callbox/callbox/stream/media"
)

// readFrame reads one frame and checks it is a whole, numbered JPEG.
func readFrame(t *testing.T, src Source) media.Frame {
	t.Helper()
	f, err := src.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Trim(f.JPEG); err != nil {
		t.Fatalf("frame %d: %v", f.Seq, err)
	}
	return f
}

// A lower quality gives smaller frames that still decode and still show
// the frame number; the old quality comes back as it was. Live and
// precomputed alike.
func TestSyntheticSetQuality(t *testing.T) {
	for _, pre := range []int{0, 1} {
		synctest.Test(t, func(t *testing.T) {
			s := newSynth(t, SyntheticConfig{Quality: 80, Precomputed: pre, Name: "hall"})
			sizeAt := func(q int) int {
				t.Helper()
				if !s.SetQuality(q) {
					t.Fatal("SetQuality reports the test pattern is not encoded here")
				}
				f := readFrame(t, s)
				img := decode(t, f.JPEG)
				if w, h := img.Rect.Dx(), img.Rect.Dy(); w != 640 || h != 480 {
					t.Fatalf("quality %d: decoded %dx%d", q, w, h)
				}
				want := itoa(f.Seq)
				if pre > 0 {
					want = "0"
				}
				if got := readNumber(img, len(want)); got != want {
					t.Errorf("quality %d: number reads %q, want %q", q, got, want)
				}
				if n, ok := FrameNumber(f.JPEG); !ok || n != f.Seq {
					t.Errorf("quality %d: FrameNumber %d %v, Seq %d", q, n, ok, f.Seq)
				}
				return len(f.JPEG)
			}
			// The test pattern is mostly flat colour: its frames shrink
			// less with the quality than a camera's picture does.
			hi := sizeAt(80)
			mid := sizeAt(40)
			lo := sizeAt(15)
			t.Logf("precomputed %d: %d / %d / %d bytes at quality 80 / 40 / 15", pre, hi, mid, lo)
			if !(lo < mid && mid < hi) || float64(lo) > 0.75*float64(hi) {
				t.Errorf("sizes %d / %d / %d at quality 80 / 40 / 15: want clearly smaller", hi, mid, lo)
			}
			if again := sizeAt(80); pre > 0 && again != hi {
				t.Errorf("back at 80: %d bytes, was %d", again, hi)
			}
		})
	}
}

// The precomputed images of at most maxPreQualities qualities are kept.
func TestSyntheticPrecomputedQualitiesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSynth(t, SyntheticConfig{Format: media.VideoFormat{Width: 160, Height: 120, FPS: 30}, Precomputed: 4})
		for _, q := range []int{75, 65, 55, 45, 35, 75, 25} {
			s.SetQuality(q)
			readFrame(t, s)
			if len(s.pre) > maxPreQualities {
				t.Fatalf("after quality %d: %d sets kept, at most %d", q, len(s.pre), maxPreQualities)
			}
			if s.pre[0].quality != q {
				t.Fatalf("after quality %d: the set in use is %d", q, s.pre[0].quality)
			}
		}
		// Only the images shown were encoded at the lower qualities.
		for _, set := range s.pre[1:] {
			n := 0
			for _, img := range set.img {
				if img != nil {
					n++
				}
			}
			if n != 1 {
				t.Errorf("quality %d: %d images encoded, want the 1 shown", set.quality, n)
			}
		}
	})
}

// A raw camera's frames are encoded at the quality set at run time; MJPEG
// is passed through and says so.
func TestV4L2SetQuality(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		yuyv := FormatInfo{FourCC: "YUYV", Description: "YUYV 4:2:2", Sizes: sizes(t, "640x480@30")}
		drv := newFakeDriver(yuyv)
		v := mustOpenFake(t, drv, V4L2Config{Quality: 90})
		bars := []color.RGBA{{255, 255, 255, 255}, {255, 255, 0, 255}, {0, 255, 255, 255}, {0, 255, 0, 255},
			{255, 0, 255, 255}, {255, 0, 0, 255}, {0, 0, 255, 255}, {0, 0, 0, 255}}
		raw := yuyvBars(640, 480, 1280, bars)
		// Noise makes the size depend on the quality as a real picture's does.
		for i := range raw {
			raw[i] += byte(i*7919>>3) & 15
		}
		sizeAt := func(q int) int {
			t.Helper()
			if !v.SetQuality(q) {
				t.Fatal("SetQuality reports YUYV is not encoded here")
			}
			drv.feed <- fakeFrame{data: raw}
			f := readFrame(t, v)
			if img := decode(t, f.JPEG); img.Rect.Dx() != 640 || img.Rect.Dy() != 480 {
				t.Fatalf("quality %d: decoded %v", q, img.Rect)
			}
			return len(f.JPEG)
		}
		hi, lo := sizeAt(90), sizeAt(35)
		t.Logf("YUYV 640x480: %d bytes at quality 90, %d at 35", hi, lo)
		if float64(lo) > 0.7*float64(hi) {
			t.Errorf("%d bytes at quality 35, %d at 90: want clearly smaller", lo, hi)
		}

		m := mustOpenFake(t, newFakeDriver(init640(t)...), V4L2Config{})
		if m.SetQuality(40) {
			t.Error("SetQuality on MJPEG reports the frames are encoded here")
		}
	})
}

// Resilient passes the quality to the open source and to every source it
// opens later, and tells whether it counts.
func TestResilientSetQuality(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var opened []*Synthetic
		r := NewResilient(func(context.Context) (Source, error) {
			s, err := NewSynthetic(SyntheticConfig{Format: media.VideoFormat{Width: 160, Height: 120, FPS: 30}, Quality: 90})
			opened = append(opened, s)
			return s, err
		}, ResilientConfig{})
		defer r.Close()
		synctest.Wait()
		if !r.SetQuality(0) {
			t.Fatal("SetQuality(0) = false with the test pattern open")
		}
		if q := opened[0].quality.Load(); q != 90 {
			t.Fatalf("asking changed the quality to %d", q)
		}
		r.SetQuality(40)
		if q := opened[0].quality.Load(); q != 40 {
			t.Fatalf("open source's quality %d, want 40", q)
		}
		r.Reopen()
		synctest.Wait()
		if len(opened) != 2 {
			t.Fatalf("%d opens, want 2", len(opened))
		}
		if q := opened[1].quality.Load(); q != 40 {
			t.Errorf("re-opened source's quality %d, want 40", q)
		}
		r.SetQuality(500)
		if q := opened[1].quality.Load(); q != 100 {
			t.Errorf("quality 500 set %d, want it clamped to 100", q)
		}
	})
}
