package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/identity"
)

// logBuf is a log a test can read.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dialBox is the part of a daemon a call's dial uses: its key, its
// peers, a debug log, and f as discovery (nil: off).
func dialBox(t testing.TB, f finder) (*daemon, *logBuf) {
	t.Helper()
	dir := t.TempDir()
	id, _, err := identity.LoadOrCreate(dir, "hall")
	if err != nil {
		t.Fatal(err)
	}
	peers, err := identity.OpenStore(filepath.Join(dir, identity.PeersFile))
	if err != nil {
		t.Fatal(err)
	}
	lb := &logBuf{}
	d := &daemon{id: id, peers: peers, friends: newFriendAddrs(peers), sightings: newSightings(),
		log: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if f != nil {
		d.finder = f
	}
	return d, lb
}

func newKey(t testing.TB, name string) *identity.Identity {
	t.Helper()
	id, _, err := identity.LoadOrCreate(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pairDoor stores the peer "door" with key door in d, with a configured
// and a last address, and returns it as a call dials it.
func pairDoor(t testing.TB, d *daemon, door *identity.Identity, configured, last string) call.Peer {
	t.Helper()
	p := identity.Peer{Name: "door", Fingerprint: door.Fingerprint, Address: configured, LastAddress: last}
	if err := d.peers.Add(p); err != nil {
		t.Fatal(err)
	}
	return toCallPeer(p)
}

// farEnd answers TLS on 127.0.0.1 with key id, accepting the caller's
// key, and holds each connection until the test ends.
type farEnd struct {
	addr string
}

func newFarEnd(t testing.TB, id, caller *identity.Identity) *farEnd {
	t.Helper()
	store, err := identity.OpenStore(filepath.Join(t.TempDir(), identity.PeersFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Add(identity.Peer{Name: "hall", Fingerprint: caller.Fingerprint}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &farEnd{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, raw)
			mu.Unlock()
			wg.Go(func() {
				defer raw.Close()
				tc := tls.Server(raw, id.ServerTLS(store))
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				if tc.Handshake() != nil {
					return
				}
				tc.SetDeadline(time.Time{})
				io.Copy(io.Discard, tc) // until the caller closes, or the test ends
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return f
}

// blackHole accepts TCP connections and never says a word: a box whose
// daemon hangs, or a firewall that answers for it.
type blackHole struct {
	addr  string
	conns chan net.Conn
}

func newBlackHole(t testing.TB) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{addr: ln.Addr().String(), conns: make(chan net.Conn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(b.conns)
		for c := range b.conns {
			c.Close()
		}
	})
	return b
}

// refusedAddr is an address of 127.0.0.1 where nothing listens.
func refusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// fakeFinder is discovery as the test wants it: Find reports addrs once
// the test closes release (never, if it does not), then waits for its
// context unless ret is set.
type fakeFinder struct {
	entered, release chan struct{}
	addrs            []string
	ret              bool
	ended            chan error // the context's error when Find returned
	once             sync.Once
}

func newFakeFinder(addrs ...string) *fakeFinder {
	return &fakeFinder{entered: make(chan struct{}), release: make(chan struct{}), addrs: addrs, ended: make(chan error, 1)}
}

func (f *fakeFinder) Find(ctx context.Context, fp string, found func(netip.AddrPort)) {
	f.once.Do(func() { close(f.entered) })
	defer func() { f.ended <- ctx.Err() }()
	select {
	case <-f.release:
	case <-ctx.Done():
		return
	}
	for _, a := range f.addrs {
		found(netip.MustParseAddrPort(a))
	}
	if !f.ret {
		<-ctx.Done()
	}
}

// raceGoroutines counts the goroutines of dial races still running:
// attempts and discovery. A dial owns its goroutines, so this is 0
// whenever no dial is under way.
func raceGoroutines() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	count := 0
	for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "main.(*dialRace)") {
			count++
		}
	}
	return count
}

// attempts is the debug log's record of the dial attempts: one line each.
func attempts(log string) []string {
	var out []string
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, `msg="dial attempt"`) {
			out = append(out, l)
		}
	}
	return out
}

// A known address that works connects while discovery is still asking
// the link: discovery is never waited for, and is stopped by the win.
func TestDialDoesNotWaitForDiscovery(t *testing.T) {
	f := newFakeFinder() // silent until released: never, here
	d, lb := dialBox(t, f)
	door := newKey(t, "door")
	good := newFarEnd(t, door, d.id)
	peer := pairDoor(t, d, door, good.addr, "")

	conn, err := d.dial(t.Context(), peer)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case <-f.entered:
	default:
		t.Error("discovery was never asked")
	}
	// Find returns once the dial is over, and it ended because the dial
	// was won (Canceled), not because its time ran out.
	if err := <-f.ended; !errors.Is(err, context.Canceled) {
		t.Errorf("discovery ended with %v, want canceled by the winner", err)
	}
	if n := raceGoroutines(); n != 0 {
		t.Errorf("%d goroutines of the dial left", n)
	}
	at := attempts(lb.String())
	if len(at) != 1 || !strings.Contains(at[0], "source=configured") || !strings.Contains(at[0], "outcome=connected") ||
		!strings.Contains(at[0], "address="+good.addr) || !strings.Contains(at[0], "took_ms=") {
		t.Errorf("attempts logged: %q", at)
	}
	// The call is a sighting, and its address is the last that worked.
	seen := d.peersSeen(time.Now())
	if len(seen) != 1 || seen[0].OurCall == nil || seen[0].OurCall.Address != good.addr ||
		!strings.HasPrefix(seen[0].Summary, "seen just now by our call to "+good.addr) {
		t.Errorf("peers seen after the call: %+v", seen)
	}
	if p, _ := d.peers.ByName("door"); p.LastAddress != good.addr {
		t.Errorf("last address %q, want %q", p.LastAddress, good.addr)
	}
}

// The last address accepts TCP but never completes TLS; the configured
// one is good: it wins, and the black hole's connection is closed by the
// time dial returns.
func TestDialBlackHoleLoses(t *testing.T) {
	d, lb := dialBox(t, nil)
	door := newKey(t, "door")
	good := newFarEnd(t, door, d.id)
	hole := newBlackHole(t)
	peer := pairDoor(t, d, door, good.addr, hole.addr)

	conn, err := d.dial(t.Context(), peer)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != good.addr {
		t.Errorf("connected to %s, want %s", got, good.addr)
	}
	if n := raceGoroutines(); n != 0 {
		t.Errorf("%d goroutines of the dial left", n)
	}
	// The black hole got the connection, and the caller closed it.
	select {
	case c := <-hole.conns:
		c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound, not a figure: it is closed already
		if n, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			// A client hello may have been written first; then EOF follows.
			if err == nil && n == 1 {
				_, err = io.Copy(io.Discard, c)
			}
			if err != nil {
				t.Errorf("black-holed connection not closed: %v", err)
			}
		}
	case <-time.After(10 * time.Second): // a bound: it was accepted long ago
		t.Error("the last address was never dialled")
	}
	if p, _ := d.peers.ByName("door"); p.LastAddress != good.addr {
		t.Errorf("last address %q, want %q", p.LastAddress, good.addr)
	}
	log := strings.Join(attempts(lb.String()), "\n")
	if !strings.Contains(log, "source=last") || !strings.Contains(log, "another address answered first") {
		t.Errorf("attempts logged:\n%s", log)
	}
}

// An answer with the wrong key never wins, and is logged as before; the
// right key at another address does.
func TestDialWrongKeyLoses(t *testing.T) {
	d, lb := dialBox(t, nil)
	door := newKey(t, "door")
	impostor := newFarEnd(t, newKey(t, "impostor"), d.id)
	good := newFarEnd(t, door, d.id)
	peer := pairDoor(t, d, door, good.addr, impostor.addr)

	conn, err := d.dial(t.Context(), peer)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != good.addr {
		t.Errorf("connected to %s (the impostor is %s), want %s", got, impostor.addr, good.addr)
	}
	if !strings.Contains(lb.String(), "wrong key for its name") || !strings.Contains(lb.String(), "addr="+impostor.addr) {
		t.Errorf("the impostor was not logged:\n%s", lb.String())
	}
	if p, _ := d.peers.ByName("door"); p.LastAddress != good.addr {
		t.Errorf("last address %q, want %q", p.LastAddress, good.addr)
	}
}

// Both known addresses are dead; discovery's answer arrives and wins.
// An address discovery repeats is not dialled twice.
func TestDialDiscoveryAnswerWins(t *testing.T) {
	dead := refusedAddr(t)
	hole := newBlackHole(t)
	door := newKey(t, "door")
	f := newFakeFinder()
	d, lb := dialBox(t, f)
	good := newFarEnd(t, door, d.id)
	f.addrs = []string{dead, good.addr}
	close(f.release)
	peer := pairDoor(t, d, door, hole.addr, dead)

	conn, err := d.dial(t.Context(), peer)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != good.addr {
		t.Errorf("connected to %s, want discovery's %s", got, good.addr)
	}
	if p, _ := d.peers.ByName("door"); p.LastAddress != good.addr {
		t.Errorf("last address %q, want discovery's %q", p.LastAddress, good.addr)
	}
	if n := strings.Count(strings.Join(attempts(lb.String()), "\n"), "address="+dead); n != 1 {
		t.Errorf("%s dialled %d times, want once:\n%s", dead, n, lb.String())
	}
	if n := raceGoroutines(); n != 0 {
		t.Errorf("%d goroutines of the dial left", n)
	}
}

// A peer that is down: the error names every address with its source
// and what went wrong, and says discovery did not find it.
func TestDialAllDownNamesEveryAddress(t *testing.T) {
	last, configured, found := refusedAddr(t), refusedAddr(t), refusedAddr(t)
	f := newFakeFinder(found, last) // last again: dialled once
	f.ret = true
	close(f.release)
	d, _ := dialBox(t, f)
	peer := pairDoor(t, d, newKey(t, "door"), configured, last)

	_, err := d.dial(t.Context(), peer)
	if err == nil {
		t.Fatal("dial of a peer that is down succeeded")
	}
	t.Logf("the error:\n%v", err)
	for _, want := range []string{last + " (last): ", configured + " (configured): ", found + " (discovery): ", "refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), last+" ("); n != 1 {
		t.Errorf("%s named %d times:\n%v", last, n, err)
	}
	if n := raceGoroutines(); n != 0 {
		t.Errorf("%d goroutines of the dial left", n)
	}

	// Discovery silent (it gives up at once here): said so.
	f2 := newFakeFinder()
	f2.ret = true
	close(f2.release)
	d2, _ := dialBox(t, f2)
	peer2 := pairDoor(t, d2, newKey(t, "door"), configured, "")
	_, err = d2.dial(t.Context(), peer2)
	if err == nil || !strings.Contains(err.Error(), configured+" (configured): ") || !strings.Contains(err.Error(), "not found on the link by discovery") {
		t.Errorf("error: %v", err)
	}

	// No address at all and no discovery.
	d3, _ := dialBox(t, nil)
	_, err = d3.dial(t.Context(), pairDoor(t, d3, newKey(t, "door"), "", ""))
	if err == nil || !strings.Contains(err.Error(), "has no address") {
		t.Errorf("error: %v", err)
	}
}

// A connection that completes after another won (its attempt did not
// stop in time) is closed, and run waits for it: nothing is left behind.
func TestDialRaceClosesLateWinners(t *testing.T) {
	var slowFar, fastFar net.Conn
	r := &dialRace{
		peer:    "door",
		known:   []candidate{{"10.0.0.1:7420", srcLast}, {"10.0.0.2:7420", srcConfigured}},
		log:     slog.New(slog.DiscardHandler),
		stagger: time.Millisecond,
		attempt: func(ctx context.Context, addr string) (net.Conn, error) {
			a, b := net.Pipe()
			if addr == "10.0.0.1:7420" {
				slowFar = b
				// Completes only once the other won (its attempt is
				// cancelled then), as a handshake deaf to ctx would.
				<-ctx.Done()
				return a, nil
			}
			fastFar = b
			return a, nil
		},
	}
	conn, won, err := r.run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if won.addr != "10.0.0.2:7420" || won.source != srcConfigured {
		t.Errorf("won %v", won)
	}
	// The late one is closed: its far end reads EOF; the winner's is open.
	slowFar.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound: it is closed already
	if _, err := slowFar.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("late connection: read %v, want EOF (closed)", err)
	}
	fastFar.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := fastFar.Read(make([]byte, 1)); !isTimeout(err) {
		t.Errorf("winner's connection: read %v, want it open", err)
	}
	if n := raceGoroutines(); n != 0 {
		t.Errorf("%d goroutines of the dial left", n)
	}
}

// The known addresses start first, in order, one stagger apart or at
// once when the one before fails; discovery's answers follow.
func TestDialRaceOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	f := newFakeFinder("10.0.0.3:7420")
	f.ret = true
	close(f.release)
	r := &dialRace{
		peer:  "door",
		known: []candidate{{"10.0.0.1:7420", srcLast}, {"[::ffff:10.0.0.1]:7420", srcConfigured}, {"10.0.0.2:7420", srcConfigured}},
		find: func(ctx context.Context, found func(string)) {
			f.Find(ctx, "", func(a netip.AddrPort) { found(a.String()) })
		},
		log: slog.New(slog.DiscardHandler),
		attempt: func(ctx context.Context, addr string) (net.Conn, error) {
			mu.Lock()
			order = append(order, addr)
			mu.Unlock()
			return nil, fmt.Errorf("refused")
		},
	}
	_, _, err := r.run(t.Context())
	if err == nil {
		t.Fatal("no error")
	}
	want := "10.0.0.1:7420 10.0.0.2:7420 10.0.0.3:7420" // the mapped spelling of .1 is the same address
	if got := strings.Join(order, " "); got != want {
		t.Errorf("dialled %s, want %s", got, want)
	}
}

func TestAddrKey(t *testing.T) {
	for _, c := range [][2]string{
		{"10.0.0.1:7420", "[::ffff:10.0.0.1]:7420"},
		{"Door.Lan:7420", "door.lan:7420"},
		{"[fe80::1%eth0]:7420", "[fe80::1%eth0]:7420"},
	} {
		if addrKey(c[0]) != addrKey(c[1]) {
			t.Errorf("%s and %s differ: %q %q", c[0], c[1], addrKey(c[0]), addrKey(c[1]))
		}
	}
	if addrKey("10.0.0.1:7420") == addrKey("10.0.0.1:7421") {
		t.Error("ports ignored")
	}
}

// silentFinder is discovery on a network that filters multicast: it
// never hears anything.
type silentFinder struct{}

func (silentFinder) Find(ctx context.Context, _ string, _ func(netip.AddrPort)) { <-ctx.Done() }

// The figures behind issue 15's goals, on loopback: a dial whose known
// address works while discovery hears nothing (goal: the peer rings
// within 300 ms of the button; the dial is most of it), and one to a peer
// that is down, its last address black-holed and its configured one
// refused (goal: the call fails within 3.5 s). Figures, never pass/fail.
func BenchmarkDialKnownAddressSilentDiscovery(b *testing.B) {
	d, _ := dialBox(b, silentFinder{})
	door := newKey(b, "door")
	good := newFarEnd(b, door, d.id)
	peer := pairDoor(b, d, door, good.addr, "")
	for b.Loop() {
		conn, err := d.dial(b.Context(), peer)
		if err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
}

func BenchmarkDialPeerDown(b *testing.B) {
	d, _ := dialBox(b, silentFinder{})
	hole := newBlackHole(b)
	peer := pairDoor(b, d, newKey(b, "door"), refusedAddr(b), hole.addr)
	for b.Loop() {
		if _, err := d.dial(b.Context(), peer); err == nil {
			b.Fatal("a peer that is down answered")
		}
	}
}
