package faults

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/identity"
	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/wire"
)

// Fake is a paired peer that is not a callbox: a key of its own, made with
// stream/identity and added to the daemons through the control API, that
// speaks the wire protocol by hand so that it can break it on purpose.
type Fake struct {
	Name  string
	ID    *identity.Identity
	store *identity.Store // whom it answers as a callee
	ln    net.Listener    // where boxes call it
	conns chan *tls.Conn
	wg    sync.WaitGroup
}

// NewFake makes a fake peer with a new key in dir, listening on 127.0.0.1.
func NewFake(dir, name string) (*Fake, error) {
	id, _, err := identity.LoadOrCreate(dir, name)
	if err != nil {
		return nil, err
	}
	store, err := identity.OpenStore(filepath.Join(dir, "peers.json"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &Fake{Name: name, ID: id, store: store, ln: ln, conns: make(chan *tls.Conn, 4)}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// Addr is where boxes call the fake.
func (f *Fake) Addr() string { return f.ln.Addr().String() }

// Register pairs the fake with box, both ways: the box gets the fake's
// fingerprint and address (POST /v1/peers), the fake the box's key.
func (f *Fake) Register(ctx context.Context, box *testbox.Box) error {
	fp, err := identity.ParseFingerprint(box.FP)
	if err != nil {
		return err
	}
	if err := f.store.Add(identity.Peer{Name: box.Name, Fingerprint: fp}); err != nil {
		return err
	}
	return box.Client.Do(ctx, "POST", "/v1/peers", control.Peer{Name: f.Name, Fingerprint: f.ID.Fingerprint.String(), Address: f.Addr()}, nil)
}

// Close stops listening and closes connections not taken.
func (f *Fake) Close() {
	f.ln.Close()
	f.wg.Wait()
	for {
		select {
		case c := <-f.conns:
			c.Close()
		default:
			return
		}
	}
}

func (f *Fake) accept() {
	defer f.wg.Done()
	for {
		raw, err := f.ln.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(raw, f.ID.ServerTLS(f.store))
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			raw.Close()
			continue
		}
		raw.SetDeadline(time.Time{})
		select {
		case f.conns <- tc:
		default:
			raw.Close() // nobody waits for it
		}
	}
}

// Dial connects to box's call port with mutual TLS, as a paired peer.
func (f *Fake) Dial(ctx context.Context, box *testbox.Box) (*Conn, error) {
	fp, err := identity.ParseFingerprint(box.FP)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", box.Addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, f.ID.ClientTLS(fp))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("fake: handshake with %s: %w", box.Name, err)
	}
	return newConn(raw, tc), nil
}

// Incoming waits for a box to call the fake (after its TLS handshake).
func (f *Fake) Incoming(ctx context.Context, within time.Duration) (*Conn, error) {
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case tc := <-f.conns:
		return newConn(tc.NetConn(), tc), nil
	case <-t.C:
		return nil, fmt.Errorf("fake: no call came within %v", within)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Conn is one connection of the fake: a TLS connection whose messages the
// fake writes and reads itself.
type Conn struct {
	Raw net.Conn
	TLS *tls.Conn

	wmu sync.Mutex
	seq [256]uint32
	buf []byte

	mu       sync.Mutex
	got      map[wire.Type]int
	hangup   *wire.Hangup
	lastPong wire.Pong
	readErr  error
	reading  bool
	readDone chan struct{}
}

func newConn(raw net.Conn, tc *tls.Conn) *Conn {
	return &Conn{Raw: raw, TLS: tc, got: map[wire.Type]int{}, readDone: make(chan struct{})}
}

// Hello is what the fake says of itself: the boxes' default formats, so
// that a box accepts the call.
func (c *Conn) Hello(name string) wire.Hello {
	a, v := media.DefaultAudio, media.DefaultVideo
	return wire.Hello{Version: wire.Version, Name: name,
		Video: wire.VideoCaps{Width: uint16(v.Width), Height: uint16(v.Height), FPS: 10, Codec: wire.CodecMJPEG},
		Audio: wire.AudioCaps{Rate: uint32(a.Rate), Channels: uint8(a.Channels), FrameMs: uint8(a.FrameMs), Format: wire.FormatS16LE}}
}

// Send writes one message, numbered per type, stamped now.
func (c *Conn) Send(b wire.Body) error {
	return c.SendAt(b, time.Now().UnixNano())
}

// SendAt writes one message with the given header time.
func (c *Conn) SendAt(b wire.Body, t int64) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	c.buf, err = c.appendMsg(c.buf[:0], b, t)
	if err != nil {
		return err
	}
	c.TLS.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.TLS.Write(c.buf)
	return err
}

func (c *Conn) appendMsg(dst []byte, b wire.Body, t int64) ([]byte, error) {
	typ := b.Type()
	out, err := wire.Append(dst, wire.Message{Seq: c.seq[typ], Time: t, Body: b})
	if err == nil {
		c.seq[typ]++
	}
	return out, err
}

// SendRaw writes bytes that need not be a valid message.
func (c *Conn) SendRaw(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.TLS.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.TLS.Write(p)
	return err
}

// SendPings writes n Pings in one go, their header times 1..n ns after
// base, and returns the time of the last one.
func (c *Conn) SendPings(n int, base int64) (int64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	out := make([]byte, 0, n*wire.HeaderLen)
	var err error
	for i := 1; i <= n; i++ {
		if out, err = c.appendMsg(out, wire.Ping{}, base+int64(i)); err != nil {
			return 0, err
		}
	}
	c.TLS.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err = c.TLS.Write(out)
	return base + int64(n), err
}

// HoldWrites keeps every other writer of the connection out until the
// returned function is called: what is written on Raw meanwhile lands
// between two whole TLS records.
func (c *Conn) HoldWrites() (release func()) {
	c.wmu.Lock()
	return c.wmu.Unlock
}

// Start sends the fake's Hello (and Call when calling) and starts reading
// in the background: Pings are answered, everything is counted.
func (c *Conn) Start(name string, call bool) error {
	if err := c.Send(c.Hello(name)); err != nil {
		return err
	}
	if call {
		if err := c.Send(wire.Call{}); err != nil {
			return err
		}
	}
	c.ReadInBackground()
	return nil
}

// ReadInBackground reads messages until the connection fails: it answers
// Pings, keeps the last Pong and the Hangup, and counts all by type.
func (c *Conn) ReadInBackground() {
	c.mu.Lock()
	c.reading = true
	c.mu.Unlock()
	go func() {
		defer close(c.readDone)
		r := wire.NewReader(c.TLS)
		for {
			m, err := r.Read()
			if err != nil {
				c.mu.Lock()
				c.readErr = err
				c.mu.Unlock()
				return
			}
			c.mu.Lock()
			c.got[m.Body.Type()]++
			switch b := m.Body.(type) {
			case wire.Hangup:
				c.hangup = &b
			case wire.Pong:
				c.lastPong = b
			}
			c.mu.Unlock()
			if _, ok := m.Body.(wire.Ping); ok {
				c.Send(wire.Pong{Ping: m.Time, Recv: time.Now().UnixNano()})
			}
		}
	}()
}

// ReadUntil reads messages itself (no background reader) until one of
// type t arrives, answering nothing.
func (c *Conn) ReadUntil(t wire.Type, within time.Duration) error {
	c.TLS.SetReadDeadline(time.Now().Add(within))
	defer c.TLS.SetReadDeadline(time.Time{})
	r := wire.NewReader(c.TLS)
	for {
		m, err := r.Read()
		if err != nil {
			return fmt.Errorf("fake: waiting for %v: %w", t, err)
		}
		if m.Body.Type() == t {
			return nil
		}
	}
}

// Got is how many messages of type t arrived.
func (c *Conn) Got(t wire.Type) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[t]
}

// Hangup is the Hangup the box sent, if any.
func (c *Conn) Hangup() *wire.Hangup {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hangup
}

// LastPong is the newest Pong received.
func (c *Conn) LastPong() wire.Pong {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastPong
}

// ReadErr is why the background reader stopped (nil while it reads).
func (c *Conn) ReadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// WaitType waits until a message of type t has arrived.
func (c *Conn) WaitType(ctx context.Context, t wire.Type, within time.Duration) error {
	return WaitFor(ctx, within, fmt.Sprintf("fake receives %v", t), func() (bool, error) {
		if c.Got(t) > 0 {
			return true, nil
		}
		if err := c.ReadErr(); err != nil {
			return false, fmt.Errorf("connection ended: %w", err)
		}
		return false, nil
	})
}

// Close resets the connection and waits for the background reader.
func (c *Conn) Close() {
	reset(c.Raw)
	c.mu.Lock()
	reading := c.reading
	c.mu.Unlock()
	if reading {
		<-c.readDone
	}
}

// HangupGracefully sends Hangup (normal), half-closes and closes.
func (c *Conn) HangupGracefully() error {
	err := c.Send(wire.Hangup{Reason: wire.ReasonNormal, Text: "fake hung up"})
	c.TLS.CloseWrite()
	return err
}

// RawMessage is a message header (and payload) built by hand: for types
// and lengths that wire.Append refuses to encode.
func RawMessage(t wire.Type, payload int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(wire.HeaderLen-4+payload))
	b = append(b, byte(t), 0)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().UnixNano()))
	return append(b, make([]byte, payload)...)
}

// HalfClientHello is the first half of a real TLS ClientHello for box's
// call port, as a paired fake would send it.
func (f *Fake) HalfClientHello(box *testbox.Box) ([]byte, error) {
	fp, err := identity.ParseFingerprint(box.FP)
	if err != nil {
		return nil, err
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, f.ID.ClientTLS(fp)).Handshake()
	buf := make([]byte, 4096)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := b.Read(buf)
	if err != nil {
		return nil, err
	}
	if n < 10 {
		return nil, errors.New("fake: ClientHello too short")
	}
	return buf[:n/2], nil
}
