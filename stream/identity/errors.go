package identity

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on. Returned errors wrap them with context;
// test with errors.Is.
var (
	// ErrUnpaired: the peer's key is not in the paired-peer store.
	ErrUnpaired = errors.New("peer not paired")
	// ErrKeyMismatch: the peer's key is not the one we meant to reach.
	ErrKeyMismatch = errors.New("peer key does not match the expected fingerprint")
	// ErrNameTaken: the name is already paired with a different key.
	ErrNameTaken = errors.New("name already paired with another key")
	// ErrFingerprintTaken: the key is already paired under another name.
	ErrFingerprintTaken = errors.New("key already paired under another name")
	// ErrNoPeer: no paired peer has that name.
	ErrNoPeer = errors.New("no such peer")
	// ErrProtocolVersion: the peer did not negotiate ALPN "callbox/1".
	ErrProtocolVersion = errors.New("peer speaks another protocol version")
)

// UnpairedError is returned by the server's certificate check when the
// client's key is not paired. It carries the fingerprint so the caller can
// log it and the user can pair it.
type UnpairedError struct {
	Fingerprint Fingerprint
}

func (e *UnpairedError) Error() string {
	return fmt.Sprintf("identity: peer %s is not paired", e.Fingerprint)
}

// Is makes errors.Is(err, ErrUnpaired) true.
func (e *UnpairedError) Is(target error) bool { return target == ErrUnpaired }

// MismatchError is returned by the client's certificate check when the
// server's key is not the expected one.
type MismatchError struct {
	Want, Got Fingerprint
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("identity: peer key mismatch: want %s, got %s", e.Want, e.Got)
}

// Is makes errors.Is(err, ErrKeyMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrKeyMismatch }
