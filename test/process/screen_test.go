package process

import (
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/internal/testbox"
)

// A box with a screen asks its peer for at most screen.prefer_video; the
// peer's camera captures smaller for the call, its aspect kept, and at its
// configured size again afterwards. The screen itself is missing here: the
// box says so and works on.
func TestPeerCapturesThePreferredSizeForTheCall(t *testing.T) {
	hall := start(t, "hall", testbox.Options{AutoAnswer: true,
		Extra: "[video]\nwidth = 1280\nheight = 720\nfps = 15\nprecomputed = 4\n"})
	door := start(t, "door", testbox.Options{AutoAnswer: true, RecordVideo: true,
		Extra: "[video]\nprecomputed = 4\n[screen]\ndevice = \"/dev/fb-callbox-test-missing\"\nprefer_video = \"640x480\"\n"})
	pair(t, hall, door)
	// selfSize is the size of hall's newest camera frame, 0x0 while it
	// has none yet.
	selfSize := func() (int, int) {
		t.Helper()
		var jpg []byte
		if err := hall.Client.Do(t.Context(), "GET", "/v1/frame/self", nil, &jpg); err != nil {
			return 0, 0
		}
		w, h, _ := camera.Size(jpg)
		return w, h
	}
	waitSelf := func(when string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for w, h := selfSize(); w != 1280 || h != 720; w, h = selfSize() {
			if time.Now().After(deadline) {
				t.Fatalf("hall's camera %s: %dx%d, want 1280x720", when, w, h)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitSelf("before the call")
	if err := hall.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, door, "in call", 10*time.Second)
	st := waitState(t, hall, "in call", 10*time.Second)
	if p := st.Phone.PeerPrefers; p == nil || p.Width != 640 || p.Height != 480 {
		t.Errorf("hall: peer prefers %+v, want 640x480", p)
	}
	time.Sleep(2 * time.Second)
	ds, _ := door.Status(t.Context())
	if ds.Screen == nil || !strings.Contains(ds.Screen.State, "down") || !strings.Contains(ds.Screen.Device, "fb-callbox-test-missing") {
		t.Errorf("door's screen: %+v, want the missing device down", ds.Screen)
	}
	if err := hall.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, hall, "idle", 5*time.Second)
	waitState(t, door, "idle", 5*time.Second)
	frames, err := camera.ReadMJPEG(door.VideoRecording())
	if err != nil {
		t.Fatal(err)
	}
	// Frames captured before the call's size took effect may come first;
	// once the small size arrives, every later frame is small.
	small := 0
	for i, f := range frames {
		switch w, h, _ := camera.Size(f); {
		case w == 640 && h == 360:
			small++
		case w == 1280 && h == 720:
			if small > 0 {
				t.Errorf("door received a 1280x720 frame (#%d) after %d at 640x360", i, small)
			}
		default:
			t.Errorf("door received a %dx%d frame", w, h)
		}
	}
	t.Logf("door received %d frames, %d of them 640x360", len(frames), small)
	if small < 10 {
		t.Errorf("door received %d frames, %d of them 640x360; want at least 10 at the size it asked for", len(frames), small)
	}
	waitSelf("after the call")
}
