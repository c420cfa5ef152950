//go:build linux && cgo

package audio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/gen2brain/malgo"
)

// An ALSA playback PCM must stop once its ring has run dry and zero what it
// has played, so that a late fill leaves silence instead of audio the card
// plays again, and its ring must hold more than is queued; a capture PCM
// keeps miniaudio's parameters. These run
// alsa-lib's file plugin (testdata/asoundrc): no sound card needed. What a
// real card does on an underrun is the HIL rig's audio scenario's to show.
func TestALSAPlaybackStopsOnUnderrun(t *testing.T) {
	useTestALSAConfig(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Setenv("CALLBOX_TEST_OUTFILE", filepath.Join(t.TempDir(), "speaker.raw"))
	const periods = 4
	p, err := OpenPlayback(ALSAConfig{Device: "callbox_playback", Periods: periods, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s := p.dev.(*malgoPCM).params
	t.Logf("%+v", s)
	if !s.seen || s.err != nil {
		t.Fatalf("software parameters: %+v", s)
	}
	// The ring holds playbackRing periods, of which the writer keeps at
	// most periods queued.
	period := uint64(p.Format().FrameSamples())
	if s.period != period || s.buffer != playbackRing*period || s.queued() != periods*period {
		t.Fatalf("period %d, buffer %d, avail_min %d frames (%d queued), want %d, %d, %d queued",
			s.period, s.buffer, s.availMin, s.queued(), period, playbackRing*period, periods*period)
	}
	if s.stop != s.buffer || s.silenceThreshold != 0 || s.boundary == 0 || s.silenceSize != s.boundary || !s.stopsAndZeroes() {
		t.Fatalf("stop threshold %d, silence threshold %d, size %d, boundary %d: want %d (the buffer), 0, the boundary, > 0",
			s.stop, s.silenceThreshold, s.silenceSize, s.boundary, s.buffer)
	}
	if !strings.Contains(logs.String(), "stops on an underrun") || strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("log:\n%s", logs.String())
	}

	// miniaudio starts playback on an empty ring, which a PCM that stops
	// when dry refuses: the hook leaves that start to the start threshold.
	// Each Run starts the device again.
	for run := range 2 {
		before := deferredStarts()
		ctx, cancel := context.WithTimeout(t.Context(), guard)
		fills := 0
		err := p.Run(ctx, func(dst []int16) {
			for i := range dst {
				dst[i] = int16(i + 1)
			}
			if fills++; fills == 10 {
				cancel()
			}
		})
		cancel()
		if err != nil || fills < 10 {
			t.Fatalf("Run %d: %v after %d fills", run, err, fills)
		}
		if got := deferredStarts() - before; got == 0 {
			t.Fatalf("Run %d: the empty playback PCM's start was not deferred", run)
		}
	}
	// A stop may leave its wakeup behind (TestALSAPlaybackRunAfterLateWakeup);
	// the next start clears it.
	t.Logf("wakeups left by a stop and cleared: %d", p.dev.(*malgoPCM).cleared.Load())
	if st := p.Stats(); st.Underruns != 0 {
		t.Fatalf("stats %+v: underruns from a PCM that never runs dry", st)
	}

	t.Setenv("CALLBOX_TEST_INFILE", "/dev/zero")
	c, err := OpenCapture(ALSAConfig{Device: "callbox_capture"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s := c.dev.(*malgoPCM).params; s.seen {
		t.Fatalf("capture PCM got playback parameters: %+v", s)
	}
}

// ma_device_stop marks the device stopping, then writes the eventfd that
// wakes the device thread from poll(); the device thread empties that
// eventfd as it stops. A device thread that has stopped before the write
// leaves the wakeup behind, and the next start met it at its first write:
// the device stopped at once and Run returned ErrStopped after a period
// (TestALSAPlaybackStopsOnUnderrun's second Run did, about once in 50 runs
// on a loaded machine). This test leaves such a wakeup itself, then shows
// that the descriptor the hook found is the one miniaudio polls: a wakeup
// written while the device plays stops it.
func TestALSAPlaybackRunAfterLateWakeup(t *testing.T) {
	useTestALSAConfig(t)
	t.Setenv("CALLBOX_TEST_OUTFILE", filepath.Join(t.TempDir(), "speaker.raw"))
	p, err := OpenPlayback(ALSAConfig{Device: "callbox_playback"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dev := p.dev.(*malgoPCM)
	if dev.wakeup < 0 {
		t.Fatal("the hook did not find miniaudio's wakeup eventfd")
	}
	wake := func() error {
		_, err := syscall.Write(dev.wakeup, binary.NativeEndian.AppendUint64(nil, 1))
		return err
	}
	// run plays up to 10 periods; with wakeAt > 0 it writes a wakeup at
	// that fill, as ma_device_stop would.
	run := func(wakeAt int) (int, error) {
		ctx, cancel := context.WithTimeout(t.Context(), guard)
		defer cancel()
		fills := 0
		var werr error
		err := p.Run(ctx, func(dst []int16) {
			clear(dst)
			if fills++; fills == wakeAt {
				werr = wake()
			}
			if fills == 10 {
				cancel()
			}
		})
		if werr != nil {
			t.Fatalf("writing the wakeup: %v", werr)
		}
		return fills, err
	}

	if err := wake(); err != nil { // what a late stop leaves
		t.Fatal(err)
	}
	for i := range 2 {
		if fills, err := run(0); err != nil || fills < 10 {
			t.Fatalf("Run %d after a wakeup was left: %v after %d fills", i, err, fills)
		}
		// The first start cleared the wakeup left; the second may clear one
		// its own stop left, if that stop lost the race.
		if n := dev.cleared.Load(); i == 0 && n != 1 {
			t.Fatalf("%d wakeups cleared, want 1", n)
		}
	}
	if st := p.Stats(); st.Underruns != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Last: after ErrStopped the playback is to be closed.
	if fills, err := run(3); !errors.Is(err, ErrStopped) {
		t.Fatalf("a wakeup while playing: Run: %v after %d fills, want ErrStopped", err, fills)
	}
}

// malgo keeps the ma_context pointer in an unexported field; contextPointer
// must find it, and the hook must refuse a context whose table no longer
// holds snd_pcm_sw_params, snd_pcm_start and snd_pcm_poll_descriptors
// exactly once (here: already hooked).
func TestPlaybackHook(t *testing.T) {
	useTestALSAConfig(t)
	ctx, err := newContext(DefaultDevice, &maLog{log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx.Uninit()
		ctx.Free()
	}()
	if p := contextPointer(ctx.Context); p == nil || uintptr(p) == uintptr(unsafe.Pointer(&ctx.Context)) {
		t.Fatalf("contextPointer = %p", p)
	}
	if err := playbackHook(ctx); err != nil {
		t.Fatalf("first hook: %v", err)
	}
	if err := playbackHook(ctx); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("second hook: %v, want not found", err)
	}
	if p := contextPointer(malgo.Context{}); p != nil {
		t.Fatalf("contextPointer of a zero Context = %p", p)
	}
}
