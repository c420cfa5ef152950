package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/screen"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/media"
)

// The screen scenario's pictures: the host sends 16:9 (letterboxed on
// the guest's 4:3 VGA), the guest's own camera is 4:3 (the self-view).
// Both cycle through 4 precomputed test images, which the rig draws too.
var (
	screenHost  = media.VideoFormat{Width: 320, Height: 180, FPS: 5}
	screenGuest = media.VideoFormat{Width: 320, Height: 240, FPS: 10}
)

const screenImages = 4

func screenCall(ctx context.Context, s *session) error {
	err := s.setup(ctx, guestSpec{
		modules: []string{"bochs"},
		display: true,
		config: fmt.Sprintf(`[video]
device = "sim"
width = %d
height = %d
fps = %d
precomputed = %d
[audio]
capture = "sim"
playback = "sim"
[screen]
device = "/dev/fb0"
idle = "status"
self_view = true
`, screenGuest.Width, screenGuest.Height, screenGuest.FPS, screenImages),
		host: testbox.Options{AutoAnswer: true, Extra: fmt.Sprintf("[video]\ndevice = \"sim\"\nwidth = %d\nheight = %d\nfps = %d\nprecomputed = %d\n",
			screenHost.Width, screenHost.Height, screenHost.FPS, screenImages)},
	})
	if err != nil {
		return err
	}
	hostImgs, err := syntheticImages(ctx, screenHost, hostName)
	if err != nil {
		return err
	}
	guestImgs, err := syntheticImages(ctx, screenGuest, guestName)
	if err != nil {
		return err
	}
	st, err := s.startDaemon(ctx, "screen open", func(st control.Status) bool {
		return st.Screen != nil && strings.HasPrefix(st.Screen.State, "ok")
	})
	if err != nil {
		return err
	}
	s.figure("guest screen: %s", st.Screen.State)

	if err := s.idleScreen(ctx, "before the call", "screen-idle"); err != nil {
		return err
	}

	if err := s.hostCall(ctx); err != nil {
		return err
	}
	hs, err := s.host.Status(ctx)
	if err != nil {
		return err
	}
	if p := hs.Phone.PeerPrefers; p == nil || p.Width != 640 || p.Height != 480 {
		return fmt.Errorf("host peer: the guest's preferred video size is %+v, want 640x480 (screen.prefer_video's default)", p)
	}
	s.figure("the guest's hello asks for at most %dx%d (the host's %dx%d fits)", hs.Phone.PeerPrefers.Width, hs.Phone.PeerPrefers.Height, screenHost.Width, screenHost.Height)
	if _, err := s.agent.WaitStatus(ctx, 30*time.Second, "10 peer frames on the guest's screen", func(st control.Status) bool {
		return st.Screen != nil && st.Screen.Shown >= 10 && st.Screen.SelfShown >= 2
	}); err != nil {
		return err
	}
	// The daemon draws row by row and the fbdev emulation copies to the
	// VGA's memory on its own schedule: a grab can catch a frame half
	// drawn over the last. The best of a few grabs is judged.
	var best callView
	const grabs = 5
	clean := 0 // grabs that match one frame throughout
	for i := range grabs {
		img, err := s.screendump(ctx, "screen-call")
		if err != nil {
			return err
		}
		v := judgeCall(img, hostImgs, guestImgs)
		if v.peer.mae <= 10 && v.peer.within >= 0.95 {
			clean++
		}
		if i == 0 || v.peer.mae < best.peer.mae {
			best = v
			s.savePNG(img, "screen-call")
		}
		if err := sleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	p, self := best.peer, best.self
	s.figure("%d of %d grabs showed one whole host frame (the others caught one drawn over the last)", clean, grabs)
	s.figure("in call (best grab): peer frame in %v = host test image #%d, mean abs error %.1f/255, %.1f%% of sampled pixels within 24; next best image #%d: %.1f",
		best.peerRect, p.idx, p.mae, 100*p.within, p.next, p.nextMAE)
	s.figure("bars: %.2f%% of %d pixels black; self-view in %v = guest test image #%d, mean abs error %.1f (next best %.1f)",
		100*best.blackShare, best.barPixels, best.selfRect, self.idx, self.mae, self.nextMAE)
	switch {
	case p.mae > 10 || p.within < 0.95:
		return fmt.Errorf("the peer's region does not show the host's frame: best match image #%d, mean abs error %.1f, %.1f%% within 24", p.idx, p.mae, 100*p.within)
	case best.blackShare < 0.999:
		return fmt.Errorf("letterbox bars: only %.2f%% black", 100*best.blackShare)
	case self.mae > 12:
		return fmt.Errorf("the self-view does not show the guest's camera: best match image #%d, mean abs error %.1f", self.idx, self.mae)
	}

	// The screendumps stop QEMU's main loop, and with it the guest's user
	// networking, for a moment each; on a loaded host that has once added
	// up to the peer timeout and both sides ended the call as silent. The
	// screen's checks above are done by then: a call that ended by itself
	// is a warning, and the idle screen after it is still required.
	if st, err := s.host.Status(ctx); err == nil && st.Phone.State.String() == "idle" && strings.Contains(st.Phone.LastEnd, "silent") {
		s.figure("WARNING the call ended by itself before the hangup (%q): the emulator stalled the guest's network", st.Phone.LastEnd)
		if _, err := s.agent.WaitStatus(ctx, 10*time.Second, "idle after the call ended", inState("idle")); err != nil {
			return err
		}
	} else if _, err := s.hostHangup(ctx); err != nil {
		return err
	}
	if err := s.idleScreen(ctx, "after the call", "screen-after"); err != nil {
		return err
	}
	gs, err := s.agent.Status(ctx)
	if err != nil {
		return err
	}
	sc := gs.Screen
	s.figure("guest screen counters: %d peer frames shown, %d dropped (latest wins), %d broken, %d self-view updates", sc.Shown, sc.Dropped, sc.Broken, sc.SelfShown)
	if sc.Broken != 0 {
		return fmt.Errorf("%d frames did not decode on the guest", sc.Broken)
	}
	return s.daemonUnchanged(ctx)
}

// idleScreen waits (10 s at most) until the display shows exactly what the
// renderer draws as the idle status "guest" / "idle".
func (s *session) idleScreen(ctx context.Context, when, name string) error {
	lines := []string{guestName, "idle"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		img, err := s.screendump(ctx, name)
		if err != nil {
			return err
		}
		b := img.Bounds()
		fb, err := screen.NewFramebuffer(b.Dx(), b.Dy(), 0, screen.XRGB8888)
		if err != nil {
			return err
		}
		r, err := screen.NewRenderer(fb, false)
		if err != nil {
			return err
		}
		r.Idle(lines)
		diff, white := 0, 0
		for y := range b.Dy() {
			for x := range b.Dx() {
				wr, wg, wb := fb.RGB(x, y)
				o := img.PixOffset(x, y)
				if img.Pix[o] != wr || img.Pix[o+1] != wg || img.Pix[o+2] != wb {
					diff++
				}
				if wr == 255 {
					white++
				}
			}
		}
		if diff == 0 {
			s.savePNG(img, name)
			s.figure("idle screen %s: %dx%d, %q drawn in %d white pixels, pixel-exact", when, b.Dx(), b.Dy(), strings.Join(lines, " / "), white)
			return nil
		}
		if time.Now().After(deadline) {
			s.savePNG(img, name)
			return fmt.Errorf("idle screen %s: %d of %d pixels differ from the idle status %q (see %s.png)", when, diff, b.Dx()*b.Dy(), lines, name)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

func (s *session) screendump(ctx context.Context, name string) (*image.RGBA, error) {
	return s.vm.Screendump(ctx, filepath.Join(s.dir, name+".ppm"))
}

// savePNG keeps a grab in the artefacts.
func (s *session) savePNG(img image.Image, name string) {
	var b bytes.Buffer
	if png.Encode(&b, img) == nil {
		os.WriteFile(filepath.Join(s.env.out, name+".png"), b.Bytes(), 0o644)
	}
}

// syntheticImages draws the test images a box named name sends with
// video.precomputed = screenImages, decoded.
func syntheticImages(ctx context.Context, f media.VideoFormat, name string) ([]image.Image, error) {
	cam, err := camera.NewSynthetic(camera.SyntheticConfig{Format: f, Precomputed: screenImages, Name: name})
	if err != nil {
		return nil, err
	}
	defer cam.Close()
	var out []image.Image
	for range screenImages {
		fr, err := cam.Read(ctx)
		if err != nil {
			return nil, err
		}
		img, err := jpeg.Decode(bytes.NewReader(fr.JPEG))
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// match is how well a screen region shows one of some candidate images.
type match struct {
	idx     int     // the best candidate
	mae     float64 // its mean absolute error per channel, 0..255
	within  float64 // share of sampled pixels with every channel within 24
	next    int     // the second best
	nextMAE float64
}

type callView struct {
	peerRect, selfRect image.Rectangle
	peer, self         match
	blackShare         float64
	barPixels          int
}

// judgeCall compares a grab with where the renderer promises to put the
// peer's frame (letterboxed) and the self-view, and checks the bars.
func judgeCall(img *image.RGBA, hostImgs, guestImgs []image.Image) callView {
	b := img.Bounds()
	v := callView{
		peerRect: screen.Letterbox(screenHost.Width, screenHost.Height, b.Dx(), b.Dy()),
		selfRect: screen.SelfViewRect(screenGuest.Width, screenGuest.Height, b.Dx(), b.Dy()),
	}
	v.peer = bestMatch(img, v.peerRect, v.selfRect, hostImgs)
	v.self = bestMatch(img, v.selfRect, image.Rectangle{}, guestImgs)
	black := 0
	for y := range b.Dy() {
		for x := range b.Dx() {
			p := image.Pt(x, y)
			if p.In(v.peerRect) || p.In(v.selfRect) {
				continue
			}
			v.barPixels++
			o := img.PixOffset(x, y)
			if img.Pix[o]|img.Pix[o+1]|img.Pix[o+2] == 0 {
				black++
			}
		}
	}
	if v.barPixels > 0 {
		v.blackShare = float64(black) / float64(v.barPixels)
	}
	return v
}

// bestMatch samples every other pixel of rect (outside skip) and compares
// it with the nearest source pixel of each candidate, converted to RGB by
// the standard library.
func bestMatch(img *image.RGBA, rect, skip image.Rectangle, cands []image.Image) match {
	m := match{idx: -1, next: -1}
	for i, c := range cands {
		cb := c.Bounds()
		var sum, n, ok float64
		for y := rect.Min.Y; y < rect.Max.Y; y += 2 {
			for x := rect.Min.X; x < rect.Max.X; x += 2 {
				if image.Pt(x, y).In(skip) {
					continue
				}
				sx := cb.Min.X + (2*(x-rect.Min.X)+1)*cb.Dx()/(2*rect.Dx())
				sy := cb.Min.Y + (2*(y-rect.Min.Y)+1)*cb.Dy()/(2*rect.Dy())
				want := color.RGBAModel.Convert(c.At(sx, sy)).(color.RGBA)
				o := img.PixOffset(x, y)
				d := []int{int(img.Pix[o]) - int(want.R), int(img.Pix[o+1]) - int(want.G), int(img.Pix[o+2]) - int(want.B)}
				good := true
				for _, e := range d {
					e = max(e, -e)
					sum += float64(e)
					if e > 24 {
						good = false
					}
				}
				if good {
					ok++
				}
				n++
			}
		}
		if n == 0 {
			continue
		}
		mae := sum / (3 * n)
		switch {
		case m.idx < 0 || mae < m.mae:
			m.next, m.nextMAE = m.idx, m.mae
			m.idx, m.mae, m.within = i, mae, ok/n
		case m.next < 0 || mae < m.nextMAE:
			m.next, m.nextMAE = i, mae
		}
	}
	return m
}
