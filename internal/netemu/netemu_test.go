package netemu

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// end is one side of a fake packet device: Read returns what the test
// sends into it, Write hands packets to the test.
type end struct {
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once
}

func newEnd() *end {
	return &end{in: make(chan []byte, 100), out: make(chan []byte, 100), closed: make(chan struct{})}
}

func (e *end) Read(p []byte) (int, error) {
	select {
	case b := <-e.in:
		return copy(p, b), nil
	case <-e.closed:
		return 0, io.ErrClosedPipe
	}
}

func (e *end) Write(p []byte) (int, error) {
	select {
	case e.out <- append([]byte(nil), p...):
		return len(p), nil
	case <-e.closed:
		return 0, io.ErrClosedPipe
	}
}

func (e *end) Close() error {
	e.once.Do(func() { close(e.closed) })
	return nil
}

func recv(t *testing.T, e *end) []byte {
	t.Helper()
	select {
	case b := <-e.out:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no packet within 10 s")
		return nil
	}
}

// Packets arrive intact, in order, each direction with its own shape, and
// never before their delay.
func TestLinkDelaysAndKeepsOrder(t *testing.T) {
	a, b := newEnd(), newEnd()
	const delay = 30 * time.Millisecond
	l := Start(t.Context(), a, b, Shape{Delay: delay, Jitter: 20 * time.Millisecond}, Shape{})
	defer l.Close()
	sent := time.Now()
	for i := range 50 {
		a.in <- []byte(fmt.Sprint("packet ", i))
	}
	for i := range 50 {
		got := recv(t, b)
		if i == 0 && time.Since(sent) < delay-20*time.Millisecond {
			t.Errorf("first packet after %v, before its delay", time.Since(sent))
		}
		if want := fmt.Sprint("packet ", i); string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	b.in <- []byte("back")
	if got := recv(t, a); string(got) != "back" {
		t.Fatalf("got %q back", got)
	}
	if c := l.Counts(0); c.Sent != 50 || c.Lost != 0 || c.Overflow != 0 || c.Err != nil {
		t.Errorf("a→b counts %+v", c)
	}
	if c := l.Counts(1); c.Sent != 1 {
		t.Errorf("b→a counts %+v", c)
	}
}

// A fixed delay holds every packet at least that long.
func TestLinkFixedDelayIsAFloor(t *testing.T) {
	a, b := newEnd(), newEnd()
	const delay = 50 * time.Millisecond
	l := Start(t.Context(), a, b, Shape{Delay: delay}, Shape{Delay: delay})
	defer l.Close()
	for range 3 {
		sent := time.Now()
		a.in <- []byte("x")
		recv(t, b)
		if d := time.Since(sent); d < delay {
			t.Errorf("arrived after %v, want at least %v", d, delay)
		}
	}
}

// Loss drops packets and counts them.
func TestLinkLoss(t *testing.T) {
	a, b := newEnd(), newEnd()
	l := Start(t.Context(), a, b, Shape{Loss: 1}, Shape{})
	for range 10 {
		a.in <- []byte("lost")
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.Counts(0).Lost < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	l.Close()
	if c := l.Counts(0); c.Sent != 10 || c.Lost != 10 {
		t.Errorf("counts %+v, want 10 sent and lost", c)
	}
	select {
	case p := <-b.out:
		t.Errorf("a lost packet arrived: %q", p)
	default:
	}
}

// Close closes both ends and returns; so does cancelling the context.
func TestLinkCloseAndCancel(t *testing.T) {
	a, b := newEnd(), newEnd()
	l := Start(t.Context(), a, b, Shape{Delay: time.Hour}, Shape{})
	a.in <- []byte("never delivered")
	l.Close()
	l.Close()
	for _, e := range []*end{a, b} {
		select {
		case <-e.closed:
		default:
			t.Errorf("an end is still open after Close")
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	c, d := newEnd(), newEnd()
	l = Start(ctx, c, d, Shape{}, Shape{})
	cancel()
	done := make(chan struct{})
	go func() { l.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung after the context ended")
	}
	if l.Counts(0).Err != nil || l.Counts(1).Err != nil {
		t.Errorf("a stop asked for counts as a read error: %v %v", l.Counts(0).Err, l.Counts(1).Err)
	}
}
