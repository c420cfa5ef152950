package screen_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/device/screen"
	"github.com/callbox/callbox/device/screen/screentest"
)

func solid(t *testing.T, w, h int, c color.RGBA) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, 255
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func centre(d *screentest.Display) (r, g, b uint8) {
	return d.FB.RGB(d.FB.Width/2, d.FB.Height/2)
}

func isColour(r, g, b uint8, c color.RGBA) bool {
	d := func(a, b uint8) bool { return int(a)-int(b) < 16 && int(b)-int(a) < 16 }
	return d(r, c.R) && d(g, c.G) && d(b, c.B)
}

// wait runs the bubble until every goroutine in it is blocked, so the
// screen's goroutine has drawn what it was given.
func wait() { synctest.Wait() }

func TestScreenShowsCallAndIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, err := screentest.New(160, 120, 0, screen.RGB565)
		if err != nil {
			t.Fatal(err)
		}
		var states []string
		s := screen.New(d.Open, screen.Config{Idle: screen.IdleStatus, SelfView: true,
			OnChange: func(st string) { states = append(states, st) }})
		defer s.Close()
		s.SetStatus("hall", "idle")
		wait()
		if st := s.State(); st != "ok: 160x120 RGB565" {
			t.Fatalf("state %q", st)
		}
		if r, g, b := d.FB.RGB(0, 0); r|g|b != 0 {
			t.Errorf("idle background not black")
		}
		idle := bytes.Clone(d.FB.Pix)
		if bytes.Count(idle, []byte{0xFF, 0xFF}) == 0 {
			t.Errorf("status idle screen has no white text")
		}

		orange := color.RGBA{255, 128, 0, 255}
		s.Peer(solid(t, 64, 48, orange)) // no call: not shown
		wait()
		if !bytes.Equal(idle, d.FB.Pix) {
			t.Errorf("a peer frame outside a call changed the idle screen")
		}

		s.SetVideo(true)
		s.SetStatus("hall", "in call with door")
		wait()
		if bytes.Equal(idle, d.FB.Pix) {
			t.Errorf("the idle text did not follow the state before the first frame")
		}
		s.Peer(solid(t, 64, 48, orange))
		wait()
		if r, g, b := centre(d); !isColour(r, g, b, orange) {
			t.Errorf("in call: centre %d,%d,%d, want the peer's orange", r, g, b)
		}
		s.Self(solid(t, 64, 48, color.RGBA{0, 0, 255, 255}))
		wait()
		sr := screen.SelfViewRect(64, 48, 160, 120)
		if r, g, b := d.FB.RGB(sr.Min.X+5, sr.Min.Y+5); !isColour(r, g, b, color.RGBA{0, 0, 255, 255}) {
			t.Errorf("self-view pixel %d,%d,%d, want blue", r, g, b)
		}

		// Corrupt frames are counted and skipped; the screen keeps the last good one.
		s.Peer([]byte("garbage"))
		wait()
		s.Peer(solid(t, 64, 48, orange)[:100])
		wait()
		if r, g, b := centre(d); !isColour(r, g, b, orange) {
			t.Errorf("after corrupt frames: centre %d,%d,%d, want the last good frame", r, g, b)
		}
		st := s.Stats()
		if st.Broken != 2 || st.Shown != 1 || st.SelfShown != 1 {
			t.Errorf("stats %+v, want 2 broken, 1 shown, 1 self", st)
		}

		s.SetVideo(false)
		s.SetStatus("hall", "idle")
		wait()
		if !bytes.Equal(idle, d.FB.Pix) {
			t.Errorf("after the call: not the idle screen")
		}
		if len(states) != 1 {
			t.Errorf("state changes %q", states)
		}
	})
}

// A renderer slower than the frames: the slot keeps only the latest.
func TestScreenDropsAllButTheLatest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, _ := screentest.New(64, 48, 0, screen.XRGB8888)
		s := screen.New(d.Open, screen.Config{})
		defer s.Close()
		s.SetVideo(true)
		wait()
		colours := []color.RGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}, {255, 255, 255, 255}}
		frames := make([][]byte, len(colours))
		for i, c := range colours {
			frames[i] = solid(t, 32, 24, c)
		}
		// However the goroutine interleaves, every frame is shown or
		// dropped, and the last one is on screen.
		for _, f := range frames {
			s.Peer(f)
		}
		wait()
		st := s.Stats()
		if st.Shown+st.Dropped != 4 || st.Shown < 1 {
			t.Errorf("stats %+v: want 4 frames shown or dropped", st)
		}
		if r, g, b := centre(d); !isColour(r, g, b, colours[3]) {
			t.Errorf("centre %d,%d,%d, want the latest frame", r, g, b)
		}
	})
}

func TestScreenWithoutDisplayRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, _ := screentest.New(64, 48, 0, screen.XRGB8888)
		d.SetMissing(true)
		s := screen.New(d.Open, screen.Config{MinBackoff: time.Second, MaxBackoff: 4 * time.Second})
		wait()
		if st := s.State(); !strings.HasPrefix(st, "down: screentest: no display; retrying in") {
			t.Errorf("state %q", st)
		}
		s.SetVideo(true)
		s.Peer(solid(t, 32, 24, color.RGBA{255, 0, 0, 255})) // must not block
		time.Sleep(10 * time.Second)
		if st := s.Stats(); st.Failures < 3 || st.Failures > 5 {
			t.Errorf("%d failed opens in 10 s with a 1..4 s backoff", st.Failures)
		}
		d.SetMissing(false)
		time.Sleep(5 * time.Second)
		wait()
		if st := s.State(); !strings.HasPrefix(st, "ok") {
			t.Errorf("state %q after the display came", st)
		}
		s.Close()
		s.Close()
		if o, c := d.Counts(); o != 1 || c != 1 {
			t.Errorf("opened %d, closed %d times", o, c)
		}
	})
}
