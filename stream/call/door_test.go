package call

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/wire"
)

// doorBox is a door box's part in a test: it records who asked and
// answers with the next of its refusals (nil: opened).
type doorBox struct {
	mu      sync.Mutex
	askedBy []string
	answers []error
}

func (d *doorBox) request(peer Peer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.askedBy = append(d.askedBy, peer.Name)
	if len(d.answers) == 0 {
		return nil
	}
	err := d.answers[0]
	d.answers = d.answers[1:]
	return err
}

func (d *doorBox) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.askedBy...)
}

func withDoor(d *doorBox) func(*Config) {
	return func(c *Config) { c.Door, c.OnDoor = true, d.request }
}

// The indoor box opens the door box's door during a call; a refusal comes
// back with its reason; both show in the asker's status. The indoor box
// has no door: the door box learns that from its hello.
func TestOpenPeerDoor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		d := &doorBox{answers: []error{nil, &DoorError{Result: wire.DoorTooSoon, Text: "too soon: the door opens again in 4s"}}}
		indoor := n.add(t, "indoor", nil)
		door := n.add(t, "door", withDoor(d))
		if err := door.Call(context.Background(), peerOf(indoor)); err != nil {
			t.Fatal(err)
		}
		wantState(t, indoor, InCall)
		wantState(t, door, InCall)
		if !indoor.Status().PeerDoor || door.Status().PeerDoor {
			t.Fatalf("peer door: indoor sees %v, door sees %v; want true, false", indoor.Status().PeerDoor, door.Status().PeerDoor)
		}
		if err := indoor.OpenPeerDoor(context.Background()); err != nil {
			t.Fatalf("first request: %v", err)
		}
		if got := d.asked(); len(got) != 1 || got[0] != "indoor" {
			t.Fatalf("the door box was asked by %v, want indoor once", got)
		}
		if a := indoor.Status().DoorAsk; a == nil || !a.Opened || a.Peer != "door" || a.Answer != "opened" {
			t.Fatalf("indoor's door ask after the opening: %+v", a)
		}
		err := indoor.OpenPeerDoor(context.Background())
		var de *DoorError
		if !errors.As(err, &de) || de.Result != wire.DoorTooSoon || de.Peer != "door" || !strings.Contains(err.Error(), "door refused to open its door: too soon") {
			t.Fatalf("second request: %v, want the door's refusal (too soon)", err)
		}
		if a := indoor.Status().DoorAsk; a == nil || a.Opened || !strings.Contains(a.Answer, "refused: too soon: the door opens again in 4s") {
			t.Fatalf("indoor's door ask after the refusal: %+v", a)
		}
		// The door box cannot open the indoor box's door: it has none, so
		// nothing is sent.
		if err := door.OpenPeerDoor(context.Background()); !errors.Is(err, ErrNoPeerDoor) {
			t.Fatalf("the door box asking the indoor box: %v, want ErrNoPeerDoor", err)
		}
		// The call went on throughout, and after it nobody can ask.
		wantState(t, indoor, InCall)
		indoor.Hangup(context.Background())
		wantState(t, door, Idle)
		if err := indoor.OpenPeerDoor(context.Background()); !errors.Is(err, ErrNoDoorCall) {
			t.Fatalf("request after the call: %v, want ErrNoDoorCall", err)
		}
		if indoor.Status().PeerDoor {
			t.Error("peer door still shown after the call")
		}
		if len(d.asked()) != 2 {
			t.Errorf("the door box was asked %d times, want 2", len(d.asked()))
		}
	})
}

// tapConn records what a box writes on its end of a connection.
type tapConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *tapConn) types(t *testing.T) map[wire.Type]int {
	t.Helper()
	c.mu.Lock()
	b := bytes.Clone(c.out.Bytes())
	c.mu.Unlock()
	seen := map[wire.Type]int{}
	r := wire.NewReader(bytes.NewReader(b))
	for {
		m, err := r.Read()
		if err == io.EOF {
			return seen
		}
		if err != nil {
			t.Fatalf("what the caller wrote does not parse: %v", err)
		}
		seen[m.Body.Type()]++
	}
}

// A peer whose hello has no door flag (a box without a door opener, or
// one older than revision 1.4, which would end the call on the unknown
// message) is never sent the request: it is refused here, and the call
// goes on undisturbed.
func TestNoDoorFlagNothingSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		var tap *tapConn
		n.wrap = func(c net.Conn) net.Conn { tap = &tapConn{Conn: c}; return tap }
		a, b := n.add(t, "a", nil), n.add(t, "b", nil)
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, InCall)
		for range 3 {
			if err := a.OpenPeerDoor(context.Background()); !errors.Is(err, ErrNoPeerDoor) {
				t.Fatalf("OpenPeerDoor: %v, want ErrNoPeerDoor", err)
			}
		}
		if a := a.Status().DoorAsk; a == nil || a.Opened || !strings.Contains(a.Answer, "not asked") {
			t.Errorf("door ask: %+v, want it not asked", a)
		}
		a.SendAudio(media.Audio{Samples: testPCM(7)})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		wantState(t, a, InCall)
		wantState(t, b, InCall)
		seen := tap.types(t)
		if seen[wire.TypeOpenDoor] != 0 {
			t.Fatalf("the caller sent %d open door messages to a peer without the flag", seen[wire.TypeOpenDoor])
		}
		if seen[wire.TypeAudio] != 1 || seen[wire.TypePing] == 0 {
			t.Fatalf("the caller wrote %v; want its audio and pings", seen)
		}
	})
}

// fakePeer is the other end of a phone's connection, driven by the test:
// it sends what the test says and hands over what it reads, answering
// pings by itself so that the call stays up.
type fakePeer struct {
	conn net.Conn
	mu   sync.Mutex
	seq  [256]uint32
	got  chan wire.Message // everything but pings and pongs (64 kept; more are dropped)
}

func newFakePeer(t *testing.T, conn net.Conn) *fakePeer {
	f := &fakePeer{conn: conn, got: make(chan wire.Message, 64)}
	t.Cleanup(func() { conn.Close() })
	go func() {
		r := wire.NewReader(conn)
		for {
			m, err := r.Read()
			if err != nil {
				close(f.got)
				return
			}
			switch m.Body.(type) {
			case wire.Ping:
				f.send(wire.Pong{Ping: m.Time, Recv: time.Now().UnixNano()})
			case wire.Pong:
			default:
				select {
				case f.got <- m:
				default: // nobody looks: dropped
				}
			}
		}
	}()
	return f
}

func (f *fakePeer) send(b wire.Body) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := b.Type()
	buf, err := wire.Append(nil, wire.Message{Seq: f.seq[t], Time: time.Now().UnixNano(), Body: b})
	if err != nil {
		panic(err)
	}
	f.seq[t]++
	f.conn.Write(buf)
}

// next returns the next message of type ty (others are skipped).
func (f *fakePeer) next(t *testing.T, ty wire.Type) wire.Message {
	t.Helper()
	for m := range f.got {
		if m.Body.Type() == ty {
			return m
		}
	}
	t.Fatalf("the connection ended before a %v message", ty)
	return wire.Message{}
}

func fakeHello(name string, flags uint8) wire.Hello {
	return wire.Hello{Version: wire.Version, Name: name,
		Video: wire.VideoCaps{Width: 640, Height: 480, FPS: 30, Codec: wire.CodecMJPEG},
		Audio: wire.AudioCaps{Rate: 48000, Channels: 1, FrameMs: 10, Format: wire.FormatS16LE},
		Flags: flags}
}

// phoneCalling makes a phone whose dials reach a fake door box, and has it
// call the fake, which answers.
func phoneCalling(t *testing.T) (*box, *fakePeer) {
	t.Helper()
	conns := make(chan net.Conn, 1)
	dial := func(ctx context.Context, peer Peer) (net.Conn, error) {
		c1, c2 := net.Pipe()
		conns <- c2
		return c1, nil
	}
	sink := &recSink{}
	p, err := New(Config{Name: "indoor", ID: "fp-indoor", Codecs: []wire.AudioCodec{wire.AudioPCM}}, dial, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &box{Phone: p, name: "indoor", sink: sink, stop: cancel, done: make(chan struct{})}
	go func() { p.Run(ctx); close(b.done) }()
	t.Cleanup(func() { cancel(); <-b.done })
	if err := p.Call(context.Background(), Peer{Name: "door", Fingerprint: "fp-door"}); err != nil {
		t.Fatal(err)
	}
	f := newFakePeer(t, <-conns)
	f.send(fakeHello("door", wire.HelloDoor))
	f.next(t, wire.TypeCall)
	f.send(wire.Answer{})
	wantState(t, b, InCall)
	return b, f
}

// A door box that never answers: the request gives up after
// DoorAnswerTimeout and says so; its late answer changes nothing.
func TestOpenPeerDoorNoAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		indoor, f := phoneCalling(t)
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- indoor.OpenPeerDoor(context.Background()) }()
		m := f.next(t, wire.TypeOpenDoor)
		synctest.Wait()
		if err := indoor.OpenPeerDoor(context.Background()); !errors.Is(err, ErrDoorAsking) {
			t.Errorf("a second request while waiting: %v, want ErrDoorAsking", err)
		}
		if a := indoor.Status().DoorAsk; a == nil || a.Answer != "waiting for the answer" {
			t.Errorf("door ask while waiting: %+v", a)
		}
		if err := <-errc; !errors.Is(err, ErrDoorNoAnswer) {
			t.Fatalf("OpenPeerDoor: %v, want ErrDoorNoAnswer", err)
		}
		if d := time.Since(start); d != DoorAnswerTimeout {
			t.Errorf("gave up after %v (simulated time), want %v", d, DoorAnswerTimeout)
		}
		f.send(wire.DoorAnswer{Request: m.Seq, Result: wire.DoorOpened})
		synctest.Wait()
		if a := indoor.Status().DoorAsk; a == nil || a.Opened || !strings.Contains(a.Answer, "did not answer") {
			t.Errorf("door ask after a late answer: %+v", a)
		}
		// The next request carries the next seq, and its answer counts.
		go func() { errc <- indoor.OpenPeerDoor(context.Background()) }()
		m2 := f.next(t, wire.TypeOpenDoor)
		if m2.Seq != m.Seq+1 {
			t.Errorf("second request seq %d, want %d", m2.Seq, m.Seq+1)
		}
		f.send(wire.DoorAnswer{Request: m.Seq, Result: wire.DoorBusy}) // stale: ignored
		f.send(wire.DoorAnswer{Request: m2.Seq, Result: wire.DoorOpened})
		if err := <-errc; err != nil {
			t.Fatalf("second request: %v", err)
		}
		wantState(t, indoor, InCall)
	})
}

// The call ending while a request waits ends the wait at once.
func TestOpenPeerDoorCallEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		indoor, f := phoneCalling(t)
		errc := make(chan error, 1)
		go func() { errc <- indoor.OpenPeerDoor(context.Background()) }()
		f.next(t, wire.TypeOpenDoor)
		f.send(wire.Hangup{Reason: wire.ReasonNormal})
		if err := <-errc; !errors.Is(err, ErrDoorCallEnd) {
			t.Fatalf("OpenPeerDoor: %v, want ErrDoorCallEnd", err)
		}
		wantState(t, indoor, Idle)
	})
}

// acceptFake hands a fake caller's connection to phone b.
func acceptFake(t *testing.T, b *box, flags uint8) *fakePeer {
	t.Helper()
	c1, c2 := net.Pipe()
	b.Accept(c2, Peer{Name: "x", Fingerprint: "fp-x"})
	f := newFakePeer(t, c1)
	f.send(fakeHello("x", flags))
	return f
}

// A door box answers every request: refused outside a call (before its
// answer) without asking its opener, refused by a box without a door
// opener, and through its opener in a call. None of it ends the call.
func TestDoorRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		d := &doorBox{answers: []error{errors.New("gpio: line GPIO22: device busy")}}
		door := n.add(t, "door", func(c *Config) { withDoor(d)(c); c.AutoAnswer = false })
		f := acceptFake(t, door, 0)
		f.send(wire.Call{})
		wantState(t, door, Ringing)
		f.send(wire.OpenDoor{})
		a := f.next(t, wire.TypeDoorAnswer).Body.(wire.DoorAnswer)
		if a.Request != 0 || a.Result != wire.DoorNotAllowed || len(d.asked()) != 0 {
			t.Fatalf("request while ringing: answer %+v, opener asked %v; want not allowed, not asked", a, d.asked())
		}
		door.Answer(context.Background())
		wantState(t, door, InCall)
		f.next(t, wire.TypeAnswer)
		f.send(wire.OpenDoor{})
		a = f.next(t, wire.TypeDoorAnswer).Body.(wire.DoorAnswer)
		if a.Request != 1 || a.Result != wire.DoorFault || !strings.Contains(a.Text, "device busy") {
			t.Fatalf("request whose opening failed: %+v, want a fault with the error", a)
		}
		f.send(wire.OpenDoor{})
		if a = f.next(t, wire.TypeDoorAnswer).Body.(wire.DoorAnswer); a.Request != 2 || a.Result != wire.DoorOpened {
			t.Fatalf("request in the call: %+v, want opened", a)
		}
		if got := d.asked(); len(got) != 2 || got[1] != "x" {
			t.Fatalf("opener asked by %v", got)
		}
		wantState(t, door, InCall)

		// A box without a door opener refuses, and stays in the call.
		plain := n.add(t, "plain", nil)
		g := acceptFake(t, plain, wire.HelloDoor)
		g.send(wire.Call{})
		wantState(t, plain, InCall)
		g.send(wire.OpenDoor{})
		if a = g.next(t, wire.TypeDoorAnswer).Body.(wire.DoorAnswer); a.Result != wire.DoorNone {
			t.Fatalf("a box without a door: %+v, want no door", a)
		}
		// An answer to a request never made is ignored.
		g.send(wire.DoorAnswer{Request: 9, Result: wire.DoorOpened})
		synctest.Wait()
		wantState(t, plain, InCall)
		if plain.Status().DoorAsk != nil || !plain.Status().PeerDoor {
			t.Errorf("plain's status: door ask %+v, peer door %v", plain.Status().DoorAsk, plain.Status().PeerDoor)
		}
	})
}
