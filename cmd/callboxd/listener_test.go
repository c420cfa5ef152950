package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// chanListener hands out the conns sent to it.
type chanListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7000} }

// fromConn is one end of a pipe that says it comes from addr.
type fromConn struct {
	net.Conn
	addr net.Addr
}

func (c fromConn) RemoteAddr() net.Addr { return c.addr }

func connFrom(t *testing.T, ip string, port int) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return fromConn{Conn: a, addr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port)))}, b
}

// closedSoon reports whether the far end of a pipe sees it closed.
func closedSoon(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestListenerKeepsSlotsForFriends: 49 flooding sources holding half-open
// handshakes take every general slot, yet a paired peer's address still
// gets one of the reserved slots; a stranger does not.
func TestListenerKeepsSlotsForFriends(t *testing.T) {
	ln := newChanListener()
	friend := netip.MustParseAddr("127.0.0.1")
	served := make(chan net.Addr, 100)
	l := newCallListener(ln, listenerConfig{Friend: func(ip netip.Addr) bool { return ip == friend }},
		func(ctx context.Context, c net.Conn) {
			served <- c.RemoteAddr()
			<-ctx.Done() // a half-open handshake holds its slot
			c.Close()
		})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	defer func() { cancel(); ln.Close(); <-done }()

	var flooders []net.Conn
	for i := range 49 {
		c, far := connFrom(t, fmt.Sprintf("127.0.0.%d", i+2), 40000+i)
		ln.conns <- c
		flooders = append(flooders, far)
	}
	// The first 8 sources got the 8 general slots; the other 41 were closed.
	for range 8 {
		<-served
	}
	dropped := 0
	for _, far := range flooders[8:] {
		if closedSoon(far) {
			dropped++
		}
	}
	if dropped != 41 {
		t.Fatalf("%d of the 41 flooders beyond the general slots were closed, want all", dropped)
	}
	stranger, far := connFrom(t, "127.0.0.99", 1)
	ln.conns <- stranger
	if !closedSoon(far) {
		t.Fatal("a stranger got a reserved slot")
	}
	for i := range 4 {
		c, _ := connFrom(t, "127.0.0.1", 50000+i)
		ln.conns <- c
		select {
		case a := <-served:
			if a.String() != fmt.Sprintf("127.0.0.1:%d", 50000+i) {
				t.Fatalf("served %v", a)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("friend's connection %d got no slot under the flood", i)
		}
	}
	// Per source: a fifth from the friend is refused too.
	c, far := connFrom(t, "127.0.0.1", 50010)
	ln.conns <- c
	if !closedSoon(far) {
		t.Fatal("one source got more than 4 slots")
	}
	st := l.Stats()
	if st.InUse != 12 || st.Friends != 4 || st.Dropped != 43 {
		t.Errorf("stats %+v, want 12 in use (4 reserved) and 43 dropped", st)
	}
	if err := l.Check(); err != nil {
		t.Errorf("Check under a flood: %v, want nil (the listener still accepts)", err)
	}
}

func TestListenerCheck(t *testing.T) {
	ln := newChanListener()
	l := newCallListener(ln, listenerConfig{}, func(context.Context, net.Conn) {})
	if l.Check() == nil {
		t.Error("Check before Run: nil, want not running")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	for l.Check() != nil {
		time.Sleep(time.Millisecond)
	}
	cancel()
	ln.Close()
	<-done
	if l.Check() == nil {
		t.Error("Check after Run returned: nil, want not running")
	}
}
