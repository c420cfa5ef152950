package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "id")
	id, created, err := LoadOrCreate(dir, "front-door")
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false on first start")
	}
	checkMode(t, dir, fs.ModeDir|0o700)
	checkMode(t, filepath.Join(dir, KeyFile), 0o600)
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("dir holds %d entries, want only %s", len(ents), KeyFile)
	}

	leaf := id.Cert.Leaf
	if leaf == nil || leaf.Subject.CommonName != "front-door" {
		t.Fatalf("certificate leaf %v, want CN front-door", leaf)
	}
	if now := time.Now(); !leaf.NotBefore.Before(now) || leaf.NotAfter.Before(now.AddDate(19, 0, 0)) {
		t.Errorf("validity %v..%v, want from before now to about 20 years on", leaf.NotBefore, leaf.NotAfter)
	}
	if f := FingerprintOf(id.Key.Public().(ed25519.PublicKey)); f != id.Fingerprint {
		t.Errorf("Fingerprint %s is not that of Key (%s)", id.Fingerprint, f)
	}

	again, created, err := LoadOrCreate(dir, "front-door")
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("created = true on second start")
	}
	if again.Fingerprint != id.Fingerprint {
		t.Errorf("fingerprint changed across restarts: %s then %s", id.Fingerprint, again.Fingerprint)
	}
	if again.Cert.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two certificates share a serial number; want a random serial each load")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir, "box"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of an empty dir: %v, want fs.ErrNotExist", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("Load created %d files", len(ents))
	}
	id, _, err := LoadOrCreate(dir, "box")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, "box")
	if err != nil || got.Fingerprint != id.Fingerprint {
		t.Fatalf("Load = %v, %v; want fingerprint %s", got, err, id.Fingerprint)
	}
	if _, err := Load(dir, "no spaces"); err == nil {
		t.Fatal("Load with an invalid box name succeeded")
	}
}

func TestKeyFileRefused(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	good := func(t *testing.T, dir string) []byte {
		if _, _, err := LoadOrCreate(dir, "box"); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, KeyFile))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	cases := []struct {
		name string
		mode os.FileMode
		data func(t *testing.T, dir string) []byte
		msg  string
	}{
		{"group and other readable", 0o644, good, "mode 0644"},
		{"group readable", 0o640, good, "mode 0640"},
		{"garbage", 0o600, func(*testing.T, string) []byte { return []byte("not a key\n") }, "no PEM block"},
		{"empty", 0o600, func(*testing.T, string) []byte { return nil }, "no PEM block"},
		{"truncated", 0o600, func(t *testing.T, dir string) []byte {
			data := good(t, dir)
			return data[:len(data)/2]
		}, "corrupt"},
		{"bad DER", 0o600, func(*testing.T, string) []byte {
			return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})
		}, "corrupt"},
		{"wrong PEM type", 0o600, func(*testing.T, string) []byte {
			return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ecDER})
		}, `"CERTIFICATE"`},
		{"ECDSA key", 0o600, func(*testing.T, string) []byte {
			return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})
		}, "want Ed25519"},
		{"trailing data", 0o600, func(t *testing.T, dir string) []byte {
			return append(good(t, dir), "junk"...)
		}, "data after"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFile)
			data := tc.data(t, dir)
			os.Remove(path)
			if err := os.WriteFile(path, data, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // umask-proof
				t.Fatal(err)
			}
			for _, load := range []func() error{
				func() error { _, err := Load(dir, "box"); return err },
				func() error { _, _, err := LoadOrCreate(dir, "box"); return err },
			} {
				err := load()
				if err == nil {
					t.Fatal("key file accepted")
				}
				if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("error %q, want it to name %s and say %q", err, path, tc.msg)
				}
				if errors.Is(err, fs.ErrNotExist) {
					t.Errorf("error %q wraps fs.ErrNotExist", err)
				}
			}
			// Never replaced.
			after, err := os.ReadFile(path)
			if err != nil || string(after) != string(data) {
				t.Errorf("key file changed: %v", err)
			}
		})
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode() & (fs.ModeDir | fs.ModePerm); got != want {
		t.Errorf("%s mode %v, want %v", path, got, want)
	}
}
