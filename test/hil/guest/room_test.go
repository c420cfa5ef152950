package guest

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/room"
)

func roomSpec() Room {
	c := room.Default()
	c.SNR = 40
	return Room{Audio: Audio{Device: "feed", Rate: 48000, Channels: 1, FrameMs: 10},
		Tap: Audio{Device: "tap"}, Acoustics: c, VoiceSeed: 3, MaxMs: 1000}
}

// talker is n frames of a far-end voice as s16le.
func talker(n int) []byte {
	v := room.NewVoice(9, 120, 48000)
	buf := make([]int16, 480)
	var b bytes.Buffer
	for range n {
		v.Read(buf)
		binary.Write(&b, binary.LittleEndian, buf)
	}
	return b.Bytes()
}

// The loop turns every frame the speaker played into one the microphone
// heard, counts the echo and the near-end talker in the span they fell
// in, and starts talking from the mark on.
func TestRoomLoopSpans(t *testing.T) {
	spec := roomSpec()
	l, err := newRoomLoop(spec)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }
	l.began = clock
	far := talker(400) // 4 s
	pr, pw := io.Pipe()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- l.run(pr, &out) }()
	// 2 s far end only, then 2 s of both, then a torn frame at the end.
	pw.Write(far[:len(far)/2])
	// The write returns once the loop has read the last frame, not
	// counted it.
	for deadline := time.Now().Add(5 * time.Second); l.result().Frames < 200 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	clock = clock.Add(2 * time.Second)
	first := l.mark(RoomMark{Talk: true})
	pw.Write(far[len(far)/2:])
	pw.Write([]byte{1, 2, 3})
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out.Len() != len(far) {
		t.Fatalf("wrote %d bytes for %d read", out.Len(), len(far))
	}
	res := l.result()
	if len(res.Spans) != 2 || res.Frames != 400 {
		t.Fatalf("spans %+v, frames %d", res.Spans, res.Frames)
	}
	if first != res.Spans[0] || first.Frames != 200 || first.Ms != 2000 || first.Talk || first.Near != 0 || first.TalkFrames != 0 {
		t.Errorf("far-end-only span %+v", first)
	}
	second := res.Spans[1]
	if !second.Talk || second.Frames != 200 || second.TalkFrames < 50 || second.Near == 0 {
		t.Errorf("double-talk span %+v", second)
	}
	// The echo is about the room's level under what was played (direct
	// path -6 dB, as much again in reverberation: about -3 dB).
	for i, sp := range res.Spans {
		if g := 10 * math.Log10(sp.Echo/sp.Played); g < -8 || g > 0 {
			t.Errorf("span %d: echo %.1f dB under what was played", i, g)
		}
		if g := 10 * math.Log10(sp.Noise/sp.Echo); g > -30 {
			t.Errorf("span %d: noise only %.1f dB under the echo", i, g)
		}
	}
	// The microphone heard the echo in the first span and more in the second.
	if m := 10 * math.Log10(first.Mic/first.Echo); math.Abs(m) > 0.5 {
		t.Errorf("far-end only: microphone %.1f dB off the echo", m)
	}
	if second.Mic < second.Echo+0.5*second.Near {
		t.Errorf("double talk: microphone %.0f, echo %.0f, near %.0f", second.Mic, second.Echo, second.Near)
	}
}

// A mark is kept as a span until maxRoomSpans; later ones add to the last.
func TestRoomLoopBoundsSpans(t *testing.T) {
	l, err := newRoomLoop(roomSpec())
	if err != nil {
		t.Fatal(err)
	}
	for range maxRoomSpans + 5 {
		l.mark(RoomMark{})
	}
	if n := len(l.result().Spans); n != maxRoomSpans+1 {
		t.Errorf("%d spans kept", n)
	}
}

func TestRoomSpecChecked(t *testing.T) {
	bad := roomSpec()
	bad.Channels = 2
	if _, err := newRoomLoop(bad); err == nil {
		t.Error("stereo accepted")
	}
	bad = roomSpec()
	bad.Acoustics.Delay = time.Second
	if _, err := newRoomLoop(bad); err == nil {
		t.Error("a 1 s delay accepted")
	}
	var rr roomRunner
	if _, err := rr.mark(RoomMark{}); err == nil {
		t.Error("mark without a room")
	}
	if res := rr.stop(); res.Frames != 0 || len(res.Spans) != 0 {
		t.Errorf("stop without a room: %+v", res)
	}
}

func TestXrunsCounted(t *testing.T) {
	x := &xruns{other: newTail(64)}
	x.Write([]byte("overrun!!! (at least 1.2 ms long)\nunder"))
	x.Write([]byte("run!!! (at least 3 ms long)\n\nsomething else\noverrun!!! (at"))
	o, u := x.counts()
	if o != 2 || u != 1 || string(x.other.bytes()) != "something else\n" {
		t.Errorf("%d overruns, %d underruns, other %q", o, u, x.other.bytes())
	}
}
