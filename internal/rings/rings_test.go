package rings

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "rings")
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// flush waits for the saves queued so far.
func flush(s *Store) {
	done := make(chan struct{})
	s.mu.Lock()
	work := s.work
	s.mu.Unlock()
	work <- func() { close(done) }
	<-done
}

func TestAddListPicture(t *testing.T) {
	s := open(t, Config{MaxCount: 10, MaxBytes: 1 << 20})
	t0 := time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
	a := s.Add(Button, "house", t0, []byte("jpeg-a"))
	b := s.Add(Incoming, "door", t0.Add(time.Second), nil)
	flush(s)
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID {
		t.Fatalf("list = %+v, want b then a", list)
	}
	if list[1].Kind != Button || list[1].Peer != "house" || list[1].Bytes != 6 || !list[1].Time.Equal(t0) {
		t.Errorf("ring a listed as %+v", list[1])
	}
	if list[0].Bytes != 0 {
		t.Errorf("a ring without a picture lists %d bytes", list[0].Bytes)
	}
	if p, err := s.Picture(a.ID); err != nil || !bytes.Equal(p, []byte("jpeg-a")) {
		t.Errorf("picture of a: %q, %v", p, err)
	}
	if _, err := s.Picture(b.ID); err == nil || !strings.Contains(err.Error(), "no picture") {
		t.Errorf("picture of b: %v, want no picture", err)
	}
	for _, bad := range []string{"../key", "x", a.ID + "/../x", ""} {
		if _, err := s.Picture(bad); err == nil {
			t.Errorf("Picture(%q) worked", bad)
		}
	}
}

// The oldest go first, by count and by bytes; the newest stays even when
// it alone is over the bytes.
func TestBounds(t *testing.T) {
	s := open(t, Config{MaxCount: 3, MaxBytes: 64 << 10})
	t0 := time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		ids = append(ids, s.Add(Button, "p", t0.Add(time.Duration(i)*time.Second), make([]byte, 10<<10)).ID)
	}
	flush(s)
	list, _ := s.List()
	if len(list) != 3 || list[0].ID != ids[4] || list[2].ID != ids[2] {
		t.Fatalf("after 5 rings with room for 3: %+v", list)
	}
	big := s.Add(Incoming, "q", t0.Add(10*time.Second), make([]byte, 40<<10))
	flush(s)
	list, _ = s.List()
	if len(list) != 3 || list[0].ID != big.ID {
		t.Fatalf("after a 40 KiB ring: %+v", list)
	}
	huge := s.Add(Incoming, "q", t0.Add(20*time.Second), make([]byte, 100<<10))
	flush(s)
	list, _ = s.List()
	if len(list) != 1 || list[0].ID != huge.ID {
		t.Fatalf("after a ring over the byte bound: %+v", list)
	}
	ents, _ := os.ReadDir(s.cfg.Dir)
	if len(ents) != 2 {
		t.Errorf("%d files left, want the newest ring's 2", len(ents))
	}
}

// A directory that cannot be written loses the ring, counts it and says
// why; Add never blocks, and files that are not rings are left alone.
func TestUnwritableAndForeignFiles(t *testing.T) {
	// Root writes anywhere regardless of modes: a file where the
	// directory was makes every write fail for anyone.
	dir := filepath.Join(t.TempDir(), "rings")
	s := open(t, Config{Dir: dir, MaxCount: 5, MaxBytes: 1 << 20})
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	os.WriteFile(filepath.Join(dir, "20261203T180000.000000000Z-ring.json"), []byte("{torn"), 0o600)
	// Replace the directory by a file: every write fails.
	os.RemoveAll(dir)
	os.WriteFile(dir, []byte("in the way"), 0o600)
	for i := range 3 * queueLen {
		s.Add(Button, "p", time.Now().Add(time.Duration(i)), []byte("jpeg"))
	}
	flush(s)
	n, last := s.Errors()
	if n == 0 || last == "" {
		t.Fatalf("errors %d %q, want the failed saves counted", n, last)
	}
	os.Remove(dir)
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	os.WriteFile(filepath.Join(dir, "20261203T180000.000000000Z-ring.json"), []byte("{torn"), 0o600)
	r := s.Add(Button, "p", time.Now(), []byte("jpeg"))
	flush(s)
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("after the directory came back: %+v, %v", list, err)
	}
	for _, f := range []string{"notes.txt", "20261203T180000.000000000Z-ring.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s was removed: %v", f, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{}, {Dir: "x", MaxCount: 0, MaxBytes: 1 << 20}, {Dir: "x", MaxCount: 5, MaxBytes: 10}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
