//go:build linux && cgo

package audio

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/gen2brain/malgo"
)

// backendNull is miniaudio's ma_backend_null. malgo.BackendNull is 13,
// which is ma_backend_custom, and fails to initialise.
const backendNull = malgo.Backend(14)

// miniaudio logs these (at debug level) each time it recovers an ALSA xrun.
const (
	logOverrun  = "EPIPE (read)"
	logUnderrun = "EPIPE (write)"
)

// OpenCapture opens and starts the capture PCM cfg.Device in cfg.Format
// (mono or stereo s16, one frame per period). It fails if cfg is invalid,
// libasound2 cannot be loaded, or the PCM cannot be opened in that format;
// errors name the device: `audio: open capture "hw:1,0": ...`.
func OpenCapture(cfg ALSAConfig) (*ALSACapture, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("audio: open capture %q: %w", cfg.Device, err)
	}
	c := newCapture(cfg.Device, cfg.Format, cfg.Logger)
	dev, err := openPCM(malgo.Capture, cfg, c.log, &c.overruns, malgo.DeviceCallbacks{
		Data: func(_, in []byte, _ uint32) { c.push(in) },
		Stop: c.deviceStopped,
	})
	if err != nil {
		return nil, fmt.Errorf("audio: open capture %q: %w", cfg.Device, err)
	}
	c.dev = dev
	if err := c.run(); err != nil {
		dev.close()
		return nil, fmt.Errorf("audio: start capture %q: %w", cfg.Device, err)
	}
	c.log.Info("capture open", "format", fmt.Sprintf("%+v", cfg.Format), "periods", cfg.Periods)
	return c, nil
}

// OpenPlayback opens the playback PCM cfg.Device in cfg.Format; it plays
// while Run runs. Errors are as OpenCapture's:
// `audio: open playback "hw:1,0": ...`.
func OpenPlayback(cfg ALSAConfig) (*ALSAPlayback, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("audio: open playback %q: %w", cfg.Device, err)
	}
	p := newPlayback(cfg.Device, cfg.Format, cfg.Logger)
	dev, err := openPCM(malgo.Playback, cfg, p.log, &p.underruns, malgo.DeviceCallbacks{
		Data: func(out, _ []byte, _ uint32) { p.render(out) },
		Stop: p.deviceStopped,
	})
	if err != nil {
		return nil, fmt.Errorf("audio: open playback %q: %w", cfg.Device, err)
	}
	p.dev = dev
	p.log.Info("playback open", "format", fmt.Sprintf("%+v", cfg.Format), "periods", cfg.Periods)
	return p, nil
}

// malgoPCM is one miniaudio device with a context of its own, so closing it
// frees everything it made.
type malgoPCM struct {
	log *maLog
	ctx *malgo.AllocatedContext
	dev *malgo.Device
	id  *malgo.DeviceID // pinned while the device exists
	pin runtime.Pinner
	// params is what a playback PCM's software parameters became: whether
	// it stops on an underrun and zeroes what it has played.
	params playbackParams
	// wakeup is the eventfd miniaudio wakes a playback PCM's device thread
	// with, emptied before each start; -1 if unknown.
	wakeup  int
	cleared atomic.Uint64 // wakeups left by a stop, emptied before a start
}

var _ pcm = (*malgoPCM)(nil)

// maLog receives one context's miniaudio messages, which carry facts its
// API does not: the xruns it recovered from and why an open failed. It is
// called from the device thread and must not block for long.
type maLog struct {
	log    *slog.Logger
	xruns  *atomic.Uint64 // nil: not counted
	xrun   string         // the message that counts as one xrun
	failed atomic.Pointer[string]
}

func (l *maLog) proc(msg string) {
	msg = strings.TrimSpace(msg)
	switch {
	case l.xruns != nil && strings.Contains(msg, l.xrun):
		l.xruns.Add(1)
	case strings.Contains(strings.ToLower(msg), "failed"):
		l.failed.Store(&msg)
		l.log.Warn("miniaudio: " + msg)
	case strings.HasPrefix(msg, "Loading symbol"): // a hundred lines per open
	default:
		l.log.Debug("miniaudio: " + msg)
	}
}

// explain adds miniaudio's last failure message to err, which is only a
// result code ("Invalid argument").
func (l *maLog) explain(err error) error {
	if m := l.failed.Load(); m != nil {
		return fmt.Errorf("%w (%s)", err, *m)
	}
	return err
}

// newContext makes a context for device's backend: ALSA, or miniaudio's
// null backend for NullDevice.
func newContext(device string, l *maLog) (*malgo.AllocatedContext, error) {
	backends := []malgo.Backend{malgo.BackendAlsa}
	if device == NullDevice {
		backends = []malgo.Backend{backendNull}
	}
	cfg := malgo.ContextConfig{ThreadPriority: malgo.ThreadPriorityHighest}
	// Exact PCM names ("hw:CARD=x,DEV=0"), not miniaudio's ":0,0" shorthand.
	cfg.Alsa.UseVerboseDeviceEnumeration = 1
	ctx, err := malgo.InitContext(backends, cfg, l.proc)
	if err != nil {
		if errors.Is(err, malgo.ErrNoBackend) && device != NullDevice {
			return nil, fmt.Errorf("cannot load libasound.so.2 (apt-get install libasound2): %w", err)
		}
		return nil, l.explain(err)
	}
	return ctx, nil
}

func openPCM(kind malgo.DeviceType, cfg ALSAConfig, log *slog.Logger, xruns *atomic.Uint64, cb malgo.DeviceCallbacks) (*malgoPCM, error) {
	l := &maLog{log: log, xruns: xruns, xrun: logOverrun}
	if kind == malgo.Playback {
		l.xrun = logUnderrun
	}
	ctx, err := newContext(cfg.Device, l)
	if err != nil {
		return nil, err
	}
	p := &malgoPCM{log: l, ctx: ctx, wakeup: -1}
	dc := malgo.DefaultDeviceConfig(kind)
	dc.SampleRate = uint32(cfg.Format.Rate)
	dc.PeriodSizeInFrames = uint32(cfg.Format.FrameSamples())
	dc.Periods = uint32(cfg.Periods)
	dc.PerformanceProfile = malgo.LowLatency
	sub := malgo.SubConfig{Format: malgo.FormatS16, Channels: uint32(cfg.Format.Channels)}
	if cfg.Device != NullDevice {
		// miniaudio passes the id's bytes to snd_pcm_open as the PCM name.
		// The id is Go memory handed to C inside the config, so it must be
		// pinned; DeviceID.Pointer would copy it to C memory never freed.
		p.id = new(malgo.DeviceID)
		copy(p.id[:], cfg.Device)
		p.pin.Pin(p.id)
		sub.DeviceID = unsafe.Pointer(p.id)
	}
	if kind == malgo.Capture {
		dc.Capture = sub
	} else {
		dc.Playback = sub
	}
	// A playback PCM stops when it runs dry and zeroes what it has played,
	// and its ring holds more than is queued (see underrun_cgo.go).
	var params playbackParams
	hooked := false
	if kind == malgo.Playback && cfg.Device != NullDevice {
		if herr := playbackHook(ctx); herr != nil {
			params.err = herr
		} else {
			hooked = true
		}
	}
	if hooked {
		dc.Periods = uint32(max(cfg.Periods, playbackRing))
		p.dev, params, p.wakeup, err = initPlayback(ctx.Context, dc, cb, cfg.Periods)
	} else {
		p.dev, err = malgo.InitDevice(ctx.Context, dc, cb)
	}
	if err != nil {
		p.pin.Unpin()
		ctx.Uninit()
		ctx.Free()
		return nil, l.explain(err)
	}
	p.params = params
	const stale = "cannot make ALSA playback stop on an underrun and zero what it played: an underrun may replay stale audio"
	args := []any{"buffer", params.buffer, "period", params.period, "queued", params.queued(), "avail_min", params.availMin,
		"stop_threshold", params.stop, "silence_threshold", params.silenceThreshold, "silence_size", params.silenceSize, "boundary", params.boundary}
	switch {
	case kind != malgo.Playback || cfg.Device == NullDevice:
	case !hooked:
		log.Warn(stale, "err", params.err)
	case !params.seen:
		log.Warn(stale, "err", "miniaudio did not set the software parameters through snd_pcm_sw_params")
	case params.stopsAndZeroes():
		log.Debug("ALSA playback stops on an underrun and zeroes what it played", args...)
	case params.level == levelMiniaudio:
		log.Warn(stale+"; the whole ring may be queued, adding latency", append([]any{"err", params.err}, args...)...)
	default:
		log.Warn(stale, append([]any{"err", params.err}, args...)...)
	}
	if hooked && p.wakeup < 0 {
		log.Warn("cannot find miniaudio's wakeup descriptor: a Run right after a stop may end at once with the device stopped")
	}
	return p, nil
}

// start starts the device. A playback device first gets the wakeup its
// last stop may have left behind cleared (underrun_cgo.go), lest its thread
// take it for a stop at its first write.
func (p *malgoPCM) start() error {
	if p.wakeup >= 0 {
		switch cleared, err := clearWakeup(p.wakeup); {
		case err != nil:
			p.log.log.Warn("clearing the wakeup of the device thread", "err", err)
		case cleared:
			p.cleared.Add(1)
			p.log.log.Debug("cleared a wakeup the last stop left for the device thread")
		}
	}
	if err := p.dev.Start(); err != nil {
		return p.log.explain(err)
	}
	return nil
}

func (p *malgoPCM) stop() error {
	if !p.dev.IsStarted() {
		return nil
	}
	return p.dev.Stop()
}

func (p *malgoPCM) running() bool { return p.dev.IsStarted() }

func (p *malgoPCM) close() error {
	p.dev.Uninit() // stops it and waits for its thread
	err := p.ctx.Uninit()
	p.ctx.Free()
	p.pin.Unpin()
	return err
}
