package process

import (
	"bytes"
	"image/jpeg"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/camera/cameratest"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/media"
)

// fakeModule is a camera module for a daemon: the fake rpicam-vid first
// on its PATH, told what to do through a script file, recording the
// processes it started.
type fakeModule struct {
	t              *testing.T
	script, starts string
}

func newFakeModule(t *testing.T) (*fakeModule, []string) {
	dir := cameratest.BuildFakeRpicam(t)
	m := &fakeModule{t: t, script: filepath.Join(dir, "script"), starts: filepath.Join(dir, "starts")}
	m.set("")
	env := []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"FAKE_RPICAM=" + m.script, "FAKE_RPICAM_LOG=" + m.starts}
	return m, env
}

func (m *fakeModule) set(script string) {
	if err := os.WriteFile(m.script, []byte(script), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

// pids are the fake processes started so far, in order.
func (m *fakeModule) pids() []int {
	b, _ := os.ReadFile(m.starts)
	var out []int
	for line := range strings.Lines(string(b)) {
		p, _, _ := strings.Cut(line, " ")
		if n, err := strconv.Atoi(p); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// running are the started fakes that still run (a zombie has ended: a
// fake orphaned by a killed daemon waits for PID 1 to reap it).
func (m *fakeModule) running() []int {
	var out []int
	for _, p := range m.pids() {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) S ...": the state follows the last ')'.
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
			continue
		}
		out = append(out, p)
	}
	return out
}

// waitNoneRunning waits (bounded) until no fake runs.
func (m *fakeModule) waitNoneRunning(when string) {
	m.t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := m.running()
		if len(r) == 0 {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("%s: rpicam-vid still running: %v", when, r)
		}
	}
}

// checkRuns asserts that every frame b recorded decodes at the default
// size and that the frame numbers the fake wrote go up within each run
// of the program: at most runs-1 times they start over.
func checkRuns(t *testing.T, b *testbox.Box, runs int) {
	t.Helper()
	frames, err := camera.ReadMJPEG(b.VideoRecording())
	if err != nil || len(frames) < 20 {
		t.Fatalf("%s recorded %d frames (%v), want at least 20", b.Name, len(frames), err)
	}
	var last uint32
	var restarts int
	for i, f := range frames {
		img, err := jpeg.Decode(bytes.NewReader(f))
		if err != nil {
			t.Fatalf("frame %d does not decode: %v", i, err)
		}
		if sz := img.Bounds().Size(); sz.X != media.DefaultVideo.Width || sz.Y != media.DefaultVideo.Height {
			t.Fatalf("frame %d is %v", i, sz)
		}
		n, ok := camera.FrameNumber(f)
		if !ok {
			t.Fatalf("frame %d carries no frame number", i)
		}
		if i > 0 && n <= last {
			restarts++
		}
		last = n
	}
	if restarts > runs-1 {
		t.Errorf("frame numbers went back %d times with %d runs of the program", restarts, runs)
	}
}

// A camera module behind rpicam-vid behaves like a V4L2 camera: checked
// once at start and stopped, run only in a call, the call going on
// audio-only while the camera is gone and video coming back when it
// returns, without a daemon restart; the program never outlives the
// daemon, stopped or killed.
func TestLibcameraCameraInACall(t *testing.T) {
	mod, env := newFakeModule(t)
	hall := start(t, "hall", testbox.Options{AutoAnswer: true, Env: env,
		Extra: "[video]\ndevice = \"libcamera\"\nstall_ms = 1000\n"})
	door := start(t, "door", recording)
	pair(t, hall, door)

	// Checked at start, then standing by with the program stopped.
	st := waitMedia(t, hall, "camera checked and standing by", 20*time.Second, func(st control.Status) bool {
		return closed(st) && standingBy(st)
	})
	if !strings.HasPrefix(st.Camera, "libcamera: ok") {
		t.Errorf("camera state %q", st.Camera)
	}
	if n := len(mod.pids()); n != 1 {
		t.Errorf("%d programs started for the check at start, want 1", n)
	}
	mod.waitNoneRunning("standing by")

	// A call: the program runs and its frames reach the peer.
	hall.Press(t.Context())
	waitState(t, door, "in call", 10*time.Second)
	peerFrames := func(st control.Status) (video, audio uint64) {
		if c := st.Phone.Call; c != nil {
			return c.In.VideoFrames, c.In.AudioFrames
		}
		return 0, 0
	}
	waitMedia(t, door, "hall's video", 15*time.Second, func(st control.Status) bool { v, _ := peerFrames(st); return v >= 10 })

	// Unplugged: the program dies and cannot start again. The call goes
	// on with audio only; the camera is down and retried.
	mod.set("fail")
	for _, p := range mod.running() {
		syscall.Kill(p, syscall.SIGKILL)
	}
	waitMedia(t, hall, "camera down", 15*time.Second, func(st control.Status) bool {
		return strings.Contains(st.Camera, "down") && strings.Contains(st.Camera, "no cameras available")
	})
	before, _ := door.Status(t.Context())
	waitMedia(t, door, "audio-only", 15*time.Second, func(st control.Status) bool {
		_, a := peerFrames(st)
		_, a0 := peerFrames(before)
		return a >= a0+50
	})
	after, _ := door.Status(t.Context())
	vBefore, _ := peerFrames(before)
	if v, _ := peerFrames(after); v != vBefore {
		t.Errorf("door got video (%d → %d frames) while hall's camera was down", vBefore, v)
	}
	if st, _ := hall.Status(t.Context()); st.Phone.State.String() != "in call" {
		t.Fatalf("hall left the call while its camera was down: %q", st.Phone.State)
	}

	// Back: video resumes in the same call, the same daemon.
	pid := hall.PID()
	mod.set("")
	v0, _ := peerFrames(after)
	waitMedia(t, door, "video again", 30*time.Second, func(st control.Status) bool { v, _ := peerFrames(st); return v >= v0+10 })
	if hall.PID() != pid {
		t.Error("the daemon was restarted")
	}

	// Hung up: the camera stands by again and the program is stopped.
	hall.Press(t.Context())
	waitState(t, hall, "idle", 10*time.Second)
	waitMedia(t, hall, "camera standing by after the call", 20*time.Second, func(st control.Status) bool { return closed(st) && standingBy(st) })
	mod.waitNoneRunning("after the call")
	checkRuns(t, door, len(mod.pids()))

	// Stopped during a call: the program goes with the daemon.
	hall.Press(t.Context())
	waitMedia(t, door, "hall's video in the second call", 15*time.Second, func(st control.Status) bool { v, _ := peerFrames(st); return v >= 5 })
	if len(mod.running()) != 1 {
		t.Fatalf("running programs %v in the call, want one", mod.running())
	}
	if err := hall.Stop(); err != nil {
		t.Fatal(err)
	}
	mod.waitNoneRunning("after the daemon stopped")

	// Killed during a call: the kernel ends the program with it.
	if err := hall.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	hall.Press(t.Context())
	waitMedia(t, door, "hall's video in the third call", 20*time.Second, func(st control.Status) bool { v, _ := peerFrames(st); return v >= 5 })
	hall.Kill()
	mod.waitNoneRunning("after the daemon was killed")
	for _, line := range strings.Split(hall.Log(), "\n") {
		if strings.Contains(line, "level=ERROR") && strings.Contains(line, "last words") && !strings.Contains(line, "no cameras available") &&
			!strings.Contains(line, "libcamera v0.5") {
			t.Errorf("unexpected last words: %s", line)
		}
	}
}
