package audio

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/room"
)

func rms(x []int16) float64 {
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(max(len(x), 1)))
}

// The microphone hears what the speaker played, delayed by the room, and
// the talker only when it is its turn.
func TestRoomHearsTheSpeaker(t *testing.T) {
	f := media.DefaultAudio
	ac := room.Default()
	ac.SNR = math.Inf(1)
	r, err := NewRoom(f, RoomConfig{Acoustics: ac, Talk: TalkNever, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	loud := make([]int16, f.FrameSamples())
	v := room.NewVoice(9, 120, f.Rate)
	mic := make([]int16, f.FrameSamples())
	var before, after float64
	for i := 0; i < 100; i++ { // 1 s of speech into the room
		for !v.Read(loud) {
		}
		r.play(loud)
		r.hear(mic)
		if i < 5 { // the first 50 ms: the 60 ms delay has not passed
			before += rms(mic)
		} else {
			after += rms(mic)
		}
	}
	if before != 0 {
		t.Errorf("the microphone heard %v before the echo could arrive", before)
	}
	if after/95 < 200 {
		t.Errorf("the echo's mean level is %.0f, want the room's -6 dB echo of a voice", after/95)
	}

	// Silence in, silence out (no noise, nobody talking).
	clear(loud)
	for i := 0; i < 100; i++ {
		r.play(loud)
		r.hear(mic)
	}
	if l := rms(mic); l > 1 {
		t.Errorf("the room still rings after 1 s of silence: %v", l)
	}

	// Turns: "even" talks in even 4 s turns of the wall clock only.
	r.talk = TalkEven
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {TurnLength + time.Second, false}, {2*TurnLength + time.Second, true}} {
		r.now = func() time.Time { return time.Unix(0, 0).Add(c.at) }
		if got := r.talking(); got != c.want {
			t.Errorf("talking at %v = %v, want %v", c.at, got, c.want)
		}
	}
}

// What the speaker plays ahead of a stalled microphone is bounded.
func TestRoomQueueIsBounded(t *testing.T) {
	r, err := NewRoom(media.DefaultAudio, RoomConfig{Acoustics: room.Default()})
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]int16, media.DefaultAudio.FrameSamples())
	for i := 0; i < 1000; i++ {
		r.play(frame)
	}
	if n, limit := len(r.played), maxQueuedMs*media.DefaultAudio.Rate/1000; n > limit {
		t.Errorf("%d samples queued, want at most %d", n, limit)
	}
}

func TestRoomAndVoiceRefuseStereo(t *testing.T) {
	st := media.AudioFormat{Rate: 48000, Channels: 2, FrameMs: 10}
	if _, err := NewRoom(st, RoomConfig{Acoustics: room.Default()}); err == nil {
		t.Error("a stereo room was accepted")
	}
	if _, err := NewVoiceSource(st, 1); err == nil {
		t.Error("a stereo voice was accepted")
	}
	if _, err := NewRoom(media.DefaultAudio, RoomConfig{Acoustics: room.Default(), Talk: "sometimes"}); err == nil {
		t.Error("talk = sometimes was accepted")
	}
}

// The speaker and microphone run on their own clocks, as the daemon runs
// them; the microphone hears the speaker.
func TestRoomDevicesRun(t *testing.T) {
	ac := room.Default()
	ac.SNR = math.Inf(1)
	r, err := NewRoom(media.DefaultAudio, RoomConfig{Acoustics: ac, Talk: TalkNever})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := room.NewVoice(5, 150, 48000)
	spk := r.Speaker(nil)
	done := make(chan error, 1)
	go func() { done <- spk.Run(ctx, func(dst []int16) { v.Read(dst) }) }()
	mic := r.Microphone()
	defer mic.Close()
	var heard float64
	for i := 0; i < 50; i++ {
		a, err := mic.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		heard += rms(a.Samples)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if heard == 0 {
		t.Error("the room's microphone heard nothing of its speaker in 0.5 s")
	}
}

// A microphone that falls behind (skipped frames) or a speaker that
// catches up does not lengthen the echo's delay: what is in hand stays
// within a few frames.
func TestRoomDelayStaysPut(t *testing.T) {
	r, err := NewRoom(media.DefaultAudio, RoomConfig{Acoustics: room.Default(), Talk: TalkNever})
	if err != nil {
		t.Fatal(err)
	}
	n := media.DefaultAudio.FrameSamples()
	frame, mic := make([]int16, n), make([]int16, n)
	for i := 0; i < 500; i++ {
		r.play(frame)
		if i%5 == 0 { // the speaker plays twice for each frame heard, now and then
			r.play(frame)
		}
		r.hear(mic)
		if held := len(r.played); held > (primeFrames+2)*n {
			t.Fatalf("after %d frames %d samples are in hand, want at most %d", i, held, (primeFrames+2)*n)
		}
	}
}
