package process

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/identity"
	"github.com/callbox/callbox/stream/pairing"
)

// pairAs plays a box called id.Name that tries to pair with b directly
// (no discovery needed for the responder side): it returns the error of
// the connection, the handshake or the exchange. Safe to call from any
// goroutine.
func pairAs(t *testing.T, id *identity.Identity, b *testbox.Box) error {
	_, err := pairAsCode(t, id, b, nil)
	return err
}

// pairAsCode is pairAs that also returns the confirmation code this side
// computed, and sends it to codes (if not nil) as soon as it is known,
// before the verdicts.
func pairAsCode(t *testing.T, id *identity.Identity, b *testbox.Box, codes chan<- string) (string, error) {
	want, err := identity.ParseFingerprint(b.FP)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", b.Addr)
	if err != nil {
		return "", err
	}
	tc := tls.Client(raw, id.PairClientTLS(want))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return "", err
	}
	// TLS 1.3: the server's verdict on our certificate arrives with the
	// first read, inside Exchange.
	var code string
	_, err = pairing.Exchange(ctx, tc, true, id.Fingerprint, want, pairing.Hello{Name: id.Name, Port: 1}, func(p pairing.Peer) error {
		code = p.Code
		if codes != nil {
			codes <- p.Code
		}
		return nil
	})
	return code, err
}

func newIdentity(t *testing.T, name string) *identity.Identity {
	t.Helper()
	id, _, err := identity.LoadOrCreate(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func peerNames(t *testing.T, b *testbox.Box) []string {
	t.Helper()
	list, err := b.Peers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list {
		names = append(names, p.Name+"="+p.Fingerprint)
	}
	return names
}

// A box whose pairing window is closed cannot be paired: the handshake
// fails before a pairing message is read, and nothing is stored. With the
// window open the same attempt pairs, and the window then closes.
func TestPairingOnlyInsideTheWindow(t *testing.T) {
	b := start(t, "b", testbox.Options{AutoAnswer: true})
	stranger := newIdentity(t, "stranger")
	if err := pairAs(t, stranger, b); err == nil {
		t.Fatal("paired with a box whose window is closed")
	}
	waitLog(t, b, "refused pairing attempt", "window closed")
	if got := peerNames(t, b); len(got) != 0 {
		t.Fatalf("b stored %v", got)
	}

	if err := b.LongPress(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitPairing(t.Context(), control.PairWaiting, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Status(t.Context()); st.LED != "pair-blink" {
		t.Errorf("LED %s in the pairing window, want pair-blink", st.LED)
	}
	code, err := pairAsCode(t, stranger, b, nil)
	if err != nil {
		t.Fatalf("pairing inside the window: %v", err)
	}
	p, err := b.WaitPairing(t.Context(), control.PairPaired, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p.Peer != "stranger" || p.Code != code || p.Fingerprint != stranger.Fingerprint.String() {
		t.Errorf("pairing status %+v, want stranger with code %s", p, code)
	}
	// One pairing per window: a second box gets nothing.
	other := newIdentity(t, "other")
	if err := pairAs(t, other, b); err == nil {
		t.Error("a second box paired in the same window")
	}
	if got := peerNames(t, b); len(got) != 1 || got[0] != "stranger="+stranger.Fingerprint.String() {
		t.Errorf("b stored %v, want only stranger", got)
	}
}

// A box that pairs under a name already paired with another key is
// refused and logged; the old pairing stays.
func TestPairingWithReplacedKeyRefused(t *testing.T) {
	a, b := start(t, "a", testbox.Options{AutoAnswer: true}), start(t, "b", testbox.Options{AutoAnswer: true})
	pair(t, a, b)
	if err := b.LongPress(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitPairing(t.Context(), control.PairWaiting, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	fake := newIdentity(t, "a") // a's name, another key
	if err := pairAs(t, fake, b); err == nil {
		t.Fatal("a new key for a paired name was accepted")
	}
	waitLog(t, b, "refused pairing: name is paired with another key", "peer=a", fake.Fingerprint.String())
	if p, err := b.WaitPairing(t.Context(), control.PairFailed, 10*time.Second); err != nil {
		t.Fatal(err)
	} else if st, _ := b.Status(t.Context()); st.LED != "error-blink" {
		t.Logf("LED %s after the refusal (the error flash lasts 2 s); pairing %+v", st.LED, p)
	}
	if got := peerNames(t, b); len(got) != 1 || got[0] != "a="+a.FP {
		t.Errorf("b's peers %v, want a's real key only", got)
	}
	// The real a still calls b.
	a.Press(t.Context())
	waitState(t, b, "in call", 10*time.Second)
}

// A flood of connections that never finish a handshake, from one source,
// does not keep a paired peer's call out. The flood is bounded: 64
// connections from 127.0.0.2, held open until the call is up.
func TestHandshakeFloodDoesNotStopAPairedCall(t *testing.T) {
	a, b := start(t, "a", testbox.Options{AutoAnswer: true}), start(t, "b", testbox.Options{AutoAnswer: true})
	pair(t, a, b)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 64 {
		c, err := d.DialContext(t.Context(), "tcp", b.Addr)
		if err != nil {
			continue // refused by a full backlog: part of the flood's effect
		}
		held = append(held, c)
	}
	if len(held) == 0 {
		t.Fatal("no flood connection was accepted by the kernel")
	}
	a.Press(t.Context())
	waitState(t, b, "in call", 15*time.Second)
	waitLog(t, b, "connection dropped before its handshake", "too many handshakes from one source")
}

// With pairing.confirm, nothing is stored until the user confirms the
// code on the box; the code is the one both sides compute.
func TestPairingWaitsForConfirmation(t *testing.T) {
	b := start(t, "b", testbox.Options{AutoAnswer: true, Extra: "[pairing]\nconfirm = true\n"})
	if err := b.LongPress(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitPairing(t.Context(), control.PairWaiting, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	a := newIdentity(t, "a")
	res := make(chan error, 1)
	codes := make(chan string, 1)
	go func() { _, err := pairAsCode(t, a, b, codes); res <- err }()
	p, err := b.WaitPairing(t.Context(), control.PairConfirm, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := <-codes; p.Code != want || p.Peer != "a" {
		t.Fatalf("waiting for confirmation with %+v, want code %s (the other side's)", p, want)
	}
	if got := peerNames(t, b); len(got) != 0 {
		t.Fatalf("stored %v before the confirmation", got)
	}
	if err := b.Client.Do(t.Context(), "POST", "/v1/pair", control.PairRequest{Confirm: true}, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("pairing after the confirmation: %v", err)
	}
	if _, err := b.WaitPairing(t.Context(), control.PairPaired, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := peerNames(t, b); len(got) != 1 || got[0] != "a="+a.Fingerprint.String() {
		t.Errorf("stored %v", got)
	}
}
