package call

import (
	"math"
	"sync"
	"time"
)

// linkInfo is what the kernel says about the sending side of a connection.
type linkInfo struct {
	inFlight int           // bytes sent and not yet acknowledged
	notSent  int           // bytes queued in the socket, not yet sent
	minRTT   time.Duration // smallest round trip seen on the connection
	rate     float64       // latest delivery rate sample, bytes per second
	mss      int           // segment size, bytes
}

// link is the connection's transport as the session's writer sees it: a
// Linux TCP socket (link_linux.go), or a simulation in tests. Where there
// is none (net.Pipe, other systems) video is not gated.
type link interface {
	info() (linkInfo, error)
	congestion() string // the congestion control in use, "" if unknown
	setCongestion(name string) error
}

// Link gate tuning.
const (
	rateSlots   = 8                      // the rate is the largest sample of the last rateSlots×rateSlotLen
	rateSlotLen = 250 * time.Millisecond //
	minRetry    = time.Millisecond       // bounds of the wait before looking at a closed gate again
	maxRetry    = 10 * time.Millisecond  //
)

// linkGate keeps video from queueing in the network. Before each video chunk
// the writer asks it how many more bytes may be in flight: the link's rate
// (the largest TCP delivery-rate sample of the last two seconds) times the
// smallest round trip plus the queue on the way back plus the queueing we
// accept (Config.QueueTarget), minus what is already sent and
// unacknowledged or waiting in the socket. When a
// chunk does not fit, video waits in the session, where a newer frame
// replaces an unsent one (latest wins), instead of in a router's or modem's
// buffer, where it would delay the audio behind it. Audio and control are
// never gated: they are small and go first.
//
// On a link faster than the video there is always room and the gate never
// closes. At equilibrium on a slow link about QueueTarget of data waits at
// the bottleneck: enough to keep it busy, little enough for audio to pass.
// The budget grows by (1 + QueueTarget/RTT) per round trip while the link
// shows more room, so a call finds the rate of a new link within seconds.
//
// The round trip our acknowledgements take includes the queue on the way
// back, which the peer's video fills as ours fills the way out. A budget
// of rate × (smallest round trip + queue target) then carries less than
// the rate (the budget is spread over a longer round trip), and the
// delivery-rate samples, which measure what the budget carries, cannot
// show the link's room: the gate of the second box to start sending
// crept up over several seconds. The kernel's figures do not tell the
// way back's queue from ours; the peer's audio tells how long the way
// back queues (owdTracker), and the budget allows for it.
//
// A linkGate belongs to the session's writer goroutine.
type linkGate struct {
	link  link
	queue time.Duration // accepted queueing at the bottleneck
	floor int           // the budget never drops below this (bytes)
	audio float64       // bytes per second the call's audio needs on the wire

	started time.Time // first look at the link
	checked bool      // the congestion control has been looked at

	back *owdTracker // the queue on the way back; nil: unknown

	slots    [rateSlots]rateSlot
	rate     float64       // windowed maximum, bytes per second
	budget   int           // last computed budget, bytes
	switched string        // the congestion control checkCongestion chose, if it did
	minRTT   time.Duration // the smallest round trip when it chose
}

type rateSlot struct {
	n    int64 // slot number: time / rateSlotLen
	rate float64
}

// newLinkGate returns a gate for l; audio is what the call's audio needs,
// bytes per second on the wire; back follows the queue on the way back
// (nil: none known). A nil l means no gate.
func newLinkGate(l link, queue time.Duration, floor int, audio float64, back *owdTracker) *linkGate {
	return &linkGate{link: l, queue: queue, floor: floor, audio: audio, back: back}
}

// room returns how many more bytes of video may go now, given buffered bytes
// written to the session's buffer but not yet to the socket. Without a link,
// or when reading it fails, there is no limit (the session behaves as if
// the gate did not exist).
func (g *linkGate) room(now time.Time, buffered int) int {
	if g == nil || g.link == nil {
		return math.MaxInt
	}
	li, err := g.link.info()
	if err != nil {
		return math.MaxInt
	}
	if g.started.IsZero() {
		g.started = now
	}
	if !g.checked && now.Sub(g.started) >= congestionCheck {
		g.checked = true
		g.checkCongestion(li)
	}
	g.observe(now, li.rate)
	back := g.back.queue(now)
	b := int(math.Min(g.rate*(li.minRTT+back+g.queue).Seconds(), math.MaxInt32))
	g.budget = max(b, g.floor)
	return g.budget - li.inFlight - li.notSent - buffered
}

// congestionCheck is when, after its first look at the link, the gate looks
// at the connection's congestion control: by then the smallest round trip
// is measured on the call's messages, not only on the TCP handshake.
const congestionCheck = time.Second

// lossBased are the congestion controls checkCongestion switches to, in order.
var lossBased = []string{"cubic", "reno"}

// checkCongestion moves the connection off BBR where BBR would starve the
// audio. BBR (v1, the default of some kernels) holds every connection to
// four segments in flight for 200 ms every 10 s (ProbeRTT). Where four
// segments per round trip carry less than 1.5 times the audio (round trips
// over about 36 ms at 48 kHz mono), audio then arrives up to 200 ms late
// every 10 s.
// A loss-based control (CUBIC, else Reno) has no such dips, and the gate
// keeps video from filling buffers under it. On short round trips BBR stays:
// it keeps its rate through random loss (Wi-Fi) where loss-based controls
// back off. Where switching is not permitted
// (net.ipv4.tcp_allowed_congestion_control), BBR stays.
func (g *linkGate) checkCongestion(li linkInfo) {
	if g.link.congestion() != "bbr" || li.minRTT <= 0 || li.mss <= 0 {
		return
	}
	floor := float64(4*li.mss) / li.minRTT.Seconds()
	if floor >= 1.5*g.audio {
		return
	}
	for _, cc := range lossBased {
		if g.link.setCongestion(cc) == nil {
			g.switched, g.minRTT = cc, li.minRTT
			return
		}
	}
}

// observe adds a rate sample and recomputes the windowed maximum.
func (g *linkGate) observe(now time.Time, rate float64) {
	n := now.UnixNano() / int64(rateSlotLen)
	s := &g.slots[n%rateSlots]
	if s.n != n {
		*s = rateSlot{n: n}
	}
	s.rate = max(s.rate, rate)
	g.rate = 0
	for _, s := range g.slots {
		if n-s.n < rateSlots {
			g.rate = max(g.rate, s.rate)
		}
	}
}

// retry is how long to wait before asking again when deficit bytes did not
// fit: about the time the link takes to carry them, within 1..10 ms.
func (g *linkGate) retry(deficit int) time.Duration {
	if g.rate <= 0 {
		return maxRetry / 2
	}
	d := time.Duration(float64(deficit) / g.rate * float64(time.Second))
	return min(max(d, minRetry), maxRetry)
}

// kbps is the link rate estimate in kbit/s, 0 while unknown.
func (g *linkGate) kbps() float64 {
	if g == nil {
		return 0
	}
	return math.Round(g.rate * 8 / 1000)
}

// owdTracker follows the queueing on the way from the peer to us, from
// the peer's audio: a frame's one-way delay as our clock reads it (its
// arrival less the capture time the peer stamped; the clocks' offset is
// in every figure and drops out of the difference). The queue is the
// mean of the last two slots less the smallest of the last
// owdSlots×owdSlotLen: our acknowledgements, which take that way, wait
// that long on average. Clocks 200 ppm apart move 2 ms in the window.
// Audio comes from the reader or the datagram path, the figure goes to
// the writer's gate: a mutex.
type owdTracker struct {
	mu    sync.Mutex
	slots [owdSlots]owdSlot
}

const (
	owdSlots   = 40
	owdSlotLen = 250 * time.Millisecond
	// owdMax bounds the figure: a peer's clock stepped during a call
	// reads as a queue until the window forgets the old delays; a
	// router's buffer on a thin link is about 200 ms, and a peer's gate
	// keeps it far below.
	owdMax = 100 * time.Millisecond
)

type owdSlot struct {
	n   int64 // slot number: arrival / owdSlotLen
	min time.Duration
	sum time.Duration
	k   int // frames in the slot; 0: unused
}

// add records a frame captured at captured and arrived at arrived.
func (o *owdTracker) add(arrived, captured time.Time) {
	if o == nil {
		return
	}
	d := arrived.Sub(captured)
	n := arrived.UnixNano() / int64(owdSlotLen)
	o.mu.Lock()
	s := &o.slots[n%owdSlots]
	if s.n != n {
		*s = owdSlot{n: n, min: d}
	}
	s.min = min(s.min, d)
	s.sum += d
	s.k++
	o.mu.Unlock()
}

// queue is the way back's queue now, at most owdMax: 0 while unknown (no
// audio in the last two slots).
func (o *owdTracker) queue(now time.Time) time.Duration {
	if o == nil {
		return 0
	}
	n := now.UnixNano() / int64(owdSlotLen)
	o.mu.Lock()
	defer o.mu.Unlock()
	var sum, floor time.Duration
	k, haveFloor := 0, false
	for _, s := range o.slots {
		if s.k == 0 || n-s.n >= owdSlots || s.n > n {
			continue
		}
		if !haveFloor || s.min < floor {
			floor, haveFloor = s.min, true
		}
		if n-s.n <= 1 {
			sum += s.sum
			k += s.k
		}
	}
	if k == 0 {
		return 0
	}
	return min(max(sum/time.Duration(k)-floor, 0), owdMax)
}
