package pairing

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/identity"
)

func newID(t *testing.T, name string) *identity.Identity {
	t.Helper()
	id, _, err := identity.LoadOrCreate(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type result struct {
	peer Peer
	err  error
}

// run pairs client and server over loopback TLS with the given decisions.
func run(t *testing.T, client, server *identity.Identity, open bool, cdecide, sdecide func(Peer) error) (c, s result) {
	t.Helper()
	store, err := identity.OpenStore(filepath.Join(t.TempDir(), "peers.json"))
	if err != nil {
		t.Fatal(err)
	}
	var isOpen atomic.Bool
	isOpen.Store(open)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		tc := tls.Server(raw, server.ServerTLSWithPairing(store, isOpen.Load))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			done <- result{err: err}
			return
		}
		fp, _ := identity.PeerFingerprint(tc.ConnectionState())
		p, err := Exchange(ctx, tc, false, server.Fingerprint, fp, Hello{Name: server.Name, Port: 2}, sdecide)
		done <- result{p, err}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, client.PairClientTLS(server.Fingerprint))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return result{err: err}, <-done
	}
	p, err := Exchange(ctx, tc, true, client.Fingerprint, server.Fingerprint, Hello{Name: client.Name, Port: 1}, cdecide)
	return result{p, err}, <-done
}

func accept(Peer) error { return nil }

func TestExchange(t *testing.T) {
	a, b := newID(t, "hall"), newID(t, "door")
	c, s := run(t, a, b, true, accept, accept)
	if c.err != nil || s.err != nil {
		t.Fatalf("client %v, server %v", c.err, s.err)
	}
	if c.peer.Name != "door" || c.peer.Port != 2 || c.peer.Fingerprint != b.Fingerprint {
		t.Errorf("client learnt %+v", c.peer)
	}
	if s.peer.Name != "hall" || s.peer.Port != 1 || s.peer.Fingerprint != a.Fingerprint {
		t.Errorf("server learnt %+v", s.peer)
	}
}

func TestExchangeRefused(t *testing.T) {
	a, b := newID(t, "hall"), newID(t, "door")
	no := func(Peer) error { return errors.New("name door is paired with another key") }
	c, s := run(t, a, b, true, no, accept)
	if c.err == nil || s.err == nil || !errors.Is(s.err, ErrRefused) {
		t.Errorf("client refusing: client %v, server %v", c.err, s.err)
	}
	c, s = run(t, a, b, true, accept, no)
	if !errors.Is(c.err, ErrRefused) || !strings.Contains(c.err.Error(), "another key") || s.err == nil {
		t.Errorf("server refusing: client %v, server %v", c.err, s.err)
	}
}

func TestClosedWindowRefusesHandshake(t *testing.T) {
	a, b := newID(t, "hall"), newID(t, "door")
	called := false
	c, s := run(t, a, b, false, accept, func(Peer) error { called = true; return nil })
	if c.err == nil || s.err == nil || !errors.Is(s.err, identity.ErrNotPairing) {
		t.Errorf("closed window: client %v, server %v", c.err, s.err)
	}
	if called {
		t.Error("the exchange ran with the window closed")
	}
}

// A box advertising someone else's fingerprint fails the handshake.
func TestImpostorServer(t *testing.T) {
	a, b, impostor := newID(t, "hall"), newID(t, "door"), newID(t, "door")
	store, _ := identity.OpenStore(filepath.Join(t.TempDir(), "p.json"))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		raw, err := ln.Accept()
		if err == nil {
			tls.Server(raw, impostor.ServerTLSWithPairing(store, func() bool { return true })).Handshake()
			raw.Close()
		}
	}()
	raw, _ := net.Dial("tcp", ln.Addr().String())
	defer raw.Close()
	err := tls.Client(raw, a.PairClientTLS(b.Fingerprint)).Handshake()
	if !errors.Is(err, identity.ErrKeyMismatch) {
		t.Errorf("handshake with an impostor: %v, want ErrKeyMismatch", err)
	}
}

func TestCode(t *testing.T) {
	var x, y identity.Fingerprint
	y[0] = 1
	var ni, nr [nonceLen]byte
	nr[0] = 2
	// Golden: fixes the derivation for docs/protocol.md.
	if got := Code(x, y, ni, nr); got != goldenCode {
		t.Errorf("Code(0…, 1…, 0…, 2…) = %s, want %s", got, goldenCode)
	}
	// Every input moves the code (for these values; a 6-digit code may
	// collide for others).
	nr2 := nr
	nr2[31] = 1
	for _, c := range []string{Code(y, x, ni, nr), Code(x, y, nr, ni), Code(x, y, ni, nr2)} {
		if c == goldenCode || len(c) != 6 || strings.Trim(c, "0123456789") != "" {
			t.Errorf("code %q (golden %s)", c, goldenCode)
		}
	}
}

// Both sides of an exchange show the same code, and two exchanges between
// the same two keys show different codes: the random values make the code
// something neither side (nor anyone who knows both keys) could choose.
func TestCodeSameOnBothSidesAndFreshEachTime(t *testing.T) {
	a, b := newID(t, "a"), newID(t, "b")
	seen := map[string]bool{}
	for range 3 {
		c, s := run(t, a, b, true, accept, accept)
		if c.err != nil || s.err != nil {
			t.Fatalf("exchange: client %v, server %v", c.err, s.err)
		}
		if c.peer.Code != s.peer.Code || len(c.peer.Code) != 6 {
			t.Fatalf("codes differ: client %q, server %q", c.peer.Code, s.peer.Code)
		}
		seen[c.peer.Code] = true
	}
	if len(seen) < 2 {
		t.Errorf("three exchanges between the same keys all showed code %v", seen)
	}
}

// A responder that receives a reveal not matching the initiator's
// commitment refuses: the initiator cannot change its value after seeing
// the responder's.
func TestRevealMustMatchCommitment(t *testing.T) {
	client, server := net.Pipe()
	done := make(chan error, 1)
	var sfp, cfp identity.Fingerprint
	sfp[0], cfp[0] = 1, 2
	go func() {
		_, err := Exchange(t.Context(), server, false, sfp, cfp, Hello{Name: "door"}, accept)
		done <- err
	}()
	var n [nonceLen]byte
	n[0] = 7
	h := Hello{Name: "hall", nonce: commitment(n)}
	if _, err := client.Write(encodeHello(h)); err != nil {
		t.Fatal(err)
	}
	if _, err := readHello(client); err != nil {
		t.Fatal(err)
	}
	n[0] = 8 // a different value than committed to
	if _, err := client.Write(encodeReveal(n)); err != nil {
		t.Fatal(err)
	}
	err := <-done
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "commitment") {
		t.Errorf("responder with a bad reveal: %v, want a commitment protocol error", err)
	}
	client.Close()
}

func FuzzReadMessages(f *testing.F) {
	f.Add(encodeHello(Hello{Name: "hall", Port: 7420}))
	f.Add(encodeVerdict(nil))
	f.Add(encodeVerdict(errors.New("no")))
	f.Add(encodeReveal([nonceLen]byte{1}))
	f.Add([]byte("CBXP\x01\x01\x00\x00\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := readHello(bytes.NewReader(b)); err == nil {
			if identity.ValidateName(h.Name) != nil {
				t.Fatalf("accepted hello name %q", h.Name)
			}
		}
		readVerdict(bytes.NewReader(b))
		readReveal(bytes.NewReader(b))
	})
}

// Computed independently: Python hashlib.sha256 over the same bytes.
const goldenCode = "221036"
