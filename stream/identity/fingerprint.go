package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
)

// Fingerprint identifies a box: the SHA-256 of its raw 32-byte Ed25519
// public key.
type Fingerprint [32]byte

const (
	fingerprintChars = 52 // base32 of 32 bytes, unpadded
	groupLen         = 4
)

// lowerBase32 is RFC 4648 base32 in lower case: easier to read aloud and
// to type than upper case.
var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// FingerprintOf returns the fingerprint of an Ed25519 public key.
func FingerprintOf(pub ed25519.PublicKey) Fingerprint {
	return sha256.Sum256(pub)
}

// String returns the readable form: 52 lower-case base32 characters in 13
// groups of 4 joined by '-'.
func (f Fingerprint) String() string {
	enc := lowerBase32.EncodeToString(f[:])
	var b strings.Builder
	b.Grow(fingerprintChars + fingerprintChars/groupLen - 1)
	for i := 0; i < len(enc); i += groupLen {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(enc[i : i+groupLen])
	}
	return b.String()
}

// Short returns the first two groups, enough to tell boxes apart in logs.
func (f Fingerprint) Short() string {
	return f.String()[:2*groupLen+1]
}

// IsZero reports whether f is the zero value (no key).
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// MarshalText encodes f in its readable form.
func (f Fingerprint) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText parses the forms ParseFingerprint accepts.
func (f *Fingerprint) UnmarshalText(text []byte) error {
	p, err := ParseFingerprint(string(text))
	if err != nil {
		return err
	}
	*f = p
	return nil
}

// ParseFingerprint parses a fingerprint in the form String returns. Case
// does not matter, and dashes and spaces anywhere are ignored, so a value
// read aloud or copied from a terminal parses.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	norm := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case 'A' <= r && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, strings.TrimSpace(s))
	for _, r := range norm {
		if !('a' <= r && r <= 'z' || '2' <= r && r <= '7') {
			return f, fmt.Errorf("identity: fingerprint %q: invalid character %q (want base32: a-z, 2-7)", s, r)
		}
	}
	if len(norm) != fingerprintChars {
		return f, fmt.Errorf("identity: fingerprint %q: want %d base32 characters, got %d", s, fingerprintChars, len(norm))
	}
	n, err := lowerBase32.Decode(f[:], []byte(norm))
	if err != nil || n != len(f) {
		return Fingerprint{}, fmt.Errorf("identity: fingerprint %q: not valid base32", s)
	}
	// The last character carries one data bit and four padding bits; the
	// decoder ignores the padding bits, so reject the 15 aliases of each
	// fingerprint to keep exactly one spelling.
	if lowerBase32.EncodeToString(f[:]) != norm {
		return Fingerprint{}, fmt.Errorf("identity: fingerprint %q: last character is not a valid ending", s)
	}
	return f, nil
}
