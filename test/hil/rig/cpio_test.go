package rig

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// readNewc parses a newc archive into name → (mode, data).
func readNewc(t *testing.T, b []byte) (names []string, modes map[string]uint32, data map[string]string) {
	t.Helper()
	modes, data = map[string]uint32{}, map[string]string{}
	for off := 0; ; {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, nameLen := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+nameLen-1])
		off = (off + 110 + nameLen + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return
		}
		names = append(names, name)
		modes[name] = uint32(mode)
		data[name] = string(b[off : off+size])
		off = (off + size + 3) &^ 3
	}
}

func TestPayload(t *testing.T) {
	src := filepath.Join(t.TempDir(), "bin")
	os.WriteFile(src, []byte("binary!"), 0o600)
	p := NewPayload()
	p.File("/etc/callbox/callbox.toml", 0o644, []byte("name = \"x\"\n"))
	p.Dir("var/lib/callbox", 0o700)
	p.File("var/lib/callbox/key.pem", 0o600, []byte("k"))
	p.Copy("bin/callboxd", 0o755, src)
	var buf bytes.Buffer
	if _, err := p.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	names, modes, data := readNewc(t, buf.Bytes())
	want := []string{"bin", "bin/callboxd", "etc", "etc/callbox", "etc/callbox/callbox.toml", "var", "var/lib", "var/lib/callbox", "var/lib/callbox/key.pem"}
	if len(names) != len(want) {
		t.Fatalf("entries %q, want %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("entries %q, want %q", names, want)
		}
	}
	for name, m := range map[string]uint32{"bin": 0o40755, "var/lib/callbox": 0o40700, "var/lib/callbox/key.pem": 0o100600, "bin/callboxd": 0o100755} {
		if modes[name] != m {
			t.Errorf("%s: mode %o, want %o", name, modes[name], m)
		}
	}
	if data["bin/callboxd"] != "binary!" || data["etc/callbox/callbox.toml"] != "name = \"x\"\n" {
		t.Errorf("contents %q", data)
	}
	// The archive is one GNU cpio reads, too.
	if _, err := exec.LookPath("cpio"); err == nil {
		dir := t.TempDir()
		cmd := exec.Command("cpio", "-id", "--quiet")
		cmd.Dir, cmd.Stdin = dir, &buf
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cpio -id: %v %s", err, out)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "bin/callboxd")); err != nil || string(b) != "binary!" {
			t.Errorf("cpio extracted %q, %v", b, err)
		}
	}
}
