//go:build linux && cgo

package camera

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(entries)
}

// The real driver on nodes that are not cameras: clear errors, and no file
// descriptor left behind on any failure path.
func TestOpenDriverNotACamera(t *testing.T) {
	_, err := OpenV4L2(V4L2Config{Device: "/dev/null"}) // warm up anything lazily opened
	if err == nil {
		t.Fatal("opened /dev/null as a camera")
	}
	before := openFDs(t)
	for range 5 {
		_, err = OpenV4L2(V4L2Config{Device: "/dev/null"})
		if err == nil || !strings.Contains(err.Error(), "camera: open /dev/null: not a V4L2 device") {
			t.Fatalf("OpenV4L2(/dev/null) = %v", err)
		}
		_, err = OpenV4L2(V4L2Config{Device: "/dev/video-callbox-missing"})
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("OpenV4L2(missing) = %v, want not-exist", err)
		}
		if _, err := openDriver("/dev/video-callbox-missing"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("openDriver(missing) = %v, want not-exist", err)
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d file descriptors open after failed opens, %d before", after, before)
	}
}

func TestList(t *testing.T) {
	devs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	if devs == nil {
		t.Fatal("List returned nil, want an empty list")
	}
	for _, d := range devs {
		t.Logf("%s: %s %q %s links %v, %d formats, error %q", d.Path, d.Driver, d.Card, d.Bus, d.Links, len(d.Formats), d.Error)
	}
	if len(devs) == 0 {
		b, _ := json.Marshal(devs)
		if string(b) != "[]" {
			t.Errorf("no devices marshal as %s, want []", b)
		}
	}
}

// Files named like video nodes that are not V4L2 devices are left out.
func TestListSkipsNonV4L2Nodes(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"video0", "video12", "videox", "vbi0"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	devs, err := listDevices(dir)
	if err != nil || len(devs) != 0 {
		t.Fatalf("listDevices = %+v, %v; want none", devs, err)
	}
	devs, err = listDevices(filepath.Join(dir, "missing"))
	if err != nil || devs == nil || len(devs) != 0 {
		t.Fatalf("listDevices(missing dir) = %+v, %v; want an empty list", devs, err)
	}
}
