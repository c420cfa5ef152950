// Package identity holds what makes a box itself and whom it trusts: the
// device's Ed25519 key and certificate, key fingerprints, the paired-peer
// store, and the mutually authenticated TLS configurations built from them.
package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/callbox/callbox/internal/atomicfile"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// KeyFile is the name of the key file inside the identity directory.
const KeyFile = "key.pem"

// maxKeyFile bounds how much of a key file is read; a PKCS#8 Ed25519 key
// in PEM is about 120 bytes.
const maxKeyFile = 16 << 10

// Identity is this box: its name, its key, a certificate for the key, and
// the key's fingerprint. The key is the identity; the certificate is only
// a TLS envelope for it, made fresh at every load.
type Identity struct {
	Name        string
	Key         ed25519.PrivateKey
	Cert        tls.Certificate
	Fingerprint Fingerprint
}

// LoadOrCreate loads the key in dir, or makes and stores a new one if there
// is none (creating dir with mode 0700 if needed). created reports whether a
// new key was made. An unreadable, corrupt or group/other-accessible key
// file is an error, never replaced: replacing it would change the box's
// identity and break every pairing.
func LoadOrCreate(dir, name string) (id *Identity, created bool, err error) {
	id, err = Load(dir, name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("identity: create key directory: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("identity: generate key: %w", err)
	}
	path := filepath.Join(dir, KeyFile)
	switch err := writeKey(path, key); {
	case errors.Is(err, fs.ErrExist):
		// Another process created the key between our load and our write;
		// theirs is the identity now.
		id, err := Load(dir, name)
		return id, false, err
	case err != nil:
		return nil, false, err
	}
	id, err = newIdentity(name, key)
	if err != nil {
		return nil, false, err
	}
	return id, true, nil
}

// Load loads the key in dir without creating one. A missing key file is an
// error wrapping fs.ErrNotExist.
func Load(dir, name string) (*Identity, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("identity: box name: %w", err)
	}
	key, err := readKey(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	return newIdentity(name, key)
}

func readKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: open key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: key file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("identity: key file %s has mode %04o, want 0600 (no group or other access)", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("identity: read key file %s: %w", path, err)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("identity: key file %s is corrupt (not replaced, that would change this box's identity): %w", path, err)
	}
	return key, nil
}

func parseKey(data []byte) (ed25519.PrivateKey, error) {
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("larger than %d bytes", maxKeyFile)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("PEM block type %q, want \"PRIVATE KEY\"", block.Type)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key type %T, want Ed25519", k)
	}
	return key, nil
}

// writeKey stores key at path without ever exposing a partial file or
// replacing an existing one: write a temporary file, sync it, then hard-link
// it into place (link, unlike rename, fails if path exists).
func writeKey(path string, key ed25519.PrivateKey) (err error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("identity: encode key: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".key-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("identity: write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity: write key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("identity: write key: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

func newIdentity(name string, key ed25519.PrivateKey) (*Identity, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		// SerialNumber nil: x509 picks a random RFC 5280 serial.
		Subject:   pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.AddDate(20, 0, 0),
		KeyUsage:  x509.KeyUsageDigitalSignature,
		// Each box is both a TLS client and a TLS server.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	pub := key.Public().(ed25519.PublicKey)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("identity: make certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("identity: make certificate: %w", err)
	}
	return &Identity{
		Name:        name,
		Key:         key,
		Cert:        tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Fingerprint: FingerprintOf(pub),
	}, nil
}
