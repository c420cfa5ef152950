package guest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/callbox/callbox/stream/room"
)

// maxRoomSpans bounds the spans a room run keeps (marks beyond it merge
// into the last one).
const maxRoomSpans = 1000

// maxRoomMs bounds a room run; a run asking for more (or for nothing)
// gets this.
const maxRoomMs = 10 * 60 * 1000

// roomRunner is the agent's simulated room between the guest's speaker and
// its microphone: one goroutine reads what the speaker played from
// arecord, passes it through stream/room with a near-end talker mixed in,
// and writes what the microphone hears to aplay.
type roomRunner struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	loop   *roomLoop
	res    RoomResult // filled by the goroutine when it ends
}

// roomLoop is the part of a room run that needs no sound card: frames in,
// frames out, and the figures per span. Its methods are safe for
// concurrent use; run is called from one goroutine.
type roomLoop struct {
	r     *room.Room
	voice *room.Voice
	frame int // samples per frame

	mu    sync.Mutex
	talk  bool
	began time.Time
	cur   RoomSpan
	spans []RoomSpan
	total int
	now   func() time.Time
}

func newRoomLoop(spec Room) (*roomLoop, error) {
	if spec.Channels != 1 {
		return nil, fmt.Errorf("room: %d channels: the room is mono", spec.Channels)
	}
	if _, err := audioFormat(spec.Audio); err != nil {
		return nil, err
	}
	c := spec.Acoustics
	c.Rate, c.Frame = spec.Rate, spec.Rate*spec.FrameMs/1000
	r, err := room.New(c)
	if err != nil {
		return nil, err
	}
	pitch := spec.PitchHz
	if pitch == 0 {
		pitch = 200
	}
	l := &roomLoop{r: r, voice: room.NewVoice(spec.VoiceSeed, pitch, spec.Rate), frame: c.Frame,
		talk: spec.Talk, now: time.Now}
	l.began = l.now()
	l.cur = RoomSpan{Talk: spec.Talk}
	return l, nil
}

// run reads whole frames of s16le from in until it ends (EOF, an error)
// and writes what the microphone hears for each to out. It returns nil
// at EOF.
func (l *roomLoop) run(in io.Reader, out io.Writer) error {
	raw := make([]byte, 2*l.frame)
	played := make([]int16, l.frame)
	near := make([]int16, l.frame)
	for {
		if _, err := io.ReadFull(in, raw); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("reading the speaker: %w", err)
		}
		for i := range played {
			played[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		l.mu.Lock()
		talk := l.talk
		l.mu.Unlock()
		var said []int16
		talking := false
		if talk {
			talking = l.voice.Read(near)
			said = near
		}
		h := l.r.Hear(played, said)
		for i, s := range h.Mic {
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(s))
		}
		l.mu.Lock()
		sp := &l.cur
		sp.Frames++
		if talking {
			sp.TalkFrames++
		}
		sp.Played += energy16(played)
		sp.Echo += energy(h.Echo)
		sp.Noise += energy(h.Noise)
		sp.Near += energy16(said)
		sp.Mic += energy16(h.Mic)
		l.total++
		l.mu.Unlock()
		if _, err := out.Write(raw); err != nil {
			return fmt.Errorf("writing the microphone: %w", err)
		}
	}
}

// mark ends the current span, starts the next with the talker as m says,
// and returns the span that ended.
func (l *roomLoop) mark(m RoomMark) RoomSpan {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	sp := l.cur
	sp.Ms = float64(now.Sub(l.began).Microseconds()) / 1000
	if len(l.spans) < maxRoomSpans {
		l.spans = append(l.spans, sp)
		l.cur = RoomSpan{Talk: m.Talk}
		l.began = now
	} else {
		// Out of room: keep adding to this span.
		l.cur.Talk = m.Talk
	}
	l.talk = m.Talk
	return sp
}

// result is every span so far, the current one last.
func (l *roomLoop) result() RoomResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.cur
	last.Ms = float64(l.now().Sub(l.began).Microseconds()) / 1000
	return RoomResult{Spans: append(append([]RoomSpan(nil), l.spans...), last), Frames: l.total}
}

func energy16(x []int16) float64 {
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return e
}

func energy(x []float64) float64 {
	var e float64
	for _, v := range x {
		e += v * v
	}
	return e
}

// bufferArgs are aplay's/arecord's buffer and period times.
func bufferArgs(bufferMs, periodMs int) []string {
	return []string{"--buffer-time=" + strconv.Itoa(bufferMs*1000), "--period-time=" + strconv.Itoa(periodMs*1000)}
}

func (rr *roomRunner) start(spec Room, log *slog.Logger) error {
	l, err := newRoomLoop(spec)
	if err != nil {
		return err
	}
	if spec.Tap.Device == "" || spec.Device == "" {
		return errors.New("room: tap and feed devices needed")
	}
	tap := spec.Audio
	tap.Device = spec.Tap.Device
	feedMs := spec.FeedBufferMs
	if feedMs <= 0 {
		feedMs = 4 * spec.FrameMs
	}
	maxMs := spec.MaxMs
	if maxMs <= 0 || maxMs > maxRoomMs {
		maxMs = maxRoomMs
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.cancel != nil {
		return errors.New("room already running")
	}
	// The speaker's tap: a capture buffer of 20 frames, read a frame at a
	// time, so that a late agent loses nothing. The microphone's feed: a
	// short buffer, since what it holds is delay the echo canceller must
	// find.
	rec := exec.Command("arecord", append(alsaArgs(tap), bufferArgs(20*spec.FrameMs, spec.FrameMs)...)...)
	recErr := &xruns{other: newTail(4096)}
	rec.Stderr = recErr
	in, err := rec.StdoutPipe()
	if err != nil {
		return err
	}
	play := exec.Command("aplay", append(alsaArgs(spec.Audio), bufferArgs(feedMs, spec.FrameMs)...)...)
	playErr := &xruns{other: newTail(4096)}
	play.Stderr = playErr
	out, err := play.StdinPipe()
	if err != nil {
		return err
	}
	if err := play.Start(); err != nil {
		return fmt.Errorf("aplay: %w", err)
	}
	if err := rec.Start(); err != nil {
		out.Close()
		waitOrKill(play, 3*time.Second)
		return fmt.Errorf("arecord: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(maxMs)*time.Millisecond)
	done := make(chan struct{})
	rr.cancel, rr.done, rr.loop, rr.res = cancel, done, l, RoomResult{}
	log.Info("room started", "tap", spec.Tap.Device, "feed", spec.Device, "feed_buffer_ms", feedMs, "max_ms", maxMs)
	// arecord ends at ctx's end; the loop then reads EOF.
	// A loop stuck writing to aplay is freed 3 s later by killing it.
	go func() {
		<-ctx.Done()
		rec.Process.Signal(syscall.SIGINT)
		t := time.NewTimer(3 * time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			play.Process.Kill()
		}
	}()
	go func(done chan struct{}) {
		defer close(done)
		err := l.run(in, out)
		// Whatever ended the loop, end both tools.
		cancel()
		out.Close() // aplay plays what it has and exits
		go io.Copy(io.Discard, in)
		waitOrKill(rec, 3*time.Second)
		waitOrKill(play, 3*time.Second)
		res := l.result()
		var msgs []string
		if err != nil {
			msgs = append(msgs, err.Error())
		}
		res.Overruns, _ = recErr.counts()
		_, res.Underruns = playErr.counts()
		if b := bytes.TrimSpace(recErr.other.bytes()); len(b) > 0 {
			msgs = append(msgs, "arecord: "+string(b))
		}
		if b := bytes.TrimSpace(playErr.other.bytes()); len(b) > 0 {
			msgs = append(msgs, "aplay: "+string(b))
		}
		for _, m := range msgs {
			if res.Err != "" {
				res.Err += "; "
			}
			res.Err += m
		}
		rr.mu.Lock()
		rr.res = res
		rr.mu.Unlock()
	}(done)
	return nil
}

// mark ends the running room's span; see roomLoop.mark.
func (rr *roomRunner) mark(m RoomMark) (RoomSpan, error) {
	rr.mu.Lock()
	l, done := rr.loop, rr.done
	rr.mu.Unlock()
	if l == nil {
		return RoomSpan{}, errors.New("room not running")
	}
	select {
	case <-done:
		return RoomSpan{}, fmt.Errorf("room ended: %s", rr.result().Err)
	default:
	}
	return l.mark(m), nil
}

func (rr *roomRunner) result() RoomResult {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.res
}

// stop ends the room and returns its figures. A loop stuck in a write is
// given 5 s.
func (rr *roomRunner) stop() RoomResult {
	rr.mu.Lock()
	cancel, done, l := rr.cancel, rr.done, rr.loop
	rr.cancel = nil
	rr.mu.Unlock()
	if cancel == nil {
		return RoomResult{}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		res := l.result()
		res.Err = "room loop did not end within 10s"
		return res
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.loop = nil
	return rr.res
}

// xruns takes aplay's or arecord's stderr: it counts the overrun and
// underrun reports and keeps the tail of anything else.
type xruns struct {
	mu                  sync.Mutex
	line                []byte // a line not yet ended
	overruns, underruns int
	other               *tail
}

func (x *xruns) Write(p []byte) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range p {
		if c != '\n' {
			if len(x.line) < 1024 {
				x.line = append(x.line, c)
			}
			continue
		}
		x.take()
	}
	return len(p), nil
}

func (x *xruns) take() {
	switch l := x.line; {
	case bytes.HasPrefix(l, []byte("overrun!!!")):
		x.overruns++
	case bytes.HasPrefix(l, []byte("underrun!!!")):
		x.underruns++
	case len(bytes.TrimSpace(l)) > 0:
		x.other.Write(append(l, '\n'))
	}
	x.line = x.line[:0]
}

// counts are the overruns and underruns reported, a last unended line
// included.
func (x *xruns) counts() (overruns, underruns int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.line) > 0 {
		x.take()
	}
	return x.overruns, x.underruns
}
