package call

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// pumpedCall puts two boxes whose phones hold their UDP sockets
// themselves (as the daemon's do) in a call, a calling b, with audio as
// datagrams both ways.
func pumpedCall(t *testing.T) (a, b *tlsBox, seq *uint32) {
	t.Helper()
	a, b, seq = startDatagramCall(t, true)
	if b.dg.raw == nil {
		t.Fatal("no pump for a *net.UDPConn")
	}
	return a, b, seq
}

// pumpEvery pumps b's socket on a 20 ms tick, as a speaker does, until
// stop is closed; it returns when the last pump was.
func pumpEvery(t *testing.T, b *tlsBox, stop <-chan struct{}) <-chan time.Time {
	last := make(chan time.Time, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var at time.Time
		for {
			select {
			case <-stop:
				last <- at
				return
			case <-tick.C:
			}
			if !b.PumpDatagrams() {
				t.Error("the pump could not read a *net.UDPConn")
			}
			at = time.Now()
		}
	}()
	return last
}

// TestPumpedDatagrams: a speaker that pumps the socket on its own tick
// gets the peer's audio there, with the time each datagram reached the
// box, while the phone's reader stands aside; when the pumping stops,
// the reader reads again; and the next call works as the first.
func TestPumpedDatagrams(t *testing.T) {
	a, b, seq := pumpedCall(t)
	stop := make(chan struct{})
	last := pumpEvery(t, b, stop)
	talk(a, b, seq, 300*time.Millisecond) // the pump has taken over

	// Junk on the port while the speaker pumps: refused, unanswered.
	refused := sendJunk(t, b, []byte{1, 2, 3}, append([]byte{1, 0xff, 0xff, 0xff, 0xff}, make([]byte, 60)...), make([]byte, 1400))
	talk(a, b, seq, 100*time.Millisecond)
	refused()
	close(stop)
	lastPump := <-last

	// A pause in the pumping shorter than pumpIdle: what arrives meanwhile
	// waits in the socket, and comes with the time it arrived.
	n0 := inOrder(t, b)
	talk(a, b, seq, 100*time.Millisecond)
	n1 := inOrder(t, b)
	at := time.Now()
	if !b.PumpDatagrams() {
		t.Fatal("the pump could not read the socket")
	}
	done := time.Now()
	n2 := inOrder(t, b)
	if at.Sub(lastPump) < pumpIdle-50*time.Millisecond {
		if n1 != n0 {
			t.Errorf("the reader took %d frames while the speaker pumped", n1-n0)
		}
	} else {
		t.Logf("the pause took %v: the reader may have taken over", at.Sub(lastPump))
	}
	if n2-n1 < 4 {
		t.Fatalf("one pump after 100 ms of talk handed on %d frames", n2-n1)
	}
	b.sink.mu.Lock()
	got := append([]media.Audio(nil), b.sink.audio[n1:n2]...)
	b.sink.mu.Unlock()
	earliest := at
	for _, f := range got {
		if f.Arrived.IsZero() || f.Arrived.After(done) || at.Sub(f.Arrived) > 2*time.Second {
			t.Fatalf("frame %d arrived at %v, pumped from %v to %v", f.Seq, f.Arrived, at, done)
		}
		if f.Arrived.Before(earliest) {
			earliest = f.Arrived
		}
	}
	b.dg.handleMu.Lock()
	stamps := b.dg.raw.stamps
	b.dg.handleMu.Unlock()
	if stamps {
		// The first of them waited in the socket for most of the pause.
		if w := at.Sub(earliest); w < 50*time.Millisecond {
			t.Errorf("the oldest datagram of a 100 ms pause is stamped %v before the pump", w)
		}
	} else {
		t.Log("no kernel receive times here (SO_TIMESTAMPNS refused, as under qemu-user): arrival is when pumped")
	}

	// The pumping stops: the reader reads again, as datagrams arrive.
	time.Sleep(2 * pumpIdle)
	n3 := inOrder(t, b)
	talk(a, b, seq, 300*time.Millisecond)
	waitFrames(t, b, n3+10)
	if st := callStats(t, b); st.In.AudioPath != "datagrams" && st.In.AudioPath != "" {
		t.Logf("in by %q", st.In.AudioPath)
	}

	// Hang up; b calls a, and a pumped call works again.
	callBack(t, a, b, seq)
	stop = make(chan struct{})
	last = pumpEvery(t, b, stop)
	n4 := inOrder(t, b)
	talk(a, b, seq, 300*time.Millisecond)
	close(stop)
	<-last
	waitFrames(t, b, n4+10)
}

// waitFrames waits until b's sink has n audio frames, in order.
func waitFrames(t *testing.T, b *tlsBox, n int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); inOrder(t, b) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: %d audio frames, want %d", b.name, inOrder(t, b), n)
		}
	}
}

// TestRawSockAddresses: the socket taken out of the poller sends to and
// hears from IPv4 and IPv6 peers as the *net.UDPConn did, dual-stack
// included, and says so when an address cannot be reached from it.
func TestRawSockAddresses(t *testing.T) {
	listen := func(network, addr string) *net.UDPConn {
		t.Helper()
		c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		if err != nil {
			t.Skipf("%s %s: %v", network, addr, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	v4peer := listen("udp4", "127.0.0.1:0")
	for _, c := range []struct {
		name, network, addr string
		peers               []*net.UDPConn
	}{
		{"IPv4", "udp4", "127.0.0.1:0", []*net.UDPConn{v4peer}},
		{"dual-stack", "udp", "[::]:0", []*net.UDPConn{v4peer, listen("udp6", "[::1]:0")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			uc := listen(c.network, c.addr)
			port := uc.LocalAddr().(*net.UDPAddr).Port
			r := newRawSock(uc)
			if r == nil {
				t.Fatal("no raw socket from a *net.UDPConn")
			}
			defer r.close()
			if _, _, err := uc.ReadFromUDP(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("the *net.UDPConn still reads: %v", err)
			}
			for _, p := range c.peers {
				pa := p.LocalAddr().(*net.UDPAddr).AddrPort()
				if err := r.write([]byte("to "+pa.String()), pa); err != nil {
					t.Fatal(err)
				}
				p.SetReadDeadline(time.Now().Add(5 * time.Second))
				b := make([]byte, 64)
				n, _, err := p.ReadFromUDPAddrPort(b)
				if err != nil || string(b[:n]) != "to "+pa.String() {
					t.Fatalf("peer %v read %q, %v", pa, b[:n], err)
				}
				to := netip.AddrPortFrom(pa.Addr(), uint16(port))
				if _, err := p.WriteToUDPAddrPort([]byte("back"), to); err != nil {
					t.Fatal(err)
				}
				if err := r.wait(); err != nil {
					t.Fatal(err)
				}
				var from netip.AddrPort
				var at time.Time
				if err := r.drain(func(pkt []byte, f netip.AddrPort, a time.Time) { from, at = f, a }); err != nil {
					t.Fatal(err)
				}
				if from.Addr().Unmap() != pa.Addr() || from.Port() != pa.Port() {
					t.Errorf("heard from %v, sent from %v", from, pa)
				}
				if d := time.Since(at); at.IsZero() || d < 0 || d > 5*time.Second {
					t.Errorf("arrived %v ago", d)
				}
			}
			if c.network == "udp4" {
				if err := r.write([]byte("x"), netip.MustParseAddrPort("[::1]:9")); err == nil {
					t.Error("an IPv4 socket sent to ::1")
				}
			}
			// A wait ends when woken; writes after close fail cleanly.
			r.wake()
			if err := r.wait(); err != nil {
				t.Fatal(err)
			}
			r.close()
			if err := r.write([]byte("x"), v4peer.LocalAddr().(*net.UDPAddr).AddrPort()); !errors.Is(err, net.ErrClosed) {
				t.Errorf("write after close: %v", err)
			}
		})
	}
}

// TestRawSockZones: a link-local peer's zone is looked up once, not for
// every packet, by name (sending) and by index (receiving).
func TestRawSockZones(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no loopback interface named lo")
	}
	var r rawSock
	if i, ok := r.zoneByName("lo"); !ok || i != lo.Index {
		t.Fatalf("lo: index %d, %v; want %d", i, ok, lo.Index)
	}
	if z := r.zone.Load(); z == nil || z.name != "lo" {
		t.Fatalf("lo was not kept: %+v", z)
	}
	if name, ok := r.zoneByIndex(lo.Index); !ok || name != "lo" {
		t.Fatalf("index %d: %q, %v; want lo", lo.Index, name, ok)
	}
	if _, ok := r.zoneByName("no-such-interface"); ok {
		t.Error("an interface that does not exist was found")
	}
	if z := r.zone.Load(); z == nil || z.name != "lo" {
		t.Errorf("a failed lookup replaced the kept zone: %+v", z)
	}
}
