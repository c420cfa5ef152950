//go:build linux && cgo

package camera

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/vladimirvivien/go4vl/v4l2"
)

// These tests need a real V4L2 capture device, so they are skipped unless
// CALLBOX_TEST_VIDEO names one (the QEMU rig sets it, e.g. to a vivid
// node). With CALLBOX_TEST_VIVID_RELOAD set to a shell command that
// reloads vivid, the unplug-and-recover test runs too.

func hwDevice(t *testing.T) string {
	dev := os.Getenv("CALLBOX_TEST_VIDEO")
	if dev == "" {
		t.Skip("CALLBOX_TEST_VIDEO not set: no real camera to test")
	}
	return dev
}

// readFrames reads n frames and checks each decodes at the format's size.
func readFrames(t *testing.T, src Source, n int) {
	t.Helper()
	f := src.Format()
	var last uint32
	for i := range n {
		// Generous: under the race detector in an emulated VM one YUYV
		// encode takes seconds. This checks liveness, not speed.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		fr, err := src.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if i > 0 && fr.Seq != last+1 {
			t.Errorf("Seq %d after %d", fr.Seq, last)
		}
		last = fr.Seq
		if fr.Time.IsZero() || time.Until(fr.Time) > 0 {
			t.Errorf("frame %d time %v, now %v", i, fr.Time, time.Now())
		}
		img, err := jpeg.Decode(bytes.NewReader(fr.JPEG))
		if err != nil {
			t.Fatalf("frame %d (%d bytes) does not decode: %v", i, len(fr.JPEG), err)
		}
		if b := img.Bounds(); b.Dx() != f.Width || b.Dy() != f.Height {
			t.Errorf("frame %d is %v, format says %dx%d", i, b, f.Width, f.Height)
		}
	}
}

func TestHardwareV4L2(t *testing.T) {
	dev := hwDevice(t)
	devs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range devs {
		t.Logf("%s: driver %s card %q bus %s links %v: %d formats", d.Path, d.Driver, d.Card, d.Bus, d.Links, len(d.Formats))
		found = found || d.Path == dev
		for _, f := range d.Formats {
			if f.FourCC == "MJPG" || f.FourCC == "YUYV" {
				t.Logf("  %s %s: %v", f.FourCC, f.Description, f.Sizes)
			}
		}
	}
	if !found {
		t.Errorf("List does not show %s", dev)
	}

	before := openFDs(t)
	for _, want := range []media.VideoFormat{{Width: 640, Height: 480, FPS: 30}, {Width: 320, Height: 240, FPS: 15}, {Width: 640, Height: 480, FPS: 30}} {
		v, err := OpenV4L2(V4L2Config{Device: dev, Format: want})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("asked %+v, got %s (%+v)", want, v.Describe(), v.Format())
		readFrames(t, v, 8)
		if err := v.Close(); err != nil {
			t.Error(err)
		}
		t.Logf("stats %+v", v.Stats())
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after three open/close cycles, %d before", after, before)
	}
	if m := deviceMappings(t, dev); m != 0 {
		t.Errorf("%d mappings of %s left after Close", m, dev)
	}
}

// deviceMappings counts this process's mappings of the node at path.
func deviceMappings(t *testing.T, path string) int {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	n := 0
	for _, line := range strings.Split(string(maps), "\n") {
		if strings.Contains(line, path) {
			n++
		}
	}
	return n
}

// vividDisconnect is vivid's error-injection control that makes the device
// behave as if unplugged (VIVID_CID_VIVID_BASE + 65).
const vividDisconnect = 0x00f0f000 + 65

func TestHardwareUnplugAndRecover(t *testing.T) {
	dev := hwDevice(t)
	reload := os.Getenv("CALLBOX_TEST_VIVID_RELOAD")
	if reload == "" {
		t.Skip("CALLBOX_TEST_VIVID_RELOAD not set")
	}
	states := make(chan string, 64)
	r := NewResilient(func(ctx context.Context) (Source, error) {
		return OpenV4L2(V4L2Config{Device: dev})
	}, ResilientConfig{OnChange: func(s string) {
		select {
		case states <- s:
		default:
		}
	}})
	defer r.Close()
	wait := func(prefix string) string {
		t.Helper()
		timeout := time.After(2 * time.Minute)
		for {
			select {
			case s := <-states:
				t.Logf("state: %s", s)
				if strings.HasPrefix(s, prefix) {
					return s
				}
			case <-timeout:
				t.Fatalf("no %q state within 2 minutes; state %q", prefix, r.State())
			}
		}
	}
	wait("ok ")
	readFrames(t, r, 5)

	fd, err := syscall.Open(dev, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = v4l2.SetControlValue(uintptr(fd), vividDisconnect, 0) // a button: the value is ignored
	syscall.Close(fd)
	if err != nil {
		t.Fatalf("vivid disconnect control: %v", err)
	}
	s := wait("down: ")
	if !strings.Contains(s, dev+" gone: ") {
		t.Errorf("down state %q does not say the camera is gone", s)
	}
	// Reading blocks while the camera is down.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err = r.Read(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read while down = %v, want to block", err)
	}
	// Reloading vivid only works once nothing holds the device open or
	// mapped: that checks the gone path released everything.
	if out, err := exec.Command("sh", "-c", reload).CombinedOutput(); err != nil {
		t.Fatalf("reload vivid: %v: %s", err, out)
	}
	wait("ok ")
	readFrames(t, r, 5)
	st := r.Stats()
	t.Logf("stats %+v", st)
	if st.Opens < 2 || st.Failures < 1 {
		t.Errorf("Stats = %+v, want a reopen", st)
	}
}
