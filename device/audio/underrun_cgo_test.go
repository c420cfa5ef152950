//go:build linux && cgo

package audio

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
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

// malgo keeps the ma_context pointer in an unexported field; contextPointer
// must find it, and the hook must refuse a context whose table no longer
// holds snd_pcm_sw_params and snd_pcm_start exactly once (here: already
// hooked).
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
