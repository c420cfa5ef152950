// Package call runs calls between two boxes: the handshake, the call state
// machine (idle, calling, ringing, in call), keepalive, the prioritised
// writer with its bounded per-stream queues, video paced to what the link
// carries (on Linux TCP, from the kernel's view of the connection), and
// per-direction statistics. It works on any authenticated net.Conn and
// knows nothing of devices.
package call

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/opus"
	"github.com/callbox/callbox/stream/wire"
)

// State is the phone's call state.
type State int

// The call states. Idle → Calling → InCall → Idle for an outgoing call;
// Idle → Ringing → InCall → Idle for an incoming one (Ringing is skipped
// with auto-answer).
const (
	Idle State = iota
	Calling
	Ringing
	InCall
)

func (s State) String() string {
	switch s {
	case Idle:
		return "idle"
	case Calling:
		return "calling"
	case Ringing:
		return "ringing"
	case InCall:
		return "in call"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText makes states readable in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (s *State) UnmarshalText(b []byte) error {
	for st := Idle; st <= InCall; st++ {
		if st.String() == string(b) {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("unknown call state %q", b)
}

// Peer names the other box of a call.
type Peer struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Addr        string `json:"address,omitempty"`
}

// Sink receives the peer's media; it owns what it gets. Audio is called from
// the session's reader goroutine (audio datagrams: from the datagram reader
// or PumpDatagrams' caller) and must not block: the connection waits for
// it. Video is called from a goroutine of its own, one frame at a time,
// and may run concurrently with Audio; a slow Video costs frames (the session
// keeps only the newest frame the sink has not taken, and counts the ones it
// replaces as VideoSinkDrops), never a growing delay. A sink that is an
// InlineVideoSink gets Video from the reader instead.
type Sink interface {
	Video(f media.Frame)
	Audio(a media.Audio)
}

// InlineVideoSink is a Sink whose Video never waits: it keeps the frame,
// or hands it on without blocking, and returns. The session then calls
// Video from the goroutine that reads the connection, as soon as a frame
// is complete: one goroutine wake-up fewer per frame. A Video that did
// wait would hold up the connection, audio sent on it included.
type InlineVideoSink interface {
	Sink
	VideoNeverWaits()
}

// Dialer opens an authenticated connection to peer (TLS handshake done and
// the peer's key checked). It must return when ctx ends.
type Dialer func(ctx context.Context, peer Peer) (net.Conn, error)

// Config configures a Phone. The zero value of each field means its default.
type Config struct {
	Name   string            // our name, sent in hello
	ID     string            // our fingerprint: breaks the tie when two boxes call each other at once
	Video  media.VideoFormat // what we send; default media.DefaultVideo
	Audio  media.AudioFormat // what we send; default media.DefaultAudio
	Prefer media.Size        // the largest video we want to receive (told to the peer in hello); zero: any
	// Codecs are the audio codecs we receive and send, preferred first
	// (told to the peer in hello); nil: DefaultCodecs. PCM is always
	// received, listed or not.
	Codecs []wire.AudioCodec
	// Opus shapes our Opus encoder (its Format is Audio's rate and
	// channels with OpusFrameMs); zero fields take opus' defaults.
	Opus opus.Config
	// OpusFrameMs is how much audio one Opus packet carries: 10 or 20 ms,
	// a multiple of Audio.FrameMs; default 20 (or Audio.FrameMs if longer).
	OpusFrameMs int
	// OpusLow is the Opus target, bits per second, while the link holds
	// the video back (see audioRate); 0, or at or above Opus' own
	// target: never lowered.
	OpusLow    int
	AutoAnswer bool // answer paired peers at once
	// Door says this box has a door opener that takes the peer's
	// requests during a call: its hello tells the peer (wire.HelloDoor)
	// and OnDoor decides each request.
	Door bool
	// OnDoor is called from the owner goroutine when the peer of
	// the call in progress asks us to open our door: nil means opened, a
	// *DoorError says why not (its Result and Text go to the peer), any
	// other error is a fault. It must not block.
	OnDoor func(peer Peer) error

	PingInterval     time.Duration // default 500ms
	PeerTimeout      time.Duration // silence after which the peer is dead; default 2s
	HandshakeTimeout time.Duration // hello/call must arrive within; default 5s
	RingTimeout      time.Duration // unanswered calls give up after; default 30s
	ChunkSize        int           // video chunk bytes, 512..wire.MaxChunk; default 4096
	AudioQueue       int           // unsent audio frames kept; default 10
	// QueueTarget is the queueing delay at the network's bottleneck that
	// video may cause (see linkGate): lower keeps audio snappier on a slow
	// link, higher uses the link more fully. Default 20ms; 5ms..500ms.
	QueueTarget time.Duration
	MaxPending  int // incoming connections not yet in a call; default 4

	// Default names who a button press calls; nil means no default peer.
	Default func() (Peer, error)
	// OnChange is called from the owner goroutine after every state change.
	// It must not block.
	OnChange func(Status)
	Logger   *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Video == (media.VideoFormat{}) {
		c.Video = media.DefaultVideo
	}
	if c.Audio == (media.AudioFormat{}) {
		c.Audio = media.DefaultAudio
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.PingInterval, 500*time.Millisecond)
	def(&c.PeerTimeout, 2*time.Second)
	def(&c.HandshakeTimeout, 5*time.Second)
	def(&c.RingTimeout, 30*time.Second)
	def(&c.QueueTarget, 20*time.Millisecond)
	if c.ChunkSize == 0 {
		c.ChunkSize = 4096
	}
	if c.AudioQueue == 0 {
		c.AudioQueue = 10
	}
	if c.MaxPending == 0 {
		c.MaxPending = 4
	}
	if c.Codecs == nil {
		c.Codecs = DefaultCodecs()
	}
	if c.OpusFrameMs == 0 {
		c.OpusFrameMs = max(20, c.Audio.FrameMs)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first field out of range, by name.
func (c Config) Validate() error {
	c.setDefaults()
	if err := c.Video.Validate(); err != nil {
		return fmt.Errorf("call: %w", err)
	}
	if err := c.Audio.Validate(); err != nil {
		return fmt.Errorf("call: %w", err)
	}
	switch {
	case len(c.Name) > 64:
		return errors.New("call: name longer than 64 bytes")
	case c.PingInterval < 50*time.Millisecond || c.PingInterval > 5*time.Second:
		return fmt.Errorf("call: ping interval %v out of range 50ms..5s", c.PingInterval)
	case c.PeerTimeout < 2*c.PingInterval || c.PeerTimeout > time.Minute:
		return fmt.Errorf("call: peer timeout %v out of range 2×ping interval..1m", c.PeerTimeout)
	case c.HandshakeTimeout < 100*time.Millisecond || c.HandshakeTimeout > time.Minute:
		return fmt.Errorf("call: handshake timeout %v out of range 100ms..1m", c.HandshakeTimeout)
	case c.RingTimeout < time.Second || c.RingTimeout > 10*time.Minute:
		return fmt.Errorf("call: ring timeout %v out of range 1s..10m", c.RingTimeout)
	case c.ChunkSize < 512 || c.ChunkSize > wire.MaxChunk:
		return fmt.Errorf("call: chunk size %d out of range 512..%d", c.ChunkSize, wire.MaxChunk)
	case c.QueueTarget < 5*time.Millisecond || c.QueueTarget > 500*time.Millisecond:
		return fmt.Errorf("call: queue target %v out of range 5ms..500ms", c.QueueTarget)
	case c.AudioQueue < 1 || c.AudioQueue > 100:
		return fmt.Errorf("call: audio queue %d out of range 1..100", c.AudioQueue)
	case c.MaxPending < 1 || c.MaxPending > 64:
		return fmt.Errorf("call: max pending %d out of range 1..64", c.MaxPending)
	}
	if len(c.Codecs) > wire.MaxCodecs {
		return fmt.Errorf("call: %d audio codecs, limit %d", len(c.Codecs), wire.MaxCodecs)
	}
	for _, k := range c.Codecs {
		switch {
		case k == wire.AudioOpus && !opus.Available():
			return errors.New("call: audio codec opus: " + opus.ErrUnavailable.Error())
		case k != wire.AudioPCM && k != wire.AudioOpus:
			return fmt.Errorf("call: unknown audio %v", k)
		}
	}
	if slices.Contains(c.Codecs, wire.AudioOpus) {
		if c.OpusFrameMs != 10 && c.OpusFrameMs != 20 || c.OpusFrameMs%c.Audio.FrameMs != 0 {
			return fmt.Errorf("call: Opus frames of %d ms: want 10 or 20, a multiple of the %d ms audio frame", c.OpusFrameMs, c.Audio.FrameMs)
		}
		oc := c.Opus
		oc.Format = media.AudioFormat{Rate: c.Audio.Rate, Channels: c.Audio.Channels, FrameMs: c.OpusFrameMs}
		if err := oc.Validate(); err != nil {
			return fmt.Errorf("call: %w", err)
		}
		if c.OpusLow != 0 {
			oc.Bitrate = c.OpusLow
			if err := oc.Validate(); err != nil {
				return fmt.Errorf("call: the Opus target for a full link: %w", err)
			}
		}
	}
	if p := c.Prefer; p != (media.Size{}) && (p.Width < 16 || p.Width > 4096 || p.Height < 16 || p.Height > 4096) {
		return fmt.Errorf("call: preferred video %dx%d out of range 16..4096 each way", p.Width, p.Height)
	}
	return nil
}

// Status is a snapshot of the phone.
type Status struct {
	State    State     `json:"state"`
	Peer     *Peer     `json:"peer,omitempty"`
	Since    time.Time `json:"since"`
	PeerName string    `json:"peer_hello_name,omitempty"`
	// PeerPrefers is the largest video the peer wants to receive (from its
	// hello); nil when it has no preference or there is no call.
	PeerPrefers *media.Size `json:"peer_prefers,omitempty"`
	LastEnd     string      `json:"last_end,omitempty"` // why the last call ended
	// Group is the group call in progress, or the last one until the
	// next call starts: each member's state and who answered.
	Group    *GroupStatus `json:"group,omitempty"`
	Call     *CallStats   `json:"call,omitempty"` // the call in progress
	LastCall *CallStats   `json:"last_call,omitempty"`

	// PeerDoor says the peer of the call has a door opener that takes
	// our requests (OpenPeerDoor); DoorAsk is our last request and its
	// answer, kept until the next one.
	PeerDoor bool     `json:"peer_door,omitempty"`
	DoorAsk  *DoorAsk `json:"door_ask,omitempty"`
}

// Errors callers branch on.
var (
	ErrBusy      = errors.New("already in a call")
	ErrNotInCall = errors.New("no call to hang up")
	ErrNoPeer    = errors.New("no peer to call")
	ErrStopped   = errors.New("phone stopped")
)

// Phone owns the call state of one box. One goroutine (Run) owns all state;
// the other methods send it requests and are safe for concurrent use.
type Phone struct {
	cfg   Config
	dial  Dialer
	sink  Sink
	log   *slog.Logger
	hello wire.Hello

	newProbe func(net.Conn) link // newLinkProbe; tests put a simulated link here
	dg       *dgPort             // the audio datagram socket, nil without one (ServeDatagrams)

	reqs     chan func()   // requests run in the owner goroutine
	events   chan event    // from sessions
	done     chan struct{} // closed when Run returns
	stopping chan struct{} // closed when Run starts shutting down: sessions stop posting events
	active   atomic.Pointer[session]

	mu     sync.Mutex // guards status for readers
	status Status

	// owner goroutine state
	state    State
	peer     Peer
	sess     *session // the session of the current call, nil when idle or dialling
	dialStop context.CancelFunc
	dialSeq  int
	group    *groupCall // the group call being placed or answered, nil otherwise
	ask      *doorAsk   // our request to open the peer's door, waiting for its answer
	// pending holds the sessions that are not the current call: incoming
	// ones before their call request, and ended ones until they have
	// closed; each with when it got here. Every one leaves within a bound
	// (see Check).
	pending map[*session]time.Time
	ctx     context.Context
}

// New makes a phone; Run must be called for it to work.
func New(cfg Config, dial Dialer, sink Sink) (*Phone, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p := &Phone{
		cfg:      cfg,
		dial:     dial,
		sink:     sink,
		log:      cfg.Logger.With("component", "call"),
		newProbe: newLinkProbe,
		reqs:     make(chan func()),
		events:   make(chan event, 16),
		done:     make(chan struct{}),
		stopping: make(chan struct{}),
		pending:  make(map[*session]time.Time),
	}
	p.hello = wire.Hello{
		Version: wire.Version,
		Name:    cfg.Name,
		Video:   wire.VideoCaps{Width: uint16(cfg.Video.Width), Height: uint16(cfg.Video.Height), FPS: uint8(cfg.Video.FPS), Codec: wire.CodecMJPEG},
		Audio:   wire.AudioCaps{Rate: uint32(cfg.Audio.Rate), Channels: uint8(cfg.Audio.Channels), FrameMs: uint8(cfg.Audio.FrameMs), Format: wire.FormatS16LE},
		Prefer:  wire.VideoSize{Width: uint16(cfg.Prefer.Width), Height: uint16(cfg.Prefer.Height)},
		Codecs:  cfg.Codecs,
	}
	if cfg.Door {
		p.hello.Flags |= wire.HelloDoor
	}
	p.status = Status{State: Idle, Since: time.Now()}
	return p, nil
}

// Run owns the phone until ctx ends; then it hangs up a call in progress
// (reason shutdown), closes every connection and returns.
func (p *Phone) Run(ctx context.Context) error {
	p.ctx = ctx
	defer close(p.done)
	if p.dg != nil {
		dctx, stop := context.WithCancel(context.Background())
		served := make(chan struct{})
		go func() { defer close(served); p.dg.serve(dctx) }()
		// After the sessions: their audio stops before the socket closes.
		defer func() { stop(); <-served }()
	}
	for {
		select {
		case <-ctx.Done():
			p.shutdown()
			return nil
		case f := <-p.reqs:
			f()
		case e := <-p.events:
			p.handle(e)
		}
	}
}

func (p *Phone) shutdown() {
	close(p.stopping)
	if p.dialStop != nil {
		p.dialStop()
	}
	var all []*session
	if g := p.group; g != nil && g.winner == nil {
		g.stop()
		for _, l := range g.legs {
			if l.sess != nil && l.state.open() {
				l.sess.end(wire.Hangup{Reason: wire.ReasonShutdown, Text: "box shutting down"})
				all = append(all, l.sess)
			}
		}
		p.group = nil
	}
	if p.sess != nil {
		p.sess.end(wire.Hangup{Reason: wire.ReasonShutdown, Text: "box shutting down"})
		all = append(all, p.sess)
	}
	for s := range p.pending {
		if s != p.sess {
			s.cancel()
			all = append(all, s)
		}
	}
	// Give the hangup a moment to reach the peer, then force the rest.
	ctx, cancel := context.WithTimeout(context.Background(), lingerTime+200*time.Millisecond)
	defer cancel()
	for _, s := range all {
		select {
		case <-s.done:
		case <-ctx.Done():
			s.close()
		}
	}
	p.sess = nil
	p.active.Store(nil)
	p.setState(Idle, "box shutting down")
}

// do runs f in the owner goroutine and waits for it.
func (p *Phone) do(ctx context.Context, f func() error) error {
	errc := make(chan error, 1)
	select {
	case p.reqs <- func() { errc <- f() }:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return ErrStopped
	}
	select {
	case err := <-errc:
		return err
	case <-p.done:
		return ErrStopped
	}
}

// Call places a call to peer. It returns once the call is being placed;
// Status shows how it goes on.
func (p *Phone) Call(ctx context.Context, peer Peer) error {
	return p.do(ctx, func() error { return p.startCall(peer) })
}

// Hangup ends the call in progress, declines a ringing one or abandons an
// outgoing one.
func (p *Phone) Hangup(ctx context.Context) error {
	return p.do(ctx, func() error { return p.hangup(wire.ReasonNormal, "hung up") })
}

// Answer answers a ringing call.
func (p *Phone) Answer(ctx context.Context) error {
	return p.do(ctx, func() error {
		if p.state != Ringing {
			return errors.New("nothing is ringing")
		}
		p.answer()
		return nil
	})
}

// Press is what the box's button does: call the default peer when idle,
// answer when ringing, hang up otherwise.
func (p *Phone) Press(ctx context.Context) error {
	return p.do(ctx, func() error {
		switch p.state {
		case Idle:
			if p.cfg.Default == nil {
				return ErrNoPeer
			}
			peer, err := p.cfg.Default()
			if err != nil {
				return err
			}
			return p.startCall(peer)
		case Ringing:
			p.answer()
			return nil
		default:
			return p.hangup(wire.ReasonNormal, "hung up")
		}
	})
}

// Accept hands the phone an incoming, authenticated connection from peer.
// The phone owns conn from then on. It does not block for long.
func (p *Phone) Accept(conn net.Conn, peer Peer) {
	err := p.do(context.Background(), func() error {
		if len(p.pending) >= p.cfg.MaxPending {
			return errors.New("too many connections waiting")
		}
		s := newSession(p.ctx, p, conn, peer, p.hello, false)
		p.pending[s] = time.Now()
		s.ringTimer(p.cfg.HandshakeTimeout, func() {
			s.end(wire.Hangup{Reason: wire.ReasonProtocol, Text: "no call request in time"})
		})
		return nil
	})
	if err != nil {
		p.log.Warn("incoming connection refused", "peer", peer.Name, "remote", remoteAddr(conn), "err", err)
		conn.Close()
	}
}

// SendVideo offers a captured frame to the call in progress, if any. It
// never blocks. The phone takes ownership of f.JPEG.
func (p *Phone) SendVideo(f media.Frame) {
	if s := p.active.Load(); s != nil {
		s.sendVideo(f)
	}
}

// VideoReady reports whether a frame offered now would start going out at
// once: a call is in progress, no unsent frame waits, and the link had room
// for more video at the writer's last look. A capture loop that spends CPU
// on each frame (encoding) may skip frames while it is false: the link would
// not carry them anyway. Offering frames regardless is also fine (latest
// wins). It never blocks and is safe for concurrent use.
func (p *Phone) VideoReady() bool {
	s := p.active.Load()
	return s != nil && s.media.Load() && s.videoReady.Load()
}

// SendAudio offers a captured audio frame to the call in progress, if any.
// It never blocks. The phone takes ownership of a.Samples.
func (p *Phone) SendAudio(a media.Audio) {
	if s := p.active.Load(); s != nil {
		s.sendAudio(a)
	}
}

// Status returns a snapshot of the state and the figures of the call.
func (p *Phone) Status() Status {
	p.mu.Lock()
	st := p.status
	p.mu.Unlock()
	if s := p.active.Load(); s != nil {
		cs := s.snapshot(time.Now())
		st.Call = &cs
	}
	return st
}

// Check reports whether the phone can take a call: its owner goroutine
// answers, and its bookkeeping of connections that are not the current
// call is within its bounds — at most MaxPending of them, and none kept
// longer than it can legitimately take to get a call request or to close.
// A phone failing it refuses calls it should take; the daemon stops
// pinging the watchdog then, so that systemd restarts it.
func (p *Phone) Check(ctx context.Context) error {
	return p.do(ctx, func() error {
		if n := len(p.pending); n > p.cfg.MaxPending {
			return fmt.Errorf("call: %d connections waiting, limit %d", n, p.cfg.MaxPending)
		}
		// An incoming one gets HandshakeTimeout for its call request; an
		// ended one closes within lingerTime, or PeerTimeout when the peer
		// neither reads nor closes. Twice the sum leaves room for a busy
		// machine.
		bound := 2 * (p.cfg.HandshakeTimeout + p.cfg.PeerTimeout + lingerTime)
		now := time.Now()
		stuck := 0
		for _, since := range p.pending {
			if now.Sub(since) > bound {
				stuck++
			}
		}
		if stuck > 0 {
			return fmt.Errorf("call: %d connections kept waiting over %v", stuck, bound)
		}
		return nil
	})
}

// Done is closed when Run has returned.
func (p *Phone) Done() <-chan struct{} { return p.done }

func (p *Phone) setState(st State, why string) {
	if st == p.state && why == "" {
		return
	}
	prev := p.state
	p.state = st
	p.mu.Lock()
	if st != prev {
		p.status.Since = time.Now()
	}
	p.status.State = st
	if st == Idle {
		p.status.Peer = nil
		p.status.PeerName = ""
		p.status.PeerPrefers = nil
		p.status.PeerDoor = false
	} else {
		peer := p.peer
		p.status.Peer = &peer
		if p.sess != nil {
			p.status.PeerName = p.sess.hello.Name
			p.status.PeerDoor = p.sess.hello.Flags&wire.HelloDoor != 0
			p.status.PeerPrefers = nil
			if pr := p.sess.hello.Prefer; pr.Width > 0 && pr.Height > 0 {
				p.status.PeerPrefers = &media.Size{Width: int(pr.Width), Height: int(pr.Height)}
			}
		}
	}
	if why != "" {
		p.status.LastEnd = why
	}
	snap := p.status
	p.mu.Unlock()
	if st != prev {
		attrs := []any{"from", prev.String(), "to", st.String()}
		if st != Idle {
			attrs = append(attrs, "peer", p.peer.Name)
		}
		if why != "" {
			attrs = append(attrs, "reason", why)
		}
		p.log.Info("call state", attrs...)
	}
	if p.cfg.OnChange != nil {
		if s := p.active.Load(); s != nil {
			cs := s.snapshot(time.Now())
			snap.Call = &cs
		}
		p.cfg.OnChange(snap)
	}
}

func (p *Phone) startCall(peer Peer) error {
	if p.state != Idle {
		return ErrBusy
	}
	p.peer = peer
	p.dialSeq++
	seq := p.dialSeq
	p.mu.Lock()
	p.status.Group = nil // a single call replaces the last group call's outcome
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.RingTimeout)
	p.dialStop = cancel
	p.setState(Calling, "")
	go func() {
		conn, err := p.dial(ctx, peer)
		select {
		case p.reqs <- func() { p.dialled(seq, conn, err) }:
		case <-p.done:
			if conn != nil {
				conn.Close()
			}
		}
	}()
	return nil
}

// dialled runs in the owner goroutine when a dial attempt ends.
func (p *Phone) dialled(seq int, conn net.Conn, err error) {
	if seq != p.dialSeq || p.state != Calling || p.sess != nil {
		if conn != nil {
			conn.Close() // the call was abandoned meanwhile
		}
		return
	}
	p.dialStop()
	p.dialStop = nil
	if err != nil {
		p.log.Warn("call failed", "peer", p.peer.Name, "addr", p.peer.Addr, "err", err)
		p.endCall(fmt.Sprintf("could not reach %s: %v", p.peer.Name, err))
		return
	}
	s := newSession(p.ctx, p, conn, p.peer, p.hello, true)
	p.sess = s
	s.ringTimer(p.cfg.RingTimeout, func() {
		s.end(wire.Hangup{Reason: wire.ReasonTimeout, Text: "no answer"})
	})
}

func (p *Phone) answer() {
	s := p.sess
	s.stopRing()
	s.enqueue(wire.Message{Time: time.Now().UnixNano(), Body: wire.Answer{}})
	s.media.Store(true)
	p.active.Store(s)
	p.setState(InCall, "")
}

func (p *Phone) hangup(reason wire.Reason, why string) error {
	switch p.state {
	case Idle:
		return ErrNotInCall
	case Calling:
		if p.group != nil {
			p.groupHangup(reason, why)
			return nil
		}
		if p.sess == nil {
			p.dialSeq++ // forget the dial in flight
			if p.dialStop != nil {
				p.dialStop()
				p.dialStop = nil
			}
		} else {
			p.sess.end(wire.Hangup{Reason: reason, Text: why})
		}
	case Ringing:
		p.sess.end(wire.Reject{Reason: wire.ReasonDeclined, Text: why})
	case InCall:
		p.sess.end(wire.Hangup{Reason: reason, Text: why})
	}
	p.endCall(why)
	return nil
}

// endCall returns to idle. A session that is still closing finishes on its
// own; its later events are ignored.
func (p *Phone) endCall(why string) {
	if p.ask != nil && p.ask.s == p.sess {
		p.endAsk(p.ask, ErrDoorCallEnd)
	}
	if p.group != nil {
		p.group.stop()
		p.group = nil
	}
	if p.sess != nil {
		if bad := p.sess.badSummary(); bad != "" {
			why += "; " + bad
		}
		p.sess.stopRing()
		final := p.sess.snapshot(time.Now())
		p.mu.Lock()
		p.status.LastCall = &final
		p.mu.Unlock()
		// Wait for its evClosed like other leftovers (handle removes it
		// then); a session whose evClosed is being handled is removed
		// right after this returns.
		p.pending[p.sess] = time.Now()
	}
	p.sess = nil
	p.active.Store(nil)
	p.setState(Idle, why)
}

func (p *Phone) handle(e event) {
	switch e.kind {
	case evOpenDoor:
		p.doorRequested(e)
		return
	case evDoorAnswer:
		p.doorAnswered(e)
		return
	}
	if p.groupEvent(e) {
		return
	}
	s := e.s
	current := s == p.sess
	switch e.kind {
	case evHello:
		s.hello = e.hello // the session checked that its audio can be played (setCodecs)
	case evCall:
		if _, ok := p.pending[s]; !ok {
			return
		}
		switch {
		case p.state == Idle:
			delete(p.pending, s)
			s.stopRing()
			p.sess, p.peer = s, s.peer
			p.mu.Lock()
			p.status.Group = nil
			p.mu.Unlock()
			// A group call rings even here: the first person to answer
			// takes it (see group.go).
			if p.cfg.AutoAnswer && s.hello.Flags&wire.HelloRingOnly == 0 {
				p.answer()
				return
			}
			p.setState(Ringing, "")
			s.ringTimer(p.cfg.RingTimeout, func() {
				s.end(wire.Reject{Reason: wire.ReasonTimeout, Text: "not answered"})
			})
		case p.state == Calling && s.peer.Fingerprint == p.peer.Fingerprint:
			// Both boxes called each other at once. Keep the call placed by
			// the box with the smaller fingerprint; both sides decide alike,
			// whether or not their own dial has connected yet.
			if p.cfg.ID < s.peer.Fingerprint {
				p.log.Info("crossed calls: keeping ours", "peer", s.peer.Name)
				s.end(wire.Busy{})
				return
			}
			p.log.Info("crossed calls: taking theirs", "peer", s.peer.Name)
			if old := p.sess; old != nil {
				old.end(wire.Hangup{Reason: wire.ReasonNormal, Text: "crossed calls"})
				p.pending[old] = time.Now()
			} else {
				p.dialSeq++ // the dial in flight is closed when it ends
				if p.dialStop != nil {
					p.dialStop()
					p.dialStop = nil
				}
			}
			delete(p.pending, s)
			s.stopRing()
			p.sess = s
			p.answer()
		default:
			p.log.Info("busy: refused a second caller", "peer", s.peer.Name, "remote", remoteAddr(s.conn))
			s.end(wire.Busy{})
		}
	case evAnswer:
		if !current || p.state != Calling {
			return
		}
		s.stopRing()
		p.active.Store(s)
		p.setState(InCall, "")
	case evBusy:
		if current {
			p.endCall(p.peer.Name + " is busy")
		}
	case evReject:
		if current {
			p.endCall(fmt.Sprintf("%s declined (%v)", p.peer.Name, e.reason))
		}
	case evHangup:
		if current {
			why := fmt.Sprintf("%s hung up (%v)", p.peer.Name, e.reason)
			if e.text != "" {
				why += ": " + e.text
			}
			if e.reason == wire.ReasonElsewhere {
				why = fmt.Sprintf("%s's group call was answered elsewhere", p.peer.Name)
			}
			p.endCall(why)
		}
	case evClosed:
		if current {
			why := "connection closed"
			if r := s.endReason(); r != "" {
				why = r
			}
			if e.err != nil {
				why = e.err.Error()
				p.log.Warn("call lost", "peer", s.peer.Name, "err", e.err)
			}
			p.endCall(why)
		}
		// Last: endCall keeps a current session among the leftovers until
		// this very event, so a closed session must not be counted after it
		// (every lost call would otherwise keep a slot of MaxPending).
		delete(p.pending, s)
		if !current && e.err != nil {
			p.log.Debug("connection ended", "peer", s.peer.Name, "err", e.err)
		}
	}
}
