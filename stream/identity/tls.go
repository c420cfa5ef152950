package identity

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// ALPN is the TLS application protocol name of call protocol version 1.
// It must equal wire.ALPN.
const ALPN = "callbox/1"

// ServerTLS returns the configuration for accepting calls: TLS 1.3 only,
// ALPN "callbox/1", and a client certificate whose key is paired in s
// (which must not be nil).
// The store is consulted at each handshake, so pairings made or removed
// later take effect on the next connection. An unpaired client fails the
// handshake with an *UnpairedError; a client that offers no ALPN fails
// with ErrProtocolVersion; one that offers only other protocols gets the
// standard no_application_protocol alert from crypto/tls.
//
// Certificate validity dates and issuers are not checked: trust is the
// paired key alone, and a Raspberry Pi without a real-time clock may boot
// with a wrong date.
func (id *Identity) ServerTLS(s *Store) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		NextProtos:   []string{ALPN},
		ClientAuth:   tls.RequireAnyClientCert,
		// Resumed sessions skip VerifyPeerCertificate, which would let an
		// unpaired peer back in on an old ticket.
		SessionTicketsDisabled: true,
		GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			// crypto/tls only rejects a client that offers other protocols;
			// one that offers none would otherwise get through.
			if len(hi.SupportedProtos) == 0 {
				return nil, fmt.Errorf("identity: client offered no ALPN, want %q: %w", ALPN, ErrProtocolVersion)
			}
			return nil, nil
		},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			f, err := leafFingerprint(raw)
			if err != nil {
				return err
			}
			if _, ok := s.ByFingerprint(f); !ok {
				return &UnpairedError{Fingerprint: f}
			}
			return nil
		},
	}
}

// ClientTLS returns the configuration for calling the box whose key has
// fingerprint want: TLS 1.3 only, ALPN "callbox/1", presenting this box's
// certificate. Any other server key fails the handshake with a
// *MismatchError; a server that does not select "callbox/1" fails it with
// ErrProtocolVersion.
func (id *Identity) ClientTLS(want Fingerprint) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		NextProtos:   []string{ALPN},
		// Chain and host-name checks are replaced by the fingerprint check
		// below: the expected key is all we trust.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			got, err := leafFingerprint(raw)
			if err != nil {
				return err
			}
			if got != want {
				return &MismatchError{Want: want, Got: got}
			}
			return nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			// A server without ALPN support selects nothing rather than failing.
			if cs.NegotiatedProtocol != ALPN {
				return fmt.Errorf("identity: server selected ALPN %q, want %q: %w", cs.NegotiatedProtocol, ALPN, ErrProtocolVersion)
			}
			return nil
		},
	}
}

// PeerFingerprint returns the fingerprint of the peer's key after a
// completed handshake.
func PeerFingerprint(cs tls.ConnectionState) (Fingerprint, error) {
	if !cs.HandshakeComplete {
		return Fingerprint{}, errors.New("identity: peer fingerprint: handshake not complete")
	}
	if len(cs.PeerCertificates) == 0 {
		return Fingerprint{}, errors.New("identity: peer fingerprint: peer presented no certificate")
	}
	return certFingerprint(cs.PeerCertificates[0])
}

func leafFingerprint(raw [][]byte) (Fingerprint, error) {
	if len(raw) == 0 {
		return Fingerprint{}, errors.New("identity: peer presented no certificate")
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return Fingerprint{}, fmt.Errorf("identity: peer certificate: %w", err)
	}
	return certFingerprint(cert)
}

func certFingerprint(cert *x509.Certificate) (Fingerprint, error) {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return Fingerprint{}, fmt.Errorf("identity: peer certificate key is %s, want Ed25519", cert.PublicKeyAlgorithm)
	}
	return FingerprintOf(pub), nil
}
