//go:build linux && cgo

package audio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// These tests run the real alsa-lib (and miniaudio's null backend) without
// a sound card, through alsa-lib's file plugin: PCMs defined in
// testdata/asoundrc read their capture from a file and write their playback
// to one. The plugin is not paced in real time: it runs as fast as the
// device thread loops, and after its input ends it repeats stale data.

// guard bounds a test that would otherwise hang on a broken device; it is a
// safety net, never part of what is asserted.
const guard = 30 * time.Second

// useTestALSAConfig points alsa-lib at testdata/asoundrc for this test. A
// malgo context reads the configuration when it is made (and frees it when
// it is released), so this must come before the device is opened. It fails
// the test if alsa-lib cannot be loaded: these tests must not pass by
// skipping.
func useTestALSAConfig(t *testing.T) {
	t.Helper()
	rc, err := filepath.Abs("testdata/asoundrc")
	if err != nil {
		t.Fatal(err)
	}
	path := rc
	if _, err := os.Stat("/usr/share/alsa/alsa.conf"); err == nil {
		path = "/usr/share/alsa/alsa.conf:" + rc // the system's, as a user would have
	}
	t.Setenv("ALSA_CONFIG_PATH", path)
	ctx, err := newContext(DefaultDevice, &maLog{log: quiet()})
	if err != nil {
		t.Fatalf("the ALSA tests need alsa-lib at run time: %v", err)
	}
	ctx.Uninit()
	ctx.Free()
}

func encode(s []int16) []byte {
	b := make([]byte, 2*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

func formatName(f media.AudioFormat) string {
	return fmt.Sprintf("%dHz_%dch_%dms", f.Rate, f.Channels, f.FrameMs)
}

func TestALSACaptureSampleExact(t *testing.T) {
	for _, f := range []media.AudioFormat{mono48, stereo16} {
		t.Run(formatName(f), func(t *testing.T) {
			useTestALSAConfig(t)
			fifo := filepath.Join(t.TempDir(), "mic")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("CALLBOX_TEST_INFILE", fifo)
			// The FIFO is the device's clock: alsa-lib's read of the infile
			// blocks until the test writes a frame. O_RDWR so that neither
			// this open nor alsa-lib's waits for the other side.
			w, err := os.OpenFile(fifo, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			opened := time.Now()
			c, err := OpenCapture(ALSAConfig{Device: "callbox_capture", Format: f})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Format() != f {
				t.Fatalf("Format %+v, want %+v", c.Format(), f)
			}

			// At most ahead frames written and not yet read, so the ring of
			// 8 never overflows and every frame must come out.
			const n, ahead = 60, 4
			written := 0
			write := func() {
				if written < n {
					if _, err := w.Write(encode(TestFrame(f, uint32(written)))); err != nil {
						t.Fatal(err)
					}
					written++
				}
			}
			for range ahead {
				write()
			}
			ctx, cancel := context.WithTimeout(t.Context(), guard)
			defer cancel()
			lead, next := 0, 0
			var prev media.Audio
			for reads := 0; next < n; reads++ {
				a, err := c.Read(ctx)
				if err != nil {
					t.Fatalf("Read after %d signal frames: %v", next, err)
				}
				if a.Seq != uint32(reads) {
					t.Fatalf("read %d has Seq %d", reads, a.Seq)
				}
				if reads > 0 && a.Time.Before(prev.Time) {
					t.Fatalf("Seq %d captured at %v, before Seq %d at %v", a.Seq, a.Time, prev.Seq, prev.Time)
				}
				if a.Time.Before(opened.Add(-f.FrameDuration())) || a.Time.After(time.Now()) {
					t.Fatalf("Seq %d captured at %v, outside open-1 frame (%v)..now", a.Seq, a.Time, opened)
				}
				prev = a
				if next == 0 && isZero(a.Samples) {
					// alsa-lib's file plugin starts with a period of silence.
					if lead++; lead > 2 {
						t.Fatalf("%d frames of silence before the signal", lead)
					}
					continue
				}
				if want := TestFrame(f, uint32(next)); !slices.Equal(a.Samples, want) {
					t.Fatalf("frame %d (Seq %d) differs from TestFrame(%d): %v", next, a.Seq, next, Check(f, a.Samples))
				}
				next++
				write()
			}
			if st := c.Stats(); st != (CaptureStats{Frames: uint64(n + lead)}) {
				t.Fatalf("stats %+v, want %d frames and nothing dropped", st, n+lead)
			}
			// End of input: alsa-lib now repeats stale data as fast as it can,
			// and the ring drops the oldest. Close must cope with that.
			w.Close()
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := c.Read(ctx); !errors.Is(err, ErrClosed) {
				t.Fatalf("Read after Close: %v, want ErrClosed", err)
			}
		})
	}
}

// An unpaced device overruns any reader: the ring must keep the newest
// frames, number them so every drop shows as a Seq gap, and count the drops.
func TestALSACaptureUnpacedDropsOldest(t *testing.T) {
	useTestALSAConfig(t)
	f := mono48
	const n = 500
	var in []byte
	for i := range n {
		in = append(in, encode(TestFrame(f, uint32(i)))...)
	}
	file := filepath.Join(t.TempDir(), "mic.raw")
	if err := os.WriteFile(file, in, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CALLBOX_TEST_INFILE", file)
	c, err := OpenCapture(ALSAConfig{Device: "callbox_capture", Format: f})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	const reads = 200
	var prev media.Audio
	prevIdx := -1 // index of the previous frame if it was a test frame
	for i := range reads {
		a, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && a.Seq <= prev.Seq {
			t.Fatalf("Seq %d after %d", a.Seq, prev.Seq)
		}
		idx := -1
		if !isZero(a.Samples) { // else the leading period of silence
			idx = int(frameIndex(a.Samples))
			if idx >= n || !slices.Equal(a.Samples, TestFrame(f, uint32(idx))) {
				t.Fatalf("Seq %d is neither silence nor a test frame: %v", a.Seq, Check(f, a.Samples))
			}
			// After the input ends its last frame repeats; before that,
			// the signal advances exactly as Seq does.
			if prevIdx >= 0 && idx < n-1 {
				if got, want := idx-prevIdx, int(a.Seq-prev.Seq); got != want {
					t.Fatalf("Seq %d→%d skipped %d frames but the signal skipped %d", prev.Seq, a.Seq, want, got)
				}
			}
		}
		prev, prevIdx = a, idx
	}
	st := c.Stats()
	t.Logf("last Seq %d; %+v", prev.Seq, st)
	if st.Frames != reads {
		t.Fatalf("stats %+v, want %d frames", st, reads)
	}
	if gaps := uint64(prev.Seq) + 1 - reads; st.Dropped < gaps {
		t.Fatalf("stats %+v: %d dropped, but Read saw Seq gaps of %d frames", st, st.Dropped, gaps)
	}
	if st.Queued > captureRing {
		t.Fatalf("stats %+v: more queued than the ring holds (%d)", st, captureRing)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestALSAPlaybackSampleExact(t *testing.T) {
	for _, f := range []media.AudioFormat{mono48, stereo16} {
		t.Run(formatName(f), func(t *testing.T) {
			useTestALSAConfig(t)
			out := filepath.Join(t.TempDir(), "speaker.raw")
			t.Setenv("CALLBOX_TEST_OUTFILE", out)
			p, err := OpenPlayback(ALSAConfig{Device: "callbox_playback", Format: f})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()

			// Stopping discards what miniaudio has not yet written, so fill
			// goes on with a tail of silence before the test stops Run.
			const n, tail = 60, 4
			ctx, cancel := context.WithTimeout(t.Context(), guard)
			defer cancel()
			var (
				next    uint32 // owned by fill, which the device thread calls
				badLen  int
				enough  = make(chan struct{})
				enoughs sync.Once
			)
			fill := func(dst []int16) {
				if len(dst) != f.FrameLen() {
					badLen = len(dst)
				}
				switch {
				case next < n:
					copy(dst, TestFrame(f, next))
				case next < n+tail:
					clear(dst)
				default:
					clear(dst)
					enoughs.Do(func() { close(enough) })
				}
				next++
			}
			errc := make(chan error, 1)
			go func() { errc <- p.Run(ctx, fill) }()
			select {
			case <-enough:
			case err := <-errc:
				t.Fatalf("Run returned early: %v", err)
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if badLen != 0 {
				t.Fatalf("fill got %d values, want one frame of %d", badLen, f.FrameLen())
			}
			if st := p.Stats(); st.Frames != uint64(next) || st.Frames <= n+tail {
				t.Fatalf("stats %+v, fill called %d times", st, next)
			}
			if err := p.Close(); err != nil { // alsa-lib flushes the file on close
				t.Fatalf("Close: %v", err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got := decode(b)
			fl := f.FrameLen()
			lead := 0
			for len(got) >= fl && isZero(got[:fl]) {
				got = got[fl:]
				lead++
			}
			if lead > 2 {
				t.Fatalf("%d frames of silence before the signal", lead)
			}
			if len(got) < n*fl {
				t.Fatalf("file has %d frames after %d of silence, want at least %d", len(got)/fl, lead, n)
			}
			for i := range n {
				if frame := got[i*fl : (i+1)*fl]; !slices.Equal(frame, TestFrame(f, uint32(i))) {
					t.Fatalf("frame %d of the file differs from TestFrame(%d): %v", i, i, Check(f, frame))
				}
			}
			if !isZero(got[n*fl:]) {
				t.Fatal("the file is not silent after the signal")
			}
		})
	}
}

func TestALSAOpenErrors(t *testing.T) {
	useTestALSAConfig(t)
	const missing = "callbox_no_such_pcm"
	_, err := OpenCapture(ALSAConfig{Device: missing})
	if err == nil || !strings.HasPrefix(err.Error(), `audio: open capture "`+missing+`": `) {
		t.Fatalf("OpenCapture(%q): %v", missing, err)
	}
	if !strings.Contains(err.Error(), "snd_pcm_open() failed") { // miniaudio's reason, from its log
		t.Fatalf("OpenCapture(%q): %v, without miniaudio's reason", missing, err)
	}
	t.Log(err)
	_, err = OpenPlayback(ALSAConfig{Device: missing})
	if err == nil || !strings.HasPrefix(err.Error(), `audio: open playback "`+missing+`": `) {
		t.Fatalf("OpenPlayback(%q): %v", missing, err)
	}
	_, err = OpenCapture(ALSAConfig{Device: NullDevice, Periods: 1})
	if err == nil || !strings.Contains(err.Error(), "periods: 1 out of range 2..8") {
		t.Fatalf("OpenCapture with 1 period: %v", err)
	}
	_, err = OpenPlayback(ALSAConfig{Device: NullDevice, Format: media.AudioFormat{Rate: 48000, Channels: 3, FrameMs: 10}})
	if err == nil || !strings.HasPrefix(err.Error(), `audio: open playback "null": `) || !strings.Contains(err.Error(), "channels 3") {
		t.Fatalf("OpenPlayback with 3 channels: %v", err)
	}
}

func TestALSANullBackend(t *testing.T) {
	// miniaudio's null backend runs in real time: a few frames take a few
	// frame durations.
	c, err := OpenCapture(ALSAConfig{Device: NullDevice})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	for i := range 3 {
		a, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a.Seq != uint32(i) || len(a.Samples) != media.DefaultAudio.FrameLen() || !isZero(a.Samples) {
			t.Fatalf("frame %d: Seq %d, %d values, silent %v", i, a.Seq, len(a.Samples), isZero(a.Samples))
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	p, err := OpenPlayback(ALSAConfig{Device: NullDevice})
	if err != nil {
		t.Fatal(err)
	}
	for run := range 2 { // the device restarts
		rctx, rcancel := context.WithCancel(ctx)
		fills := 0
		err := p.Run(rctx, func(dst []int16) {
			for i := range dst {
				dst[i] = int16(i)
			}
			if fills++; fills == 3 {
				rcancel()
			}
		})
		rcancel()
		if err != nil || fills < 3 {
			t.Fatalf("Run %d: %v after %d fills", run, err, fills)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Run(ctx, func([]int16) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
}

// A device that stops without being asked (unplugged, failed) must end Run
// and Read with ErrStopped. The test stops the device underneath, through
// miniaudio, so its real stop callback fires.
func TestALSAStoppedOnItsOwn(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()

	p, err := OpenPlayback(ALSAConfig{Device: NullDevice})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	playing := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		errc <- p.Run(ctx, func(dst []int16) {
			clear(dst)
			once.Do(func() { close(playing) })
		})
	}()
	<-playing
	if err := p.dev.(*malgoPCM).dev.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), `"null"`) {
		t.Fatalf("Run: %v, want ErrStopped naming the device", err)
	}

	c, err := OpenCapture(ALSAConfig{Device: NullDevice})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.dev.(*malgoPCM).dev.Stop(); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := c.Read(ctx)
		if err == nil {
			continue // frames captured before the stop
		}
		if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), `capture "null"`) {
			t.Fatalf("Read: %v, want ErrStopped naming the device", err)
		}
		break
	}
}

func TestALSAList(t *testing.T) {
	useTestALSAConfig(t)
	d, err := List()
	if err != nil {
		t.Fatal(err)
	}
	want := func(list []PCM, name, desc string) {
		t.Helper()
		for _, p := range list {
			if p.Name == name {
				if p.Description != desc {
					t.Errorf("%s: description %q, want %q", name, p.Description, desc)
				}
				return
			}
		}
		t.Errorf("%s not in %+v", name, list)
	}
	want(d.Capture, "callbox_capture", "callbox test capture")
	want(d.Playback, "callbox_playback", "callbox test playback")

	// The system configuration alone, on a machine that may have no sound
	// card: not an error, and no nil lists.
	t.Setenv("ALSA_CONFIG_PATH", "")
	d, err = List()
	if err != nil || d.Capture == nil || d.Playback == nil {
		t.Fatalf("List with the system configuration: %+v, %v", d, err)
	}
}
