package call

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/opus"
	"github.com/callbox/callbox/stream/wire"
)

// These tests run real sockets on 127.0.0.1 (TLS over TCP, UDP for the
// datagrams), in real time: a synctest bubble cannot wait on sockets.

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1)}, &x509.Certificate{SerialNumber: big.NewInt(1)}, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

// filterConn is a UDP socket whose incoming datagrams a test can drop
// (a firewall) and whose last one it can read (to replay it).
type filterConn struct {
	net.PacketConn
	drop atomic.Bool
	mu   sync.Mutex
	last []byte
}

func (c *filterConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.drop.Load() {
			if err == nil {
				c.mu.Lock()
				c.last = append(c.last[:0], b[:n]...)
				c.mu.Unlock()
			}
			return n, a, err
		}
	}
}

func (c *filterConn) lastDatagram() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.last...)
}

// tlsBox is a phone answering TLS on 127.0.0.1, with a UDP socket on the
// same port unless told not to.
type tlsBox struct {
	*Phone
	name string
	sink *recSink
	ln   net.Listener
	udp  *filterConn
	cert tls.Certificate
}

func newTLSBox(t *testing.T, name string, datagrams bool, codecs ...wire.AudioCodec) *tlsBox {
	t.Helper()
	return startTLSBox(t, name, datagrams, false, codecs...)
}

// startTLSBox is newTLSBox; with plain, the phone gets the UDP socket
// itself (a *net.UDPConn, as the daemon gives it), not a filterConn.
func startTLSBox(t *testing.T, name string, datagrams, plain bool, codecs ...wire.AudioCodec) *tlsBox {
	t.Helper()
	b := &tlsBox{name: name, sink: &recSink{}, cert: testCert(t)}
	// The UDP socket takes the listener's port; try again if another
	// socket holds it.
	for try := 0; ; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if !datagrams {
			b.ln = ln
			break
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			b.ln, b.udp = ln, &filterConn{PacketConn: pc}
			break
		}
		ln.Close()
		if try == 10 {
			t.Fatal(err)
		}
	}
	if codecs == nil {
		codecs = DefaultCodecs()
	}
	cfg := Config{Name: name, ID: "fp-" + name, AutoAnswer: true, Codecs: codecs, PeerTimeout: 5 * time.Second}
	p, err := New(cfg, b.dial, b.sink)
	if err != nil {
		t.Fatal(err)
	}
	b.Phone = p
	if b.udp != nil {
		if plain {
			p.ServeDatagrams(b.udp.PacketConn)
		} else {
			p.ServeDatagrams(b.udp)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	go b.serve()
	t.Cleanup(func() { b.ln.Close(); cancel(); <-done })
	return b
}

func (b *tlsBox) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{b.cert},
		ClientAuth: tls.RequireAnyClientCert, InsecureSkipVerify: true, NextProtos: []string{"callbox/1"},
	}
}

func (b *tlsBox) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(c, b.tlsConfig())
		go func() {
			if err := tc.Handshake(); err != nil {
				tc.Close()
				return
			}
			b.Accept(tc, Peer{Name: "peer", Fingerprint: "fp-peer"})
		}()
	}
}

// dial reaches the peer whose address is peer.Addr.
func (b *tlsBox) dial(ctx context.Context, peer Peer) (net.Conn, error) {
	var d tls.Dialer
	d.Config = b.tlsConfig()
	return d.DialContext(ctx, "tcp", peer.Addr)
}

func (b *tlsBox) peer() Peer {
	return Peer{Name: b.name, Fingerprint: "fp-" + b.name, Addr: b.ln.Addr().String()}
}

// talk sends d of 10 ms frames from both boxes, paced in real time,
// numbering from *seq on.
func talk(a, b *tlsBox, seq *uint32, d time.Duration) {
	f := media.DefaultAudio
	for end := time.Now().Add(d); time.Now().Before(end); *seq++ {
		a.SendAudio(media.Audio{Seq: *seq, Time: time.Now(), Samples: tone(f, *seq)})
		b.SendAudio(media.Audio{Seq: *seq, Time: time.Now(), Samples: tone(f, *seq)})
		time.Sleep(f.FrameDuration())
	}
}

func callStats(t *testing.T, b *tlsBox) *CallStats {
	t.Helper()
	st := b.Status()
	if st.State != InCall || st.Call == nil {
		t.Fatalf("%s: %v, not in a call (last end %q)", b.name, st.State, st.LastEnd)
	}
	return st.Call
}

// waitInCall waits until both boxes are in the call (a slow machine, or
// qemu-user, takes a while over the TLS handshake and the hellos).
func waitInCall(t *testing.T, boxes ...*tlsBox) {
	t.Helper()
	for _, b := range boxes {
		for end := time.Now().Add(20 * time.Second); b.Status().State != InCall; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(end) {
				st := b.Status()
				t.Fatalf("%s: %v, not in a call (last end %q)", b.name, st.State, st.LastEnd)
			}
		}
	}
}

// waitPath talks until both directions of box b's call go the way wanted.
func waitPath(t *testing.T, a, b *tlsBox, seq *uint32, out, in string) {
	t.Helper()
	waitInCall(t, a, b)
	for end := time.Now().Add(20 * time.Second); ; {
		talk(a, b, seq, 100*time.Millisecond)
		st := callStats(t, b)
		if st.Out.AudioPath == out && st.In.AudioPath == in {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: audio out by %q, in by %q; want %q, %q", b.name, st.Out.AudioPath, st.In.AudioPath, out, in)
		}
	}
}

// inOrder checks that the sink got increasing frames, and how many.
func inOrder(t *testing.T, b *tlsBox) int {
	t.Helper()
	b.sink.mu.Lock()
	defer b.sink.mu.Unlock()
	for i := 1; i < len(b.sink.audio); i++ {
		if int32(b.sink.audio[i].Seq-b.sink.audio[i-1].Seq) <= 0 {
			t.Fatalf("%s played frame %d after %d", b.name, b.sink.audio[i].Seq, b.sink.audio[i-1].Seq)
		}
	}
	return len(b.sink.audio)
}

// datagramCall puts two boxes that take datagrams in a call, a calling
// b, and talks until the audio goes as datagrams both ways.
func datagramCall(t *testing.T) (a, b *tlsBox, seq *uint32) {
	t.Helper()
	return startDatagramCall(t, false)
}

// startDatagramCall is datagramCall; plain gives each phone its UDP
// socket itself (startTLSBox).
func startDatagramCall(t *testing.T, plain bool) (a, b *tlsBox, seq *uint32) {
	t.Helper()
	if !opus.Available() {
		t.Skip("built without Opus")
	}
	a, b = startTLSBox(t, "a", true, plain), startTLSBox(t, "b", true, plain)
	if err := a.Call(context.Background(), b.peer()); err != nil {
		t.Fatal(err)
	}
	seq = new(uint32)
	waitPath(t, a, b, seq, "datagrams", "datagrams")
	waitPath(t, b, a, seq, "datagrams", "datagrams")
	return a, b, seq
}

func TestAudioGoesAsDatagrams(t *testing.T) {
	a, b, seq := datagramCall(t)
	before := settled(t, b).In
	n0 := inOrder(t, b)
	from := *seq
	talk(a, b, seq, time.Second)
	st := settled(t, b)
	got := st.In.AudioFrames - before.AudioFrames
	if sent := uint64(*seq-from) / 2; got+sent/10 < sent { // less what the loopback dropped
		t.Errorf("b took %d of %d packets sent as datagrams", got, sent)
	}
	if per := float64(st.In.AudioWireBytes-before.AudioWireBytes) / float64(got); per != float64(st.In.AudioBytes-before.AudioBytes)/float64(got)+wire.DatagramOverhead {
		t.Errorf("%.1f wire bytes per packet: not payload + %d", per, wire.DatagramOverhead)
	}
	if n := inOrder(t, b); uint64(n-n0) != 2*got+uint64(concealedSince(b, n0)) {
		t.Errorf("b's sink got %d frames for %d packets", n-n0, got)
	}

	// Garbage, and a replay of a real datagram from another socket: both
	// are dropped unanswered, and the call's audio does not notice.
	refused := sendJunk(t, b, b.udp.lastDatagram(), []byte{1, 2, 3}, append([]byte{1, 0xff, 0xff, 0xff, 0xff}, make([]byte, 60)...))
	talk(a, b, seq, 300*time.Millisecond)
	refused()
	waitPath(t, a, b, seq, "datagrams", "datagrams") // still
	inOrder(t, b)

	// Hang up; the next call uses datagrams again.
	callBack(t, a, b, seq)
}

// sendJunk sends pkts to b's call port from a socket of its own. The
// check it returns waits until b has refused them all and finds that b
// answered none.
func sendJunk(t *testing.T, b *tlsBox, pkts ...[]byte) (check func()) {
	t.Helper()
	refused := b.DatagramsRefused()
	evil, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { evil.Close() })
	for _, pkt := range pkts {
		if _, err := evil.WriteTo(pkt, b.udp.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		t.Helper()
		want := uint64(len(pkts))
		for end := time.Now().Add(10 * time.Second); b.DatagramsRefused()-refused < want && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		if got := b.DatagramsRefused() - refused; got != want {
			t.Errorf("%d of %d bad datagrams refused", got, want)
		}
		evil.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := evil.ReadFrom(make([]byte, 2048)); err == nil {
			t.Errorf("b answered a bad datagram with %d bytes", n)
		}
	}
}

// callBack hangs up a's call to b, and b calls a: the audio goes as
// datagrams again.
func callBack(t *testing.T, a, b *tlsBox, seq *uint32) {
	t.Helper()
	if err := a.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, a)
	waitIdle(t, b)
	if err := b.Call(context.Background(), a.peer()); err != nil {
		t.Fatal(err)
	}
	waitPath(t, b, a, seq, "datagrams", "datagrams")
}

func waitIdle(t *testing.T, b *tlsBox) {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); b.Status().State != Idle; {
		if time.Now().After(end) {
			t.Fatalf("%s: still %v", b.name, b.Status().State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDatagramsBlocked: a firewall drops every datagram to the callee, or
// the callee has no socket for them (an older box), or the call is on PCM:
// the audio goes on the stream, all of it.
func TestDatagramsBlocked(t *testing.T) {
	if !opus.Available() {
		t.Skip("built without Opus")
	}
	for _, c := range []struct {
		name       string
		udp        bool
		callerPath string
		codecs     []wire.AudioCodec
	}{
		{"firewall", true, "stream+datagrams", nil},
		{"older box", false, "stream", nil},
		{"PCM", true, "stream", []wire.AudioCodec{wire.AudioPCM}}, // never as datagrams
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := newTLSBox(t, "a", true, c.codecs...), newTLSBox(t, "b", c.udp, c.codecs...)
			if b.udp != nil && c.codecs == nil {
				b.udp.drop.Store(true)
			}
			if err := a.Call(context.Background(), b.peer()); err != nil {
				t.Fatal(err)
			}
			var seq uint32
			waitPath(t, b, a, &seq, c.callerPath, "stream")
			waitPath(t, a, b, &seq, "stream", "stream")
			streamed(t, a, b, &seq)
		})
	}
}

// TestDatagramsStopMidCall: datagrams flow, then stop arriving (a
// firewall rule, a route change): the receiver tells the sender, the
// audio comes back on the stream within a few seconds, and goes back to
// datagrams when they pass again.
func TestDatagramsStopMidCall(t *testing.T) {
	a, b, seq := datagramCall(t)
	b.udp.drop.Store(true)
	// b tells a; a sends on the stream as well; b's own datagrams to a
	// still arrive.
	waitPath(t, b, a, seq, "stream+datagrams", "datagrams")
	waitPath(t, a, b, seq, "datagrams", "stream")
	streamed(t, a, b, seq)
	b.udp.drop.Store(false)
	waitPath(t, a, b, seq, "datagrams", "datagrams")
	waitPath(t, b, a, seq, "datagrams", "datagrams")
	inOrder(t, b)
	inOrder(t, a)
}

// streamed checks that a second of a's audio all reaches b over the
// stream, which loses nothing.
func streamed(t *testing.T, a, b *tlsBox, seq *uint32) {
	t.Helper()
	before := callStats(t, b).In.AudioFrames
	from := *seq
	talk(a, b, seq, time.Second)
	sent := uint64(*seq-from) / 2
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := callStats(t, b).In.AudioFrames - before
		if got >= sent { // a packet begun before may end in this second
			break
		}
		if time.Now().After(end) {
			t.Fatalf("b took %d of %d packets sent over the stream", got, sent)
		}
	}
	inOrder(t, b)
}

// settled waits until b takes no more audio (what was sent has arrived)
// and returns its call's figures.
func settled(t *testing.T, b *tlsBox) *CallStats {
	t.Helper()
	st := callStats(t, b)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond)
		now := callStats(t, b)
		if now.In.AudioFrames == st.In.AudioFrames {
			return now
		}
		st = now
	}
	t.Fatalf("%s still takes audio 10 s after the talking stopped", b.name)
	return nil
}

// concealedSince counts the frames b's sink got from index n0 on that
// were made up for lost packets.
func concealedSince(b *tlsBox, n0 int) int {
	b.sink.mu.Lock()
	defer b.sink.mu.Unlock()
	n := 0
	for _, a := range b.sink.audio[n0:] {
		if a.Concealed {
			n++
		}
	}
	return n
}
