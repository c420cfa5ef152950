//go:build linux && cgo

package audio

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"unsafe"

	"github.com/gen2brain/malgo"
)

// An ALSA playback PCM must zero what it has played, so that a late fill
// leaves silence in the ring instead of audio the card plays again; a
// capture PCM keeps miniaudio's parameters.
func TestALSAPlaybackZeroesPlayed(t *testing.T) {
	useTestALSAConfig(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := OpenPlayback(ALSAConfig{Device: "callbox_playback", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s := p.dev.(*malgoPCM).silence
	t.Logf("%+v", s)
	if !s.seen || s.err != nil {
		t.Fatalf("software parameters: %+v", s)
	}
	if s.threshold != 0 || s.boundary == 0 || s.size != s.boundary || !s.zeroes() {
		t.Fatalf("silence threshold %d, size %d, boundary %d: want 0, the boundary, > 0", s.threshold, s.size, s.boundary)
	}
	if !strings.Contains(logs.String(), "ALSA zeroes played audio") || strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("log:\n%s", logs.String())
	}

	t.Setenv("CALLBOX_TEST_INFILE", "/dev/zero")
	c, err := OpenCapture(ALSAConfig{Device: "callbox_capture"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s := c.dev.(*malgoPCM).silence; s.seen {
		t.Fatalf("capture PCM got silence parameters: %+v", s)
	}
}

// malgo keeps the ma_context pointer in an unexported field; contextPointer
// must find it, and the hook must refuse a context whose table no longer
// holds snd_pcm_sw_params exactly once (here: already hooked).
func TestSilenceHook(t *testing.T) {
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
	if err := silenceHook(ctx); err != nil {
		t.Fatalf("first hook: %v", err)
	}
	if err := silenceHook(ctx); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("second hook: %v, want not found", err)
	}
	if p := contextPointer(malgo.Context{}); p != nil {
		t.Fatalf("contextPointer of a zero Context = %p", p)
	}
}
