package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/room"
	"github.com/callbox/callbox/test/hil/guest"
)

// The echo scenario's phases, in spans of spanLen between marks. The far
// end talks throughout (the host peer's simulated voice); the guest's
// near-end talker is silent for the first phase, while the canceller
// converges and the ERLE is measured over its last erleWindow of audio,
// and talks in the second, whose audio after dtSkip shows whether the
// near-end speech reaches the host peer. A phase lasts until the
// guest's echo stage has processed its length of audio (the guest runs
// slower than real time, see echoICount), at least its length of real
// time and at most its cap.
const (
	spanLen     = 2 * time.Second
	farLen      = 12 * time.Second
	farCap      = 90 * time.Second
	erleWindow  = 4 * time.Second
	doubleLen   = 6 * time.Second
	doubleCap   = 60 * time.Second
	dtSkip      = time.Second
	minERLE     = 20.0 // dB
	minNearOver = 10.0 // dB the host peer must receive above the residual echo while the guest's talker talks
)

// echoICount is the guest's -icount under TCG: its clock follows the
// instructions it runs (1 ns each, and the real time while it idles).
// Without it, the emulated CPU on a busy 2-core machine ran the daemon,
// its echo stage and the agent's room at a tenth of real time while
// snd-aloop's timers kept real time: the speaker's tap overran, the
// microphone's feed underran, the daemon's capture lost most of what
// was fed, and the echo's delay jumped every few hundred milliseconds,
// which no canceller follows. With it the guest runs slower than real
// time but in step with itself; the host peer, in real time, measures
// per frame received.
const echoICount = "shift=0,sleep=on"

// echoFormat is both daemons' audio format in the echo scenario.
var echoFormat = media.AudioFormat{Rate: 16000, Channels: 1, FrameMs: 20}

// echoMark is the state of both sides at a mark.
type echoMark struct {
	at        time.Time
	hostBytes int64  // the host peer's recording's length
	hostIn    uint64 // audio frames the host peer received in the call
	echo      control.Echo
	span      guest.RoomSpan // the agent's span that ended at this mark
}

// echoSpan is one span's figures: powers (mean squared sample values) of
// the echo and of what the near-end talker said at the guest's
// microphone, per frame the room passed, and of what the host peer
// played of the guest's audio, per frame it received.
type echoSpan struct {
	talk                    bool
	roomFrames, hostFrames  int
	echo, near, noise, host float64
	ducked                  uint64
	erleDB                  float64 // the guest stage's own, at the span's end
}

func (e echoSpan) String() string {
	return fmt.Sprintf("talk %-5v room %4d frames (echo %5.1f dBFS, near %5.1f dBFS, noise %5.1f dBFS), host peer %4d frames at %5.1f dBFS: %5.1f dB under the echo; stage ERLE %4.1f dB, %d frames ducked",
		e.talk, e.roomFrames, dbfs(e.echo), dbfs(e.near), dbfs(e.noise), e.hostFrames, dbfs(e.host), db(e.echo/e.host), e.erleDB, e.ducked)
}

func db(ratio float64) float64 { return 10 * math.Log10(ratio) }

// dbfs is a mean squared sample value in dB against full scale.
func dbfs(p float64) float64 { return db(p / (32768 * 32768)) }

func echoCall(ctx context.Context, s *session) error {
	// 16 kHz, the rate the echo stage works at: under TCG the emulated
	// CPU's floating point is slow, and at 48 kHz the guest's resampling,
	// its stage and the agent's room took so long that the guest captured
	// a tenth of real time.
	f := echoFormat
	err := s.setup(ctx, guestSpec{
		modules: []string{"snd-aloop"},
		icount:  echoICount,
		// The microphone's processing is the daemon's default: all on.
		config: fmt.Sprintf(`[video]
device = "sim"
width = 320
height = 240
fps = 2
precomputed = 1
[audio]
capture = %q
playback = %q
rate = %d
frame_ms = %d
periods = 8
`, micPCM, speakerPCM, f.Rate, f.FrameMs),
		// The far end is someone talking; the host peer records what it
		// plays, which is what the guest sent. Its own processing is off:
		// its speaker plays into nothing.
		host: testbox.Options{AutoAnswer: true, RecordAudio: true, Extra: fmt.Sprintf(`[audio]
capture = "voice"
rate = %d
frame_ms = %d
echo_cancel = false
echo_suppress = false
noise_suppress = false
agc = false
duck = false
`, f.Rate, f.FrameMs)},
	})
	if err != nil {
		return err
	}
	if _, err := s.startDaemon(ctx, "ALSA loopback microphone and speaker open", func(st control.Status) bool {
		return devicesOK(st) && st.Echo != nil
	}); err != nil {
		return err
	}
	gs, err := s.agent.Status(ctx)
	if err != nil {
		return err
	}
	s.figure("guest microphone processing: %s", gs.Echo.Parts)
	acoustics := room.Default()
	// A smaller room than the default's 400 ms (the cost of the agent's
	// convolution grows with it), inside the canceller's 200 ms tail.
	acoustics.RT60 = 200 * time.Millisecond
	// Background noise 45 dB under the talker (the default room's 30 dB
	// put it 24 dB under the echo, and what the host peer got back in the
	// far-end-only phase was mostly that noise: the figure measured the
	// noise suppressor, not the echo's reduction).
	acoustics.SNR = 45
	rm := guest.Room{
		Audio:     guest.Audio{Device: micFeed, Rate: f.Rate, Channels: f.Channels, FrameMs: f.FrameMs},
		Tap:       guest.Audio{Device: speakerTap},
		Acoustics: acoustics,
		VoiceSeed: 5,
		PitchHz:   210,
		// Room for the agent's stalls: each underrun moves the echo's delay.
		FeedBufferMs: 10 * f.FrameMs,
		MaxMs:        int((farCap + doubleCap + 2*time.Minute).Milliseconds()),
	}
	if err := s.agent.Post(ctx, "/v1/audio/room/start", rm, nil); err != nil {
		return err
	}
	stopRoom := func() (guest.RoomResult, error) {
		var res guest.RoomResult
		err := s.agent.Post(ctx, "/v1/audio/room/stop", nil, &res)
		return res, err
	}
	if err := s.hostCall(ctx); err != nil {
		stopRoom()
		return err
	}
	marks, err := s.echoPhases(ctx)
	if err != nil {
		stopRoom()
		return err
	}
	hs, err := s.hostHangup(ctx)
	if err != nil {
		stopRoom()
		return err
	}
	res, err := stopRoom()
	if err != nil {
		return err
	}
	s.figure("room: %d frames, %d overruns reading the guest's speaker, %d underruns feeding its microphone", res.Frames, res.Overruns, res.Underruns)
	if res.Err != "" {
		s.figure("room: %s", strings.TrimSpace(res.Err))
	}
	rec, err := audio.ReadRecording(s.host.AudioRecording())
	if err != nil {
		return err
	}
	spans := echoSpans(marks, rec, f.FrameSamples())
	var table strings.Builder
	for i, sp := range spans {
		fmt.Fprintf(&table, "%2d %s\n", i, sp)
	}
	os.WriteFile(filepath.Join(s.env.out, s.sc.name+".spans.txt"), []byte(table.String()), 0o644)
	c := hs.Phone.LastCall
	s.figure("in the %.1fs call (real time) the room passed %d frames of %d ms, the host peer received %d from the guest",
		c.Seconds, res.Frames, f.FrameMs, c.In.AudioFrames)
	return s.judgeEcho(ctx, spans)
}

// echoPhases marks spans: far end only, then both talking. It returns
// the marks, the first at the start.
func (s *session) echoPhases(ctx context.Context) ([]echoMark, error) {
	first, err := s.echoMark(ctx, func(control.Echo) bool { return false })
	if err != nil {
		return nil, err
	}
	marks := []echoMark{first}
	frameLen := time.Duration(echoFormat.FrameMs) * time.Millisecond
	// phase marks spans with the talker as talk until it has lasted
	// minLen and the guest's stage processed as much audio (or capLen
	// passed); its last mark sets the talker as after.
	phase := func(name string, talk, after bool, minLen, capLen time.Duration) error {
		began := time.Now()
		from := marks[len(marks)-1].echo.Frames
		want := uint64(minLen / frameLen)
		for done := false; !done; {
			if err := sleep(ctx, spanLen); err != nil {
				return err
			}
			m, err := s.echoMark(ctx, func(e control.Echo) bool {
				long := time.Since(began)
				done = long >= minLen && (e.Frames-from >= want || long >= capLen)
				if done {
					return after
				}
				return talk
			})
			if err != nil {
				return err
			}
			marks = append(marks, m)
			if got := m.echo.Frames - from; done && got < want {
				s.figure("WARNING %s: the guest's echo stage processed %d frames in %.0fs, want %d", name, got, time.Since(began).Seconds(), want)
			}
		}
		return nil
	}
	if err := phase("far end only", false, true, farLen, farCap); err != nil {
		return nil, err
	}
	if err := phase("double talk", true, false, doubleLen, doubleCap); err != nil {
		return nil, err
	}
	return marks, nil
}

// echoMark notes the host peer's recording and counts and the guest
// stage's figures, then ends the agent's span, the talker in the next
// as talk says.
func (s *session) echoMark(ctx context.Context, talk func(control.Echo) bool) (echoMark, error) {
	m := echoMark{at: time.Now()}
	if fi, err := os.Stat(s.host.AudioRecording()); err == nil {
		m.hostBytes = fi.Size()
	}
	hs, err := s.host.Status(ctx)
	if err != nil {
		return m, err
	}
	if hs.Phone.Call == nil {
		return m, fmt.Errorf("host peer left the call: %q", hs.Phone.LastEnd)
	}
	m.hostIn = hs.Phone.Call.In.AudioFrames
	gs, err := s.agent.Status(ctx)
	if err != nil {
		return m, err
	}
	if gs.Echo == nil {
		return m, fmt.Errorf("guest status without its echo stage")
	}
	m.echo = *gs.Echo
	err = s.agent.Post(ctx, "/v1/audio/room/mark", guest.RoomMark{Talk: talk(m.echo)}, &m.span)
	return m, err
}

// echoSpans turns the marks and the host peer's recording into each
// span's figures.
func echoSpans(marks []echoMark, rec []int16, frame int) []echoSpan {
	var out []echoSpan
	for i := 1; i < len(marks); i++ {
		a, b := marks[i-1], marks[i]
		r := b.span
		sp := echoSpan{talk: r.Talk, roomFrames: r.Frames, hostFrames: int(b.hostIn - a.hostIn),
			ducked: b.echo.DuckedFrames - a.echo.DuckedFrames, erleDB: b.echo.ERLE}
		if n := float64(r.Frames * frame); n > 0 {
			sp.echo, sp.near, sp.noise = r.Echo/n, r.Near/n, r.Noise/n
		}
		lo, hi := min(int(a.hostBytes/2), len(rec)), min(int(b.hostBytes/2), len(rec))
		var e float64
		for _, v := range rec[lo:hi] {
			e += float64(v) * float64(v)
		}
		if n := float64(sp.hostFrames * frame); n > 0 {
			sp.host = e / n
		}
		out = append(out, sp)
	}
	return out
}

// pooled is the spans' powers, each weighted by its frames.
func pooled(spans []echoSpan) (sp echoSpan) {
	for _, x := range spans {
		sp.roomFrames += x.roomFrames
		sp.hostFrames += x.hostFrames
		sp.echo += x.echo * float64(x.roomFrames)
		sp.near += x.near * float64(x.roomFrames)
		sp.noise += x.noise * float64(x.roomFrames)
		sp.host += x.host * float64(x.hostFrames)
		sp.ducked += x.ducked
		sp.talk = x.talk
		sp.erleDB = x.erleDB
	}
	if sp.roomFrames > 0 {
		sp.echo /= float64(sp.roomFrames)
		sp.near /= float64(sp.roomFrames)
		sp.noise /= float64(sp.roomFrames)
	}
	if sp.hostFrames > 0 {
		sp.host /= float64(sp.hostFrames)
	}
	return sp
}

// judgeEcho applies the scenario's rules to the spans: over the last
// erleWindow of the far-end-only phase's audio the host peer must get
// back at least minERLE dB less of its own voice (per frame it received)
// than the guest's microphone heard of it (per frame the room passed),
// the guest's stage must have found the echo's delay, and while the
// guest's talker talks (dtSkip left out) the host peer must receive
// minNearOver dB more than that residual.
func (s *session) judgeEcho(ctx context.Context, spans []echoSpan) error {
	k := 0
	for k < len(spans) && !spans[k].talk {
		k++
	}
	frameLen := time.Duration(echoFormat.FrameMs) * time.Millisecond
	far, double := spans[:k], spans[k:]
	// The far-end-only phase's last spans holding erleWindow of audio,
	// and the double talk's after its first dtSkip (what the host peer
	// received just after the mark was said before it).
	i, n := len(far), 0
	for i > 0 && time.Duration(n)*frameLen < erleWindow {
		i--
		n += far[i].roomFrames
	}
	j, n := 0, 0
	for j < len(double) && time.Duration(n)*frameLen < dtSkip {
		n += double[j].roomFrames
		j++
	}
	if i == 0 || j == len(double) {
		return fmt.Errorf("%d far-end-only and %d double-talk spans: too short to leave out their edges", len(far), len(double))
	}
	w := pooled(far[i:])
	d := pooled(double[j:])
	gs, err := s.agent.Status(ctx)
	if err != nil {
		return err
	}
	e := gs.Echo
	if e == nil {
		return fmt.Errorf("guest status without its echo stage")
	}
	s.figure("guest echo stage: delay found %v, %.0f ms (%d changes), ERLE %.1f dB at the end of the far-end-only phase, %.1f dB at the end; %d of %d frames ducked (%d in the ERLE window)",
		e.DelayKnown, e.DelayMs, e.DelayChanges, far[len(far)-1].erleDB, e.ERLE, e.DuckedFrames, e.Frames, w.ducked)
	if want := int(2 * time.Second / frameLen); w.hostFrames < want || d.hostFrames < want {
		return fmt.Errorf("the host peer received %d frames in the ERLE window and %d in double talk, want %d (2 s) each", w.hostFrames, d.hostFrames, want)
	}
	erle := db(w.echo / w.host)
	s.figure("far end only, last %.1fs of guest audio: echo at the guest's microphone %.1f dBFS (noise %.1f dBFS), back at the host peer %.1f dBFS: ERLE %.1f dB",
		(time.Duration(w.roomFrames) * frameLen).Seconds(), dbfs(w.echo), dbfs(w.noise), dbfs(w.host), erle)
	over := db(d.host / w.host)
	s.figure("double talk, %.1fs of guest audio: near end said %.1f dBFS at the guest's microphone, the host peer received %.1f dBFS (%+.1f dB; %.1f dB above the far-end-only residual), %d frames ducked",
		(time.Duration(d.roomFrames) * frameLen).Seconds(), dbfs(d.near), dbfs(d.host), db(d.host/d.near), over, d.ducked)
	if !(erle >= minERLE) {
		return fmt.Errorf("ERLE %.1f dB through the guest, want ≥ %.0f dB (spans in %s)", erle, minERLE, filepath.Join(s.env.out, s.sc.name+".spans.txt"))
	}
	if !e.DelayKnown {
		return fmt.Errorf("the guest's echo stage never found the speaker-to-microphone delay")
	}
	if !(over >= minNearOver) {
		return fmt.Errorf("double talk reached the host peer only %.1f dB above the residual echo, want ≥ %.0f dB", over, minNearOver)
	}
	return s.daemonUnchanged(ctx)
}
