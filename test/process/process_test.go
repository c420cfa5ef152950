package process

import (
	"bytes"
	"errors"
	"fmt"
	"image/jpeg"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/media"
)

var daemonBin string

func TestMain(m *testing.M) {
	bin, cleanup, err := testbox.BuildDaemon(raceEnabled)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daemonBin = bin
	code := m.Run()
	cleanup()
	for _, c := range extraCleanup {
		c()
	}
	os.Exit(code)
}

// extraCleanup removes other daemon builds some tests make.
var extraCleanup []func()

func start(t *testing.T, name string, o testbox.Options) *testbox.Box {
	t.Helper()
	return testbox.StartT(t, daemonBin, name, o)
}

func pair(t *testing.T, a, b *testbox.Box) {
	t.Helper()
	if err := testbox.Pair(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
}

func waitState(t *testing.T, b *testbox.Box, state string, within time.Duration) control.Status {
	t.Helper()
	st, err := b.WaitState(t.Context(), state, within)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitLED waits up to 1 s for b's LED to show want and returns what it
// shows. The LED follows the call state from the phone's change
// callback, just after the state itself changed: a status read in
// between sees the new state and the old pattern.
func waitLED(t *testing.T, b *testbox.Box, want string) string {
	t.Helper()
	var led string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := b.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if led = st.LED; led == want || time.Now().After(deadline) {
			return led
		}
	}
}

func callCmd(t *testing.T, b *testbox.Box, path string, body any) error {
	t.Helper()
	return b.Client.Do(t.Context(), "POST", path, body, nil)
}

// recording boxes cycle 30 pre-encoded test images: encoding live under
// -race on a loaded 2-core machine can fall to a few frames a second, and
// these tests check what arrives, not the encoder.
var recording = testbox.Options{AutoAnswer: true, RecordVideo: true, RecordAudio: true,
	Extra: "[video]\nprecomputed = 30\n"}

// checkVideo asserts that every frame b recorded is a decodable JPEG and
// that the numbers embedded by the sender's camera increase.
func checkVideo(t *testing.T, b *testbox.Box, min int) {
	t.Helper()
	frames, err := camera.ReadMJPEG(b.VideoRecording())
	if err != nil {
		t.Fatalf("%s: %v", b.Name, err)
	}
	if len(frames) < min {
		t.Fatalf("%s received %d frames, want at least %d", b.Name, len(frames), min)
	}
	var last uint32
	for i, f := range frames {
		img, err := jpeg.Decode(bytes.NewReader(f))
		if err != nil {
			t.Fatalf("%s: frame %d does not decode: %v", b.Name, i, err)
		}
		if sz := img.Bounds().Size(); sz.X != media.DefaultVideo.Width || sz.Y != media.DefaultVideo.Height {
			t.Fatalf("%s: frame %d is %v", b.Name, i, sz)
		}
		n, ok := camera.FrameNumber(f)
		if !ok {
			t.Fatalf("%s: frame %d carries no frame number", b.Name, i)
		}
		if i > 0 && n <= last {
			t.Fatalf("%s: frame %d has number %d after %d", b.Name, i, n, last)
		}
		last = n
	}
}

// checkAudio asserts that what b's speaker played in its last call is the
// peer's test signal, intact and in order (see checkPlayed).
func checkAudio(t *testing.T, b *testbox.Box, min int) string {
	t.Helper()
	st, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	samples, err := audio.ReadRecording(b.AudioRecording())
	if err != nil {
		t.Fatalf("%s: %v", b.Name, err)
	}
	return checkPlayed(t, b.Name, st, samples, min)
}

// checkPlayed asserts that samples, what box name's speaker played in the
// call its status st last had, are the peer's test signal, intact and in
// order, with silence only where nothing was due. PCM is checked sample for
// sample (audio.Check). Through Opus, whose coding changes every sample,
// each frame must show its frame number (carried in tones that survive the
// codec) and match the test frame of that number (audio.CheckCoded); short
// runs of other audio are allowed only where the box itself says something
// interrupted the stream: the call's start and end, and each underrun
// (filled with the codec's concealment), latency-cap drop, late frame or
// packet the sender dropped. An underrun's fill runs to the end of a device
// period and so shifts what follows by part of a frame: CheckCoded aligns
// the audio after each such break anew, and at most maxBreaks are allowed,
// each splicing in a run of concealment more.
func checkPlayed(t *testing.T, name string, st control.Status, samples []int16, min int) string {
	t.Helper()
	c := st.Phone.LastCall
	if c == nil {
		c = st.Phone.Call
	}
	if c == nil {
		t.Fatalf("%s: no call figures", name)
	}
	switch c.In.AudioCodec {
	case "pcm":
		rep := audio.Check(media.DefaultAudio, samples)
		if rep.Bad != 0 || rep.OutOfOrder != 0 || rep.Good < min {
			t.Fatalf("%s played (PCM): %v; want ≥ %d good frames, none bad or out of order", name, rep, min)
		}
		return "PCM: " + rep.String()
	case "opus":
		rep := audio.CheckCoded(media.DefaultAudio, samples)
		// Breaks the box reports, and one a second for the checker: at 32
		// kbit/s, complexity 5, it cannot confirm about 4 windows in 1000
		// of a clean chain (each a lone window between good ones).
		pl := st.Playout
		breaks := 2 + int(pl.Underruns+pl.Overflow+pl.Late+c.In.AudioDrops) + rep.Breaks + rep.Windows/100
		if rep.Bad != 0 || rep.OutOfOrder != 0 || rep.Good < min || rep.Breaks > maxBreaks || rep.ConcealRuns > breaks {
			t.Fatalf("%s played (Opus): %v; want ≥ %d good frames, none bad or out of order, at most %d breaks, "+
				"and at most %d runs of concealment (start, end, %d underruns, %d dropped at the cap, %d late, %d lost on the way, %d breaks, one a second)",
				name, rep, min, maxBreaks, breaks, pl.Underruns, pl.Overflow, pl.Late, c.In.AudioDrops, rep.Breaks)
		}
		return "Opus: " + rep.String()
	}
	t.Fatalf("%s: the call's audio codec is %q", name, c.In.AudioCodec)
	return ""
}

// maxBreaks is how many times a call's played audio may shift (see
// checkPlayed): a few underruns on a loaded machine.
const maxBreaks = 5

func TestCallCarriesVideoAndAudioBothWays(t *testing.T) {
	a, b := start(t, "hall", recording), start(t, "door", recording)
	pair(t, a, b)
	if err := a.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "in call", 10*time.Second)
	st := waitState(t, b, "in call", 10*time.Second)
	if led := waitLED(t, b, "on"); led != "on" || st.Phone.Peer == nil || st.Phone.Peer.Name != "hall" {
		t.Errorf("door in call: LED %q, peer %+v", led, st.Phone.Peer)
	}
	time.Sleep(3 * time.Second)
	// Hang up from the callee's side.
	if err := callCmd(t, b, "/v1/hangup", nil); err != nil {
		t.Fatal(err)
	}
	fa := waitState(t, a, "idle", 5*time.Second)
	waitState(t, b, "idle", 5*time.Second)
	if !strings.Contains(fa.Phone.LastEnd, "door hung up") {
		t.Errorf("hall's last end %q, want door hung up", fa.Phone.LastEnd)
	}
	if la, lb := waitLED(t, a, "off"), waitLED(t, b, "off"); la != "off" || lb != "off" {
		t.Errorf("LEDs after hangup: %q %q, want off", la, lb)
	}
	time.Sleep(300 * time.Millisecond) // let the playout drain into the recording
	for _, x := range []*testbox.Box{a, b} {
		checkVideo(t, x, 10)
		rep := checkAudio(t, x, 100)
		t.Logf("%s played %v", x.Name, rep)
	}
	// And the caller can hang up too.
	if err := callCmd(t, b, "/v1/call", control.CallRequest{Peer: "hall"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "in call", 10*time.Second)
	if err := a.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "idle", 5*time.Second)
	waitState(t, b, "idle", 5*time.Second)
}

func TestThirdCallerGetsBusy(t *testing.T) {
	a, b, c := start(t, "a", recording), start(t, "b", recording), start(t, "c", recording)
	pair(t, a, b)
	pair(t, c, b)
	if err := callCmd(t, a, "/v1/call", control.CallRequest{Peer: "b"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, "in call", 10*time.Second)
	if err := callCmd(t, c, "/v1/call", control.CallRequest{Peer: "b"}); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, c, "idle", 10*time.Second)
	for st.Phone.LastEnd == "" {
		st = waitState(t, c, "idle", time.Second)
	}
	if !strings.Contains(st.Phone.LastEnd, "busy") {
		t.Errorf("third caller's last end %q, want busy", st.Phone.LastEnd)
	}
	if s, _ := a.Status(t.Context()); s.Phone.State.String() != "in call" {
		t.Errorf("the first call was disturbed: %v", s.Phone.State)
	}
}

func TestKilledPeerIsNoticedAndCanBeCalledAgain(t *testing.T) {
	a, b := start(t, "a", testbox.Options{AutoAnswer: true}), start(t, "b", testbox.Options{AutoAnswer: true})
	pair(t, a, b)
	a.Press(t.Context())
	waitState(t, b, "in call", 10*time.Second)
	b.Kill()
	st := waitState(t, a, "idle", 3*time.Second)
	t.Logf("after SIGKILL: %q", st.Phone.LastEnd)
	if err := b.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Same key, same peers, new port: tell a where b is now.
	if err := a.Client.Do(t.Context(), "DELETE", "/v1/peers/b", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Do(t.Context(), "POST", "/v1/peers", control.Peer{Name: "b", Fingerprint: b.FP, Address: b.Addr}, nil); err != nil {
		t.Fatal(err)
	}
	a.Press(t.Context())
	waitState(t, a, "in call", 10*time.Second)
	waitState(t, b, "in call", 10*time.Second)
}

func TestUnpairedCallerIsRefused(t *testing.T) {
	a, b := start(t, "a", testbox.Options{AutoAnswer: true}), start(t, "b", testbox.Options{AutoAnswer: true})
	// a knows b, b does not know a.
	if err := a.Client.Do(t.Context(), "POST", "/v1/peers", control.Peer{Name: "b", Fingerprint: b.FP, Address: b.Addr}, nil); err != nil {
		t.Fatal(err)
	}
	a.Press(t.Context())
	st := waitState(t, a, "idle", 10*time.Second)
	for st.Phone.LastEnd == "" {
		st = waitState(t, a, "idle", time.Second)
	}
	if s, _ := b.Status(t.Context()); s.Phone.State.String() != "idle" || s.LED != "off" {
		t.Errorf("unpaired caller made b %v, LED %s", s.Phone.State, s.LED)
	}
	waitLog(t, b, "refused unpaired peer", a.FP)
}

func TestWrongKeyForPairedNameIsRefused(t *testing.T) {
	a, b, c := start(t, "a", testbox.Options{AutoAnswer: true}), start(t, "b", testbox.Options{AutoAnswer: true}), start(t, "c", testbox.Options{AutoAnswer: true})
	pair(t, a, b)
	// c answers at b's old address claiming to be b: a expects b's key.
	if err := a.Client.Do(t.Context(), "DELETE", "/v1/peers/b", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Do(t.Context(), "POST", "/v1/peers", control.Peer{Name: "b", Fingerprint: b.FP, Address: c.Addr}, nil); err != nil {
		t.Fatal(err)
	}
	a.Press(t.Context())
	st := waitState(t, a, "idle", 10*time.Second)
	for st.Phone.LastEnd == "" {
		st = waitState(t, a, "idle", time.Second)
	}
	waitLog(t, a, "wrong key", "peer=b")
	if s, _ := c.Status(t.Context()); s.Phone.State.String() != "idle" {
		t.Errorf("impostor got into state %v", s.Phone.State)
	}
}

func TestGarbageOnCallPortIsDropped(t *testing.T) {
	a, b := start(t, "a", testbox.Options{AutoAnswer: true}), start(t, "b", testbox.Options{AutoAnswer: true})
	pair(t, a, b)
	junk := [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: callbox\r\n\r\n"),
		bytes.Repeat([]byte{0xff}, 70000),
		{0x16, 0x03, 0x01, 0xff, 0xff}, // a TLS record header claiming a huge record
	}
	for _, j := range junk {
		c, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(j)
		c.SetReadDeadline(time.Now().Add(8 * time.Second))
		_, err = c.Read(make([]byte, 1024))
		for err == nil {
			_, err = c.Read(make([]byte, 1024))
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("b kept a garbage connection open")
		}
		c.Close()
	}
	// The same port's UDP takes the calls' audio datagrams: junk there,
	// before and during a call, is dropped unanswered.
	u, err := net.Dial("udp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	udpJunk := func() {
		for _, j := range [][]byte{{1}, append([]byte{1, 0, 0, 0, 0}, bytes.Repeat([]byte{0xaa}, 80)...), bytes.Repeat([]byte{0xff}, 1400)} {
			u.Write(j)
		}
	}
	udpJunk()
	if _, err := b.Status(t.Context()); err != nil {
		t.Fatalf("b died: %v", err)
	}
	a.Press(t.Context())
	waitState(t, b, "in call", 10*time.Second)
	udpJunk()
	// The call's Opus audio goes as datagrams both ways, junk or not.
	deadline := time.Now().Add(5 * time.Second)
	for {
		sa, errA := a.Status(t.Context())
		sb, errB := b.Status(t.Context())
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		ca, cb := sa.Phone.Call, sb.Phone.Call
		if ca != nil && cb != nil && ca.Out.AudioPath == "datagrams" && ca.In.AudioPath == "datagrams" &&
			cb.Out.AudioPath == "datagrams" && cb.In.AudioPath == "datagrams" {
			if n := sb.Listener.DatagramsRefused; n < 6 {
				t.Errorf("b refused %d datagrams, want the 6 bad ones", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audio paths: a %+v, b %+v; want datagrams both ways", ca, cb)
		}
		time.Sleep(100 * time.Millisecond)
	}
	u.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := u.Read(make([]byte, 2048)); err == nil {
		t.Errorf("b answered junk datagrams with %d bytes", n)
	}
}

func TestBadConfigExits78(t *testing.T) {
	cases := map[string]string{
		"video.fps":      "[video]\nfps = 500\n",
		"unknown key":    "colour = \"blue\"\n",
		"listen":         "listen = \"nowhere\"\n",
		"audio.frame_ms": "[audio]\nframe_ms = 7\n",
	}
	for want, body := range cases {
		t.Run(want, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.toml")
			os.WriteFile(path, []byte(body), 0o600)
			cmd := exec.Command(daemonBin, "-config", path)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 78 {
				t.Fatalf("exit %v, want 78; output %s", err, out)
			}
			if !strings.Contains(string(out), want) {
				t.Errorf("message %q does not name %q", out, want)
			}
		})
	}
}

func waitLog(t *testing.T, b *testbox.Box, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(b.Log(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s logged no line with %q", b.Name, parts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
