package process

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
)

// waitMedia polls b's status until ok says yes (at most within) and
// returns it.
func waitMedia(t *testing.T, b *testbox.Box, what string, within time.Duration, ok func(control.Status) bool) control.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := b.Status(t.Context())
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not within %v: media %+v, devices %+v", b.Name, what, within, st.Media, st.Devices)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func closed(st control.Status) bool { return st.Media.Video == "closed" && st.Media.Audio == "closed" }

// standingBy says every device is up and closed.
func standingBy(st control.Status) bool {
	for _, d := range st.Devices {
		if d.Health != "up" || !strings.HasPrefix(d.Detail, "standby") {
			return false
		}
	}
	return len(st.Devices) == 3
}

// stillFor checks that b's camera and microphone deliver nothing for d.
func stillFor(t *testing.T, b *testbox.Box, d time.Duration, when string) {
	t.Helper()
	before, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	after, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v, a := after.Media.VideoFrames-before.Media.VideoFrames, after.Media.AudioFrames-before.Media.AudioFrames; v != 0 || a != 0 {
		t.Errorf("%s: %s's camera delivered %d frames and its microphone %d in %v; want none (closed)", when, b.Name, v, a, d)
	}
	if !closed(after) || !standingBy(after) {
		t.Errorf("%s: %s media %+v, devices %+v; want all closed, standing by", when, b.Name, after.Media, after.Devices)
	}
}

// Nothing runs that nobody needs: an idle box has its camera, microphone
// and speaker closed (standing by, still "ok"); a call opens them and the
// peer gets video and audio; after the hang-up they close again; a web
// viewer of the self view opens the camera alone, for as long as it
// watches.
func TestIdleBoxClosesItsDevices(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := l.Addr().String()
	l.Close()
	hall := start(t, "hall", testbox.Options{AutoAnswer: true, Extra: fmt.Sprintf("[web]\nlisten = %q\n", web)})
	door := start(t, "door", testbox.Options{AutoAnswer: true, RecordAudio: true, RecordVideo: true})
	pair(t, hall, door)

	st := waitMedia(t, hall, "devices closed at start", 10*time.Second, func(st control.Status) bool { return closed(st) && standingBy(st) })
	for _, s := range []string{st.Camera, st.Microphone, st.Speaker} {
		if !strings.HasSuffix(s, ": ok") {
			t.Errorf("idle device state %q, want ok (standing by)", s)
		}
	}
	if st.LED != "off" {
		t.Errorf("idle LED %q with every device standing by, want off", st.LED)
	}
	stillFor(t, hall, 2*time.Second, "idle")

	// A call opens them on both boxes; each gets the other's media.
	if err := hall.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, hall, "in call", 10*time.Second)
	waitState(t, door, "in call", 10*time.Second)
	for _, b := range []*testbox.Box{hall, door} {
		waitMedia(t, b, "peer's video and audio", 10*time.Second, func(st control.Status) bool {
			c := st.Phone.Call
			return c != nil && c.In.VideoFrames >= 10 && c.In.AudioFrames >= 100
		})
	}
	st, _ = hall.Status(t.Context())
	if !strings.HasPrefix(st.Media.Video, "open") || !strings.Contains(st.Media.Audio, "call") {
		t.Errorf("in a call: media %+v, want both open for the call", st.Media)
	}
	for _, d := range st.Devices {
		if d.Health != "up" || d.Detail != "" {
			t.Errorf("in a call: %s %s %q, want up and open", d.Name, d.Health, d.Detail)
		}
	}

	// Hung up: closed again once the linger is over, on both boxes.
	if err := hall.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, hall, "idle", 5*time.Second)
	for _, b := range []*testbox.Box{hall, door} {
		waitMedia(t, b, "devices closed after the call", 15*time.Second, func(st control.Status) bool { return closed(st) && standingBy(st) })
	}
	stillFor(t, hall, time.Second, "after the call")

	// A web viewer of the self view opens the camera, not the
	// microphone; its frames reach the viewer.
	resp, err := http.Get("http://" + web + "/self.mjpg")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var got int
	for got < 3*len("Content-Type: image/jpeg") && err == nil {
		var n int
		n, err = resp.Body.Read(buf)
		got += strings.Count(string(buf[:n]), "Content-Type: image/jpeg") * len("Content-Type: image/jpeg")
	}
	if err != nil {
		t.Fatalf("self view stream: %v", err)
	}
	st = waitMedia(t, hall, "camera open for the viewer", 5*time.Second, func(st control.Status) bool {
		return strings.Contains(st.Media.Video, "web viewer")
	})
	if st.Media.Audio != "closed" || st.Devices[0].Detail != "" {
		t.Errorf("while watched: media %+v, devices %+v; want the camera open, the microphone closed", st.Media, st.Devices)
	}
	resp.Body.Close()
	waitMedia(t, hall, "camera closed after the viewer left", 15*time.Second, func(st control.Status) bool { return closed(st) && standingBy(st) })
	stillFor(t, hall, time.Second, "after the viewer")

	// A snapshot of our own camera opens it for its frame.
	var jpg []byte
	if err := hall.Client.Do(t.Context(), "GET", "/v1/frame/self", nil, &jpg); err != nil || len(jpg) == 0 {
		t.Fatalf("self frame with the camera closed: %d bytes, %v", len(jpg), err)
	}
}
