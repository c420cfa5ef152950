package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func fp(b byte) Fingerprint {
	var f Fingerprint
	f[0], f[31] = b, b
	return f
}

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", PeersFile)
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestStorePersistence(t *testing.T) {
	s, path := openTemp(t)
	if got := s.List(); len(got) != 0 {
		t.Fatalf("new store lists %v", got)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("opening created the file: %v", err)
	}
	gate := Peer{Name: "gate", Fingerprint: fp(1), Address: "gate.lan:7000"}
	attic := Peer{Name: "attic", Fingerprint: fp(2)}
	kitchen := Peer{Name: "Kitchen_2.b", Fingerprint: fp(3), Address: "[fe80::1%eth0]:7000"}
	for _, p := range []Peer{gate, attic, kitchen} {
		if err := s.Add(p); err != nil {
			t.Fatalf("Add(%v): %v", p, err)
		}
	}
	checkMode(t, path, 0o600)
	want := []Peer{kitchen, attic, gate} // sorted by name, byte order
	if got := s.List(); !slices.Equal(got, want) {
		t.Fatalf("List() = %v, want %v", got, want)
	}
	s.List()[0].Name = "changed"
	if got := s.List()[0]; got != kitchen {
		t.Fatal("List returned the store's own slice")
	}

	if err := s.Remove("attic"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAddress("gate", "10.0.0.9:7001"); err != nil {
		t.Fatal(err)
	}
	gate.Address = "10.0.0.9:7001"
	// Where a call last worked is kept apart from the configured address.
	if err := s.SetLastAddress("gate", "[fe80::1%eth0]:7420"); err != nil {
		t.Fatal(err)
	}
	gate.LastAddress = "[fe80::1%eth0]:7420"
	if err := s.SetLastAddress("gate", "gate.lan"); err == nil {
		t.Error("SetLastAddress took an address without a port")
	}
	if err := s.SetLastAddress("nobody", "h:1"); !errors.Is(err, ErrNoPeer) {
		t.Errorf("SetLastAddress of a missing peer: %v", err)
	}

	re, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	want = []Peer{kitchen, gate}
	if got := re.List(); !slices.Equal(got, want) {
		t.Fatalf("after reopen List() = %v, want %v", got, want)
	}
	if p, ok := re.ByName("gate"); !ok || p != gate {
		t.Errorf("ByName(gate) = %v, %v", p, ok)
	}
	if p, ok := re.ByFingerprint(fp(3)); !ok || p != kitchen {
		t.Errorf("ByFingerprint = %v, %v", p, ok)
	}
	if _, ok := re.ByName("attic"); ok {
		t.Error("removed peer still listed")
	}
	if _, ok := re.ByFingerprint(fp(2)); ok {
		t.Error("removed peer still found by fingerprint")
	}
	// No temp files left behind: the store and its good copy.
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 2 {
		t.Errorf("store dir holds %d entries, want 2", len(ents))
	}
}

func TestStoreRules(t *testing.T) {
	s, path := openTemp(t)
	gate := Peer{Name: "gate", Fingerprint: fp(1), Address: "gate.lan:7000"}
	if err := s.Add(gate); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 64)
	cases := []struct {
		name string
		op   func() error
		want error  // sentinel, or nil for "some error"
		ok   bool   // operation must succeed
		msg  string // error text must contain this
	}{
		{"identical re-add is a no-op", func() error { return s.Add(gate) }, nil, true, ""},
		{"same name other key", func() error { return s.Add(Peer{Name: "gate", Fingerprint: fp(9)}) }, ErrNameTaken, false, "gate"},
		{"same key other name", func() error { return s.Add(Peer{Name: "gate2", Fingerprint: fp(1)}) }, ErrFingerprintTaken, false, "gate"},
		{"remove missing", func() error { return s.Remove("nobody") }, ErrNoPeer, false, "nobody"},
		{"set address missing", func() error { return s.SetAddress("nobody", "h:1") }, ErrNoPeer, false, "nobody"},
		{"64-char name", func() error { return s.Add(Peer{Name: long, Fingerprint: fp(4)}) }, nil, true, ""},
		{"65-char name", func() error { return s.Add(Peer{Name: long + "a", Fingerprint: fp(5)}) }, nil, false, "1..64"},
		{"empty name", func() error { return s.Add(Peer{Fingerprint: fp(5)}) }, nil, false, "1..64"},
		{"space in name", func() error { return s.Add(Peer{Name: "front door", Fingerprint: fp(5)}) }, nil, false, "not allowed"},
		{"slash in name", func() error { return s.Add(Peer{Name: "a/b", Fingerprint: fp(5)}) }, nil, false, "not allowed"},
		{"non-ASCII name", func() error { return s.Add(Peer{Name: "türe", Fingerprint: fp(5)}) }, nil, false, "not allowed"},
		{"zero fingerprint", func() error { return s.Add(Peer{Name: "z"}) }, nil, false, "fingerprint missing"},
		{"address without port", func() error { return s.Add(Peer{Name: "x", Fingerprint: fp(5), Address: "host"}) }, nil, false, "address"},
		{"address without host", func() error { return s.Add(Peer{Name: "x", Fingerprint: fp(5), Address: ":7000"}) }, nil, false, "address"},
		{"named port", func() error { return s.Add(Peer{Name: "x", Fingerprint: fp(5), Address: "host:http"}) }, nil, false, "port"},
		{"port 0", func() error { return s.Add(Peer{Name: "x", Fingerprint: fp(5), Address: "host:0"}) }, nil, false, "port"},
		{"port too big", func() error { return s.Add(Peer{Name: "x", Fingerprint: fp(5), Address: "host:65536"}) }, nil, false, "port"},
		{"set bad address", func() error { return s.SetAddress("gate", "gate.lan") }, nil, false, "address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(path)
			err := tc.op()
			if tc.ok {
				if err != nil {
					t.Fatalf("error %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("succeeded, want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want errors.Is %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want it to contain %q", err, tc.msg)
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Error("a refused change altered the file")
			}
		})
	}
	if p, _ := s.ByName("gate"); p != gate {
		t.Errorf("gate changed to %v", p)
	}
}

func TestStoreAddressUpdates(t *testing.T) {
	s, path := openTemp(t)
	p := Peer{Name: "gate", Fingerprint: fp(1), Address: "a:1"}
	if err := s.Add(p); err != nil {
		t.Fatal(err)
	}
	p.Address = "b:2" // same name and key, new address: an update
	if err := s.Add(p); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAddress("gate", ""); err != nil { // accept-only
		t.Fatal(err)
	}
	re, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := re.ByName("gate"); got.Address != "" || got.Fingerprint != fp(1) {
		t.Errorf("after reopen gate = %v, want no address", got)
	}
}

func TestStoreCorrupt(t *testing.T) {
	valid := `{"peers":[{"name":"gate","fingerprint":"` + fp(1).String() + `"}]}`
	cases := []struct{ name, data, msg string }{
		{"not JSON", "peers!", "invalid character"},
		{"empty", "", "EOF"},
		{"truncated", valid[:len(valid)-5], "unexpected EOF"},
		{"trailing", valid + "{}", "data after"},
		{"unknown field", `{"peers":[],"version":2}`, "unknown field"},
		{"bad fingerprint", `{"peers":[{"name":"gate","fingerprint":"abc"}]}`, "want 52"},
		{"bad name", `{"peers":[{"name":"a b","fingerprint":"` + fp(1).String() + `"}]}`, "not allowed"},
		{"missing fingerprint", `{"peers":[{"name":"gate"}]}`, "fingerprint missing"},
		{"bad address", `{"peers":[{"name":"gate","fingerprint":"` + fp(1).String() + `","address":"x"}]}`, "address"},
		{"duplicate name", `{"peers":[{"name":"g","fingerprint":"` + fp(1).String() + `"},{"name":"g","fingerprint":"` + fp(2).String() + `"}]}`, "twice"},
		{"duplicate key", `{"peers":[{"name":"g","fingerprint":"` + fp(1).String() + `"},{"name":"h","fingerprint":"` + fp(1).String() + `"}]}`, "twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), PeersFile)
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenStore(path)
			if err != nil {
				t.Fatalf("a corrupt store with no good copy: %v, want an empty store", err)
			}
			rec := s.Recovered()
			if rec == nil || rec.FromGood || len(s.List()) != 0 {
				t.Fatalf("recovery %+v with %d peers, want an empty store that says so", rec, len(s.List()))
			}
			if msg := rec.String(); !strings.Contains(msg, path) || !strings.Contains(msg, tc.msg) || !strings.Contains(msg, "no good copy") {
				t.Errorf("recovery %q, want it to name %s, contain %q and say there is no good copy", msg, path, tc.msg)
			}
			if after, _ := os.ReadFile(rec.KeptAs); string(after) != tc.data {
				t.Errorf("corrupt file not kept as %q", rec.KeptAs)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("corrupt file still at %s: %v", path, err)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), PeersFile)
		if err := os.WriteFile(path, []byte(valid), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenStore(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.ByName("gate"); !ok {
			t.Error("gate not loaded")
		}
	})
}

func TestStoreEmptyAfterRemove(t *testing.T) {
	s, path := openTemp(t)
	if err := s.Add(Peer{Name: "g", Fingerprint: fp(1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("g"); err != nil {
		t.Fatal(err)
	}
	re, err := OpenStore(path)
	if err != nil {
		t.Fatalf("reopen of an emptied store: %v", err)
	}
	if n := len(re.List()); n != 0 {
		t.Errorf("%d peers after removing the only one", n)
	}
}

func TestStoreConcurrent(t *testing.T) {
	s, path := openTemp(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			name := fmt.Sprintf("p%02d", i)
			if err := s.Add(Peer{Name: name, Fingerprint: fp(byte(i + 1))}); err != nil {
				t.Error(err)
			}
			s.List()
			s.ByFingerprint(fp(byte(i + 1)))
			if err := s.SetAddress(name, fmt.Sprintf("h:%d", 1000+i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	re, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := re.List(), s.List(); !slices.Equal(got, want) || len(got) != 16 {
		t.Errorf("file holds %v, memory %v", got, want)
	}
}

// TestStoreFallsBackToGoodCopy: every save leaves a good copy beside the
// store; a store corrupted afterwards (a bad SD card, a hand edit) is moved
// aside and the good copy restored, in memory and on disk.
func TestStoreFallsBackToGoodCopy(t *testing.T) {
	s, path := openTemp(t)
	for i, name := range []string{"gate", "hall"} {
		if err := s.Add(Peer{Name: name, Fingerprint: fp(byte(i + 1)), Address: "10.0.0.1:7000"}); err != nil {
			t.Fatal(err)
		}
	}
	saved, _ := os.ReadFile(path)
	if good, _ := os.ReadFile(path + GoodSuffix); !bytes.Equal(good, saved) {
		t.Fatalf("good copy %q, want the saved store %q", good, saved)
	}
	if err := os.WriteFile(path, saved[:len(saved)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	re, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := re.Recovered()
	if rec == nil || !rec.FromGood || rec.Peers != 2 || len(re.List()) != 2 {
		t.Fatalf("recovery %+v, %d peers; want both peers from the good copy", rec, len(re.List()))
	}
	if !strings.Contains(rec.String(), "restored 2 peers") {
		t.Errorf("recovery says %q", rec)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, saved) {
		t.Errorf("store file not restored from the good copy")
	}
	if kept, _ := os.ReadFile(rec.KeptAs); !bytes.Equal(kept, saved[:len(saved)/2]) {
		t.Errorf("corrupt file not kept aside")
	}
	// Both corrupt: empty, and both kept.
	os.WriteFile(path, []byte("{"), 0o600)
	os.WriteFile(path+GoodSuffix, []byte("}"), 0o600)
	re, err = OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if rec := re.Recovered(); rec == nil || rec.FromGood || len(re.List()) != 0 || !strings.Contains(rec.String(), "good copy too") {
		t.Fatalf("recovery %v, want empty and both named", rec)
	}
	// A fine store is not a recovery, and its missing good copy is made.
	os.Remove(path + GoodSuffix)
	if err := re.Add(Peer{Name: "gate", Fingerprint: fp(1)}); err != nil {
		t.Fatal(err)
	}
	os.Remove(path + GoodSuffix)
	re, err = OpenStore(path)
	if err != nil || re.Recovered() != nil {
		t.Fatalf("open a good store: %v, %v", err, re.Recovered())
	}
	if _, err := os.Stat(path + GoodSuffix); err != nil {
		t.Errorf("good copy not written at open: %v", err)
	}
}

// A peer's address may be an IPv4 address, a bracketed IPv6 address (a
// zone too) or a host name such as a DNS or MagicDNS name, each with a
// port; it is stored as given and survives a reopen. The usual slips are
// refused with a hint how to write it.
func TestStoreAddressForms(t *testing.T) {
	s, path := openTemp(t)
	good := []string{
		"192.168.1.20:7420",
		"100.101.102.103:7420", // a Tailscale (CGNAT range) address
		"[::1]:7420",
		"[fd7a:115c:a1e0::1234]:7420",
		"[fe80::1%wg0]:7420",
		"localhost:7420",
		"door.example.net:7420",
		"door.tail1234.ts.net:7420", // MagicDNS
		"door:7450",
	}
	for i, a := range good {
		name := fmt.Sprintf("p%d", i)
		if err := s.Add(Peer{Name: name, Fingerprint: fp(byte(10 + i)), Address: a}); err != nil {
			t.Errorf("Add with address %q: %v", a, err)
		}
		if err := s.SetLastAddress(name, a); err != nil {
			t.Errorf("SetLastAddress %q: %v", a, err)
		}
	}
	re, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range good {
		if p, ok := re.ByName(fmt.Sprintf("p%d", i)); !ok || p.Address != a || p.LastAddress != a {
			t.Errorf("after reopen: %+v, want address %q", p, a)
		}
	}

	bad := []struct{ addr, hint string }{
		{"fd7a:115c:a1e0::1234:7420", "in brackets"},
		{"::1", "in brackets"},
		{"fe80::1%wg0:7420", "in brackets"},
		{"door.example.net", "door.example.net:7420"},
		{"100.101.102.103", "100.101.102.103:7420"},
		{"[::1]", ""},
		{"door.example.net:", "port"},
	}
	for _, b := range bad {
		err := ValidateAddress(b.addr)
		if err == nil {
			t.Errorf("%q accepted", b.addr)
			continue
		}
		if !strings.Contains(err.Error(), b.hint) || !strings.Contains(err.Error(), b.addr) {
			t.Errorf("%q: error %q, want it to name the address and contain %q", b.addr, err, b.hint)
		}
	}
}
