package process

import (
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/internal/testbox"
)

// A box whose camera is missing still starts, says what is wrong, shows
// the error pattern while idle, and calls audio-only.
func TestMissingCameraMeansAudioOnly(t *testing.T) {
	a := start(t, "hall", testbox.Options{AutoAnswer: true,
		Extra: "[video]\ndevice = \"/dev/video-callbox-test-missing\"\n"})
	b := start(t, "door", testbox.Options{AutoAnswer: true, RecordAudio: true, RecordVideo: true})
	pair(t, a, b)
	var st = waitState(t, a, "idle", time.Second)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(st.Camera, "down"); {
		if time.Now().After(deadline) {
			t.Fatalf("camera state %q, want down", st.Camera)
		}
		time.Sleep(50 * time.Millisecond)
		st, _ = a.Status(t.Context())
	}
	if !strings.Contains(st.Camera, "/dev/video-callbox-test-missing") || !strings.Contains(st.Camera, "retrying") {
		t.Errorf("camera state %q does not name the device and the retry", st.Camera)
	}
	if st.LED != gpio.ErrorBlink.String() {
		t.Errorf("idle LED %q with the camera down, want %q", st.LED, gpio.ErrorBlink)
	}
	a.Press(t.Context())
	waitState(t, b, "in call", 10*time.Second)
	time.Sleep(2 * time.Second)
	sa, _ := a.Status(t.Context())
	sb, _ := b.Status(t.Context())
	if sa.LED != "on" {
		t.Errorf("LED in call %q, want on", sa.LED)
	}
	// 2 s of hall's audio: 100 Opus packets of 20 ms (200 PCM frames);
	// half of that is plenty to say it flows.
	if c := sb.Phone.Call; c == nil || c.In.AudioFrames < 50 || c.In.VideoFrames != 0 || c.Out.VideoFrames < 5 {
		t.Fatalf("door's call figures %+v: want hall's audio, no video from hall, and door's video out", sb.Phone.Call)
	}
	if c := sa.Phone.Call; c.In.VideoFrames < 5 {
		t.Errorf("hall received %d frames from door", c.In.VideoFrames)
	}
	// Each log record names its component once: the device packages add
	// it, the daemon does not add it again.
	var camLines int
	for line := range strings.Lines(a.Log()) {
		if n := strings.Count(line, "component="); n > 1 {
			t.Errorf("log record names its component %d times: %s", n, line)
		}
		if strings.Contains(line, "component=camera") {
			camLines++
		}
	}
	if camLines == 0 {
		t.Errorf("no camera log records in hall's log:\n%s", a.Log())
	}
}

// A box whose GPIO lines do not exist still runs, answers calls, can be
// pressed remotely, and says what is wrong.
func TestMissingGPIOKeepsTheBoxUp(t *testing.T) {
	a := start(t, "hall", testbox.Options{AutoAnswer: true,
		Extra: "[gpio]\nbutton = \"GPIO17\"\nled = \"GPIO27\"\n"})
	b := start(t, "door", testbox.Options{AutoAnswer: true})
	pair(t, a, b)
	st, err := a.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.GPIO, "button GPIO17 failed") || !strings.Contains(st.GPIO, "LED GPIO27 failed") {
		t.Errorf("gpio state %q does not say what failed", st.GPIO)
	}
	a.Press(t.Context())
	waitState(t, b, "in call", 10*time.Second)
	b.Press(t.Context())
	waitState(t, a, "idle", 5*time.Second)
}
