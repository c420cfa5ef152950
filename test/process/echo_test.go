package process

import (
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
)

// plainDaemon is callboxd built without the race detector, for the echo
// test: under it the stage's Go DSP (resampling, the delay estimate's
// FFTs) runs slower than real time on a 2-core machine, the microphone
// skips frames and the test measures the machine, not the canceller. The
// race build runs everywhere else.
var plainDaemon = sync.OnceValues(func() (string, error) {
	if !raceEnabled {
		return daemonBin, nil
	}
	bin, cleanup, err := testbox.BuildDaemon(false)
	if err == nil {
		extraCleanup = append(extraCleanup, cleanup) // TestMain runs it
	}
	return bin, err
})

// roomBox is a box in a simulated room: its microphone hears its speaker
// 60 ms later through a reverberant room, with background noise, and its
// talker talks as told.
//
// The call's audio goes as PCM: this test judges the echo stage, and with
// Opus on the wire what hall sent back measured 15-20 dB under what it
// played in 2 runs of 5 (20 dB or more in every PCM run); why is not
// known yet (issue 14's note), and it is not this test's subject.
func roomBox(talk audio.Talk) testbox.Options {
	return testbox.Options{AutoAnswer: true, RecordAudio: true,
		Extra: strings.Replace(testbox.InRoom(string(talk)), "[audio]\n", "[audio]\ncodec = \"pcm\"\n", 1)}
}

// lastSeconds is the mean power of the last secs of what b's speaker
// played.
func lastSeconds(t *testing.T, b *testbox.Box, secs float64) float64 {
	t.Helper()
	s, err := audio.ReadRecording(b.AudioRecording())
	if err != nil {
		t.Fatal(err)
	}
	n := int(secs * 48000)
	if len(s) < n {
		t.Fatalf("%s played only %d samples", b.Name, len(s))
	}
	var e float64
	for _, v := range s[len(s)-n:] {
		e += float64(v) * float64(v)
	}
	return e / float64(n)
}

// In a call between two simulated rooms, the box whose talker is silent
// sends back little of what its speaker plays: its echo stage found the
// delay, cancels the echo, and says so in its status.
func TestRoomCallCancelsTheEcho(t *testing.T) {
	bin, err := plainDaemon()
	if err != nil {
		t.Fatal(err)
	}
	hall := testbox.StartT(t, bin, "hall", roomBox(audio.TalkNever))
	door := testbox.StartT(t, bin, "door", roomBox(audio.TalkAlways))
	pair(t, hall, door)
	if err := door.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	began := waitState(t, hall, "in call", 10*time.Second)
	waitState(t, door, "in call", 10*time.Second)
	var from uint64
	if began.Echo != nil {
		from = began.Echo.Frames
	}
	// A stall of the simulated clocks on a loaded machine moves the room's
	// echo path for a moment, and what hall sends back in that moment is
	// the room's echo, whatever its stage does (the stage's ERLE, a
	// smoothed figure, hardly moves). So a window that falls short is
	// measured once more, after the stage has again been steady for 3 s;
	// a stage that does not cancel fails both.
	for try := 1; ; try++ {
		ratio, e := measureEcho(t, hall, door, from)
		if e == nil {
			t.Fatal("hall's status has no echo stage")
		}
		if !e.DelayKnown || e.DelayMs < 40 || e.DelayMs > 200 {
			t.Errorf("hall's delay: known %v, %.0f ms; want found, near the room's 60 ms", e.DelayKnown, e.DelayMs)
		}
		if e.Parts != "cancel+suppress+denoise+agc+duck" {
			t.Errorf("hall's stage runs %q, want every part (the default)", e.Parts)
		}
		if e.ERLE < 15 {
			t.Errorf("hall's stage reports ERLE %.1f dB, want ≥ 15", e.ERLE)
		}
		// The room hears the echo about 3 dB under what was played; without
		// the stage it would come back at that level (more with the AGC).
		if ratio >= 20 {
			break
		}
		if try == 2 {
			t.Errorf("what hall sent back is only %.1f dB below what it played; want ≥ 20 dB", ratio)
			break
		}
		t.Logf("what hall sent back is only %.1f dB below what it played: measuring again", ratio)
		from = e.Frames
	}
	if err := hall.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, hall, "idle", 5*time.Second)
}

// measureEcho waits until hall's stage has taken 800 frames since from
// (its own count: a busy machine may run it slower than real time) with
// the delay in use unchanged for the last 3 s (on a loaded machine the
// two simulated clocks stall now and then, the room's delay moves and
// the canceller starts over; at most 60 s), then says how far below what
// hall played (door's voice) what door played (hall's microphone after
// its stage) was over the same last 2 s, and hall's stage then.
func measureEcho(t *testing.T, hall, door *testbox.Box, from uint64) (float64, *control.Echo) {
	t.Helper()
	var st control.Status
	var changes uint64
	var err error
	steady := time.Now()
	for deadline := time.Now().Add(60 * time.Second); ; {
		time.Sleep(500 * time.Millisecond)
		if st, err = hall.Status(t.Context()); err != nil {
			t.Fatal(err)
		}
		e := st.Echo
		if e == nil || time.Now().After(deadline) {
			break
		}
		if e.DelayChanges != changes {
			changes, steady = e.DelayChanges, time.Now()
		}
		if e.Frames >= from+800 && e.DelayKnown && time.Since(steady) >= 3*time.Second {
			break
		}
	}
	played, back := lastSeconds(t, hall, 2), lastSeconds(t, door, 2)
	if st.Echo != nil {
		t.Logf("hall's echo stage: %+v; hall played %.0f dBFS, sent back %.0f dBFS", *st.Echo,
			10*math.Log10(played/(32768*32768)), 10*math.Log10((back+1)/(32768*32768)))
	}
	return 10 * math.Log10(played/(back+1)), st.Echo
}

// A box with the simulated test microphone has no processing (the signal
// is checked sample for sample at the other end) and says so.
func TestSimMicrophoneHasNoEchoStage(t *testing.T) {
	b := start(t, "plain", recording)
	st, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Echo != nil {
		t.Errorf("status shows an echo stage for the test microphone: %+v", *st.Echo)
	}
}
