package call

import (
	"context"
	"crypto/cipher"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/stream/wire"
)

// Audio datagrams (protocol revision 1.5, docs/protocol.md section 11).
// A phone given a UDP socket on its call port (ServeDatagrams) says so in
// its hello; when both hellos say so and the connection is TLS 1.3, each
// side seals its audio into datagrams under a key exported from the TLS
// connection and sends them beside the stream: a lost datagram costs that
// packet (the decoder conceals it), where on the stream it would hold
// everything behind it until TCP retransmits. The caller sends to the
// address it dialled; the callee answers to the address the caller's
// datagrams come from (so a NAT between them is fine on the caller's
// side). Until the peer says our datagrams arrive, audio goes both ways
// (the receiver keeps the first copy of each packet); after that on
// datagrams only, and on both again if the peer says they stopped.

// dgSilence is how long a receiver waits without a datagram, once they
// arrived, before it tells the peer they stopped.
const dgSilence = time.Second

// maxDatagramCounter is the last datagram number a session uses: past it
// the audio goes on the stream, so that a nonce is never reused.
const maxDatagramCounter = 1<<32 - 1

// dgPort is the phone's UDP socket: what arrives is opened with the keys
// of the sessions that have them. A reader goroutine waits on the socket,
// unless a speaker pumps it (pump): then the reader stands aside, and the
// speaker's own tick reads what arrived since its last one.
type dgPort struct {
	pc  net.PacketConn
	log *slog.Logger

	mu   sync.Mutex
	sess []*session // sessions with datagram keys: at most a handful

	refused atomic.Uint64 // datagrams no session's key opened, or replays
	done    chan struct{}
	closed  chan struct{} // closed when the port is closing

	// handleMu makes the reader goroutine and a pump one path: a session's
	// replay window and the port's buffers are used under it.
	handleMu sync.Mutex
	scratch  []byte
	list     []*session

	// raw is the socket out of Go's poller (dgsock_linux.go), which a
	// speaker can pump; nil where it cannot be had: then pc is read.
	raw      *rawSock
	lastPump atomic.Int64 // monoNow() of the last pump; 0: never
}

// pumpIdle is how long after the last pump the reader goroutine waits
// before it reads the socket itself again (a speaker that stopped, a call
// that ended). It is also how often a standing-aside reader looks.
const pumpIdle = 250 * time.Millisecond

func newDgPort(pc net.PacketConn, log *slog.Logger) *dgPort {
	return &dgPort{pc: pc, log: log, done: make(chan struct{}), closed: make(chan struct{}),
		scratch: make([]byte, wire.MaxDatagram), raw: newRawSock(pc)}
}

func (d *dgPort) add(s *session) {
	d.mu.Lock()
	d.sess = append(d.sess, s)
	d.mu.Unlock()
}

func (d *dgPort) remove(s *session) {
	d.mu.Lock()
	d.sess = slices.DeleteFunc(d.sess, func(x *session) bool { return x == s })
	d.mu.Unlock()
}

// monoStart anchors monoNow: the monotonic clock, which a step of the
// wall clock (a Pi without a battery clock setting its time) leaves alone.
var monoStart = time.Now()

// monoNow is the time since monoStart, never 0.
func monoNow() int64 { return int64(time.Since(monoStart)) + 1 }

// pumped says whether a pump ran within the last pumpIdle.
func (d *dgPort) pumped() bool {
	last := d.lastPump.Load()
	return last != 0 && monoNow()-last < int64(pumpIdle)
}

// run reads datagrams until the socket is closed, standing aside while
// a speaker pumps the socket. It notices a pump that started while it
// waited with the next datagram, which it takes: the pump gets the rest.
func (d *dgPort) run() {
	defer close(d.done)
	var buf []byte
	if d.raw == nil {
		buf = make([]byte, wire.MaxDatagram+1)
	}
	for {
		if d.pumped() {
			select {
			case <-d.closed:
				return
			case <-time.After(pumpIdle):
			}
			continue
		}
		if d.raw != nil {
			if !d.readRaw() {
				return
			}
			continue
		}
		n, from, err := d.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// ICMP errors surface here on some systems: not the socket's end.
			d.log.Debug("datagram read", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		d.handleMu.Lock()
		d.handle(buf[:n], from, time.Now())
		d.handleMu.Unlock()
	}
}

// readRaw waits for the raw socket and reads what waits there; false
// when the port is closing.
func (d *dgPort) readRaw() bool {
	err := d.raw.wait()
	if d.isClosed() {
		return false
	}
	if err == nil {
		d.handleMu.Lock()
		err = d.raw.drain(d.handle)
		d.handleMu.Unlock()
	}
	if err != nil {
		d.log.Debug("datagram read", "err", err)
		time.Sleep(10 * time.Millisecond) // no busy loop on a broken socket
	}
	return true
}

// isClosed says whether serve is closing the port.
func (d *dgPort) isClosed() bool {
	select {
	case <-d.closed:
		return true
	default:
		return false
	}
}

// pump reads what waits on the socket without blocking, in the caller's
// goroutine, and says whether it could (false: the reader goroutine reads
// as they arrive). A speaker calls it before each period it plays
// (Phone.PumpDatagrams): its tick then reads the peer's packets, and a
// call's audio wakes the daemon once a period instead of once per packet
// as well. The packets keep the kernel's receive time, so latency and the
// playout's jitter are the network's, not the tick's.
func (d *dgPort) pump() bool {
	if d.raw == nil {
		return false
	}
	d.handleMu.Lock()
	ok := !d.isClosed() && d.raw.drain(d.handle) == nil
	d.handleMu.Unlock()
	if ok {
		d.lastPump.Store(monoNow())
	}
	return ok // if not, the reader goes on (or takes over again) by itself
}

// handle opens one datagram that arrived from from at now (under
// handleMu) and hands it to the session whose key opens it.
func (d *dgPort) handle(pkt []byte, from netip.AddrPort, now time.Time) {
	if len(pkt) > wire.MaxDatagram || !from.IsValid() {
		d.refused.Add(1)
		return
	}
	ctr, err := wire.DatagramCounter(pkt)
	if err != nil {
		d.refused.Add(1)
		return
	}
	d.mu.Lock()
	d.list = append(d.list[:0], d.sess...)
	d.mu.Unlock()
	for _, s := range d.list {
		dg := s.dg.Load()
		if dg == nil || !dg.win.Fresh(ctr) {
			continue
		}
		p := pkt
		if len(d.list) > 1 {
			p = d.scratch[:copy(d.scratch, pkt)] // a failed open may overwrite what it was given
		}
		_, seq, t, payload, err := wire.OpenAudio(dg.open, p)
		if err != nil {
			continue
		}
		dg.win.Accept(ctr)
		s.datagramIn(dg, from, seq, t, payload, now)
		clear(d.list)
		return
	}
	clear(d.list)
	d.refused.Add(1)
}

// udpConn is what a *net.UDPConn offers beyond net.PacketConn: reads
// and writes with an address that costs no allocation per datagram.
type udpConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

func (d *dgPort) read(b []byte) (int, netip.AddrPort, error) {
	if u, ok := d.pc.(udpConn); ok {
		return u.ReadFromUDPAddrPort(b)
	}
	n, a, err := d.pc.ReadFrom(b)
	ua, _ := a.(*net.UDPAddr)
	if err != nil || ua == nil {
		return n, netip.AddrPort{}, err
	}
	return n, ua.AddrPort(), nil
}

func (d *dgPort) write(b []byte, to netip.AddrPort) error {
	if d.raw != nil {
		return d.raw.write(b, to)
	}
	var err error
	if u, ok := d.pc.(udpConn); ok {
		_, err = u.WriteToUDPAddrPort(b, to)
	} else {
		_, err = d.pc.WriteTo(b, net.UDPAddrFromAddrPort(to))
	}
	return err
}

// dgState is one session's datagram path.
type dgState struct {
	port       *dgPort
	seal, open cipher.AEAD

	sendMu  sync.Mutex // the capture goroutine sends; the counter and buf are its
	counter uint64
	buf     []byte

	// to is where our datagrams go: the dialled address for the caller,
	// the address the peer's datagrams come from once they came.
	to atomic.Pointer[netip.AddrPort]
	// confirmed: the peer said our datagrams arrive, so audio goes on
	// datagrams only.
	confirmed atomic.Bool

	win wire.ReplayWindow // under the port's handleMu

	mu       sync.Mutex
	lastIn   time.Time // when the last datagram opened
	arriving bool      // we told the peer its datagrams arrive
}

// setDatagrams makes the session's datagram path from the peer's hello,
// if both sides take datagrams and the connection can export keys
// (reader goroutine, at the hello).
func (s *session) setDatagrams(port *dgPort, h wire.Hello) {
	if port == nil || h.Flags&wire.HelloDatagrams == 0 {
		return
	}
	cs, ok := s.conn.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return
	}
	st := cs.ConnectionState()
	if st.Version != tls.VersionTLS13 {
		return
	}
	seal, open, err := wire.DatagramKeys(st.ExportKeyingMaterial, s.outgoing)
	if err != nil {
		s.log.Warn("audio datagrams not used", "err", err)
		return
	}
	dg := &dgState{port: port, seal: seal, open: open}
	if s.outgoing {
		if ta, ok := s.conn.RemoteAddr().(*net.TCPAddr); ok {
			ap := ta.AddrPort()
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			dg.to.Store(&ap)
		}
	}
	s.dg.Store(dg)
	port.add(s)
}

// sendDatagram sends one audio payload as a datagram, if the path is
// there (capture goroutine). It says whether it went, and whether the
// peer has said datagrams arrive (then the stream need not carry it).
func (s *session) sendDatagram(seq uint32, t time.Time, payload []byte) (sent, only bool) {
	dg := s.dg.Load()
	if dg == nil || len(payload) > wire.MaxDatagramAudio {
		return false, false
	}
	to := dg.to.Load()
	if to == nil {
		return false, false
	}
	dg.sendMu.Lock()
	defer dg.sendMu.Unlock()
	if dg.counter > maxDatagramCounter {
		return false, false
	}
	b, err := wire.SealAudio(dg.buf[:0], dg.seal, uint32(dg.counter), seq, t.UnixNano(), payload)
	if err != nil {
		return false, false
	}
	dg.buf = b
	dg.counter++
	if err := dg.port.write(b, *to); err != nil {
		s.st.mu.Lock()
		s.st.out.dgErrors++
		first := s.st.out.dgErrors == 1
		s.st.mu.Unlock()
		if first {
			s.log.Info("audio datagram not sent", "to", to.String(), "err", err)
		}
		return false, false
	}
	s.st.mu.Lock()
	s.st.out.audioWire += uint64(len(b))
	s.st.mu.Unlock()
	return true, dg.confirmed.Load()
}

// datagramIn takes one opened audio datagram (under the port's handleMu).
// arrived is when the datagram reached the box (the kernel's receive
// time when it waited for a pump); the silence check runs on this
// process's clock.
func (s *session) datagramIn(dg *dgState, from netip.AddrPort, seq uint32, t int64, payload []byte, arrived time.Time) {
	now := time.Now()
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if to := dg.to.Load(); to == nil || *to != from {
		// The callee learns where to send from the caller's first
		// datagram; either side follows a peer whose address moved.
		dg.to.Store(&from)
		if to != nil {
			s.log.Info("peer's datagrams come from a new address", "from", to.String(), "to", from.String())
		}
	}
	dg.mu.Lock()
	dg.lastIn = now
	tell := !dg.arriving
	dg.arriving = true
	dg.mu.Unlock()
	if tell {
		s.enqueue(wire.Message{Time: now.UnixNano(), Body: wire.Datagrams{Arriving: true}})
	}
	s.recvAudio(seq, t, payload, arrived, wire.DatagramOverhead+len(payload), true)
}

// checkDatagrams tells the peer when its datagrams stopped arriving
// (writer goroutine, at each ping).
func (s *session) checkDatagrams(now time.Time) {
	dg := s.dg.Load()
	if dg == nil {
		return
	}
	dg.mu.Lock()
	stopped := dg.arriving && now.Sub(dg.lastIn) > dgSilence
	if stopped {
		dg.arriving = false
	}
	dg.mu.Unlock()
	if stopped {
		s.log.Info("the peer's audio datagrams stopped arriving: told it to use the stream")
		s.enqueue(wire.Message{Time: now.UnixNano(), Body: wire.Datagrams{}})
	}
}

// peerSaysDatagrams takes the peer's Datagrams message (reader goroutine).
func (s *session) peerSaysDatagrams(d wire.Datagrams) {
	dg := s.dg.Load()
	if dg == nil {
		return // we never sent any: nothing to change
	}
	if old := dg.confirmed.Swap(d.Arriving); old != d.Arriving {
		if d.Arriving {
			s.log.Info("audio goes as datagrams: the peer says they arrive")
		} else {
			s.log.Info("the peer says our audio datagrams stopped arriving: audio goes on the stream too")
		}
	}
}

// dropDatagrams leaves the port (the session is closing).
func (s *session) dropDatagrams() {
	if dg := s.dg.Load(); dg != nil {
		dg.port.remove(s)
	}
}

// serveDatagrams runs the port until ctx ends, then closes the socket.
func (d *dgPort) serve(ctx context.Context) {
	go d.run()
	<-ctx.Done()
	d.handleMu.Lock() // a pump under way ends first; those after see d.closed
	close(d.closed)
	d.handleMu.Unlock()
	if d.raw != nil {
		d.raw.wake()
		<-d.done
		d.raw.close()
		return
	}
	d.pc.Close()
	<-d.done
}

// snapshot is the session's figures with the audio's paths.
func (s *session) snapshot(now time.Time) CallStats {
	cs := s.st.snapshot(now)
	if cs.Out.AudioFrames == 0 {
		return cs
	}
	cs.Out.AudioPath = "stream"
	if pk := s.tx.Load(); pk == nil || pk.codec != wire.AudioOpus {
		return cs // only Opus goes as datagrams
	}
	if dg := s.dg.Load(); dg != nil {
		switch {
		case dg.confirmed.Load():
			cs.Out.AudioPath = "datagrams"
		case dg.to.Load() != nil:
			cs.Out.AudioPath = "stream+datagrams"
		}
	}
	return cs
}

// ServeDatagrams gives the phone a UDP socket on its call port for the
// calls' audio (protocol revision 1.5): hellos then offer datagrams, and
// Run reads the socket and closes it when it ends. Call it before Run.
// On Linux a *net.UDPConn is taken out of Go's network poller at once
// (pc is closed; the phone keeps a duplicate of its descriptor), so that
// a speaker can read it on its own tick (PumpDatagrams).
func (p *Phone) ServeDatagrams(pc net.PacketConn) {
	p.dg = newDgPort(pc, p.log)
	p.hello.Flags |= wire.HelloDatagrams
}

// PumpDatagrams reads the audio datagrams that wait on the phone's
// socket, without blocking, in the caller's goroutine, and hands them to
// their calls (whose sinks then get the audio before this returns). A
// speaker calls it before each period it plays, so that a call's audio
// wakes the box once a period: while it does, the phone's own reader
// stands aside, and it takes over again 250 ms after the last pump. It
// says whether it read the socket (false: no socket, or not on this
// system; the reader goroutine reads as datagrams arrive).
func (p *Phone) PumpDatagrams() bool {
	if p.dg == nil {
		return false
	}
	return p.dg.pump()
}

// DatagramsRefused counts datagrams that arrived on the socket and opened
// under no call's key (or were replays): dropped unanswered.
func (p *Phone) DatagramsRefused() uint64 {
	if p.dg == nil {
		return 0
	}
	return p.dg.refused.Load()
}
