package call

import (
	"bytes"
	"context"
	"encoding/binary"
	"image"
	"image/jpeg"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/wire"
)

// tinyJPEG is a real 8x8 JPEG: its SOI, then the rest.
var tinyJPEG = func() []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		panic(err)
	}
	return buf.Bytes()
}()

// testJPEG is a real JPEG carrying tag in a comment segment, padded to at
// least size bytes: it passes the receiver's checks (media.CheckJPEG).
func testJPEG(tag string, size int) []byte {
	com := []byte(tag)
	if pad := size - len(tinyJPEG) - 4 - len(com); pad > 0 {
		com = append(com, make([]byte, pad)...)
	}
	b := []byte{0xFF, 0xD8, 0xFF, 0xFE}
	b = binary.BigEndian.AppendUint16(b, uint16(len(com)+2))
	b = append(b, com...)
	return append(b, tinyJPEG[2:]...)
}

// testPCM is one frame of the default audio format starting with head.
func testPCM(head ...int16) []int16 {
	s := make([]int16, media.DefaultAudio.FrameLen())
	copy(s, head)
	return s
}

// TestBadMediaIsDroppedAndCounted: a peer whose "frames" are not JPEG and
// whose audio has the wrong size gets none of it to our sink; the figures
// count it as bad, not as received; the call goes on, and its end reason
// says what was dropped.
func TestBadMediaIsDroppedAndCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		a, b := n.add(t, "a", nil), n.add(t, "b", nil)
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, InCall)
		s := a.active.Load()
		// Bypass a's own checks: write straight into the session.
		bad := []wire.Body{
			wire.Video{Frame: 1, Size: 5, Data: []byte("hello")},
			wire.Video{Frame: 2, Size: 4, Data: []byte{0xFF, 0xD8, 0xFF, 0xD9}},
			wire.Audio{PCM: make([]byte, 6)},
			wire.Audio{PCM: make([]byte, 2*media.DefaultAudio.FrameLen()+2)},
		}
		for _, body := range bad {
			s.enqueue(wire.Message{Time: time.Now().UnixNano(), Body: body})
			synctest.Wait()
		}
		a.SendVideo(media.Frame{Seq: 3, Time: time.Now(), JPEG: testJPEG("good", 0)})
		a.SendAudio(media.Audio{Seq: 4, Time: time.Now(), Samples: testPCM(9)})
		synctest.Wait()
		frames, audio := b.sink.counts()
		if frames != 1 || audio != 1 {
			t.Fatalf("b's sink got %d frames and %d audio, want only the good one of each", frames, audio)
		}
		st := b.Status()
		if st.State != InCall {
			t.Fatalf("b: state %v after bad media, want the call to go on", st.State)
		}
		in := st.Call.In
		if in.VideoBad != 2 || in.AudioBad != 2 || in.VideoFrames != 1 || in.AudioFrames != 1 {
			t.Errorf("b's figures: %d/%d video bad/good, %d/%d audio bad/good; want 2/1 and 2/1",
				in.VideoBad, in.VideoFrames, in.AudioBad, in.AudioFrames)
		}
		if err := b.Hangup(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, Idle)
		le := b.Status().LastEnd
		if !strings.Contains(le, "2 video frames") || !strings.Contains(le, "2 audio frames") {
			t.Errorf("last end %q does not say what was dropped", le)
		}
	})
}

// TestPingBurstIsNotAFault: a peer that pings far faster than we write gets
// fewer pongs, not a call ended as "not reading".
func TestPingBurstIsNotAFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		a, b := n.add(t, "a", nil), n.add(t, "b", nil)
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, InCall)
		s := a.active.Load()
		for range 10_000 {
			s.enqueue(wire.Message{Time: time.Now().UnixNano(), Body: wire.Ping{}})
		}
		time.Sleep(time.Second)
		wantState(t, a, InCall)
		wantState(t, b, InCall)
	})
}

// TestLostCallsLeaveNoLeftovers: calls that end by a fault on the
// connection (here the peer breaking the protocol) leave nothing behind in
// the callee's bookkeeping; after many of them it still takes calls. Each
// lost call once kept a slot of MaxPending for good.
func TestLostCallsLeaveNoLeftovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		a, b := n.add(t, "a", nil), n.add(t, "b", nil)
		for i := range 3 * b.cfg.MaxPending {
			if err := a.Call(context.Background(), peerOf(b)); err != nil {
				t.Fatal(err)
			}
			wantState(t, b, InCall)
			a.active.Load().enqueue(wire.Message{Body: a.hello}) // a second hello
			time.Sleep(time.Second)
			wantState(t, a, Idle)
			wantState(t, b, Idle)
			if le := b.Status().LastEnd; !strings.Contains(le, "protocol error") {
				t.Fatalf("call %d: b's last end %q, want a protocol error", i, le)
			}
			var left int
			b.do(context.Background(), func() error { left = len(b.pending); return nil })
			if left != 0 {
				t.Fatalf("after lost call %d b keeps %d leftover sessions", i, left)
			}
		}
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, InCall)
	})
}

// TestCheckSeesStuckBookkeeping: a session that stays among the waiting
// connections past any legitimate bound (as every lost call once did) makes
// Check fail, so the daemon stops pinging the watchdog.
func TestCheckSeesStuckBookkeeping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		a, b := n.add(t, "a", nil), n.add(t, "b", nil)
		if err := b.Check(context.Background()); err != nil {
			t.Fatalf("Check on a fresh phone: %v", err)
		}
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, InCall)
		if err := b.Check(context.Background()); err != nil {
			t.Fatalf("Check in a call: %v", err)
		}
		// Put the call's session back among the waiting, as the old
		// evClosed/endCall order did, then let time pass.
		b.do(context.Background(), func() error { b.pending[b.sess] = time.Now(); return nil })
		a.Hangup(context.Background())
		time.Sleep(30 * time.Second)
		wantState(t, b, Idle)
		b.do(context.Background(), func() error {
			for s := range b.pending {
				b.pending[s] = time.Now().Add(-time.Minute)
			}
			if len(b.pending) == 0 { // closed already: plant a stale one
				b.pending[&session{}] = time.Now().Add(-time.Minute)
			}
			return nil
		})
		if err := b.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "kept waiting") {
			t.Fatalf("Check with a stuck session: %v, want it to say so", err)
		}
		b.do(context.Background(), func() error { clear(b.pending); return nil })
	})
}
