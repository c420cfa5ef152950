package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type side struct {
	err error
	cs  tls.ConnectionState
}

// connect runs a handshake over loopback TCP, then sends one byte each
// way: a TLS 1.3 client finishes its handshake before the server has
// checked the client certificate, so the server's refusal only reaches the
// client on its first read. (net.Pipe cannot be used: it has no buffer, so
// a side that fails mid-flight and a peer still writing its flight block
// each other forever.)
func connect(t *testing.T, client, server *tls.Config) (c, s side) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan side, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- side{err: err}
			return
		}
		// Close the socket, not the tls.Conn: a close_notify is not needed.
		defer raw.Close()
		conn := tls.Server(raw, server)
		err = conn.Handshake()
		if err == nil {
			_, err = conn.Write([]byte{'s'})
		}
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
		done <- side{err, conn.ConnectionState()}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn := tls.Client(raw, client)
	err = conn.Handshake()
	if err == nil {
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil {
		_, err = conn.Write([]byte{'c'})
	}
	c = side{err, conn.ConnectionState()}
	raw.Close()
	return c, <-done
}

func newID(t *testing.T, name string) *Identity {
	t.Helper()
	id, _, err := LoadOrCreate(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func pairedStore(t *testing.T, peers ...*Identity) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), PeersFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if err := s.Add(Peer{Name: p.Name, Fingerprint: p.Fingerprint}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestTLSPaired(t *testing.T) {
	a, b := newID(t, "a"), newID(t, "b")
	c, s := connect(t, a.ClientTLS(b.Fingerprint), b.ServerTLS(pairedStore(t, a)))
	if c.err != nil || s.err != nil {
		t.Fatalf("client error %v, server error %v", c.err, s.err)
	}
	for _, x := range []struct {
		who  string
		cs   tls.ConnectionState
		want Fingerprint
	}{{"client", c.cs, b.Fingerprint}, {"server", s.cs, a.Fingerprint}} {
		got, err := PeerFingerprint(x.cs)
		if err != nil || got != x.want {
			t.Errorf("%s: PeerFingerprint = %s, %v; want %s", x.who, got, err, x.want)
		}
		if x.cs.Version != tls.VersionTLS13 || x.cs.NegotiatedProtocol != ALPN {
			t.Errorf("%s: version %x, ALPN %q; want TLS 1.3, %q", x.who, x.cs.Version, x.cs.NegotiatedProtocol, ALPN)
		}
	}
}

func TestTLSUnpaired(t *testing.T) {
	a, b, stranger := newID(t, "a"), newID(t, "b"), newID(t, "stranger")
	c, s := connect(t, stranger.ClientTLS(b.Fingerprint), b.ServerTLS(pairedStore(t, a)))
	if !errors.Is(s.err, ErrUnpaired) {
		t.Fatalf("server error %v, want ErrUnpaired", s.err)
	}
	var ue *UnpairedError
	if !errors.As(s.err, &ue) || ue.Fingerprint != stranger.Fingerprint {
		t.Errorf("server error %v, want *UnpairedError for %s", s.err, stranger.Fingerprint)
	}
	if c.err == nil {
		t.Error("unpaired client saw no error")
	}
}

func TestTLSKeyMismatch(t *testing.T) {
	a, b, impostor := newID(t, "a"), newID(t, "b"), newID(t, "b")
	c, s := connect(t, a.ClientTLS(b.Fingerprint), impostor.ServerTLS(pairedStore(t, a)))
	if !errors.Is(c.err, ErrKeyMismatch) {
		t.Fatalf("client error %v, want ErrKeyMismatch", c.err)
	}
	var me *MismatchError
	if !errors.As(c.err, &me) || me.Want != b.Fingerprint || me.Got != impostor.Fingerprint {
		t.Errorf("client error %v, want *MismatchError{%s, %s}", c.err, b.Fingerprint, impostor.Fingerprint)
	}
	if s.err == nil {
		t.Error("server saw no error")
	}
}

func TestTLSStoreChangesSeen(t *testing.T) {
	a, b := newID(t, "a"), newID(t, "b")
	store := pairedStore(t)
	server := b.ServerTLS(store)
	client := a.ClientTLS(b.Fingerprint)
	// A session cache would let a removed peer resume without the store
	// check if the server issued tickets.
	client.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	client.ServerName = "b" // the cache key; without it each new port misses

	if _, s := connect(t, client, server); !errors.Is(s.err, ErrUnpaired) {
		t.Fatalf("before pairing: server error %v, want ErrUnpaired", s.err)
	}
	if err := store.Add(Peer{Name: "a", Fingerprint: a.Fingerprint}); err != nil {
		t.Fatal(err)
	}
	if c, s := connect(t, client, server); c.err != nil || s.err != nil {
		t.Fatalf("after pairing: client error %v, server error %v", c.err, s.err)
	}
	if err := store.Remove("a"); err != nil {
		t.Fatal(err)
	}
	c, s := connect(t, client, server)
	if !errors.Is(s.err, ErrUnpaired) {
		t.Fatalf("after unpairing: server error %v, want ErrUnpaired", s.err)
	}
	if c.cs.DidResume {
		t.Error("client resumed a session after unpairing")
	}
}

func TestTLSProtocolVersion(t *testing.T) {
	a, b := newID(t, "a"), newID(t, "b")
	server := b.ServerTLS(pairedStore(t, a))
	cases := []struct {
		name   string
		client func(*tls.Config)
	}{
		{"other ALPN", func(c *tls.Config) { c.NextProtos = []string{"callbox/2"} }},
		{"no ALPN", func(c *tls.Config) { c.NextProtos = nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := a.ClientTLS(b.Fingerprint)
			tc.client(client)
			c, s := connect(t, client, server)
			if c.err == nil {
				t.Error("client connected")
			}
			if s.err == nil || !strings.Contains(s.err.Error(), "protocol") {
				t.Errorf("server error %v, want one about the protocol", s.err)
			}
		})
	}
	t.Run("other ALPN client error", func(t *testing.T) {
		client := a.ClientTLS(b.Fingerprint)
		client.NextProtos = []string{"callbox/2"}
		// The standard no_application_protocol alert tells the peer why.
		if c, _ := connect(t, client, server); c.err == nil || !strings.Contains(c.err.Error(), "protocol") {
			t.Errorf("client error %v, want one about the protocol", c.err)
		}
	})
	t.Run("no ALPN server error", func(t *testing.T) {
		client := a.ClientTLS(b.Fingerprint)
		client.NextProtos = nil
		_, s := connect(t, client, server)
		if !errors.Is(s.err, ErrProtocolVersion) || !strings.Contains(s.err.Error(), "another protocol version") {
			t.Errorf("server error %v, want ErrProtocolVersion", s.err)
		}
	})
	t.Run("server without ALPN", func(t *testing.T) {
		legacy := b.ServerTLS(pairedStore(t, a))
		legacy.NextProtos = nil
		legacy.GetConfigForClient = nil
		c, _ := connect(t, a.ClientTLS(b.Fingerprint), legacy)
		if !errors.Is(c.err, ErrProtocolVersion) {
			t.Errorf("client error %v, want ErrProtocolVersion", c.err)
		}
	})
	t.Run("server with other ALPN", func(t *testing.T) {
		other := b.ServerTLS(pairedStore(t, a))
		other.NextProtos = []string{"callbox/2"}
		c, _ := connect(t, a.ClientTLS(b.Fingerprint), other)
		if c.err == nil || !strings.Contains(c.err.Error(), "protocol") {
			t.Errorf("client error %v, want one about the protocol", c.err)
		}
	})
}

func TestTLS12Refused(t *testing.T) {
	a, b := newID(t, "a"), newID(t, "b")
	client := a.ClientTLS(b.Fingerprint)
	client.MinVersion, client.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	c, s := connect(t, client, b.ServerTLS(pairedStore(t, a)))
	if c.err == nil || s.err == nil {
		t.Fatalf("TLS 1.2 client: client error %v, server error %v; want both to fail", c.err, s.err)
	}
}

func TestTLSNonEd25519Refused(t *testing.T) {
	a, b := newID(t, "a"), newID(t, "b")
	ec := ecdsaCert(t)
	client := a.ClientTLS(b.Fingerprint)
	client.Certificates = []tls.Certificate{ec}
	_, s := connect(t, client, b.ServerTLS(pairedStore(t, a)))
	if s.err == nil || !strings.Contains(s.err.Error(), "want Ed25519") {
		t.Errorf("ECDSA client: server error %v, want a key type refusal", s.err)
	}

	server := b.ServerTLS(pairedStore(t, a))
	server.Certificates = []tls.Certificate{ec}
	c, _ := connect(t, a.ClientTLS(b.Fingerprint), server)
	if c.err == nil || !strings.Contains(c.err.Error(), "want Ed25519") {
		t.Errorf("ECDSA server: client error %v, want a key type refusal", c.err)
	}
}

func TestPeerFingerprintErrors(t *testing.T) {
	if _, err := PeerFingerprint(tls.ConnectionState{}); err == nil {
		t.Error("incomplete handshake accepted")
	}
	if _, err := PeerFingerprint(tls.ConnectionState{HandshakeComplete: true}); err == nil {
		t.Error("missing certificate accepted")
	}
}

func ecdsaCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: "ec"},
		NotBefore: time.Now().Add(-time.Hour),
		NotAfter:  time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
