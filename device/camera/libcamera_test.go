package camera_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/camera/cameratest"
	"github.com/callbox/callbox/stream/media"
)

// fakeRpicam is the fake rpicam-vid, built once for the package's tests.
var fakeRpicam = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "callbox-fakerpicam-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rpicam-vid")
	if err := cameratest.BuildFakeRpicamTo(bin); err != nil {
		return "", err
	}
	return bin, nil
})

// rig runs the fake with a script, records its starts and logs.
type rig struct {
	t      *testing.T
	bin    string
	script string // file the fake reads at each start
	starts string // file the fake appends "PID ARGS" to
	log    *syncBuffer
}

func newRig(t *testing.T, script string) *rig {
	t.Helper()
	bin, err := fakeRpicam()
	if err != nil {
		t.Fatalf("building the fake rpicam-vid: %v", err)
	}
	dir := t.TempDir()
	r := &rig{t: t, bin: bin, script: filepath.Join(dir, "script"), starts: filepath.Join(dir, "starts"), log: &syncBuffer{}}
	r.set(script)
	t.Setenv("FAKE_RPICAM", r.script)
	t.Setenv("FAKE_RPICAM_LOG", r.starts)
	t.Cleanup(r.noneLeft)
	return r
}

// set changes what the fake does from its next start on.
func (r *rig) set(script string) {
	if err := os.WriteFile(r.script, []byte(script), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) config(f media.VideoFormat) camera.LibcameraConfig {
	return camera.LibcameraConfig{Program: r.bin, Format: f, Logger: slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// started returns each start's pid and arguments.
func (r *rig) started() (pids []int, args []string) {
	b, _ := os.ReadFile(r.starts)
	for line := range strings.Lines(string(b)) {
		p, a, _ := strings.Cut(strings.TrimSpace(line), " ")
		n, _ := strconv.Atoi(p)
		pids = append(pids, n)
		args = append(args, a)
	}
	return pids, args
}

// noneLeft fails the test if a started fake still runs. Every process
// the source started was reaped by it, so the pid no longer exists.
func (r *rig) noneLeft() {
	pids, _ := r.started()
	for _, p := range pids {
		if err := syscall.Kill(p, 0); !errors.Is(err, syscall.ESRCH) {
			r.t.Errorf("fake rpicam-vid %d still exists after Close (kill 0: %v)", p, err)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bound is the failure guard of these tests: none of them should come
// near it, and none measures time.
func bound(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestLibcameraStreamsFrames(t *testing.T) {
	r := newRig(t, "")
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify") // systemd's, for the daemon alone
	f := media.VideoFormat{Width: 320, Height: 240, FPS: 30}
	c, err := camera.OpenLibcamera(bound(t), r.config(f))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Format(); got != f {
		t.Errorf("format %+v, want %+v", got, f)
	}
	if d := c.Describe(); d != "320x240 MJPEG 30 fps (rpicam-vid, camera 0)" {
		t.Errorf("describe %q", d)
	}
	last := -1
	for i := range 10 {
		fr, err := c.Read(bound(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := media.CheckJPEG(fr.JPEG); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		n, ok := camera.FrameNumber(fr.JPEG)
		if !ok || int(n) <= last {
			t.Fatalf("frame %d: number %d (ok %v) after %d", i, n, ok, last)
		}
		last = int(n)
		if fr.Seq != uint32(i) {
			t.Errorf("frame %d has Seq %d", i, fr.Seq)
		}
	}
	pid := c.PID()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the program still exists after Close: %v", err)
	}
	if _, err := c.Read(t.Context()); !errors.Is(err, camera.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	_, args := r.started()
	want := "--camera 0 --timeout 0 --nopreview --codec mjpeg --width 320 --height 240 --framerate 30 --quality 75 --flush --output -"
	if len(args) != 1 || args[0] != want {
		t.Errorf("command lines %q, want one %q", args, want)
	}
	if st := c.Stats(); st.Captured != 10 || st.Broken != 0 {
		t.Errorf("stats %+v", st)
	}
	if !strings.Contains(r.log.String(), "camera program says") || !strings.Contains(r.log.String(), "libcamera v0.5 (fake)") {
		t.Errorf("stderr not logged at debug level:\n%s", r.log)
	}
}

// The program exits: Read says the camera is gone, with the exit status
// and the program's last line.
func TestLibcameraExitIsGone(t *testing.T) {
	r := newRig(t, "after=3 then=exit")
	c, err := camera.OpenLibcamera(bound(t), r.config(vga))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got int
	for {
		_, err := c.Read(bound(t))
		if err == nil {
			got++
			continue
		}
		if !errors.Is(err, camera.ErrGone) {
			t.Fatalf("Read: %v, want ErrGone", err)
		}
		for _, want := range []string{"exit status 1", "fake: camera went away", "libcamera camera 0 (rpicam-vid)"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		break
	}
	if got == 0 || got > 3 {
		t.Errorf("%d frames before the exit, want 1..3", got)
	}
	if !strings.Contains(r.log.String(), "last words") {
		t.Errorf("the program's last lines are not logged on failure:\n%s", r.log)
	}
}

// A camera that is not there fails the open with the program's words,
// and leaves nothing running.
func TestLibcameraNoCameraFailsOpen(t *testing.T) {
	r := newRig(t, "fail")
	_, err := camera.OpenLibcamera(bound(t), r.config(vga))
	if err == nil || !strings.Contains(err.Error(), "no cameras available") || !errors.Is(err, camera.ErrGone) {
		t.Fatalf("open: %v", err)
	}
}

// A program that stops writing is caught by the stall timeout and
// ended; one that ignores SIGTERM is killed.
func TestLibcameraHangIsStall(t *testing.T) {
	for _, script := range []string{"after=2 then=hang", "after=2 then=hang ignore-term"} {
		t.Run(script, func(t *testing.T) {
			r := newRig(t, script)
			cfg := r.config(vga)
			cfg.StallTimeout = time.Second
			cfg.StopTimeout = 300 * time.Millisecond
			c, err := camera.OpenLibcamera(bound(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for {
				_, err := c.Read(bound(t))
				if err == nil {
					continue
				}
				if !errors.Is(err, camera.ErrGone) || !strings.Contains(err.Error(), "no frame for 1s") {
					t.Fatalf("Read: %v, want a stall", err)
				}
				break
			}
			want := "signal: terminated"
			if strings.Contains(script, "ignore-term") {
				want = "signal: killed"
				if !strings.Contains(r.log.String(), "ignored SIGTERM") {
					t.Errorf("the kill is not logged:\n%s", r.log)
				}
			}
			if !strings.Contains(r.log.String(), want) {
				t.Errorf("log does not say %q:\n%s", want, r.log)
			}
		})
	}
}

// Garbage on the pipe is dropped and counted; the frames after it come
// through.
func TestLibcameraGarbageIsDropped(t *testing.T) {
	r := newRig(t, "after=3 then=garbage")
	c, err := camera.OpenLibcamera(bound(t), r.config(media.VideoFormat{Width: 160, Height: 120, FPS: 30}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for {
		fr, err := c.Read(bound(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := media.CheckJPEG(fr.JPEG); err != nil {
			t.Fatalf("a bad frame came through: %v", err)
		}
		if n, _ := camera.FrameNumber(fr.JPEG); n >= 6 {
			break
		}
	}
	if st := c.Stats(); st.Broken < 2 {
		t.Errorf("broken %d, want the garbage's broken frames counted (stats %+v)", st.Broken, st)
	}
}

func TestLibcameraCameraByName(t *testing.T) {
	r := newRig(t, "")
	cfg := r.config(vga)
	cfg.Camera = "ov5647"
	c, err := camera.OpenLibcamera(bound(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, args := r.started()
	if len(args) != 2 || args[0] != "--list-cameras" || !strings.HasPrefix(args[1], "--camera 1 ") {
		t.Errorf("command lines %q: want --list-cameras, then --camera 1", args)
	}
	cfg.Camera = "imx219"
	if _, err := camera.OpenLibcamera(bound(t), cfg); err == nil || !errors.Is(err, os.ErrNotExist) ||
		!strings.Contains(err.Error(), "0 imx708, 1 ov5647") {
		t.Errorf("unknown camera: %v", err)
	}
	list, err := camera.ListLibcamera(bound(t), r.bin)
	if err != nil || len(list) != 2 || list[1] != (camera.LibcameraInfo{Index: 1, Model: "ov5647", Sensor: "2592x1944 10-bit GBRG", ID: "/base/soc/i2c0mux/i2c@0/ov5647@36"}) {
		t.Errorf("list %+v, %v", list, err)
	}
}

func TestLibcameraMissingProgram(t *testing.T) {
	cfg := camera.LibcameraConfig{Program: filepath.Join(t.TempDir(), "rpicam-vid")}
	if _, err := camera.OpenLibcamera(t.Context(), cfg); !errors.Is(err, exec.ErrNotFound) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open without the program: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	_, err := camera.FindLibcameraProgram("")
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "rpicam-vid nor libcamera-vid") {
		t.Errorf("find with an empty PATH: %v", err)
	}
	// The older name is found when it is the only one.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "libcamera-vid"), []byte("#!/bin/sh\n"), 0o755)
	t.Setenv("PATH", dir)
	if p, err := camera.FindLibcameraProgram(""); err != nil || filepath.Base(p) != "libcamera-vid" {
		t.Errorf("find libcamera-vid: %q, %v", p, err)
	}
}

func TestParseLibcameraAndValidate(t *testing.T) {
	for in, want := range map[string]string{"libcamera": "", "libcamera:1": "1", "libcamera:imx708": "imx708"} {
		if got, ok := camera.ParseLibcamera(in); !ok || got != want {
			t.Errorf("ParseLibcamera(%q) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []string{"/dev/video0", "sim", "libcameras", "file:x"} {
		if _, ok := camera.ParseLibcamera(in); ok {
			t.Errorf("ParseLibcamera(%q) is ok", in)
		}
	}
	for _, bad := range []camera.LibcameraConfig{{Camera: "a b"}, {Camera: "x;rm"}, {Quality: 101}, {Format: media.VideoFormat{Width: 1}}, {StopTimeout: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validates", bad)
		}
	}
	if err := (camera.LibcameraConfig{Camera: "/base/soc/i2c0mux/i2c@1/imx708@1a"}).Validate(); err != nil {
		t.Error(err)
	}
}

// Closing while the program starts ends it too.
func TestLibcameraCancelledOpen(t *testing.T) {
	r := newRig(t, "after=0 then=hang")
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for {
			if pids, _ := r.started(); len(pids) > 0 {
				cancel()
				return
			}
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}()
	if _, err := camera.OpenLibcamera(ctx, r.config(vga)); !errors.Is(err, context.Canceled) {
		t.Fatalf("open: %v, want cancelled", err)
	}
}

// Behind Resilient, as the daemon runs it: an exit, a hang and garbage
// each end one run of the program, which is started again after a
// backoff, and frames flow again each time; no program is left running.
func TestLibcameraResilientRecovers(t *testing.T) {
	r := newRig(t, "after=4 then=exit")
	var mu sync.Mutex
	var states []string
	cfg := r.config(media.VideoFormat{Width: 160, Height: 120, FPS: 30})
	cfg.StallTimeout = time.Second
	res := camera.NewResilient(func(ctx context.Context) (camera.Source, error) {
		return camera.OpenLibcamera(ctx, cfg)
	}, camera.ResilientConfig{MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		OnChange: func(s string) { mu.Lock(); states = append(states, s); mu.Unlock() }})
	read := func(n int) {
		t.Helper()
		for range n {
			if _, err := res.Read(bound(t)); err != nil {
				t.Fatal(err)
			}
		}
	}
	read(10) // at least three runs of four frames
	r.set("after=3 then=hang")
	read(8)
	r.set("after=3 then=garbage")
	read(10)
	if err := res.Close(); err != nil {
		t.Fatal(err)
	}
	st := res.Stats()
	pids, _ := r.started()
	if st.Failures < 3 || st.Opens < 4 || len(pids) != int(st.Opens) {
		t.Errorf("stats %+v with %d programs started: want restarts after failures", st, len(pids))
	}
	mu.Lock()
	defer mu.Unlock()
	var down, stall bool
	for _, s := range states {
		down = down || strings.HasPrefix(s, "down: ") && strings.Contains(s, "fake: camera went away") && strings.Contains(s, "retrying in")
		stall = stall || strings.HasPrefix(s, "down: ") && strings.Contains(s, "no frame for 1s")
	}
	if !down || !stall {
		t.Errorf("states %q: want an exit and a stall shown as down, retrying", states)
	}
}
