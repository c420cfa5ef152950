package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// PairALPN is the TLS application protocol name of the pairing exchange.
// It is never offered together with ALPN: a connection is either a call
// with a paired box or a pairing attempt, and the server knows which
// before it looks at a key.
const PairALPN = "callbox-pair/1"

// ErrNotPairing: a pairing connection reached a box whose pairing window
// is closed.
var ErrNotPairing = errors.New("not in pairing mode")

// ServerTLSWithPairing is ServerTLS, except that a client offering
// PairALPN is accepted with any key but our own while open() reports the
// pairing window open, and refused with ErrNotPairing otherwise. open is
// asked at the start of the handshake and again when the client's key is
// checked; it must not block.
func (id *Identity) ServerTLSWithPairing(s *Store, open func() bool) *tls.Config {
	base := id.ServerTLS(s)
	callGet := base.GetConfigForClient
	pair := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{id.Cert},
		NextProtos:             []string{PairALPN},
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			f, err := leafFingerprint(raw)
			if err != nil {
				return err
			}
			if f == id.Fingerprint {
				return errors.New("identity: pairing: peer presented our own key")
			}
			if !open() {
				return fmt.Errorf("identity: pairing: %w", ErrNotPairing)
			}
			return nil
		},
	}
	base.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		if !slices.Contains(hi.SupportedProtos, PairALPN) {
			return callGet(hi)
		}
		if len(hi.SupportedProtos) != 1 {
			return nil, fmt.Errorf("identity: client offered %q with other protocols: %w", PairALPN, ErrProtocolVersion)
		}
		if !open() {
			return nil, fmt.Errorf("identity: pairing requested: %w", ErrNotPairing)
		}
		return pair, nil
	}
	return base
}

// PairClientTLS returns the configuration for the pairing exchange with
// the box that advertised fingerprint want (in its pairing window): TLS
// 1.3, ALPN PairALPN only. A server with another key fails the handshake
// with a *MismatchError, so a box advertising someone else's fingerprint
// gets nothing.
func (id *Identity) PairClientTLS(want Fingerprint) *tls.Config {
	c := id.ClientTLS(want)
	c.NextProtos = []string{PairALPN}
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol != PairALPN {
			return fmt.Errorf("identity: server selected ALPN %q, want %q: %w", cs.NegotiatedProtocol, PairALPN, ErrProtocolVersion)
		}
		return nil
	}
	return c
}
