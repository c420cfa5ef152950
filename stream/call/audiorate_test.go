package call

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/opus"
	"github.com/callbox/callbox/stream/wire"
)

// The controller steps down after two looks with more than a tenth of the
// frames skipped, back up after ten looks with room, ignores looks too
// close together, and starts over when the counters go back (a new call).
func TestAudioRateSteps(t *testing.T) {
	r := newAudioRate(32000, 24000)
	t0 := time.Unix(1000, 0)
	var frames, drops uint64
	at := t0
	step := func(f, d uint64) bool {
		at = at.Add(time.Second)
		frames += f
		drops += d
		return r.look(at, frames, drops)
	}
	r.look(at, 0, 0)
	if step(30, 0) || r.target() != 32000 {
		t.Fatal("a link with room changed the rate")
	}
	if step(20, 10) {
		t.Fatal("one look with frames skipped lowered the rate")
	}
	if !step(20, 10) || r.target() != 24000 || !strings.Contains(r.why, "33% of frames skipped") {
		t.Fatalf("two looks with a third of the frames skipped: target %d (%q), want 24000", r.target(), r.why)
	}
	if step(20, 10) {
		t.Fatal("a full link changed a rate already low")
	}
	if r.look(at.Add(100*time.Millisecond), frames+3, drops) {
		t.Fatal("a look 100 ms after the last changed the rate")
	}
	// 5 % skipped: neither full nor room; it breaks a run of room.
	for range 9 {
		if step(30, 0) {
			t.Fatal("rate raised before ten looks with room")
		}
	}
	if step(19, 1) || r.target() != 24000 {
		t.Fatal("a look between room and full raised the rate")
	}
	for range 9 {
		if step(30, 0) {
			t.Fatal("rate raised before ten looks with room in a row")
		}
	}
	if !step(0, 0) || r.target() != 32000 {
		t.Fatalf("ten looks with room (the last without video): target %d, want 32000", r.target())
	}
	// A new call's counters start from 0: the first look only sets them.
	if r.look(at.Add(time.Second), 1, 0) {
		t.Fatal("counters going back changed the rate")
	}
	if fixed := newAudioRate(32000, 32000); fixed.look(t0, 0, 0) || fixed.look(t0.Add(time.Second), 1, 100) || fixed.look(t0.Add(2*time.Second), 2, 200) {
		t.Error("a controller with no lower rate changed it")
	}
}

// TestAudioRateFollowsTheLink: a call whose video does not fit its link
// (20 kB frames at 10 fps on 100 kB/s) lowers its Opus target to OpusLow
// within a few seconds, and the packets on the wire shrink; once the link
// carries all the video, the target goes back up.
func TestAudioRateFollowsTheLink(t *testing.T) {
	if !opus.Available() {
		t.Skip("built without Opus")
	}
	synctest.Test(t, func(t *testing.T) {
		link := &simLink{rate: 100_000, minRTT: 50 * time.Millisecond}
		var n network
		n.wrap = link.wrap
		opusLow := func(c *Config) {
			c.Codecs = []wire.AudioCodec{wire.AudioOpus, wire.AudioPCM}
			c.Opus.Complexity = 5
			c.OpusLow = 16000
		}
		a, b := n.add(t, "a", opusLow), n.add(t, "b", opusLow)
		a.newProbe = link.probe
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, InCall)
		if got := a.Status().Call.Out.AudioTargetKbps; got != 32 {
			t.Fatalf("target %v kbit/s at the start, want the configured 32", got)
		}
		f := media.DefaultAudio
		var seq uint32
		// talk sends d of audio (a tone) and, every 100 ms, a frame of size
		// bytes; it returns the Opus bytes b got per second meanwhile.
		talk := func(d time.Duration, size int) float64 {
			before := b.Status().Call.In.AudioBytes
			for range int(d / f.FrameDuration()) {
				a.SendAudio(media.Audio{Seq: seq, Time: time.Now(), Samples: tone(f, seq)})
				if seq%10 == 0 {
					a.SendVideo(media.Frame{Seq: seq / 10, Time: time.Now(), JPEG: testJPEG("", size)})
				}
				seq++
				time.Sleep(f.FrameDuration())
			}
			synctest.Wait()
			return float64(b.Status().Call.In.AudioBytes-before) * 8 / d.Seconds() / 1000
		}
		first := talk(2*time.Second, 500)
		full := talk(4*time.Second, 20_000)
		st := a.Status().Call
		if st.Out.VideoDrops == 0 {
			t.Fatal("no frames skipped: the link carried the video after all")
		}
		if st.Out.AudioTargetKbps != 16 {
			t.Fatalf("after 4 s with %d frames skipped the target is %v kbit/s, want 16", st.Out.VideoDrops, st.Out.AudioTargetKbps)
		}
		low := talk(2*time.Second, 20_000)
		t.Logf("Opus payload: %.1f kbit/s with room, %.1f while the link filled, %.1f at the lower target", first, full, low)
		if low > 20 || low > 0.7*first {
			t.Errorf("at a 16 kbit/s target b got %.1f kbit/s of Opus (%.1f before)", low, first)
		}
		link.mu.Lock()
		link.rate = 10_000_000
		link.mu.Unlock()
		talk(12*time.Second, 500)
		if got := a.Status().Call.Out.AudioTargetKbps; got != 32 {
			t.Errorf("after 12 s of room the target is %v kbit/s, want 32 again", got)
		}
		// Every frame played, in order, through the changes.
		b.sink.mu.Lock()
		defer b.sink.mu.Unlock()
		for i, au := range b.sink.audio {
			if au.Seq != uint32(i) {
				t.Fatalf("frame %d played as seq %d", i, au.Seq)
			}
		}
		if len(b.sink.audio) < int(seq)-4 {
			t.Errorf("b played %d frames of %d", len(b.sink.audio), seq)
		}
	})
}
