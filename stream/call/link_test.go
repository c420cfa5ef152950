package call

import (
	"context"
	"errors"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// fakeLink reports what it is told.
type fakeLink struct {
	li      linkInfo
	cc      string
	allowed map[string]bool // congestion controls setCongestion accepts
}

func (f *fakeLink) info() (linkInfo, error) { return f.li, nil }
func (f *fakeLink) congestion() string      { return f.cc }
func (f *fakeLink) setCongestion(name string) error {
	if !f.allowed[name] {
		return errors.New("operation not permitted")
	}
	f.cc = name
	return nil
}

func TestLinkGateBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	fl := &fakeLink{li: linkInfo{minRTT: 80 * time.Millisecond, rate: 250_000}}
	info := &fl.li
	g := newLinkGate(fl, 20*time.Millisecond, 8192, 0, nil)
	// 250 kB/s × (80 + 20) ms = 25 kB may be in flight.
	if room := g.room(t0, 0); room != 25_000 {
		t.Fatalf("room with nothing in flight = %d, want 25000", room)
	}
	info.inFlight, info.notSent = 20_000, 3_000
	if room := g.room(t0, 1_000); room != 1_000 {
		t.Fatalf("room = %d, want 25000 − 20000 in flight − 3000 unsent − 1000 buffered", room)
	}
	// The rate is the largest sample of the last two seconds.
	info.rate = 100_000
	if g.room(t0.Add(time.Second), 0); g.rate != 250_000 {
		t.Fatalf("rate %v one second after a 250 kB/s sample, want it kept", g.rate)
	}
	if g.room(t0.Add(2100*time.Millisecond), 0); g.rate != 100_000 {
		t.Fatalf("rate %v after the 250 kB/s sample aged out, want 100000", g.rate)
	}
	// Never below the floor.
	info.rate, info.inFlight, info.notSent = 1, 0, 0
	if room := g.room(t0.Add(5*time.Second), 0); room != 8192 {
		t.Fatalf("room on a dead-slow link = %d, want the floor 8192", room)
	}
	if kbps := g.kbps(); kbps != 0 {
		t.Fatalf("kbps %v, want 0 (1 B/s)", kbps)
	}
	// Retry after about the time the deficit takes, within 1..10 ms.
	g.rate = 1_000_000
	for _, c := range []struct {
		deficit int
		want    time.Duration
	}{{100, time.Millisecond}, {4000, 4 * time.Millisecond}, {1 << 20, 10 * time.Millisecond}} {
		if got := g.retry(c.deficit); got != c.want {
			t.Errorf("retry(%d) = %v, want %v", c.deficit, got, c.want)
		}
	}
	// No probe, no gate.
	var none *linkGate
	if room := none.room(t0, 0); room != math.MaxInt {
		t.Fatalf("room without a gate = %d", room)
	}
	if room := newLinkGate(nil, time.Millisecond, 1, 0, nil).room(t0, 0); room != math.MaxInt {
		t.Fatalf("room without a link = %d", room)
	}
}

// TestBBROnlyWhereItCarriesTheAudio: a second into the call the gate moves a
// BBR connection to CUBIC (else Reno) when four segments per round trip are
// less than 1.5 times the audio, and leaves every other connection alone.
func TestBBROnlyWhereItCarriesTheAudio(t *testing.T) {
	audio := audioWireRate(media.DefaultAudio) // about 106 kB/s
	all := map[string]bool{"cubic": true, "reno": true, "bbr": true}
	for _, c := range []struct {
		name    string
		cc      string
		rtt     time.Duration
		allowed map[string]bool
		want    string
	}{
		{"thin uplink", "bbr", 80 * time.Millisecond, all, "cubic"},
		{"cubic not permitted", "bbr", 80 * time.Millisecond, map[string]bool{"reno": true}, "reno"},
		{"nothing permitted", "bbr", 80 * time.Millisecond, nil, "bbr"},
		{"Wi-Fi", "bbr", 28 * time.Millisecond, all, "bbr"},
		{"just over the line", "bbr", 40 * time.Millisecond, all, "cubic"},
		{"LAN", "bbr", time.Millisecond, all, "bbr"},
		{"already cubic", "cubic", 80 * time.Millisecond, all, "cubic"},
	} {
		fl := &fakeLink{li: linkInfo{minRTT: c.rtt, mss: 1448, rate: 1e6}, cc: c.cc, allowed: c.allowed}
		g := newLinkGate(fl, 20*time.Millisecond, 8192, audio, nil)
		t0 := time.Unix(1000, 0)
		g.room(t0, 0)
		if fl.cc != c.cc {
			t.Errorf("%s: switched to %s before measuring for a second", c.name, fl.cc)
		}
		g.room(t0.Add(congestionCheck), 0)
		if fl.cc != c.want {
			t.Errorf("%s: %s with %v round trips, want %s", c.name, fl.cc, c.rtt, c.want)
		}
	}
}

// simLink is a bottleneck of rate bytes per second behind a phone's
// connection, seen through the probe as TCP_INFO would show it: bytes
// written and not yet out of the bottleneck queue, plus those that left it
// within the last round trip (on their way, or their acknowledgement is).
type simLink struct {
	mu       sync.Mutex
	rate     float64
	minRTT   time.Duration
	queued   float64 // bytes in the bottleneck queue
	departed float64 // bytes that left it, in all
	marks    []mark  // departed over time, the last two round trips
	maxQueue float64
}

type mark struct {
	t        time.Time
	departed float64
}

func (l *simLink) drain(now time.Time) {
	if n := len(l.marks); n > 0 {
		d := math.Min(l.queued, l.rate*now.Sub(l.marks[n-1].t).Seconds())
		l.queued -= d
		l.departed += d
	}
	l.marks = append(l.marks, mark{now, l.departed})
	for len(l.marks) > 2 && now.Sub(l.marks[1].t) > 2*l.minRTT {
		l.marks = l.marks[1:]
	}
}

// unacked is what left the queue within the last round trip.
func (l *simLink) unacked(now time.Time) float64 {
	base := l.marks[0].departed
	for _, m := range l.marks {
		if now.Sub(m.t) >= l.minRTT {
			base = m.departed
		}
	}
	return l.departed - base
}

func (l *simLink) wrap(c net.Conn) net.Conn { return &simConn{Conn: c, l: l} }

func (l *simLink) probe(net.Conn) link { return l }

func (l *simLink) info() (linkInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.drain(now)
	return linkInfo{inFlight: int(l.queued + l.unacked(now)), minRTT: l.minRTT, rate: l.rate, mss: 1448}, nil
}

func (l *simLink) congestion() string           { return "" }
func (l *simLink) setCongestion(s string) error { return errors.New("not a socket") }

type simConn struct {
	net.Conn
	l *simLink
}

func (c *simConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	c.l.drain(time.Now())
	c.l.queued += float64(len(p))
	c.l.maxQueue = math.Max(c.l.maxQueue, c.l.queued)
	c.l.mu.Unlock()
	return c.Conn.Write(p)
}

// TestVideoWaitsForTheLink offers 30 fps of 20 kB frames to a 100 kB/s link:
// the session sends only what the link carries, the newest frames, and the
// bottleneck queue stays near QueueTarget instead of growing by 500 kB/s.
func TestVideoWaitsForTheLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		link := &simLink{rate: 100_000, minRTT: 50 * time.Millisecond}
		var n network
		n.wrap = link.wrap
		// 8 kHz audio: what 48 kHz PCM needs would fill this link alone.
		narrow := func(c *Config) { c.Audio = media.AudioFormat{Rate: 8000, Channels: 1, FrameMs: 10} }
		a, b := n.add(t, "a", narrow), n.add(t, "b", narrow)
		a.newProbe = link.probe
		if a.VideoReady() {
			t.Fatal("VideoReady with no call")
		}
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, a, InCall)
		if !a.VideoReady() {
			t.Fatal("VideoReady false in a call on an idle link")
		}
		notReady := 0
		const steps = 300 // 3 s in 10 ms steps
		for i := range steps {
			a.SendAudio(media.Audio{Seq: uint32(i), Time: time.Now(), Samples: make([]int16, 80)})
			if i%3 == 0 {
				a.SendVideo(media.Frame{Seq: uint32(i / 3), Time: time.Now(), JPEG: testJPEG("", 20_000)})
			}
			time.Sleep(10 * time.Millisecond)
			if !a.VideoReady() {
				notReady++
			}
		}
		time.Sleep(time.Second)
		frames, audio := b.sink.counts()
		st := a.Status().Call
		link.mu.Lock()
		maxQueue := link.maxQueue
		link.mu.Unlock()
		t.Logf("b got %d frames, %d audio; a skipped %d; max queue %.0f B; not ready %d/%d", frames, audio, st.Out.VideoDrops, maxQueue, notReady, steps)
		if audio != steps {
			t.Errorf("b got %d audio frames, want all %d", audio, steps)
		}
		// 3 s at 100 kB/s carries about 15 frames of 20 kB.
		if frames < 10 || frames > 20 || uint64(frames)+st.Out.VideoDrops != steps/3 {
			t.Errorf("b got %d frames and a skipped %d of %d; want about 15 sent, the rest skipped", frames, st.Out.VideoDrops, steps/3)
		}
		// The budget is 8 kB (the floor): at most that is ever queued.
		if maxQueue > 8_500 {
			t.Errorf("bottleneck queue reached %.0f bytes, want under 8500", maxQueue)
		}
		if notReady < steps/2 {
			t.Errorf("VideoReady was false %d times of %d on a link that carries a sixth of the video", notReady, steps)
		}
		b.sink.mu.Lock()
		last := b.sink.frames[len(b.sink.frames)-1].Seq
		b.sink.mu.Unlock()
		if last < steps/3-5 {
			t.Errorf("last frame b got is %d, want one of the newest (≥ %d)", last, steps/3-5)
		}
	})
}

// slowSink takes delay per video frame, like a display on a busy machine,
// and notes when each audio frame arrived.
type slowSink struct {
	recSink
	delay time.Duration
	mu    sync.Mutex
	late  time.Duration // the largest audio delay seen
}

func (s *slowSink) Video(f media.Frame) {
	time.Sleep(s.delay)
	s.recSink.Video(f)
}

func (s *slowSink) Audio(a media.Audio) {
	s.mu.Lock()
	s.late = max(s.late, time.Since(a.Time))
	s.mu.Unlock()
	s.recSink.Audio(a)
}

// TestSlowSinkCostsFramesNotDelay: a sink that takes 50 ms per frame gets
// the newest frames at its own pace, and audio keeps arriving at once.
func TestSlowSinkCostsFramesNotDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		a := n.add(t, "a", nil)
		sink := &slowSink{delay: 50 * time.Millisecond}
		b := n.addWith(t, "b", nil, sink, &sink.recSink)
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, InCall)
		const steps = 200 // 2 s
		for i := range steps {
			a.SendAudio(media.Audio{Seq: uint32(i), Time: time.Now(), Samples: testPCM(1, 2)})
			if i%3 == 0 {
				a.SendVideo(media.Frame{Seq: uint32(i / 3), Time: time.Now(), JPEG: testJPEG("", 10_000)})
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		frames, audio := b.sink.counts()
		in := b.Status().Call.In
		t.Logf("b showed %d frames, dropped %d for the slow sink; video latency %+v; audio late by %v", frames, in.VideoSinkDrops, in.VideoLatAll, sink.late)
		if audio != steps || sink.late > time.Millisecond {
			t.Errorf("audio: %d of %d, late by up to %v; want all, at once", audio, steps, sink.late)
		}
		sent := uint64((steps + 2) / 3)
		if in.VideoFrames != sent || in.VideoSinkDrops == 0 || uint64(frames)+in.VideoSinkDrops != sent {
			t.Errorf("received %d, shown %d, dropped for the sink %d; want all %d received, the sink's share shown", in.VideoFrames, frames, in.VideoSinkDrops, sent)
		}
		// A frame waits at most for the sink's frame before it.
		if in.VideoLatAll.Max > 51 {
			t.Errorf("video latency at the sink up to %v ms, want ≤ 50 (one sink call)", in.VideoLatAll.Max)
		}
	})
}

func TestBestOffset(t *testing.T) {
	ms := time.Millisecond
	var samples []pongSample
	// Steady exchanges through queues: 120..150 ms round trips, offsets
	// scattered ±15 ms around the truth (3 ms).
	for i := range 24 {
		samples = append(samples, pongSample{rtt: time.Duration(120+i) * ms, off: time.Duration(3+(i%7-3)*5) * ms})
	}
	// One exchange through empty queues one way only: fastest, lopsided.
	samples = append(samples, pongSample{rtt: 90 * ms, off: -19 * ms})
	if got := bestOffset(samples); got < -2*ms || got > 8*ms {
		t.Errorf("offset %v from scattered samples around 3ms and one lopsided fast one, want within 5ms of 3ms", got)
	}
	if got := bestOffset(samples[:1]); got != samples[0].off {
		t.Errorf("one sample: %v, want %v", got, samples[0].off)
	}
}

// whereSink records, for each frame, whether Video ran in the session's
// reader or in its show goroutine (from the call stack).
type whereSink struct {
	recSink
	mu     sync.Mutex
	reader int
	shower int
}

func (s *whereSink) Video(f media.Frame) {
	buf := make([]byte, 8192)
	stack := string(buf[:runtime.Stack(buf, false)])
	s.mu.Lock()
	if strings.Contains(stack, ".readLoop(") {
		s.reader++
	}
	if strings.Contains(stack, ".showLoop(") {
		s.shower++
	}
	s.mu.Unlock()
	s.recSink.Video(f)
}

// inlineSink is a whereSink that says its Video never waits.
type inlineSink struct{ whereSink }

func (*inlineSink) VideoNeverWaits() {}

// TestInlineVideoSink: a sink whose Video never waits gets every frame
// from the reader, with its latency measured, and no goroutine of its
// own; any other sink gets them from the show goroutine.
func TestInlineVideoSink(t *testing.T) {
	for _, inline := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			var n network
			a := n.add(t, "a", nil)
			var sink Sink
			var where *whereSink
			if inline {
				s := &inlineSink{}
				sink, where = s, &s.whereSink
			} else {
				where = &whereSink{}
				sink = where
			}
			b := n.addWith(t, "b", nil, sink, &where.recSink)
			if err := a.Call(context.Background(), peerOf(b)); err != nil {
				t.Fatal(err)
			}
			wantState(t, b, InCall)
			const sent = 20
			for i := range sent {
				a.SendVideo(media.Frame{Seq: uint32(i), Time: time.Now(), JPEG: testJPEG("", 5_000)})
				time.Sleep(33 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			frames, _ := b.sink.counts()
			in := b.Status().Call.In
			where.mu.Lock()
			reader, shower := where.reader, where.shower
			where.mu.Unlock()
			t.Logf("inline %v: %d frames shown (%d from the reader, %d from the show goroutine), %d dropped for the sink, latency %+v",
				inline, frames, reader, shower, in.VideoSinkDrops, in.VideoLatAll)
			if frames != sent || in.VideoFrames != sent || in.VideoSinkDrops != 0 || in.VideoLatAll.N != sent {
				t.Errorf("inline %v: shown %d, received %d, dropped %d, latencies %d; want all %d", inline, frames, in.VideoFrames, in.VideoSinkDrops, in.VideoLatAll.N, sent)
			}
			if inline && (reader != sent || shower != 0) || !inline && (shower != sent || reader != 0) {
				t.Errorf("inline %v: %d frames from the reader, %d from the show goroutine", inline, reader, shower)
			}
		})
	}
}

// TestLinkGateAllowsForTheWayBack: the peer's audio tells how long the
// way back queues, and the budget grows by that much of the rate: the
// acknowledgements that free the budget take that long longer.
func TestLinkGateAllowsForTheWayBack(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var o owdTracker
	// feed adds audio arriving every 20 ms from..to after t0, each
	// captured d(i) before by the peer's clock (the clocks' offset
	// included).
	feed := func(from, to time.Duration, d func(i int) time.Duration) {
		for i, at := 0, from; at < to; i, at = i+1, at+20*time.Millisecond {
			o.add(t0.Add(at), t0.Add(at-d(i)))
		}
	}
	const offset = 3 * time.Second // the peer's clock is behind ours
	steady := func(int) time.Duration { return offset + 40*time.Millisecond }
	fl := &fakeLink{li: linkInfo{minRTT: 80 * time.Millisecond, rate: 250_000}}
	g := newLinkGate(fl, 20*time.Millisecond, 8192, 0, &o)
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	if q := o.queue(at(0)); q != 0 {
		t.Fatalf("queue %v before any audio, want 0", q)
	}
	feed(0, 5*time.Second, steady)
	if q := o.queue(at(5 * time.Second)); q != 0 {
		t.Fatalf("queue %v on a steady way back, want 0", q)
	}
	// 250 kB/s × (80 + 20) ms, as without the tracker.
	if room := g.room(at(5*time.Second), 0); room != 25_000 {
		t.Fatalf("room %d on a steady way back, want 25000", room)
	}
	// The peer's video fills the way back: 30 ms of standing queue.
	feed(5*time.Second, 7*time.Second, func(int) time.Duration { return offset + 70*time.Millisecond })
	if q := o.queue(at(7 * time.Second)); q != 30*time.Millisecond {
		t.Fatalf("queue %v with 30 ms standing on the way back, want 30 ms", q)
	}
	if room := g.room(at(7*time.Second), 0); room != 32_500 {
		t.Fatalf("room %d, want 250 kB/s × (80 + 30 + 20) ms = 32500", room)
	}
	// Jitter counts by its mean: 0 or 20 ms late in turn is 10 ms.
	feed(7*time.Second, 9*time.Second, func(i int) time.Duration { return offset + time.Duration(40+20*(i%2))*time.Millisecond })
	if q := o.queue(at(9 * time.Second)); q != 10*time.Millisecond {
		t.Fatalf("queue %v with 0/20 ms jitter, want its mean 10 ms", q)
	}
	// No audio for a second: unknown, so none allowed for.
	if q := o.queue(at(10 * time.Second)); q != 0 {
		t.Fatalf("queue %v a second after the last audio, want 0", q)
	}
	// The peer's clock steps back 1 s mid-call: bounded, and forgotten
	// once the window holds only delays measured since.
	stepped := func(int) time.Duration { return offset + time.Second + 40*time.Millisecond }
	feed(10*time.Second, 12*time.Second, stepped)
	if q := o.queue(at(12 * time.Second)); q != owdMax {
		t.Fatalf("queue %v after the peer's clock stepped, want it bounded at %v", q, owdMax)
	}
	feed(12*time.Second, 22*time.Second, stepped)
	if q := o.queue(at(22 * time.Second)); q != 0 {
		t.Fatalf("queue %v 10 s after the step, want 0", q)
	}
}
