package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/internal/backoff"
	"github.com/callbox/callbox/stream/echo"
	"github.com/callbox/callbox/stream/media"
)

// cameraChanged runs in the re-opening camera's goroutine: keep it short.
// The camera's state is a line for people ("ok 640x480 MJPEG 30 fps",
// "down: …; retrying in 2s"); this is the one place that reads it.
func (d *daemon) cameraChanged(state string) {
	switch {
	case strings.HasPrefix(state, "ok"):
		d.panel.setDevice(devCamera, stateUp()) // the chosen format is logged by the camera
	case strings.HasPrefix(state, "down: "):
		d.panel.setDevice(devCamera, stateDown(strings.TrimPrefix(state, "down: ")))
	default:
		d.panel.setDevice(devCamera, stateDown(state))
	}
}

// videoLoop feeds camera frames to the phone.
func (d *daemon) videoLoop(ctx context.Context) {
	if _, ok := d.cam.(*camera.Resilient); !ok {
		d.panel.setDevice(devCamera, stateUp())
	}
	for {
		f, err := d.cam.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.panel.setDevice(devCamera, stateFailed(err))
			d.log.Error("camera stopped", "component", "camera", "err", err)
			return
		}
		d.self.Put(f.JPEG)
		if d.screen != nil {
			d.screen.Self(f.JPEG)
		}
		d.frames.Add(1)
		d.phone.SendVideo(f)
	}
}

func (d *daemon) openMic() (audio.Source, error) {
	f := d.cfg.audioFormat()
	switch d.cfg.Audio.Capture {
	case "sim":
		return audio.NewTestSource(f), nil
	case "silent":
		return audio.NewSilentSource(f), nil
	case "voice":
		return audio.NewVoiceSource(f, d.cfg.voiceSeed())
	case "room":
		return d.room.Microphone(), nil
	}
	return audio.OpenCapture(audio.ALSAConfig{Device: d.cfg.Audio.Capture, Format: f,
		Periods: d.cfg.Audio.Periods, Logger: d.log})
}

type closingSpeaker interface {
	audio.Speaker
	Close() error
}

func (d *daemon) openSpeaker() (closingSpeaker, error) {
	f := d.cfg.audioFormat()
	switch d.cfg.Audio.Playback {
	case "sim", "silent":
		return nopCloser{audio.NewClockedSpeaker(f, d.rec)}, nil
	case "room":
		return nopCloser{d.room.Speaker(d.rec)}, nil
	}
	return audio.OpenPlayback(audio.ALSAConfig{Device: d.cfg.Audio.Playback, Format: f,
		Periods: d.cfg.Audio.Periods, Logger: d.log})
}

// nopCloser gives a simulated speaker, which holds nothing to release, a
// Close.
type nopCloser struct{ audio.Speaker }

func (nopCloser) Close() error { return nil }

// audioLoop feeds the microphone to the phone, through the echo stage
// (echo cancellation, noise suppression, AGC) when there is one. A
// microphone that fails is re-opened with backoff; meanwhile the call goes
// on without our audio.
func (d *daemon) audioLoop(ctx context.Context) {
	el := echoLogger{log: d.log}
	keepOpen(ctx, d.log, "microphone", func(s devState) { d.panel.setDevice(devMic, s) }, func() (func() error, error) {
		mic, err := d.openMic()
		if err != nil {
			return nil, err
		}
		return func() error {
			defer mic.Close()
			for {
				a, err := mic.Read(ctx)
				if err != nil {
					return err
				}
				if d.echo != nil {
					d.echo.Process(a.Samples)
					el.frame(d.echo.Stats())
				}
				d.phone.SendAudio(a)
			}
		}, nil
	})
}

// speakerLoop plays the peer through the playout buffer, re-opening a
// speaker that fails. What the device is handed (after the playout
// buffer, silence included) is the echo stage's reference.
func (d *daemon) speakerLoop(ctx context.Context) {
	fill := func(dst []int16) {
		d.fills.Add(1)
		d.play.Read(dst)
		if d.echo != nil {
			d.echo.Played(dst)
		}
	}
	keepOpen(ctx, d.log, "speaker", func(s devState) { d.panel.setDevice(devSpeaker, s) }, func() (func() error, error) {
		spk, err := d.openSpeaker()
		if err != nil {
			return nil, err
		}
		return func() error {
			defer spk.Close()
			if err := spk.Run(ctx, fill); err != nil {
				return err
			}
			return ctx.Err()
		}, nil
	})
}

// keepOpen opens a device and runs it until ctx ends. When opening or
// running fails it reports the device down and tries again on the backoff
// schedule (0.5 s doubling to 10 s, jittered, from the start again once
// the device has run well for a minute): no busy loop, and a device that
// comes back is used again without a restart.
func keepOpen(ctx context.Context, log *slog.Logger, name string, setState func(devState), open func() (run func() error, err error)) {
	retry := backoff.New(backoff.Policy{})
	for ctx.Err() == nil {
		run, err := open()
		if err == nil {
			setState(stateUp())
			began := time.Now()
			err = run()
			if ctx.Err() != nil {
				return
			}
			retry.Ran(time.Since(began))
		}
		wait := retry.Next()
		setState(stateDown(fmt.Sprintf("%v; retrying in %v", err, wait.Round(100*time.Millisecond))))
		log.Error(name+" down", "component", "audio", "err", err, "retry_in", wait.Round(100*time.Millisecond))
		if backoff.Wait(ctx, wait) != nil {
			return
		}
	}
}

// fitVideo makes the camera capture no larger than the peer asked for
// (its aspect kept) for the call, or at the configured size again (nil).
// A V4L2 camera is re-opened for it (a short gap in our video); the test
// pattern just draws smaller; a file replay stays as it is. It runs in the
// phone's goroutine and does not block.
func (d *daemon) fitVideo(prefer *media.Size) {
	want := d.cfg.videoFormat()
	if prefer != nil {
		s := want.Fit(*prefer)
		want.Width, want.Height = s.Width, s.Height
	}
	switch cam := d.cam.(type) {
	case *camera.Synthetic:
		if cam.Format() == want {
			return
		}
		cam.SetFormat(want)
	case *camera.Resilient:
		cur := d.cfg.videoFormat()
		if f := d.camWant.Load(); f != nil {
			cur = *f
		}
		if cur == want {
			return
		}
		d.camWant.Store(&want)
		cam.Reopen()
	default:
		return
	}
	if prefer != nil {
		d.log.Info("peer prefers smaller video: capturing less for this call", "component", "camera",
			"prefers", fmt.Sprintf("%dx%d", prefer.Width, prefer.Height), "capture", fmt.Sprintf("%dx%d", want.Width, want.Height))
	} else {
		d.log.Info("capturing at the configured size again", "component", "camera", "capture", fmt.Sprintf("%dx%d", want.Width, want.Height))
	}
}

// echoLogger tells the log what the echo stage does: the delay it found
// or moved to, and ducking (the half-duplex fallback), at most once every
// echoLogEvery while it goes on so that a call of ducked phrases is not a
// line per phrase.
type echoLogger struct {
	log        *slog.Logger
	changes    uint64
	ducked     uint64
	lastDuck   time.Time
	lastDuckAt uint64 // DuckedFrames when it was last logged
}

const echoLogEvery = 30 * time.Second

func (l *echoLogger) frame(st echo.Stats) {
	if st.DelayChanges != l.changes {
		l.changes = st.DelayChanges
		what := "echo: speaker-to-microphone delay moved"
		if st.DelayChanges == 1 {
			what = "echo: speaker-to-microphone delay found"
		}
		l.log.Info(what, "component", "audio", "delay_ms", st.Delay.Milliseconds(), "erle_db", math.Round(st.ERLE))
	}
	if st.DuckedFrames != l.ducked {
		l.ducked = st.DuckedFrames
		if now := time.Now(); now.Sub(l.lastDuck) >= echoLogEvery {
			l.log.Warn("echo: ducking the microphone while the far end talks (half duplex): the canceller falls short",
				"component", "audio", "erle_db", math.Round(st.ERLE), "duck_db", math.Round(st.Duck),
				"ducked_frames_since_last", st.DuckedFrames-l.lastDuckAt)
			l.lastDuck, l.lastDuckAt = now, st.DuckedFrames
		}
	}
}
