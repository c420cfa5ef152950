// Package pairing is the exchange two boxes run, each in its pairing
// window, over a TLS connection with ALPN callbox-pair/1: each tells its
// name and call port, both derive a confirmation code, each says whether it
// accepts the other, and only when both do does each store the other. The
// keys come from the TLS handshake, never from the messages.
// docs/protocol.md specifies the bytes.
//
// The code mixes a random value from each side into the two keys, and the
// initiator commits to its value before it sees the responder's: neither
// side, and no one in the middle, can choose keys or values to make two
// exchanges show the same code (all fingerprints are public, so a code of
// the keys alone could be matched by trying keys offline). One attempt in a
// million succeeds by chance.
package pairing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"unicode/utf8"

	"github.com/callbox/callbox/stream/identity"
)

// Message framing: "CBXP", version 1, type, then the type's fields.
const (
	magic       = "CBXP"
	version     = 1
	typeHello   = 1
	typeVerdict = 2
	typeReveal  = 3
	maxReason   = 128
	nonceLen    = 32
)

// ErrRefused: the peer refused the pairing; the error text says why.
var ErrRefused = errors.New("pairing refused by the peer")

// ProtocolError is a malformed or unexpected pairing message.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "pairing: protocol error: " + e.Msg }

// Hello is what each side says about itself.
type Hello struct {
	Name string // 1..64 of A-Za-z0-9._-
	Port uint16 // its call port (0: unknown)

	// nonce is the initiator's commitment or the responder's random value.
	nonce [nonceLen]byte
}

// Peer is the other side as the exchange learnt it.
type Peer struct {
	Hello
	Fingerprint identity.Fingerprint // from the TLS handshake
	Code        string               // the confirmation code, the same on both boxes
}

// Code is the confirmation code of an exchange between the initiator's key
// i and the responder's key r with their random values ni and nr: 6
// decimal digits, the same on both boxes. Two users who see the same code
// on both boxes paired the boxes they meant to.
func Code(i, r identity.Fingerprint, ni, nr [nonceLen]byte) string {
	h := sha256.New()
	h.Write([]byte("callbox-pair-code/1"))
	h.Write(i[:])
	h.Write(r[:])
	h.Write(ni[:])
	h.Write(nr[:])
	sum := h.Sum(nil)
	return fmt.Sprintf("%06d", binary.BigEndian.Uint32(sum[:4])%1_000_000)
}

// commitment is what the initiator sends in place of its random value.
func commitment(n [nonceLen]byte) [nonceLen]byte {
	h := sha256.New()
	h.Write([]byte("callbox-pair-commit/1"))
	h.Write(n[:])
	var c [nonceLen]byte
	copy(c[:], h.Sum(nil))
	return c
}

// Exchange runs the exchange on conn, a completed TLS connection between
// this box (key selfFP) and a peer with key peerFP. The initiator is the
// TLS client. decide sees the peer's hello and the code and returns nil to
// accept it, or the reason to refuse; it may block (for a user's
// confirmation) until ctx ends. Exchange returns the peer once both sides
// accepted; the caller then stores it. The connection is closed when
// Exchange returns.
func Exchange(ctx context.Context, conn net.Conn, initiator bool, selfFP, peerFP identity.Fingerprint, self Hello, decide func(Peer) error) (Peer, error) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	fail := func(err error) (Peer, error) {
		if ctx.Err() != nil {
			return Peer{}, fmt.Errorf("pairing: %w", ctx.Err())
		}
		return Peer{}, err
	}
	if err := identity.ValidateName(self.Name); err != nil {
		return Peer{}, fmt.Errorf("pairing: own name: %w", err)
	}
	var own [nonceLen]byte
	if _, err := rand.Read(own[:]); err != nil {
		return Peer{}, fmt.Errorf("pairing: random: %w", err)
	}
	// The initiator commits first; the responder sends its value only once
	// it holds the commitment; then the initiator reveals.
	var h Hello
	var code string
	var err error
	if initiator {
		self.nonce = commitment(own)
		if _, err := conn.Write(encodeHello(self)); err != nil {
			return fail(fmt.Errorf("pairing: send hello: %w", err))
		}
		if h, err = readHello(conn); err != nil {
			return fail(err)
		}
		if _, err := conn.Write(encodeReveal(own)); err != nil {
			return fail(fmt.Errorf("pairing: send reveal: %w", err))
		}
		code = Code(selfFP, peerFP, own, h.nonce)
	} else {
		if h, err = readHello(conn); err != nil {
			return fail(err)
		}
		self.nonce = own
		if _, err := conn.Write(encodeHello(self)); err != nil {
			return fail(fmt.Errorf("pairing: send hello: %w", err))
		}
		ni, err := readReveal(conn)
		if err != nil {
			return fail(err)
		}
		if commitment(ni) != h.nonce {
			return fail(&ProtocolError{"the revealed value does not match the commitment"})
		}
		code = Code(peerFP, selfFP, ni, own)
	}
	h.nonce = [nonceLen]byte{}
	peer := Peer{Hello: h, Fingerprint: peerFP, Code: code}
	local := decide(peer)
	if ctx.Err() != nil {
		return fail(local)
	}
	var remote error
	if initiator {
		if _, err := conn.Write(encodeVerdict(local)); err != nil {
			return fail(fmt.Errorf("pairing: send verdict: %w", err))
		}
		if remote, err = readVerdict(conn); err != nil {
			return fail(err)
		}
	} else {
		if remote, err = readVerdict(conn); err != nil {
			return fail(err)
		}
		if _, err := conn.Write(encodeVerdict(errors.Join(local, remoteSays(remote)))); err != nil {
			return fail(fmt.Errorf("pairing: send verdict: %w", err))
		}
	}
	switch {
	case local != nil:
		return Peer{}, fmt.Errorf("pairing: refused %s: %w", h.Name, local)
	case remote != nil:
		return Peer{}, remote
	}
	return peer, nil
}

// remoteSays turns the peer's refusal into a reason for ours.
func remoteSays(remote error) error {
	if remote != nil {
		return errors.New("the peer refused")
	}
	return nil
}

func encodeHello(h Hello) []byte {
	b := append([]byte(magic), version, typeHello, byte(h.Port>>8), byte(h.Port))
	b = append(b, h.nonce[:]...)
	b = append(b, byte(len(h.Name)))
	return append(b, h.Name...)
}

func encodeReveal(n [nonceLen]byte) []byte {
	b := append([]byte(magic), version, typeReveal)
	return append(b, n[:]...)
}

func readReveal(r io.Reader) ([nonceLen]byte, error) {
	var n [nonceLen]byte
	if err := readHeader(r, typeReveal); err != nil {
		return n, err
	}
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return n, fmt.Errorf("pairing: read reveal: %w", err)
	}
	return n, nil
}

func encodeVerdict(refusal error) []byte {
	ok, reason := byte(1), ""
	if refusal != nil {
		ok, reason = 0, truncate(refusal.Error(), maxReason)
	}
	b := append([]byte(magic), version, typeVerdict, ok, byte(len(reason)))
	return append(b, reason...)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

func readHeader(r io.Reader, typ byte) error {
	var h [6]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return fmt.Errorf("pairing: read: %w", err)
	}
	switch {
	case string(h[:4]) != magic:
		return &ProtocolError{"not a pairing message"}
	case h[4] != version:
		return &ProtocolError{fmt.Sprintf("version %d, want %d", h[4], version)}
	case h[5] != typ:
		return &ProtocolError{fmt.Sprintf("message type %d, want %d", h[5], typ)}
	}
	return nil
}

func readHello(r io.Reader) (Hello, error) {
	if err := readHeader(r, typeHello); err != nil {
		return Hello{}, err
	}
	var f [2 + nonceLen + 1]byte
	if _, err := io.ReadFull(r, f[:]); err != nil {
		return Hello{}, fmt.Errorf("pairing: read hello: %w", err)
	}
	n := int(f[len(f)-1])
	if n == 0 || n > 64 {
		return Hello{}, &ProtocolError{fmt.Sprintf("name length %d, want 1..64", n)}
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(r, name); err != nil {
		return Hello{}, fmt.Errorf("pairing: read hello: %w", err)
	}
	if err := identity.ValidateName(string(name)); err != nil {
		return Hello{}, &ProtocolError{"hello: " + err.Error()}
	}
	h := Hello{Name: string(name), Port: binary.BigEndian.Uint16(f[:2])}
	copy(h.nonce[:], f[2:2+nonceLen])
	return h, nil
}

// readVerdict returns nil if the peer accepted, else an error wrapping
// ErrRefused with its reason.
func readVerdict(r io.Reader) (error, error) {
	if err := readHeader(r, typeVerdict); err != nil {
		return nil, err
	}
	var f [2]byte
	if _, err := io.ReadFull(r, f[:]); err != nil {
		return nil, fmt.Errorf("pairing: read verdict: %w", err)
	}
	if f[0] > 1 {
		return nil, &ProtocolError{fmt.Sprintf("verdict %d, want 0 or 1", f[0])}
	}
	n := int(f[1])
	if n > maxReason {
		return nil, &ProtocolError{fmt.Sprintf("reason length %d, want 0..%d", n, maxReason)}
	}
	reason := make([]byte, n)
	if _, err := io.ReadFull(r, reason); err != nil {
		return nil, fmt.Errorf("pairing: read verdict: %w", err)
	}
	if !utf8.Valid(reason) {
		return nil, &ProtocolError{"reason is not UTF-8"}
	}
	if f[0] == 1 {
		if n != 0 {
			return nil, &ProtocolError{"an acceptance with a reason"}
		}
		return nil, nil
	}
	return fmt.Errorf("%w: %q", ErrRefused, sanitize(string(reason))), nil
}

// sanitize drops control characters from text meant for a log line.
func sanitize(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r >= 0x20 && r != 0x7f && !(r >= 0x80 && r < 0xa0) {
			out = append(out, r)
		}
	}
	return string(out)
}
