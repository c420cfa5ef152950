package call

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	// audio is a FIFO of at most cfg.AudioQueue frames; when full the oldest is
	// dropped (counted) because late audio is worth less than fresh audio.
	audio []media.Audio
	// video holds at most one unsent frame: a newer frame replaces it (latest
	// wins, counted as a drop). cur is the frame being cut into chunks.
	video    *media.Frame
	cur      *media.Frame
	hello    wire.Hello // the peer's, once received (owner goroutine only)
	curOff   int
	final    bool   // a final control message (hangup, busy, reject) is queued
	why      string // what the final message said, for the phone's status
	ring     *time.Timer
	closeErr error
	wake     chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

const ctrlCap = 16

func newSession(ctx context.Context, p *Phone, conn net.Conn, peer Peer, outgoing bool) *session {
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
		st:       newStats(time.Now()),
		wake:     make(chan struct{}, 1),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	s.enqueue(wire.Message{Time: time.Now().UnixNano(), Body: p.hello})
	if outgoing {
		s.enqueue(wire.Message{Time: time.Now().UnixNano(), Body: wire.Call{}})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- s.readLoop(ctx) }()
	go func() { defer wg.Done(); errs <- s.writeLoop(ctx) }()
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
	s.mu.Unlock()
	s.kick()
}

// sendAudio queues an audio frame; a full queue drops its oldest frame.
func (s *session) sendAudio(a media.Audio) {
	if !s.media.Load() {
		return
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
	s.audio = append(s.audio, a)
	s.mu.Unlock()
	s.kick()
}

// next picks the next message to write: control first, then audio, then one
// chunk of the current video frame. The bool says whether it was a video chunk.
func (s *session) next(buf []byte) (wire.Message, bool, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeErr != nil {
		return wire.Message{}, false, false, s.closeErr
	}
	if len(s.ctrl) > 0 {
		m := s.ctrl[0]
		copy(s.ctrl, s.ctrl[1:])
		s.ctrl = s.ctrl[:len(s.ctrl)-1]
		return m, false, true, nil
	}
	if len(s.audio) > 0 {
		a := s.audio[0]
		copy(s.audio, s.audio[1:])
		s.audio = s.audio[:len(s.audio)-1]
		pcm := buf[:0]
		for _, v := range a.Samples {
			pcm = binary.LittleEndian.AppendUint16(pcm, uint16(v))
		}
		return wire.Message{Seq: a.Seq, Time: a.Time.UnixNano(), Body: wire.Audio{PCM: pcm}}, false, true, nil
	}
	if s.cur == nil && s.video != nil {
		s.cur, s.video, s.curOff = s.video, nil, 0
	}
	if s.cur != nil {
		f := s.cur
		n := min(len(f.JPEG)-s.curOff, s.cfg.ChunkSize)
		m := wire.Message{Time: f.Time.UnixNano(), Body: wire.Video{
			Frame: f.Seq, Size: uint32(len(f.JPEG)), Offset: uint32(s.curOff), Data: f.JPEG[s.curOff : s.curOff+n],
		}}
		s.curOff += n
		if s.curOff == len(f.JPEG) {
			s.cur = nil
			s.st.mu.Lock()
			s.st.out.videoFrames++
			s.st.mu.Unlock()
		}
		return m, true, true, nil
	}
	return wire.Message{}, false, false, nil
}

func (s *session) writeLoop(ctx context.Context) error {
	bw := bufio.NewWriterSize(s.conn, 2*wire.MaxChunk)
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	var (
		out     []byte
		pcm     = make([]byte, 0, 2*s.cfg.Audio.FrameLen())
		perType [256]uint32
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-ping.C:
			s.st.tick(now)
			s.enqueue(wire.Message{Time: now.UnixNano(), Body: wire.Ping{}})
		case <-s.wake:
		}
		for {
			m, isVideo, ok, err := s.next(pcm)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			t := m.Body.Type()
			if _, isAudio := m.Body.(wire.Audio); !isAudio {
				m.Seq = perType[t]
			}
			perType[t] = m.Seq + 1
			if _, isPong := m.Body.(wire.Pong); isPong {
				m.Time = time.Now().UnixNano() // T3: as late as possible
			}
			out, err = wire.Append(out[:0], m)
			if err != nil {
				return fmt.Errorf("encode %v: %w", t, err)
			}
			s.conn.SetWriteDeadline(time.Now().Add(s.cfg.PeerTimeout))
			if _, err := bw.Write(out); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			switch b := m.Body.(type) {
			case wire.Audio:
				s.st.mu.Lock()
				s.st.out.audioFrames++
				s.st.out.audioBytes += uint64(len(b.PCM))
				s.st.mu.Unlock()
			case wire.Video:
				s.st.mu.Lock()
				s.st.out.videoBytes += uint64(len(b.Data))
				s.st.mu.Unlock()
			case wire.Hangup, wire.Busy, wire.Reject:
				// Final message: flush it and end the session. The peer
				// closes its side on reading it.
				if err := bw.Flush(); err != nil {
					return fmt.Errorf("write: %w", err)
				}
				s.lingerClose()
				return nil
			}
			// Flush after each video chunk so pending audio is never queued
			// behind more than one chunk in our buffers.
			if isVideo {
				if err := bw.Flush(); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
		}
		if bw.Buffered() > 0 {
			s.conn.SetWriteDeadline(time.Now().Add(s.cfg.PeerTimeout))
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
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
		lastAudio uint32
		anyAudio  bool
		pongs     [8]struct{ rtt, off time.Duration }
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
			s.post(event{kind: evHello, hello: h})
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
		case wire.Ping:
			s.enqueue(wire.Message{Body: wire.Pong{Ping: m.Time, Recv: now.UnixNano()}})
		case wire.Pong:
			t1, t2, t3, t4 := b.Ping, b.Recv, m.Time, now.UnixNano()
			rtt := time.Duration((t4 - t1) - (t3 - t2))
			off := time.Duration(((t2 - t1) + (t3 - t4)) / 2)
			if rtt < 0 || rtt > time.Minute {
				continue // a confused peer clock; ignore the sample
			}
			pongs[npong%len(pongs)] = struct{ rtt, off time.Duration }{rtt, off}
			npong++
			// The sample with the smallest RTT bounds the offset error best.
			best := pongs[0]
			for i := 1; i < min(npong, len(pongs)); i++ {
				if pongs[i].rtt < best.rtt {
					best = pongs[i]
				}
			}
			s.st.mu.Lock()
			s.st.rtt, s.st.offset = rtt, best.off
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
				f := media.Frame{Seq: frameNum, Time: time.Unix(0, frameTime), JPEG: append([]byte(nil), frame...)}
				lat := s.latency(now, frameTime)
				s.st.mu.Lock()
				s.st.in.videoFrames++
				s.st.in.videoLat.add(lat)
				s.st.in.videoWin.add(lat)
				s.st.mu.Unlock()
				s.sink.Video(f)
			}
		case wire.Audio:
			if !s.media.Load() {
				continue
			}
			samples := make([]int16, len(b.PCM)/2)
			for i := range samples {
				samples[i] = int16(binary.LittleEndian.Uint16(b.PCM[2*i:]))
			}
			lat := s.latency(now, m.Time)
			s.st.mu.Lock()
			if anyAudio && m.Seq > lastAudio+1 {
				s.st.in.audioDrops += uint64(m.Seq - lastAudio - 1)
			}
			s.st.in.audioFrames++
			s.st.in.audioBytes += uint64(len(b.PCM))
			s.st.in.audioLat.add(lat)
			s.st.in.audioWin.add(lat)
			s.st.mu.Unlock()
			lastAudio, anyAudio = m.Seq, true
			s.sink.Audio(media.Audio{Seq: m.Seq, Time: time.Unix(0, m.Time), Samples: samples})
		}
	}
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
