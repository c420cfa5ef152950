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
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/echo"
	"github.com/callbox/callbox/stream/media"
)

// cameraChanged runs in the re-opening camera's goroutine: keep it short.
// The camera's state is a line for people ("ok 640x480 MJPEG 30 fps",
// "down: …; retrying in 2s", camera.StandbyState); this is the one place
// that reads it.
func (d *daemon) cameraChanged(state string) {
	switch {
	case strings.HasPrefix(state, "ok"):
		d.panel.setDevice(devCamera, stateUp()) // the chosen format is logged by the camera
	case state == camera.StandbyState:
		d.panel.setDevice(devCamera, stateStandby())
	case strings.HasPrefix(state, "down: "):
		d.panel.setDevice(devCamera, stateDown(strings.TrimPrefix(state, "down: ")))
	default:
		d.panel.setDevice(devCamera, stateDown(state))
	}
}

// clockRestarter is a camera that ticks only while read (the test
// pattern, a file replay): after a pause its clock starts again.
type clockRestarter interface{ RestartClock() }

// videoLoop feeds camera frames to the phone while the video gate is
// open (a call, someone watching the self view), and leaves the camera
// closed otherwise: a V4L2 camera stands by (camera.Resilient), the
// simulated and file cameras are simply not read, so none of them wakes
// the daemon.
func (d *daemon) videoLoop(ctx context.Context) {
	res, _ := d.cam.(*camera.Resilient)
	if res == nil {
		d.panel.setDevice(devCamera, stateStandby())
	}
	for {
		if d.video.wait(ctx) != nil {
			return
		}
		actx, stop := d.video.active(ctx)
		if res != nil {
			res.SetActive(true)
		} else {
			if c, ok := d.cam.(clockRestarter); ok {
				c.RestartClock()
			}
			d.panel.setDevice(devCamera, stateUp())
		}
		err := d.readCamera(actx)
		stop()
		if res != nil {
			res.SetActive(false)
		}
		d.resetQuality(time.Now()) // the next call starts at video.quality
		d.self.Put(nil)            // no stale picture of ourselves while the camera is closed
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.panel.setDevice(devCamera, stateFailed(err))
			d.log.Error("camera stopped", "component", "camera", "err", err)
			return
		}
		if res == nil {
			d.panel.setDevice(devCamera, stateStandby())
		}
	}
}

// readCamera hands frames to the phone, the web page and the screen
// until ctx ends (nil) or the camera fails.
func (d *daemon) readCamera(ctx context.Context) error {
	for {
		f, err := d.cam.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		d.self.Put(f.JPEG)
		if d.screen != nil {
			d.screen.Self(f.JPEG)
		}
		d.frames.Add(1)
		d.phone.SendVideo(f)
		d.adaptQuality(time.Now())
	}
}

// initQuality sets up the JPEG quality that follows the link, for a
// camera whose JPEGs we encode (the test pattern, a raw V4L2 format).
func (d *daemon) initQuality() {
	v := d.cfg.Video
	st := control.VideoQuality{Configured: v.Quality, Min: min(v.MinQuality, v.Quality), Quality: v.Quality,
		Reason: whyConfigured + ": video.adaptive_quality is off"}
	if _, ok := d.cam.(camera.QualitySetter); ok && v.AdaptiveQuality {
		d.qctl = newQualityCtl(v.Quality, min(v.MinQuality, v.Quality), v.FPS) // the floor is never above quality
		st.Adjustable, st.Reason = true, d.qctl.why
	}
	d.qstat.Store(&st)
}

// videoQuality is the quality for status: the controller's, unless the
// camera sends its own JPEG (MJPEG, a file replay; a V4L2 camera says
// which once it has opened).
func (d *daemon) videoQuality() control.VideoQuality {
	st := *d.qstat.Load()
	if qs, ok := d.cam.(camera.QualitySetter); !ok || !qs.SetQuality(0) {
		st.Quality, st.Adjustable, st.Reason = 0, false, "the camera's own JPEG, sent untouched"
	}
	return st
}

// adaptQuality lets the controller look at the call once a second and
// sets the camera's quality when it changes. It runs in the video loop,
// after each frame.
func (d *daemon) adaptQuality(now time.Time) {
	if d.qctl == nil || now.Sub(d.qlook) < qualityEvery {
		return
	}
	d.qlook = now
	qs := d.cam.(camera.QualitySetter)
	if !qs.SetQuality(0) {
		return // the camera's own JPEG: nothing to set
	}
	if fps := d.cam.Format().FPS; fps > 0 {
		d.qctl.fps = float64(fps)
	}
	cs := d.phone.Status().Call
	var changed bool
	if cs == nil {
		changed = d.qctl.reset()
		d.qctl.why = whyNoLink
	} else {
		changed = d.qctl.observe(lookAt(now, cs))
	}
	if changed {
		qs.SetQuality(d.qctl.quality())
	}
	d.qlog.note(d.log, now, d.qctl, changed, cs == nil)
	d.storeQuality()
}

// resetQuality goes back to the configured quality: the camera closed,
// and the next call starts there.
func (d *daemon) resetQuality(now time.Time) {
	if d.qctl == nil {
		return
	}
	changed := d.qctl.reset()
	d.qctl.why = whyNoLink
	if changed {
		d.cam.(camera.QualitySetter).SetQuality(d.qctl.quality())
	}
	d.qlog.note(d.log, now, d.qctl, changed, true)
	d.storeQuality()
	d.qlook = time.Time{}
}

// storeQuality publishes the controller's state for status.
func (d *daemon) storeQuality() {
	st := control.VideoQuality{Configured: d.cfg.Video.Quality, Min: d.qctl.levels[len(d.qctl.levels)-1],
		Quality: d.qctl.quality(), Adjustable: true, Reason: d.qctl.why, Changes: d.qlog.changes}
	if old := d.qstat.Load(); old == nil || *old != st {
		d.qstat.Store(&st)
	}
}

func (d *daemon) openMic() (audio.Source, error) {
	f := d.cfg.audioFormat()
	switch d.cfg.Audio.Capture {
	case "sim":
		// The 10 ms test signal whatever frame_ms: the demo's, the tests'
		// and a peer's checks read it with one format.
		return audio.NewTestSourceBlocks(f, media.DefaultAudio.FrameMs), nil
	case "silent":
		return audio.NewSilentSource(f), nil
	case "voice":
		return audio.NewVoiceSource(f, d.cfg.voiceSeed())
	case "room":
		return d.room.Microphone(), nil
	}
	return audio.OpenCapture(audio.ALSAConfig{Device: d.cfg.Audio.Capture, Format: f,
		Periods: d.cfg.Audio.periods(), Logger: d.log})
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
		Periods: d.cfg.Audio.periods(), Logger: d.log})
}

// nopCloser gives a simulated speaker, which holds nothing to release, a
// Close.
type nopCloser struct{ audio.Speaker }

func (nopCloser) Close() error { return nil }

// alsaProbe is the presence check of an ALSA PCM while it stands by; nil
// for the simulated devices, which cannot go away.
func alsaProbe(name string) func() error {
	switch name {
	case "sim", "silent", "voice", "room":
		return nil
	}
	return func() error { return audio.Present(name) }
}

// audioLoop feeds the microphone to the phone, through the echo stage
// (echo cancellation, noise suppression, AGC) when there is one, while
// the audio gate is open. A microphone that fails is re-opened with
// backoff; meanwhile the call goes on without our audio.
func (d *daemon) audioLoop(ctx context.Context) {
	el := echoLogger{log: d.log}
	d.keepOpen(ctx, "microphone", devMic, alsaProbe(d.cfg.Audio.Capture), func() (device, error) {
		mic, err := d.openMic()
		if err != nil {
			return device{}, err
		}
		return device{close: func() { mic.Close() }, run: func(ctx context.Context) error {
			for {
				a, err := mic.Read(ctx)
				if err != nil {
					return err
				}
				d.micFrames.Add(1)
				if d.echo != nil {
					d.echo.Process(a.Samples)
					el.frame(d.echo.Stats())
				}
				d.phone.SendAudio(a)
			}
		}}, nil
	})
}

// speakerLoop plays the peer through the playout buffer while the audio
// gate is open, re-opening a speaker that fails. Each period first reads
// the peer's audio datagrams that arrived since the last one
// (Phone.PumpDatagrams): a call's incoming audio then costs the box no
// wake-up of its own. What the device is handed (after the playout
// buffer, silence included) is the echo stage's reference.
func (d *daemon) speakerLoop(ctx context.Context) {
	fill := func(dst []int16) {
		d.fills.Add(1)
		d.phone.PumpDatagrams()
		d.play.Read(dst)
		if d.echo != nil {
			d.echo.Played(dst)
		}
	}
	d.keepOpen(ctx, "speaker", devSpeaker, alsaProbe(d.cfg.Audio.Playback), func() (device, error) {
		spk, err := d.openSpeaker()
		if err != nil {
			return device{}, err
		}
		return device{close: func() { spk.Close() }, run: func(ctx context.Context) error {
			if err := spk.Run(ctx, fill); err != nil {
				return err
			}
			return ctx.Err()
		}}, nil
	})
}

// device is an open microphone or speaker: run uses it until ctx ends or
// it fails; close releases it.
type device struct {
	run   func(ctx context.Context) error
	close func()
}

// keepOpen keeps an audio device open while the audio gate is open, and
// closed (standing by) while it is shut. It opens it once at start to
// check it, closing it again at once when nobody needs it. When opening
// or running fails it reports the device down and tries again on the
// backoff schedule (0.5 s doubling to 10 s, jittered, from the start
// again once the device has run well for a minute), gate or no gate: no
// busy loop, and a device that comes back is used again without a
// restart. While it stands by, probe (if not nil) checks every
// probeEvery that it is still there. Every time the device starts
// running, the echo stage starts over: it lines the microphone up with
// the speaker by counting samples from a common start.
func (d *daemon) keepOpen(ctx context.Context, name string, dev int, probe func() error, open func() (device, error)) {
	setState := func(s devState) { d.panel.setDevice(dev, s) }
	retry := backoff.New(backoff.Policy{})
	healthy := false // the last open worked and nothing failed since
	fail := func(err error) bool {
		healthy = false
		wait := retry.Next()
		setState(stateDown(fmt.Sprintf("%v; retrying in %v", err, wait.Round(100*time.Millisecond))))
		d.log.Error(name+" down", "component", "audio", "err", err, "retry_in", wait.Round(100*time.Millisecond))
		return backoff.Wait(ctx, wait) == nil
	}
	for ctx.Err() == nil {
		if healthy {
			setState(stateStandby())
			if err := d.standBy(ctx, probe); err != nil {
				if ctx.Err() != nil || !fail(err) {
					return
				}
				continue
			}
		}
		dv, err := open()
		if err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		healthy = true
		actx, stop := d.audio.active(ctx)
		if actx.Err() != nil { // nobody needs it: that was the check
			stop()
			dv.close()
			setState(stateUp())
			continue
		}
		setState(stateUp())
		if d.echo != nil {
			d.echo.Restart()
		}
		began := time.Now()
		err = dv.run(actx)
		stop()
		dv.close()
		if ctx.Err() != nil {
			return
		}
		if actx.Err() != nil {
			continue // the gate shut: stand by
		}
		retry.Ran(time.Since(began))
		if !fail(err) {
			return
		}
	}
}

// standBy waits until the audio gate opens (nil), ctx ends, or probe
// says the device is gone (its error).
func (d *daemon) standBy(ctx context.Context, probe func() error) error {
	var tick <-chan time.Time
	if probe != nil {
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		on, opened := d.audio.state()
		if on {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-opened:
		case <-tick:
			if err := probe(); err != nil {
				return err
			}
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
