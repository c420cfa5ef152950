package call

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/wire"
)

// event is what a session reports to the phone's owner goroutine.
type event struct {
	s      *session
	kind   eventKind
	hello  wire.Hello
	reason wire.Reason
	text   string
	err    error // evClosed: why the session ended (nil after a clean hangup)

	// The door events (door.go): the request's seq (evOpenDoor) or the
	// one answered, and the answer (evDoorAnswer).
	seq  uint32
	door wire.DoorResult
}

type eventKind int

const (
	evHello  eventKind = iota // peer's hello arrived
	evCall                    // incoming side: the peer asks for a call
	evAnswer                  // outgoing side: the peer answered
	evBusy                    // outgoing side: the peer is busy
	evReject                  // the peer declined (or gave up ringing)
	evHangup                  // the peer hung up
	evClosed                  // both goroutines have ended; always the last event
)

// The door events (door.go), handled before any other.
const (
	evOpenDoor   eventKind = iota + 16 // the peer asks us to open our door
	evDoorAnswer                       // the peer answered our request to open its door
)

// errPeerTimeout is the cause when nothing arrived for PeerTimeout.
var errPeerTimeout = errors.New("peer silent, presumed dead")

// session is one call over one connection. A reader and a writer goroutine
// own the connection; the phone talks to the session through its queues and
// receives its events.
type session struct {
	cfg      *Config
	conn     net.Conn
	peer     Peer
	outgoing bool
	log      *slog.Logger
	events   chan<- event
	phoneEnd <-chan struct{} // closed when the phone stops: events are then dropped
	sink     Sink
	st       *stats

	media atomic.Bool // true once the call is answered: media flows both ways

	mu sync.Mutex
	// ctrl is the control queue: at most ctrlCap messages; a full queue means
	// the peer does not read and the session ends (control is never dropped).
	ctrl []wire.Message
	// audio is a FIFO of at most cfg.AudioQueue coded frames (payloads);
	// when full the oldest is dropped (counted) because late audio is worth
	// less than fresh audio.
	audio []outAudio
	// video holds at most one unsent frame: a newer frame replaces it (latest
	// wins, counted as a drop). cur is the frame being cut into chunks.
	video    *media.Frame
	cur      *media.Frame
	hello    wire.Hello // the peer's, once received (owner goroutine only)
	doorSeq  uint32     // OpenDoor messages queued so far: the next one's seq (owner goroutine only)
	curOff   int
	final    bool   // a final control message (hangup, busy, reject) is queued
	why      string // what the final message said, for the phone's status
	ring     *time.Timer
	closeErr error
	wake     chan struct{}

	// gate keeps video from queueing in the network (writer goroutine only).
	gate *linkGate
	// owd follows the queue on the way back, from the peer's audio.
	owd owdTracker
	// videoReady is what VideoReady reports: no frame waits and the link
	// had room at the writer's last look.
	videoReady atomic.Bool

	// show hands complete frames to the sink's goroutine: at most one frame
	// waits; a newer one replaces it (latest wins, counted), so a slow sink
	// costs frames, never a queue.
	showMu   sync.Mutex
	showNext *media.Frame
	showWake chan struct{}
	inline   bool // the sink is an InlineVideoSink: show calls it itself

	// The audio codecs, set from the peer's hello before any media flows:
	// tx codes what we capture (in the capture goroutine, no hop), rx
	// decodes what the peer sends (reader goroutine) and conceals gaps for
	// the sink (its goroutine) when the sink can use that.
	tx         atomic.Pointer[packer]
	rx         *unpacker
	concealing bool   // rx is the sink's Concealer (under rxMu)
	txBad      uint64 // frames the packer refused (under mu)

	// The peer's audio comes on the stream (reader goroutine) and, with
	// datagrams, from the port's goroutine: rxMu makes one path of the
	// two, and the first copy of each packet is the one played.
	rxMu     sync.Mutex
	rxAny    bool
	rxLast   uint32 // seq of the last packet taken
	rxClosed bool   // the codecs are freed: nothing more is taken

	// port is the phone's datagram socket (nil: none); dg the session's
	// path through it, once both hellos offered it (datagram.go).
	port *dgPort
	dg   atomic.Pointer[dgState]

	cancel context.CancelFunc
	done   chan struct{}
}

// outAudio is one coded audio message waiting to be sent.
type outAudio struct {
	seq     uint32
	time    time.Time
	payload []byte
}

const ctrlCap = 16

// newSession starts a session over conn: it sends hello (and a call
// request when outgoing) and reads and writes until it ends.
func newSession(ctx context.Context, p *Phone, conn net.Conn, peer Peer, hello wire.Hello, outgoing bool) *session {
	ctx, cancel := context.WithCancel(ctx)
	s := &session{
		cfg:      &p.cfg,
		conn:     conn,
		peer:     peer,
		outgoing: outgoing,
		log:      p.log.With("peer", peer.Name, "remote", remoteAddr(conn)),
		events:   p.events,
		phoneEnd: p.stopping,
		sink:     p.sink,
		port:     p.dg,
		st:       newStats(time.Now()),
		wake:     make(chan struct{}, 1),
		showWake: make(chan struct{}, 1),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	s.gate = newLinkGate(p.newProbe(conn), p.cfg.QueueTarget, 2*p.cfg.ChunkSize, audioWireRate(p.cfg.Audio), &s.owd)
	s.videoReady.Store(true)
	s.enqueue(wire.Message{Time: time.Now().UnixNano(), Body: hello})
	if outgoing {
		s.enqueue(wire.Message{Time: time.Now().UnixNano(), Body: wire.Call{}})
	}
	var wg, shows sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	_, s.inline = s.sink.(InlineVideoSink) // before the reader starts: it reads inline
	go func() { defer wg.Done(); errs <- s.readLoop(ctx) }()
	go func() { defer wg.Done(); errs <- s.writeLoop(ctx) }()
	if !s.inline {
		shows.Add(1)
		go func() { defer shows.Done(); s.showLoop(ctx) }()
	}
	go func() {
		// The first goroutine to end decides the cause; closing the conn and
		// cancelling ends the other one. After a final message of ours
		// (hangup, busy, reject) the other goroutine gets a moment to finish:
		// the writer to send it, the reader to see the peer close.
		err := <-errs
		s.mu.Lock()
		final := s.final
		s.mu.Unlock()
		if final {
			t := time.NewTimer(lingerTime)
			select {
			case <-errs:
			case <-t.C:
			}
			t.Stop()
		}
		cancel()
		conn.Close()
		wg.Wait()
		shows.Wait() // a sink call under way finishes first
		s.dropDatagrams()
		s.closeCodecs()
		s.stopRing()
		s.post(event{kind: evClosed, err: err})
		close(s.done)
	}()
	return s
}

func remoteAddr(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// closeCodecs frees the codecs once the reader and writer have ended; the
// sink stops concealing with ours first.
func (s *session) closeCodecs() {
	s.rxMu.Lock()
	defer s.rxMu.Unlock()
	s.rxClosed = true
	if s.concealing {
		s.sink.(ConcealingSink).DropConcealer(s.rx)
	}
	s.rx.close()
	s.tx.Load().close()
}

// setCodecs picks the audio codecs both ways from the peer's hello and
// makes their halves (reader goroutine, before the hello event).
func (s *session) setCodecs(h wire.Hello) error {
	ours, theirs := s.cfg.Codecs, peerCodecs(h)
	rx, tx := pickCodec(ours, theirs), pickCodec(theirs, ours)
	peer := media.AudioFormat{Rate: int(h.Audio.Rate), Channels: int(h.Audio.Channels), FrameMs: int(h.Audio.FrameMs)}
	u, err := newUnpacker(rx, peer, s.cfg.Audio)
	if err != nil {
		return fmt.Errorf("cannot play the peer's audio (%v): %w", rx, err)
	}
	pk, err := newPacker(tx, s.cfg.Audio, s.cfg.Opus, s.cfg.OpusFrameMs, s.cfg.OpusLow)
	if err != nil {
		u.close()
		return fmt.Errorf("cannot send audio as %v: %w", tx, err)
	}
	s.rx = u
	s.tx.Store(pk)
	s.st.mu.Lock()
	s.st.in.codec, s.st.out.codec = rx.String(), tx.String()
	s.st.out.audioTarget = float64(pk.rate) / 1000
	s.st.mu.Unlock()
	s.log.Debug("audio codecs", "send", tx, "receive", rx, "peer_offers", theirs)
	return nil
}

// post hands an event to the phone without blocking past the phone's end.
func (s *session) post(e event) {
	e.s = s
	select {
	case s.events <- e:
	case <-s.phoneEnd:
	}
}

func (s *session) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// enqueue queues a control message. A final one (hangup, busy, reject) makes
// the writer flush and end the session after sending it.
func (s *session) enqueue(m wire.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.final {
		return // nothing goes after a final message
	}
	switch m.Body.(type) {
	case wire.Ping, wire.Pong, wire.Datagrams:
		// At most one of each waits: a newer pong answers the newest ping
		// (an older one's times are stale anyway), a second ping adds
		// nothing, and only the latest word on our datagrams counts. So a
		// peer pinging faster than we write costs it pongs, not the call,
		// and only the few one-off messages (hello, call, answer, a final
		// one) can ever fill the queue.
		for i := range s.ctrl {
			if s.ctrl[i].Body.Type() == m.Body.Type() {
				s.ctrl[i] = m
				s.kick()
				return
			}
		}
	}
	if len(s.ctrl) >= ctrlCap {
		if s.closeErr == nil {
			s.closeErr = errors.New("control queue full: peer is not reading")
		}
	} else {
		s.ctrl = append(s.ctrl, m)
	}
	switch b := m.Body.(type) {
	case wire.Hangup, wire.Busy, wire.Reject:
		s.final = true
		s.why = finalText(b)
		s.audio, s.video, s.cur = s.audio[:0], nil, nil
	}
	s.kick()
}

func finalText(b wire.Body) string {
	switch b := b.(type) {
	case wire.Hangup:
		return b.Text
	case wire.Reject:
		return b.Text
	case wire.Busy:
		return "busy"
	}
	return ""
}

// ringTimer runs f (from a timer goroutine) unless stopRing comes first.
func (s *session) ringTimer(d time.Duration, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring != nil {
		s.ring.Stop()
	}
	s.ring = time.AfterFunc(d, f)
}

func (s *session) stopRing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring != nil {
		s.ring.Stop()
		s.ring = nil
	}
}

// endReason is what the final message of ours said, if any.
func (s *session) endReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why
}

// end queues a final message and lets the writer close the session.
func (s *session) end(b wire.Body) {
	s.media.Store(false)
	s.enqueue(wire.Message{Time: time.Now().UnixNano(), Body: b})
}

// sendVideo offers a frame for sending. Latest wins: a frame not yet started
// is replaced and counted as a drop.
func (s *session) sendVideo(f media.Frame) {
	if !s.media.Load() {
		return
	}
	s.mu.Lock()
	if s.final {
		s.mu.Unlock()
		return
	}
	if s.video != nil {
		s.st.mu.Lock()
		s.st.out.videoDrops++
		s.st.mu.Unlock()
	}
	s.video = &f
	s.videoReady.Store(false)
	s.mu.Unlock()
	s.kick()
}

// sendAudio codes a captured frame in the caller's goroutine and queues
// the payload once one is complete; a full queue drops its oldest.
func (s *session) sendAudio(a media.Audio) {
	if !s.media.Load() {
		return
	}
	pk := s.tx.Load()
	if pk == nil {
		return
	}
	payload, seq, t, err := pk.add(a)
	if err == errPartial {
		return
	}
	if err != nil {
		s.mu.Lock()
		s.txBad++
		first := s.txBad == 1
		s.mu.Unlock()
		if first {
			s.log.Warn("audio not sent: coding failed", "err", err)
		}
		return
	}
	// An Opus packet goes as a datagram at once, from this goroutine; the
	// stream carries it too until the peer says datagrams arrive. PCM
	// stays on the stream: it is the plain path, checked bit for bit.
	if pk.codec == wire.AudioOpus {
		if sent, only := s.sendDatagram(seq, t, payload); sent && only {
			s.st.mu.Lock()
			s.st.out.audioFrames++
			s.st.out.audioBytes += uint64(len(payload))
			s.st.mu.Unlock()
			return
		}
	}
	s.mu.Lock()
	if s.final {
		s.mu.Unlock()
		return
	}
	if len(s.audio) >= s.cfg.AudioQueue {
		copy(s.audio, s.audio[1:])
		s.audio = s.audio[:len(s.audio)-1]
		s.st.mu.Lock()
		s.st.out.audioDrops++
		s.st.mu.Unlock()
	}
	s.audio = append(s.audio, outAudio{seq: seq, time: t, payload: payload})
	s.mu.Unlock()
	s.kick()
}

// pick says what next found to write.
type pick int

const (
	pickNone  pick = iota // nothing to send
	pickHeld              // only video waits, and the link has no room for its next chunk
	pickOther             // a control or audio message
	pickVideo             // a video chunk
)

// next picks the next message to write: control first, then audio, then one
// chunk of the current video frame if it fits in room bytes (see linkGate).
// A held chunk is returned in held (its size) for the writer's retry timer.
func (s *session) next(room int) (m wire.Message, p pick, held int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeErr != nil {
		return wire.Message{}, pickNone, 0, s.closeErr
	}
	if len(s.ctrl) > 0 {
		m := s.ctrl[0]
		copy(s.ctrl, s.ctrl[1:])
		s.ctrl = s.ctrl[:len(s.ctrl)-1]
		return m, pickOther, 0, nil
	}
	if len(s.audio) > 0 {
		a := s.audio[0]
		copy(s.audio, s.audio[1:])
		s.audio = s.audio[:len(s.audio)-1]
		return wire.Message{Seq: a.seq, Time: a.time.UnixNano(), Body: wire.Audio{PCM: a.payload}}, pickOther, 0, nil
	}
	f := s.cur
	off := s.curOff
	if f == nil {
		if f = s.video; f == nil {
			return wire.Message{}, pickNone, 0, nil
		}
		off = 0
	}
	n := min(len(f.JPEG)-off, s.cfg.ChunkSize)
	if n > room {
		// Held: a frame not yet started stays replaceable by a newer one.
		return wire.Message{}, pickHeld, n, nil
	}
	if s.cur == nil {
		s.cur, s.video, s.curOff = s.video, nil, 0
	}
	m = wire.Message{Time: f.Time.UnixNano(), Body: wire.Video{
		Frame: f.Seq, Size: uint32(len(f.JPEG)), Offset: uint32(off), Data: f.JPEG[off : off+n],
	}}
	s.curOff += n
	if s.curOff == len(f.JPEG) {
		s.cur = nil
		s.st.mu.Lock()
		s.st.out.videoFrames++
		s.st.mu.Unlock()
	}
	return m, pickVideo, 0, nil
}

// roomUnknown is the writer's room before it asked the link: no chunk fits.
const roomUnknown = math.MinInt

// audioWireRate is what a call's audio needs on the wire at most, bytes
// per second: PCM (Opus takes far less) plus per-frame overhead (message
// header, TLS record, TCP/IP). The link gate keeps that much room.
func audioWireRate(f media.AudioFormat) float64 {
	const overhead = 100 // bytes per frame
	perSec := float64(1000 / f.FrameMs)
	return perSec * float64(2*f.FrameLen()+overhead)
}

// flushAt is how much the writer buffers before writing to the connection:
// video chunks and audio written back to back go in one write (one TLS
// record, one system call), which is most of a call's CPU cost. Audio still
// goes first: it is taken before any further chunk and written with them.
const flushAt = 16 << 10

func (s *session) writeLoop(ctx context.Context) error {
	bw := bufio.NewWriterSize(s.conn, 2*wire.MaxChunk)
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	// retry wakes the writer when video was held by the link gate.
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var (
		out      []byte
		perType  [256]uint32
		toldCong bool // the congestion control switch is logged
	)
	flush := func() error {
		if bw.Buffered() == 0 {
			return nil
		}
		s.conn.SetWriteDeadline(time.Now().Add(s.cfg.PeerTimeout))
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-ping.C:
			s.st.tick(now)
			s.checkDatagrams(now)
			s.adaptAudio(now)
			s.enqueue(wire.Message{Time: now.UnixNano(), Body: wire.Ping{}})
		case <-s.wake:
		case <-retry.C:
		}
		// The deadline covers writes the buffer makes by itself when full.
		s.conn.SetWriteDeadline(time.Now().Add(s.cfg.PeerTimeout))
		// The link's room is asked for (a system call) only when a video
		// chunk is next: until then it is unknown, which holds any chunk.
		room, known := roomUnknown, false
		held := 0
		for {
			m, p, n, err := s.next(room)
			if err != nil {
				return err
			}
			if p == pickNone {
				break
			}
			if p == pickHeld {
				if !known {
					room, known = s.gate.room(time.Now(), bw.Buffered()), true
					if n <= room {
						continue
					}
				}
				// Whatever is buffered goes first; then the link may have
				// room after all.
				if bw.Buffered() == 0 {
					held = n
					break
				}
				if err := flush(); err != nil {
					return err
				}
				if room = s.gate.room(time.Now(), 0); room < n {
					held = n
					break
				}
				continue
			}
			t := m.Body.Type()
			if _, isAudio := m.Body.(wire.Audio); !isAudio {
				m.Seq = perType[t]
			}
			perType[t] = m.Seq + 1
			switch m.Body.(type) {
			case wire.Ping, wire.Pong:
				// T1 and T3 as late as possible: time spent in our own
				// queue would count as network delay one way only.
				m.Time = time.Now().UnixNano()
			}
			out, err = wire.Append(out[:0], m)
			if err != nil {
				return fmt.Errorf("encode %v: %w", t, err)
			}
			if _, err := bw.Write(out); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			switch b := m.Body.(type) {
			case wire.Audio:
				s.st.mu.Lock()
				s.st.out.audioFrames++
				s.st.out.audioBytes += uint64(len(b.PCM))
				s.st.out.audioWire += uint64(len(out))
				s.st.mu.Unlock()
			case wire.Video:
				room -= len(b.Data)
				s.st.mu.Lock()
				s.st.out.videoBytes += uint64(len(b.Data))
				s.st.mu.Unlock()
			case wire.Hangup, wire.Busy, wire.Reject:
				// Final message: flush it and end the session. The peer
				// closes its side on reading it.
				if err := flush(); err != nil {
					return err
				}
				s.lingerClose()
				return nil
			}
			if bw.Buffered() >= flushAt {
				if err := flush(); err != nil {
					return err
				}
				room, known = roomUnknown, false
			}
		}
		if err := flush(); err != nil {
			return err
		}
		s.mu.Lock()
		s.videoReady.Store(s.video == nil && held == 0)
		s.mu.Unlock()
		s.st.mu.Lock()
		s.st.out.linkKbps = s.gate.kbps()
		s.st.mu.Unlock()
		if !toldCong && s.gate != nil && s.gate.switched != "" {
			toldCong = true
			s.log.Info("congestion control changed: BBR's ProbeRTT would starve the audio on this round trip",
				"to", s.gate.switched, "min_rtt", s.gate.minRTT)
		}
		if held > 0 {
			retry.Reset(s.gate.retry(held - max(room, 0)))
		}
	}
}

// lingerTime bounds how long a session waits for the peer to close after a
// final message, so the peer reads it before any reset.
const lingerTime = 500 * time.Millisecond

// lingerClose half-closes the connection after a final message: the peer
// reads the message, then EOF, and closes its side.
func (s *session) lingerClose() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := s.conn.(closeWriter); ok {
		cw.CloseWrite()
	}
}

func (s *session) readLoop(ctx context.Context) error {
	r := wire.NewReader(s.conn)
	var (
		frame     []byte // reassembly buffer, at most wire.MaxFrameSize
		frameNum  uint32
		frameTime int64
		haveFrame bool
		pongs     [offsetSamples]pongSample
		npong     int
		gotHello  bool
		gotCall   bool
		answered  bool
	)
	deadline := s.cfg.HandshakeTimeout
	for {
		s.conn.SetReadDeadline(time.Now().Add(deadline))
		m, err := r.Read()
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !gotHello {
					return errors.New("no hello from peer in time")
				}
				return errPeerTimeout
			}
			var pe *wire.ProtocolError
			if errors.As(err, &pe) {
				s.end(wire.Hangup{Reason: wire.ReasonProtocol, Text: pe.Error()})
				return fmt.Errorf("protocol error from peer: %w", err)
			}
			return fmt.Errorf("read: %w", err)
		}
		deadline = s.cfg.PeerTimeout
		s.st.mu.Lock()
		s.st.received++
		s.st.mu.Unlock()
		if !gotHello {
			h, ok := m.Body.(wire.Hello)
			if !ok {
				return s.protocolFault("first message is %v, want hello", m.Body.Type())
			}
			if h.Version != wire.Version {
				s.end(wire.Hangup{Reason: wire.ReasonProtocol, Text: fmt.Sprintf("protocol version %d not supported", h.Version)})
				return fmt.Errorf("peer speaks protocol version %d, we speak %d", h.Version, wire.Version)
			}
			gotHello = true
			cerr := s.setCodecs(h)
			if cerr == nil {
				s.setDatagrams(s.port, h)
			}
			s.post(event{kind: evHello, hello: h})
			if cerr != nil {
				s.log.Warn("peer audio cannot be played", "err", cerr)
				s.end(wire.Hangup{Reason: wire.ReasonMedia, Text: wire.ClipText(cerr.Error())})
				return cerr
			}
			continue
		}
		switch b := m.Body.(type) {
		case wire.Hello:
			return s.protocolFault("second hello")
		case wire.Call:
			if s.outgoing || gotCall {
				return s.protocolFault("unexpected call message")
			}
			gotCall = true
			s.post(event{kind: evCall})
		case wire.Answer:
			if !s.outgoing || answered {
				return s.protocolFault("unexpected answer message")
			}
			answered = true
			s.mu.Lock()
			if !s.final {
				s.media.Store(true) // media may follow the answer at once
			}
			s.mu.Unlock()
			s.post(event{kind: evAnswer})
		case wire.Busy:
			s.post(event{kind: evBusy})
			return nil
		case wire.Reject:
			s.post(event{kind: evReject, reason: b.Reason, text: b.Text})
			return nil
		case wire.Hangup:
			s.post(event{kind: evHangup, reason: b.Reason, text: b.Text})
			return nil
		case wire.OpenDoor:
			s.post(event{kind: evOpenDoor, seq: m.Seq})
		case wire.DoorAnswer:
			s.post(event{kind: evDoorAnswer, seq: b.Request, door: b.Result, text: b.Text})
		case wire.Datagrams:
			s.peerSaysDatagrams(b)
		case wire.Ping:
			s.enqueue(wire.Message{Body: wire.Pong{Ping: m.Time, Recv: now.UnixNano()}})
		case wire.Pong:
			t1, t2, t3, t4 := b.Ping, b.Recv, m.Time, now.UnixNano()
			rtt := time.Duration((t4 - t1) - (t3 - t2))
			off := time.Duration(((t2 - t1) + (t3 - t4)) / 2)
			if rtt < 0 || rtt > time.Minute {
				continue // a confused peer clock; ignore the sample
			}
			pongs[npong%len(pongs)] = pongSample{rtt, off}
			npong++
			best := bestOffset(pongs[:min(npong, len(pongs))])
			s.st.mu.Lock()
			s.st.rtt, s.st.offset = rtt, best
			s.st.mu.Unlock()
		case wire.Video:
			if !s.media.Load() {
				continue // not in a call (yet, or any more): ignore
			}
			if b.Offset == 0 {
				if haveFrame {
					s.st.mu.Lock()
					s.st.in.videoDrops++ // abandoned by the sender
					s.st.mu.Unlock()
				}
				if b.Size > wire.MaxFrameSize {
					return s.protocolFault("video frame of %d bytes", b.Size)
				}
				frame, frameNum, frameTime, haveFrame = frame[:0], b.Frame, m.Time, true
			} else if !haveFrame || b.Frame != frameNum || int(b.Offset) != len(frame) {
				return s.protocolFault("video chunk out of place (frame %d offset %d)", b.Frame, b.Offset)
			}
			frame = append(frame, b.Data...)
			s.st.mu.Lock()
			s.st.in.videoBytes += uint64(len(b.Data))
			s.st.mu.Unlock()
			if len(frame) == int(b.Size) {
				haveFrame = false
				if err := media.CheckJPEG(frame); err != nil {
					s.badMedia(&s.st.in.videoBad, "video", err)
					continue
				}
				s.st.mu.Lock()
				s.st.in.videoFrames++
				s.st.mu.Unlock()
				s.show(media.Frame{Seq: frameNum, Time: time.Unix(0, frameTime), JPEG: append([]byte(nil), frame...)})
			}
		case wire.Audio:
			s.recvAudio(m.Seq, m.Time, b.PCM, now, wire.HeaderLen+len(b.PCM), false)
		}
	}
}

// recvAudio takes one audio packet of the peer's, from the stream or a
// datagram: the first copy of each is decoded and played, a later copy or
// a packet older than one taken is dropped (the playout has moved on).
func (s *session) recvAudio(seq uint32, t int64, payload []byte, now time.Time, wireBytes int, datagram bool) {
	if !s.media.Load() {
		return // not in a call (yet, or any more): ignore
	}
	s.rxMu.Lock()
	defer s.rxMu.Unlock()
	if s.rxClosed || s.rxAny && int32(seq-s.rxLast) <= 0 {
		return
	}
	s.rx.arrived = now
	if err := s.rx.frames(seq, time.Unix(0, t), payload, s.sink.Audio); err != nil {
		s.badMedia(&s.st.in.audioBad, "audio", err)
		return
	}
	if !s.concealing && s.rx.dec != nil {
		if cs, ok := s.sink.(ConcealingSink); ok {
			cs.SetConcealer(s.rx)
			s.concealing = true
		}
	}
	s.owd.add(now, time.Unix(0, t))
	lat := s.latency(now, t)
	s.st.mu.Lock()
	if s.rxAny && seq > s.rxLast+1 {
		s.st.in.audioDrops += uint64(seq - s.rxLast - 1)
	}
	s.st.in.audioFrames++
	s.st.in.audioBytes += uint64(len(payload))
	s.st.in.audioWire += uint64(wireBytes)
	s.st.in.datagram = datagram
	s.st.in.audioLat.add(lat)
	s.st.in.audioWin.add(lat)
	s.st.mu.Unlock()
	s.rxLast, s.rxAny = seq, true
}

// badMedia counts a piece of the peer's media that failed its checks and
// is dropped. The first of each kind in a call is logged, and the call's end
// reason tells how many there were (see badSummary).
func (s *session) badMedia(counter *uint64, kind string, err error) {
	s.st.mu.Lock()
	*counter++
	first := *counter == 1
	s.st.mu.Unlock()
	if first {
		s.log.Warn("peer media failed its checks: dropped", "kind", kind, "err", err)
	}
}

// badSummary says how much of the peer's media was dropped as bad, or "".
func (s *session) badSummary() string {
	s.st.mu.Lock()
	v, a := s.st.in.videoBad, s.st.in.audioBad
	s.st.mu.Unlock()
	switch {
	case v > 0 && a > 0:
		return fmt.Sprintf("dropped %d video frames that were not JPEG and %d audio frames that did not decode from the peer", v, a)
	case v > 0:
		return fmt.Sprintf("dropped %d video frames from the peer that were not JPEG", v)
	case a > 0:
		return fmt.Sprintf("dropped %d audio frames from the peer that did not decode", a)
	}
	return ""
}

// show hands a complete frame to the sink's goroutine. A frame the sink has
// not taken yet is replaced (latest wins) and counted, so the reader never
// waits for the sink and the connection never backs up behind a slow one.
// A sink whose Video never waits gets the frame at once, from the reader.
func (s *session) show(f media.Frame) {
	if s.inline {
		s.toSink(f)
		return
	}
	s.showMu.Lock()
	if s.showNext != nil {
		s.st.mu.Lock()
		s.st.in.videoSinkDrops++
		s.st.mu.Unlock()
	}
	s.showNext = &f
	s.showMu.Unlock()
	select {
	case s.showWake <- struct{}{}:
	default:
	}
}

// showLoop calls the sink with the newest complete frame, one at a time,
// until ctx ends. Video latency is measured here, when the sink gets the
// frame: that is when it can be seen.
func (s *session) showLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.showWake:
		}
		s.showMu.Lock()
		f := s.showNext
		s.showNext = nil
		s.showMu.Unlock()
		if f == nil {
			continue
		}
		s.toSink(*f)
	}
}

// toSink measures a frame's latency and gives it to the sink.
func (s *session) toSink(f media.Frame) {
	lat := s.latency(time.Now(), f.Time.UnixNano())
	s.st.mu.Lock()
	s.st.in.videoLat.add(lat)
	s.st.in.videoWin.add(lat)
	s.st.mu.Unlock()
	s.sink.Video(f)
}

// Clock offset estimation. Each ping/pong exchange gives a round trip and an
// offset whose error is half the difference between the time the ping and
// the pong spent in queues. The offset is the median of the offsets of the
// offsetBest exchanges with the smallest round trips among the last
// offsetSamples (16 s at the default ping interval): small round trips bound
// the error, and the median keeps one lopsided exchange (a ping that passed
// an empty queue while the pong waited in a full one) from moving every
// latency figure for as long as it is the fastest. Two free-running clocks
// 100 ppm apart move 1.6 ms in that time.
const (
	offsetSamples = 32
	offsetBest    = 8
)

type pongSample struct{ rtt, off time.Duration }

// bestOffset picks the offset from samples (any order, not empty).
func bestOffset(samples []pongSample) time.Duration {
	var buf [offsetSamples]pongSample
	s := buf[:copy(buf[:], samples)]
	// sort.Slice, not slices.SortFunc: each SortFunc instantiation costs
	// ~10 KB of the arm64 binary's 12 MiB budget.
	sort.Slice(s, func(i, j int) bool { return s[i].rtt < s[j].rtt })
	s = s[:min(len(s), offsetBest)]
	sort.Slice(s, func(i, j int) bool { return s[i].off < s[j].off })
	if len(s)%2 == 1 {
		return s[len(s)/2].off
	}
	return (s[len(s)/2-1].off + s[len(s)/2].off) / 2
}

// latency converts a peer capture timestamp to our clock and returns its age.
func (s *session) latency(now time.Time, captured int64) time.Duration {
	s.st.mu.Lock()
	off := s.st.offset
	s.st.mu.Unlock()
	return now.Sub(time.Unix(0, captured).Add(-off))
}

func (s *session) protocolFault(format string, args ...any) error {
	err := fmt.Errorf("protocol error from peer: "+format, args...)
	s.end(wire.Hangup{Reason: wire.ReasonProtocol, Text: err.Error()})
	return err
}

// close ends the session at once and waits for its goroutines.
func (s *session) close() {
	s.cancel()
	s.conn.Close()
	<-s.done
}
