package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/test/hil/guest"
	"github.com/callbox/callbox/test/hil/rig"
)

func scenarios() []scenario {
	return []scenario{
		{"button-call", "amd64", "gpio-sim lines named like a Pi's: pull the button → call to the host peer, LED pattern, press again → hangup", buttonCall},
		{"camera-mjpeg", "amd64", "v4l2loopback MJPEG camera: every frame the guest sent reaches the host peer, decodable, in order; ≥ 1/3 of the feed", cameraMJPEG},
		{"camera-yuyv", "amd64", "vivid YUYV camera encoded in the guest: decodable frames of the configured size", cameraYUYV},
		{"audio", "amd64", "snd-aloop both ways: test signal in at the guest's microphone and out of its speaker, checked sample by sample", audioBothWays},
		{"echo", "amd64", "snd-aloop as a room: the guest's speaker heard at its microphone, near-end speech mixed in; ERLE ≥ 20 dB at the host peer, the near end reaches it", echoCall},
		{"camera-unplug", "amd64", "v4l2loopback removed mid-call: the call goes on audio-only, video resumes after re-adding it, no restart", cameraUnplug},
		{"door", "amd64", "gpio-sim door line: the host peer in a call asks the guest to open; the line pulses for pulse_s, requests during it and inside the gap are refused", doorCall},
		{"screen", "amd64", "QEMU's VGA as /dev/fb0 (bochs DRM, fbdev emulation): idle text, the host's frames letterboxed with the self-view, grabbed with screendump", screenCall},
		{"arm64", "arm64", "button-call with the arm64 build on qemu-system-aarch64 -M virt -cpu cortex-a72", buttonCall},
		{"arm64-echo", "arm64", "echo with the arm64 build on qemu-system-aarch64 (its clock following its instructions, like echo's)", echoCall},
		{"arm64-camera-mjpeg", "arm64", "camera-mjpeg with the arm64 build, fed at 15 fps (an emulated Cortex-A72 is slower than a Pi's)", cameraMJPEG},
	}
}

// Pi-like lines: the button on GPIO17, the LED on GPIO27 (systemd/callbox.toml).
const (
	buttonLine = "GPIO17"
	ledLine    = "GPIO27"
)

// simAV is a guest config with the daemon's own test camera and audio (no
// device drivers), kept small so a TCG guest spends little on it.
const simAV = `[video]
device = "sim"
width = 320
height = 240
fps = 10
precomputed = 4
[audio]
capture = "sim"
playback = "sim"
`

// sample reads the LED line for ms.
func (s *session) sampleLED(ctx context.Context, ms int) (rig.Blink, error) {
	var res guest.Samples
	err := s.agent.Post(ctx, "/v1/gpio/sample", guest.Sample{Line: ledLine, Ms: ms, EveryMs: 5}, &res)
	return rig.BlinkOf(res), err
}

func (s *session) press(ctx context.Context) error {
	return s.agent.Post(ctx, "/v1/gpio/press", guest.Press{Line: buttonLine, HoldMs: 200}, nil)
}

func buttonCall(ctx context.Context, s *session) error {
	err := s.setup(ctx, guestSpec{
		modules: []string{"configfs", "gpio-sim"},
		gpio:    true,
		// Debug logging shows the guest's dial attempts (dialRace).
		config: "log_level = \"debug\"\n" + simAV + fmt.Sprintf(`[gpio]
button = %q
led = %q
`, buttonLine, ledLine),
		// The host rings instead of answering, so the guest's LED shows
		// the calling pattern until the host's button is pressed.
		host: testbox.Options{AutoAnswer: false},
	})
	if err != nil {
		return err
	}
	if _, err := s.startDaemon(ctx, "button and LED lines open, idle", func(st control.Status) bool {
		return devicesOK(st) && st.LED == "off" && st.Phone.State.String() == "idle"
	}); err != nil {
		return err
	}
	b, err := s.sampleLED(ctx, 600)
	if err != nil {
		return err
	}
	if !b.Steady(false) {
		return fmt.Errorf("idle LED line: %v, want steady off", b)
	}
	s.figure("idle: LED line %v", b)

	// Press: the call goes out to the host, which rings.
	if err := s.press(ctx); err != nil {
		return err
	}
	released := time.Now()
	if _, err := s.host.WaitState(ctx, "ringing", 20*time.Second); err != nil {
		gs, _ := s.agent.Status(ctx)
		return fmt.Errorf("after the button press: %w; guest: state %q, last end %q", err, gs.Phone.State, gs.Phone.LastEnd)
	}
	ring := time.Since(released)
	s.figure("button released → host peer ringing in %.0f ms (goal ≤ %.0f ms)", msOf(ring), msOf(ringGoal))
	if at := s.dialAttempts(ctx); at != "" {
		s.figure("guest's dial: %s", at)
	}
	if ring > ringGoal {
		return fmt.Errorf("button released → host peer ringing took %.0f ms, want ≤ %.0f ms (the guest's mDNS hears no answer here: the known address must not wait for it)", msOf(ring), msOf(ringGoal))
	}
	st, err := s.agent.Status(ctx)
	if err != nil {
		return err
	}
	if st.Phone.State.String() != "calling" || st.LED != "fast-blink" {
		return fmt.Errorf("guest while the host rings: state %q, LED %q; want calling, fast-blink", st.Phone.State, st.LED)
	}
	// 2 s, and up to two more 2 s windows while fewer than 5 on and 5
	// off times were seen (a starved guest blinks and samples less).
	b, err = s.sampleLED(ctx, 2000)
	for w := 1; err == nil && w < 3 && (len(b.On) < 5 || len(b.Off) < 5); w++ {
		var more rig.Blink
		more, err = s.sampleLED(ctx, 2000)
		b = b.Join(more)
	}
	if err != nil {
		return err
	}
	s.figure("calling: LED line %v", b)
	// FastBlink is 125 ms on, 125 ms off. The medians tell the pattern;
	// single times, sampled inside an emulated guest, jitter with its
	// scheduling (see rig.Blink.Blinks).
	if !b.Blinks(125, 20, 75, 600, 3) {
		return fmt.Errorf("calling: LED line %v; want 125 ms on and off (medians 105..200 ms, none over 600 ms), at least 3 of each", b)
	}

	// The host answers: in call, LED steady on.
	if err := s.host.Press(ctx); err != nil {
		return err
	}
	if _, err := s.host.WaitState(ctx, "in call", 10*time.Second); err != nil {
		return err
	}
	if _, err := s.agent.WaitStatus(ctx, 10*time.Second, "in call, LED on", func(st control.Status) bool {
		return st.Phone.State.String() == "in call" && st.LED == "on"
	}); err != nil {
		return err
	}
	// The daemon reports the pattern as soon as it is set; the line
	// follows from the blinker's goroutine a moment later.
	if b, err = s.sampleLED(ctx, 1000); err != nil {
		return err
	}
	if !b.Settled(true, 100) {
		return fmt.Errorf("in call: LED line %v, want on (within 100 ms) and steady", b)
	}
	s.figure("in call: LED line %v", b)
	// Audio and video flow: 3 s, and longer (up to 30 s) until the host
	// peer has 100 audio and 5 video frames from the guest (a guest
	// starved by a busy machine sends at a fraction of real time).
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	flowing := time.Now()
	for {
		hs, err := s.host.Status(ctx)
		if err != nil {
			return err
		}
		c := hs.Phone.Call
		if c == nil {
			return fmt.Errorf("host peer left the call: %q", hs.Phone.LastEnd)
		}
		if c.In.AudioFrames >= 100 && c.In.VideoFrames >= 5 {
			s.figure("host peer received %d audio and %d video frames from the guest (session %.1fs, ringing included)", c.In.AudioFrames, c.In.VideoFrames, c.Seconds)
			break
		}
		if time.Since(flowing) > 30*time.Second {
			return fmt.Errorf("host peer in call: %+v; want the guest's audio and video (100 and 5 frames)", c)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}

	// Press again: hangup, LED off.
	if err := s.press(ctx); err != nil {
		return err
	}
	released = time.Now()
	hs, err := s.host.WaitState(ctx, "idle", 10*time.Second)
	if err != nil {
		return fmt.Errorf("after the second press: %w", err)
	}
	s.figure("second press → host peer idle in %.0f ms (%q)", float64(time.Since(released).Microseconds())/1000, hs.Phone.LastEnd)
	if !strings.Contains(hs.Phone.LastEnd, guestName+" hung up") {
		return fmt.Errorf("host peer's last call ended with %q, want %q", hs.Phone.LastEnd, guestName+" hung up")
	}
	if _, err := s.agent.WaitStatus(ctx, 10*time.Second, "idle, LED off", func(st control.Status) bool {
		return st.Phone.State.String() == "idle" && st.LED == "off"
	}); err != nil {
		return err
	}
	if b, err = s.sampleLED(ctx, 600); err != nil {
		return err
	}
	if !b.Settled(false, 100) {
		return fmt.Errorf("after hangup: LED line %v, want off (within 100 ms) and steady", b)
	}
	s.figure("after hangup: LED line %v", b)
	return s.daemonUnchanged(ctx)
}

// ringGoal bounds button released → host peer ringing in button-call
// and arm64 (issue 15). The guest's mDNS hears no answer in QEMU's user
// network, as on Wi-Fi that filters multicast: the dial must not wait
// for it. The goal on a Pi, with a known address that works, is 300 ms;
// an emulated CPU makes the guest's TLS handshake, debounce and status
// many times slower, and the rig's figure includes its own polling.
const ringGoal = time.Second

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// dialAttempts is what the guest daemon's debug log says of its last
// call's dial: each address with its source, outcome, start and
// duration ("10.0.2.2:41235 (configured) connected at +0 ms in 181 ms").
// Empty if the log has none.
func (s *session) dialAttempts(ctx context.Context) string {
	var log []byte
	if err := s.agent.Get(ctx, "/v1/daemon/log", &log); err != nil {
		return ""
	}
	var out []string
	for _, line := range strings.Split(string(log), "\n") {
		if !strings.Contains(line, `msg="dial attempt"`) {
			continue
		}
		f := logFields(line)
		at, _ := strconv.ParseFloat(f["started_ms"], 64)
		took, _ := strconv.ParseFloat(f["took_ms"], 64)
		out = append(out, fmt.Sprintf("%s (%s) %s at +%.0f ms in %.0f ms", f["address"], f["source"], f["outcome"], at, took))
	}
	return strings.Join(out, "; ")
}

// logFields reads the key=value pairs of a log/slog text line.
func logFields(line string) map[string]string {
	f := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			break
		}
		k, rest := line[:eq], line[eq+1:]
		if strings.HasPrefix(rest, `"`) {
			if v, err := strconv.QuotedPrefix(rest); err == nil {
				f[k], _ = strconv.Unquote(v)
				line = rest[len(v):]
				continue
			}
		}
		end := strings.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		f[k], line = rest[:end], rest[end:]
	}
	return f
}

// loopback is the v4l2loopback camera: /dev/video10, announcing capture
// only while a writer feeds it, like a USB camera that is there or not.
const loopback = "v4l2loopback video_nr=10 exclusive_caps=1 card_label=callbox-loop"

var feed = guest.Video{Device: "/dev/video10", Width: 640, Height: 480, FPS: 30, Precomputed: 10}

// loopbackCall boots the guest with the v4l2loopback camera fed with
// feed, starts its daemon on that camera (more [video] keys in video) and
// has the host peer, which records the video, call it.
func loopbackCall(ctx context.Context, s *session, feed guest.Video, video string) error {
	err := s.setup(ctx, guestSpec{
		modules: []string{loopback},
		config: fmt.Sprintf(`[video]
device = "/dev/video10"
width = %d
height = %d
fps = %d
%s[audio]
capture = "sim"
playback = "sim"
`, feed.Width, feed.Height, feed.FPS, video),
		host: testbox.Options{AutoAnswer: true, RecordVideo: true},
	})
	if err != nil {
		return err
	}
	if err := s.agent.Post(ctx, "/v1/video/start", feed, nil); err != nil {
		return err
	}
	if _, err := s.startDaemon(ctx, "v4l2loopback camera streaming", devicesOK); err != nil {
		return err
	}
	return s.hostCall(ctx)
}

// feedFor is the loopback camera's feed for the scenario's guest.
func feedFor(s *session) guest.Video {
	feed := feed
	switch {
	case s.sc.arch == "arm64":
		// qemu-system-aarch64 on an x86 machine emulates a CPU much slower
		// than a Pi 4's; at 30 fps the guest's TLS alone saturates it.
		feed.FPS = 15
	case s.env.accel == "tcg":
		// Emulated x86 (no KVM) on a 2-core host that also runs the host
		// peer: at 30 fps the guest's CPU is the bottleneck.
		feed.FPS = 20
	}
	return feed
}

func cameraMJPEG(ctx context.Context, s *session) error {
	feed := feedFor(s)
	if err := loopbackCall(ctx, s, feed, ""); err != nil {
		return err
	}
	if err := sleep(ctx, 10*time.Second); err != nil {
		return err
	}
	vc, err := s.videoCheckpoint(ctx)
	if err != nil {
		return err
	}
	hs, err := s.hostHangup(ctx)
	if err != nil {
		return err
	}
	var fed guest.Fed
	if err := s.agent.Post(ctx, "/v1/video/stop", nil, &fed); err != nil {
		return err
	}
	if fed.Errors > 0 {
		return fmt.Errorf("feeding the camera: %d write errors, last %s", fed.Errors, fed.LastErr)
	}
	s.figure("fed %d frames in %.1fs (%.1f fps) to /dev/video10", len(fed.Numbers), fed.Ms/1000, float64(len(fed.Numbers))*1000/fed.Ms)
	v, err := checkVideo(s.host.VideoRecording(), 640, 480)
	if err != nil {
		return err
	}
	if len(v.numbers) != v.frames {
		return fmt.Errorf("%d of the %d recorded frames carry no frame number: not the fed JPEGs", v.frames-len(v.numbers), v.frames)
	}
	// The frames fed while the call ran: between the first and the last
	// one recorded.
	lo, hi := slices.Min(v.numbers), slices.Max(v.numbers)
	for _, n := range fed.Numbers {
		if n >= lo && n <= hi {
			vc.Fed++
		}
	}
	// A third: on a quiet 2-core machine 86-90 % of the feed arrives, with
	// the same machine busy compiling 59 %; the rest the guest's capture
	// skipped or replaced (latest wins) before it could send them, as a
	// starved CPU does. A pipeline that stalls or sends a frame now and
	// then falls below a third.
	vc.MinShare = 1.0 / 3
	return s.judgeVideo(ctx, vc, v, hs)
}

// videoCheckpoint notes how many frames the guest has sent so far in the
// call and waits (up to 20 s) until the host peer has received as many:
// whatever the emulator's speed, every frame sent must arrive.
func (s *session) videoCheckpoint(ctx context.Context) (rig.VideoCounts, error) {
	var vc rig.VideoCounts
	gs, err := s.agent.Status(ctx)
	if err != nil {
		return vc, err
	}
	if gs.Phone.Call == nil {
		return vc, fmt.Errorf("guest not in a call at the checkpoint: state %q, last end %q", gs.Phone.State, gs.Phone.LastEnd)
	}
	vc.SentAt = int(gs.Phone.Call.Out.VideoFrames)
	t := time.Now()
	for {
		hs, err := s.host.Status(ctx)
		if err != nil {
			return vc, err
		}
		if hs.Phone.Call == nil {
			return vc, fmt.Errorf("host peer left the call at the checkpoint: %q", hs.Phone.LastEnd)
		}
		vc.ArrivedBy = int(hs.Phone.Call.In.VideoFrames)
		if vc.ArrivedBy >= vc.SentAt {
			s.figure("checkpoint: the guest had sent %d frames, the host peer had received them all %.0f ms later", vc.SentAt, float64(time.Since(t).Microseconds())/1000)
			return vc, nil
		}
		if time.Since(t) > 20*time.Second {
			s.figure("checkpoint: the guest had sent %d frames, the host peer received %d of them in 20s", vc.SentAt, vc.ArrivedBy)
			return vc, nil // Check fails it
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return vc, err
		}
	}
}

// judgeVideo completes vc with the call's end counts (hs: the host
// peer's status after the hangup) and the recording v, reports them and
// applies rig.VideoCounts.Check.
func (s *session) judgeVideo(ctx context.Context, vc rig.VideoCounts, v video, hs control.Status) error {
	c := hs.Phone.LastCall
	vc.Received, vc.SinkDrops = int(c.In.VideoFrames), int(c.In.VideoSinkDrops)
	vc.Recorded, vc.Numbers = v.frames, v.numbers
	o := rig.OrderOf(v.numbers)
	s.figure("host peer received %d frames in %.1fs (%.1f fps), %d replaced before its sink took them, recorded %d, all decodable %dx%d; in-call latency p50 %.0f ms p99 %.0f ms",
		vc.Received, c.Seconds, float64(vc.Received)/c.Seconds, vc.SinkDrops, vc.Recorded, v.width, v.height, c.In.VideoLatAll.P50, c.In.VideoLatAll.P99)
	if vc.Fed > 0 {
		s.figure("recorded %d of the %d frames fed during the call (%.1f%%), %d backwards, %d repeated",
			o.Distinct, vc.Fed, 100*vc.Share(), o.Backwards, o.Repeats)
	}
	// Where the others went: skipped by the guest's capture, or replaced
	// in its latest-wins video queue before they could be sent (a starved
	// guest CPU).
	if gs, err := s.agent.Status(ctx); err == nil && gs.Phone.LastCall != nil {
		out := gs.Phone.LastCall.Out
		s.figure("guest sent %d frames, replaced %d unsent ones (latest wins)", out.VideoFrames, out.VideoDrops)
	}
	if err := vc.Check(); err != nil {
		return err
	}
	return s.daemonUnchanged(ctx)
}

func cameraYUYV(ctx context.Context, s *session) error {
	err := s.setup(ctx, guestSpec{
		modules: []string{"vivid n_devs=1 node_types=0x1"},
		config: `[video]
device = "/dev/video0"
width = 640
height = 480
fps = 30
quality = 75
[audio]
capture = "sim"
playback = "sim"
`,
		host: testbox.Options{AutoAnswer: true, RecordVideo: true},
	})
	if err != nil {
		return err
	}
	if _, err := s.startDaemon(ctx, "vivid camera streaming", devicesOK); err != nil {
		return err
	}
	if err := s.hostCall(ctx); err != nil {
		return err
	}
	// The guest encodes 640x480 itself: 1-5 fps under TCG, depending on
	// what else the machine runs. The call lasts 8 s, and longer (up to
	// 60 s) until the host peer has 10 frames, so the recording always
	// holds enough frames to judge.
	began := time.Now()
	if err := sleep(ctx, 8*time.Second); err != nil {
		return err
	}
	for {
		hs, err := s.host.Status(ctx)
		if err != nil {
			return err
		}
		if hs.Phone.Call == nil {
			return fmt.Errorf("host peer left the call: %q", hs.Phone.LastEnd)
		}
		if hs.Phone.Call.In.VideoFrames >= 10 {
			break
		}
		if time.Since(began) > 60*time.Second {
			return fmt.Errorf("host peer received %d frames in 60s of call, want 10", hs.Phone.Call.In.VideoFrames)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	vc, err := s.videoCheckpoint(ctx)
	if err != nil {
		return err
	}
	hs, err := s.hostHangup(ctx)
	if err != nil {
		return err
	}
	v, err := checkVideo(s.host.VideoRecording(), 640, 480)
	if err != nil {
		return err
	}
	// vivid's frames carry no numbers: no share of a feed, only that the
	// guest's frames all arrive, decode and were recorded.
	return s.judgeVideo(ctx, vc, v, hs)
}

// video is what checkVideo found in a recording.
type video struct {
	frames        int
	width, height int
	numbers       []uint32 // frame numbers, where frames carry them
}

// checkVideo decodes every frame of an MJPEG recording and requires the
// given size.
func checkVideo(path string, w, h int) (video, error) {
	frames, err := camera.ReadMJPEG(path)
	if err != nil {
		return video{}, err
	}
	v := video{frames: len(frames), width: w, height: h}
	for i, f := range frames {
		img, err := jpeg.Decode(bytes.NewReader(f))
		if err != nil {
			return v, fmt.Errorf("frame %d of %d does not decode: %w", i, len(frames), err)
		}
		if sz := img.Bounds().Size(); sz.X != w || sz.Y != h {
			return v, fmt.Errorf("frame %d is %dx%d, want %dx%d", i, sz.X, sz.Y, w, h)
		}
		if n, ok := camera.FrameNumber(f); ok {
			v.numbers = append(v.numbers, n)
		}
	}
	if len(frames) == 0 {
		return v, errors.New("no frames recorded")
	}
	return v, nil
}

// The guest's sound card: snd-aloop. What is played on device 0
// substream N is captured on device 1 substream N, and the other way.
const (
	micFeed    = "hw:Loopback,0,0" // the agent plays the test signal here ...
	micPCM     = "hw:Loopback,1,0" // ... and the daemon's microphone captures it
	speakerPCM = "hw:Loopback,0,1" // the daemon's speaker ...
	speakerTap = "hw:Loopback,1,1" // ... and the agent records it here
)

// audioFrameMs is both daemons' audio.frame_ms in audioBothWays (the
// default, set in both configs so that the figures below stay right if
// the default moves): PCM frames and playout frames are this long. The
// test signal is the 10 ms one (media.DefaultAudio) either way: the
// guest's feed plays it, and a daemon's simulated microphone sends it
// whatever its frame.
const audioFrameMs = 20

func audioBothWays(ctx context.Context, s *session) error {
	err := s.setup(ctx, guestSpec{
		modules: []string{"snd-aloop"},
		config: fmt.Sprintf(`[video]
device = "sim"
width = 320
height = 240
fps = 5
precomputed = 2
[audio]
capture = %q
playback = %q
frame_ms = %d
# The test signal is checked sample for sample at the other end: PCM on
# the wire (Opus is lossy), and none of the microphone's processing (the
# echo scenario's subject), which would reshape it.
codec = "pcm"
echo_cancel = false
echo_suppress = false
noise_suppress = false
agc = false
duck = false
`, micPCM, speakerPCM, audioFrameMs),
		host: testbox.Options{AutoAnswer: true, RecordAudio: true, Extra: fmt.Sprintf("[audio]\nframe_ms = %d\n", audioFrameMs)},
	})
	if err != nil {
		return err
	}
	if _, err := s.startDaemon(ctx, "ALSA loopback microphone and speaker open", devicesOK); err != nil {
		return err
	}
	f := media.DefaultAudio
	au := func(dev string) guest.Audio {
		return guest.Audio{Device: dev, Rate: f.Rate, Channels: f.Channels, FrameMs: f.FrameMs}
	}
	if err := s.agent.Post(ctx, "/v1/audio/record/start", au(speakerTap), nil); err != nil {
		return err
	}
	if err := s.agent.Post(ctx, "/v1/audio/play/start", au(micFeed), nil); err != nil {
		return err
	}
	if err := s.hostCall(ctx); err != nil {
		return err
	}
	// The call lasts 8 s, and longer (up to 60 s) until each daemon has
	// received 3 s of the other's audio: a guest starved by a busy machine
	// captures and reads less than real time (20-45 % seen), and the rule
	// below needs enough audio to judge.
	began := time.Now()
	if err := sleep(ctx, 8*time.Second); err != nil {
		return err
	}
	const enough = 3000 // ms of audio received each way
	for {
		hs, err := s.host.Status(ctx)
		if err != nil {
			return err
		}
		gs, err := s.agent.Status(ctx)
		if err != nil {
			return err
		}
		if hs.Phone.Call == nil || gs.Phone.Call == nil {
			return fmt.Errorf("a daemon left the call: host peer %q, guest %q", hs.Phone.LastEnd, gs.Phone.LastEnd)
		}
		up, down := int(hs.Phone.Call.In.AudioFrames)*audioFrameMs, int(gs.Phone.Call.In.AudioFrames)*audioFrameMs
		if up >= enough && down >= enough {
			break
		}
		if time.Since(began) > 60*time.Second {
			return fmt.Errorf("in 60s of call the host peer received %d ms of the guest's audio and the guest %d ms of the host's, want %d ms each", up, down, enough)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	hs, err := s.hostHangup(ctx)
	if err != nil {
		return err
	}
	var played guest.Played
	if err := s.agent.Post(ctx, "/v1/audio/play/stop", nil, &played); err != nil {
		return err
	}
	var raw []byte
	if err := s.agent.Post(ctx, "/v1/audio/record/stop", nil, &raw); err != nil {
		return err
	}
	if played.Err != "" {
		return fmt.Errorf("feeding the microphone: %s", played.Err)
	}
	c := hs.Phone.LastCall
	// Both daemons' counts: what the guest sent and received, what the
	// host peer received, and the two playout buffers.
	gs, err := s.agent.Status(ctx)
	if err != nil {
		return err
	}
	if gc := gs.Phone.LastCall; gc != nil {
		s.figure("in the %.1fs call the guest sent %d audio frames (%d dropped from a full queue), the host peer received %d (%d gaps); the host peer sent %d, the guest received %d (%d gaps)",
			c.Seconds, gc.Out.AudioFrames, gc.Out.AudioDrops, c.In.AudioFrames, c.In.AudioDrops, c.Out.AudioFrames, gc.In.AudioFrames, gc.In.AudioDrops)
	}
	s.figure("playout: host peer %+v; guest %+v", hs.Playout, gs.Playout)
	// Guest microphone → host speaker.
	hostPlayed, err := audio.ReadRecording(s.host.AudioRecording())
	if err != nil {
		return err
	}
	up := rig.CheckStream(f, hostPlayed)
	s.figure("guest microphone (aplay into %s, %d test frames) → host peer's speaker: %v; latency p50 %.0f ms p99 %.0f ms",
		micFeed, played.Frames, up, c.In.AudioLatAll.P50, c.In.AudioLatAll.P99)
	// Host test signal → guest speaker.
	down := rig.CheckStream(f, s16(raw))
	s.figure("host test signal → guest speaker (arecord from %s): %v", speakerTap, down)
	// Both ways: nothing but the test signal and silence, in order, and
	// no replay of a sound card's stale ring (rig.AudioRule: the guest's
	// speaker must play silence when the daemon's fill is late), and 90 %
	// of what the receiving playout buffer played good (what is missing
	// are fade-ins after underruns; see test/hil/README.md). Audio lost on
	// the way (a capture overrun, a late packet) is counted, not failed.
	frameMs := float64(audioFrameMs)
	for _, d := range []struct {
		name     string
		r        rig.StreamReport
		playedMs float64
		rule     rig.AudioRule
	}{
		{"guest → host", up, float64(hs.Playout.Played) * frameMs, rig.AudioRule{MinShare: 0.9}},
		{"host → guest", down, float64(gs.Playout.Played) * frameMs, rig.AudioRule{MinShare: 0.9}},
	} {
		s.figure("%s: %.0f ms good of the %.0f ms its receiver's playout played", d.name, d.r.GoodMs, d.playedMs)
		if err := d.rule.Check(d.r, d.playedMs); err != nil {
			// Keep both recordings next to the console log.
			out := filepath.Join(s.env.out, s.sc.name)
			os.WriteFile(out+".guest-speaker.s16", raw, 0o644)
			if b, err := os.ReadFile(s.host.AudioRecording()); err == nil {
				os.WriteFile(out+".host-speaker.s16", b, 0o644)
			}
			return fmt.Errorf("%s: %v (bad at samples %v): %w; recordings kept in %s.*.s16",
				d.name, d.r, d.r.BadAt, err, out)
		}
	}
	return s.daemonUnchanged(ctx)
}

func s16(b []byte) []int16 {
	out := make([]int16, len(b)/2)
	for i := range out {
		out[i] = int16(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
	}
	return out
}

func cameraUnplug(ctx context.Context, s *session) error {
	feed := feedFor(s)
	if err := loopbackCall(ctx, s, feed, "stall_ms = 1000\n"); err != nil {
		return err
	}
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	// Unplug: the writer goes away and the device is removed. rmmod
	// succeeds once the daemon has let go of the node (it sees no frame
	// for stall_ms and closes it).
	var fed1 guest.Fed
	if err := s.agent.Post(ctx, "/v1/video/stop", nil, &fed1); err != nil {
		return err
	}
	unplugged := time.Now()
	for {
		r, err := s.agent.Exec(ctx, "rmmod", "v4l2loopback")
		if err != nil {
			return err
		}
		if r.Code == 0 {
			break
		}
		if time.Since(unplugged) > 30*time.Second {
			return fmt.Errorf("rmmod v4l2loopback still fails after 30s: %s", r.Output)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	s.figure("camera unplugged: feed stopped, v4l2loopback removed %.1fs later", time.Since(unplugged).Seconds())
	st, err := s.agent.WaitStatus(ctx, 15*time.Second, "camera down", func(st control.Status) bool {
		return strings.Contains(st.Camera, "down")
	})
	if err != nil {
		return err
	}
	s.figure("guest camera state: %s", st.Camera)
	before, err := s.host.Status(ctx)
	if err != nil {
		return err
	}
	down := time.Now()
	// Audio only: 3 s, and longer (up to 30 s) until 2 s of audio (200
	// frames) arrived, since a starved guest sends at a fraction of real
	// time; no video throughout.
	if before.Phone.Call == nil {
		return fmt.Errorf("host peer after the unplug: state %q, want in call", before.Phone.State)
	}
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	var da, dv uint64
	for {
		after, err := s.host.Status(ctx)
		if err != nil {
			return err
		}
		if after.Phone.Call == nil {
			return fmt.Errorf("host peer after the unplug: state %q, want in call", after.Phone.State)
		}
		dv = after.Phone.Call.In.VideoFrames - before.Phone.Call.In.VideoFrames
		da = after.Phone.Call.In.AudioFrames - before.Phone.Call.In.AudioFrames
		if da >= 200 || dv != 0 || time.Since(down) > 30*time.Second {
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	s.figure("while unplugged, %.1fs: host peer received %d audio and %d video frames", time.Since(down).Seconds(), da, dv)
	if dv != 0 || da < 200 {
		return fmt.Errorf("while unplugged the host peer received %d audio and %d video frames; want audio only (≥ 200 within 30s)", da, dv)
	}

	// Plug it back.
	r, err := s.agent.Exec(ctx, append([]string{"modprobe"}, strings.Fields(loopback)...)...)
	if err != nil || r.Code != 0 {
		return fmt.Errorf("modprobe %s: %v %s", loopback, err, r.Output)
	}
	if err := s.agent.Post(ctx, "/v1/video/start", feed, nil); err != nil {
		return err
	}
	replugged := time.Now()
	if _, err := s.agent.WaitStatus(ctx, 30*time.Second, "camera back", func(st control.Status) bool {
		return strings.HasSuffix(st.Camera, ": ok")
	}); err != nil {
		return err
	}
	back := time.Since(replugged)
	var resumed time.Duration
	for {
		hs, err := s.host.Status(ctx)
		if err != nil {
			return err
		}
		if hs.Phone.Call == nil {
			return fmt.Errorf("host peer left the call: %q", hs.Phone.LastEnd)
		}
		// Two seconds of video; the recording is checked for one.
		if hs.Phone.Call.In.VideoFrames >= before.Phone.Call.In.VideoFrames+60 {
			resumed = time.Since(replugged)
			break
		}
		if time.Since(replugged) > 30*time.Second {
			return fmt.Errorf("video did not resume within 30s of re-adding the camera: host peer at %d frames", hs.Phone.Call.In.VideoFrames)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	s.figure("camera re-added: guest camera ok after %.1fs, 60 more frames at the host peer after %.1fs", back.Seconds(), resumed.Seconds())
	if _, err := s.hostHangup(ctx); err != nil {
		return err
	}
	var fed2 guest.Fed
	if err := s.agent.Post(ctx, "/v1/video/stop", nil, &fed2); err != nil {
		return err
	}
	v, err := checkVideo(s.host.VideoRecording(), 640, 480)
	if err != nil {
		return err
	}
	var afterReplug int
	last := slices.Max(fed1.Numbers)
	for _, n := range v.numbers {
		if n > last {
			afterReplug++
		}
	}
	// The feed's numbers go on across the unplug, so the whole recording
	// is in feed order.
	o := rig.OrderOf(v.numbers)
	s.figure("host peer recorded %d frames, all decodable 640x480, %d of them fed after the camera came back; %d backwards, %d repeated", v.frames, afterReplug, o.Backwards, o.Repeats)
	if afterReplug < 30 {
		return fmt.Errorf("only %d frames from after the replug reached the host peer", afterReplug)
	}
	if o.Backwards > 0 || o.Repeats > 0 {
		return fmt.Errorf("recorded frames out of the order they were fed: %d went backwards, %d repeated the one before", o.Backwards, o.Repeats)
	}
	return s.daemonUnchanged(ctx)
}
