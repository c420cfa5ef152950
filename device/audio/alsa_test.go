package audio

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// The ALSA devices' logic (ring, Read, Run, Close, stop detection) against
// a fake pcm, so it is tested in every build; alsa_cgo_test.go runs it on
// the real alsa-lib.

// fakePCM stands in for a malgo device; the test plays its thread.
type fakePCM struct {
	mu       sync.Mutex
	on       bool
	startErr error
	starts   int
	stops    int
	closes   int
}

func (d *fakePCM) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.starts++
	if d.startErr != nil {
		return d.startErr
	}
	d.on = true
	return nil
}

func (d *fakePCM) stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stops++
	d.on = false
	return nil
}

func (d *fakePCM) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.on
}

func (d *fakePCM) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closes++
	d.on = false
	return nil
}

// fail makes the device stop on its own, without a stop notice.
func (d *fakePCM) fail() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.on = false
}

func (d *fakePCM) counts() (starts, stops, closes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.starts, d.stops, d.closes
}

func nativeBytes(s []int16) []byte {
	b := make([]byte, 2*len(s))
	for i, v := range s {
		binary.NativeEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestALSAConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  ALSAConfig
		want string // substring of the error; empty means valid
	}{
		{ALSAConfig{}, ""},
		{ALSAConfig{Device: "hw:CARD=Device,DEV=0", Periods: 2, Format: stereo16}, ""},
		{ALSAConfig{Periods: 8}, ""},
		{ALSAConfig{Periods: 1}, "periods: 1 out of range 2..8"},
		{ALSAConfig{Periods: 9}, "periods: 9 out of range 2..8"},
		{ALSAConfig{Periods: -1}, "periods: -1"},
		{ALSAConfig{Device: strings.Repeat("x", 256)}, "device: name of 256 bytes"},
		{ALSAConfig{Device: "hw\x000"}, "NUL"},
		{ALSAConfig{Format: media.AudioFormat{Rate: 48000, Channels: 3, FrameMs: 10}}, "format: audio channels 3"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	cfg, err := ALSAConfig{}.withDefaults()
	if err != nil || cfg.Device != "default" || cfg.Periods != 3 || cfg.Format != media.DefaultAudio || cfg.Logger == nil {
		t.Fatalf("defaults %+v, %v", cfg, err)
	}
}

// Callbacks of any length are cut into whole frames, sample-exact, numbered
// in order, each stamped with when its first sample was captured.
func TestRingReframes(t *testing.T) {
	for _, f := range []media.AudioFormat{mono48, stereo16} {
		r := newFrameRing(f, 8)
		const frames = 5
		var all []int16
		for i := range frames {
			all = append(all, TestFrame(f, uint32(i))...)
		}
		// One and a half frames per callback, delivered every 1.5 frame
		// durations from t0, when the first callback's last sample arrived.
		chunk := f.FrameLen() * 3 / 2
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		step := f.FrameDuration() * 3 / 2
		for i, c := 0, 0; c < len(all); i, c = i+1, c+chunk {
			r.push(nativeBytes(all[c:min(c+chunk, len(all))]), t0.Add(time.Duration(i)*step))
		}
		// 5 frames in 3.33 callbacks: the last callback is short, so its
		// "now" is early; only the first four are on the exact schedule.
		for i := range frames {
			a, err := r.pop(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.Seq != uint32(i) || !slices.Equal(a.Samples, TestFrame(f, uint32(i))) {
				t.Fatalf("%+v frame %d: Seq %d, %v", f, i, a.Seq, Check(f, a.Samples))
			}
			if want := t0.Add(time.Duration(i-1) * f.FrameDuration()).Add(-f.FrameDuration() / 2); i < 4 && !a.Time.Equal(want) {
				t.Fatalf("%+v frame %d captured at %v, want %v", f, i, a.Time.Sub(t0), want.Sub(t0))
			}
		}
		if st := r.stats(); st != (CaptureStats{Frames: frames}) {
			t.Fatalf("stats %+v", st)
		}
	}
}

// A full ring drops its oldest frame for each new one, and Seq shows it.
func TestRingDropsOldest(t *testing.T) {
	f := mono48
	r := newFrameRing(f, 8)
	now := time.Now()
	for i := range 11 {
		r.push(nativeBytes(TestFrame(f, uint32(i))), now)
	}
	// Half a frame more: the slot being filled is not one of the eight.
	r.push(nativeBytes(TestFrame(f, 11)[:f.FrameLen()/2]), now)
	if st := r.stats(); st != (CaptureStats{Dropped: 3, Queued: 8}) {
		t.Fatalf("stats %+v", st)
	}
	for i := 3; i < 11; i++ {
		a, err := r.pop(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.Seq != uint32(i) || !slices.Equal(a.Samples, TestFrame(f, uint32(i))) {
			t.Fatalf("got Seq %d (%v), want frame %d", a.Seq, Check(f, a.Samples), i)
		}
	}
	r.push(nativeBytes(TestFrame(f, 11)[f.FrameLen()/2:]), now)
	if a, err := r.pop(t.Context(), nil); err != nil || a.Seq != 11 || !slices.Equal(a.Samples, TestFrame(f, 11)) {
		t.Fatalf("frame 11 across the drop: Seq %d, %v", a.Seq, err)
	}
	if st := r.stats(); st != (CaptureStats{Frames: 9, Dropped: 3}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestRingPopBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := mono48
		r := newFrameRing(f, 8)
		done := make(chan struct{})

		// Two readers wait; two frames arrive in one callback: both wake.
		got := make(chan uint32, 2)
		for range 2 {
			go func() {
				a, err := r.pop(t.Context(), done)
				if err != nil {
					t.Error(err)
				}
				got <- a.Seq
			}()
		}
		synctest.Wait()
		if len(got) != 0 {
			t.Fatal("pop returned before a frame was there")
		}
		r.push(nativeBytes(append(TestFrame(f, 0), TestFrame(f, 1)...)), time.Now())
		synctest.Wait()
		if len(got) != 2 {
			t.Fatalf("%d of 2 waiting readers woke for 2 frames", len(got))
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := r.pop(ctx, done); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("pop with an expiring ctx: %v", err)
		}

		errc := make(chan error, 1)
		go func() { _, err := r.pop(t.Context(), done); errc <- err }()
		synctest.Wait()
		close(done)
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("pop when done closes: %v", err)
		}
	})
}

// After the device fails, Read drains the ring, then returns the error.
func TestRingFail(t *testing.T) {
	f := mono48
	r := newFrameRing(f, 8)
	r.push(nativeBytes(TestFrame(f, 0)), time.Now())
	boom := errors.New("boom")
	r.fail(boom)
	r.fail(errors.New("later"))
	if a, err := r.pop(t.Context(), nil); err != nil || a.Seq != 0 {
		t.Fatalf("first pop: %v", err)
	}
	for range 2 {
		if _, err := r.pop(t.Context(), nil); err != boom {
			t.Fatalf("pop after fail: %v", err)
		}
	}
}

func TestCaptureStopsOnItsOwn(t *testing.T) {
	for _, notice := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			c := newCapture("hw:9,0", mono48, quiet())
			dev := &fakePCM{}
			c.dev = dev
			if err := c.run(); err != nil {
				t.Fatal(err)
			}
			c.push(nativeBytes(TestFrame(mono48, 0)))
			errc := make(chan error, 2)
			go func() {
				for {
					_, err := c.Read(t.Context())
					if err != nil {
						errc <- err
						return
					}
				}
			}()
			synctest.Wait()
			if notice {
				dev.fail()
				c.deviceStopped() // the stop callback
				synctest.Wait()
			} else {
				dev.fail() // no notice: the poll finds it
				time.Sleep(watchEvery)
				synctest.Wait()
			}
			select {
			case err := <-errc:
				if !errors.Is(err, ErrStopped) || err.Error() != `audio: capture "hw:9,0": device stopped on its own` {
					t.Fatalf("Read: %v", err)
				}
			default:
				t.Fatal("Read still blocked after the device stopped")
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if _, _, closes := dev.counts(); closes != 1 {
				t.Fatalf("device closed %d times", closes)
			}
		})
	}
}

func TestCaptureClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCapture("hw:9,0", mono48, quiet())
		dev := &fakePCM{}
		c.dev = dev
		if err := c.run(); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { _, err := c.Read(t.Context()); errc <- err }()
		synctest.Wait()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Read at Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
		if _, _, closes := dev.counts(); closes != 1 {
			t.Fatalf("device closed %d times", closes)
		}
	})
}

func TestPlaybackRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPlayback("hw:9,0", stereo16, quiet())
		dev := &fakePCM{}
		p.dev = dev
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		errc := make(chan error, 1)
		n := uint32(0)
		go func() {
			errc <- p.Run(ctx, func(dst []int16) {
				copy(dst, TestFrame(stereo16, n))
				n++
			})
		}()
		synctest.Wait()
		if err := p.Run(ctx, func([]int16) {}); !errors.Is(err, ErrRunning) {
			t.Fatalf("second Run: %v", err)
		}
		// The device thread asks for two periods.
		out := make([]byte, 2*stereo16.FrameLen())
		for i := range 2 {
			p.render(out)
			if got := decodeNative(out); !slices.Equal(got, TestFrame(stereo16, uint32(i))) {
				t.Fatalf("period %d: %v", i, Check(stereo16, got))
			}
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if starts, stops, _ := dev.counts(); starts != 1 || stops != 1 {
			t.Fatalf("%d starts, %d stops", starts, stops)
		}
		p.render(out) // a late callback plays silence, never a stale fill
		if !isZero(decodeNative(out)) {
			t.Fatal("render without Run is not silent")
		}
		if st := p.Stats(); st != (PlaybackStats{Frames: 3}) {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestPlaybackStopsOnItsOwn(t *testing.T) {
	for _, notice := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			p := newPlayback("hw:9,0", mono48, quiet())
			dev := &fakePCM{}
			p.dev = dev
			p.deviceStopped() // a notice from before Run is ignored
			errc := make(chan error, 1)
			go func() { errc <- p.Run(t.Context(), func(dst []int16) { clear(dst) }) }()
			synctest.Wait()
			dev.fail()
			if notice {
				p.deviceStopped()
			} else {
				time.Sleep(watchEvery)
			}
			synctest.Wait()
			select {
			case err := <-errc:
				if !errors.Is(err, ErrStopped) || err.Error() != `audio: playback "hw:9,0": device stopped on its own` {
					t.Fatalf("Run: %v", err)
				}
			default:
				t.Fatal("Run still running after the device stopped")
			}
			// The daemon may try again.
			ctx, cancel := context.WithCancel(t.Context())
			go func() { errc <- p.Run(ctx, func(dst []int16) { clear(dst) }) }()
			synctest.Wait()
			cancel()
			if err := <-errc; err != nil {
				t.Fatalf("Run again: %v", err)
			}
		})
	}
}

func TestPlaybackClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPlayback("hw:9,0", mono48, quiet())
		dev := &fakePCM{}
		p.dev = dev
		errc := make(chan error, 1)
		go func() { errc <- p.Run(t.Context(), func(dst []int16) { clear(dst) }) }()
		synctest.Wait()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("Run at Close: %v", err)
		}
		if starts, stops, closes := dev.counts(); starts != 1 || stops != 1 || closes != 1 {
			t.Fatalf("%d starts, %d stops, %d closes", starts, stops, closes)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.Run(t.Context(), func([]int16) {}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Run after Close: %v", err)
		}
	})
}

func TestPlaybackStartFails(t *testing.T) {
	p := newPlayback("hw:9,0", mono48, quiet())
	p.dev = &fakePCM{startErr: errors.New("busy")}
	err := p.Run(t.Context(), func([]int16) {})
	if err == nil || err.Error() != `audio: start playback "hw:9,0": busy` {
		t.Fatalf("Run: %v", err)
	}
	p.deviceStopped() // after a failed start: no notice left for the next Run
	if len(p.stopped) != 0 {
		t.Fatal("stop notice recorded while not running")
	}
}

func decodeNative(b []byte) []int16 {
	s := make([]int16, len(b)/2)
	for i := range s {
		s[i] = int16(binary.NativeEndian.Uint16(b[2*i:]))
	}
	return s
}

func isZero(s []int16) bool {
	return !slices.ContainsFunc(s, func(v int16) bool { return v != 0 })
}

// The device thread's side allocates nothing in steady state.
func TestCallbacksDoNotAllocate(t *testing.T) {
	f := stereo16
	r := newFrameRing(f, 8)
	in := nativeBytes(TestFrame(f, 0))
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { r.push(in, now) }); n != 0 {
		t.Errorf("push allocates %v times per callback", n)
	}
	p := newPlayback("hw:9,0", f, quiet())
	fill := func(dst []int16) { clear(dst) }
	p.fill.Store(&fill)
	out := make([]byte, 2*f.FrameLen())
	if n := testing.AllocsPerRun(100, func() { p.render(out) }); n != 0 {
		t.Errorf("render allocates %v times per callback", n)
	}
}
