package call

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
)

func member(st Status, name string) MemberStatus {
	if st.Group != nil {
		for _, m := range st.Group.Members {
			if m.Name == name {
				return m
			}
		}
	}
	return MemberStatus{}
}

// A group call rings every member, even ones that answer by themselves;
// a busy member and one that is down drop out; the first to answer gets
// the call, media flows, and both can call again afterwards.
func TestGroupCallFirstAnswerWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		door := n.add(t, "door", nil)
		kitchen := n.add(t, "kitchen", nil) // answers single calls by itself
		office := n.add(t, "office", nil)
		x := n.add(t, "x", nil)
		if err := x.Call(context.Background(), peerOf(office)); err != nil {
			t.Fatal(err)
		}
		wantState(t, office, InCall)
		upstairs := Peer{Name: "upstairs", Fingerprint: "fp-upstairs"} // not on the network

		err := door.CallGroup(context.Background(), "house", []Peer{peerOf(kitchen), peerOf(office), upstairs})
		if err != nil {
			t.Fatal(err)
		}
		wantState(t, kitchen, Ringing)
		wantState(t, door, Calling)
		wantState(t, office, InCall)
		st := door.Status()
		if st.Group == nil || st.Group.Name != "house" || st.Peer == nil || st.Peer.Name != "house" {
			t.Fatalf("door's status while ringing the group: %+v", st)
		}
		for name, want := range map[string]MemberState{"kitchen": MemberRinging, "office": MemberBusy, "upstairs": MemberUnreachable} {
			if got := member(st, name); got.State != want {
				t.Errorf("member %s: %+v, want %s", name, got, want)
			}
		}
		if d := member(st, "upstairs").Detail; !strings.Contains(d, "refused") {
			t.Errorf("the unreachable member's detail %q does not say why", d)
		}

		if err := kitchen.Answer(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantState(t, door, InCall)
		wantState(t, kitchen, InCall)
		st = door.Status()
		if st.Peer == nil || st.Peer.Name != "kitchen" || st.Group.AnsweredBy != "kitchen" {
			t.Fatalf("door's status in the call: peer %+v, group %+v", st.Peer, st.Group)
		}
		for i := range 5 {
			door.SendVideo(media.Frame{Seq: uint32(i), Time: time.Now(), JPEG: testJPEG("door", 0)})
			time.Sleep(33 * time.Millisecond)
		}
		synctest.Wait()
		if f, _ := kitchen.sink.counts(); f != 5 {
			t.Errorf("kitchen got %d frames, want 5", f)
		}

		door.Hangup(context.Background())
		wantState(t, door, Idle)
		wantState(t, kitchen, Idle)
		if g := door.Status().Group; g == nil || g.AnsweredBy != "kitchen" {
			t.Errorf("after the call the status no longer says who answered: %+v", g)
		}
		// Both can call again, single calls answer by themselves again.
		if err := kitchen.Call(context.Background(), peerOf(door)); err != nil {
			t.Fatal(err)
		}
		wantState(t, door, InCall)
		if door.Status().Group != nil {
			t.Errorf("a single call still shows the last group: %+v", door.Status().Group)
		}
	})
}

// When one member answers, the others stop ringing at once and say why.
func TestGroupCallOthersStopRinging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		door := n.add(t, "door", nil)
		ring := func(c *Config) { c.AutoAnswer = false }
		a, b, c := n.add(t, "a", ring), n.add(t, "b", ring), n.add(t, "c", ring)
		door.CallGroup(context.Background(), "house", []Peer{peerOf(a), peerOf(b), peerOf(c)})
		for _, m := range []*box{a, b, c} {
			wantState(t, m, Ringing)
		}
		start := time.Now()
		b.Answer(context.Background())
		wantState(t, door, InCall)
		wantState(t, b, InCall)
		wantState(t, a, Idle)
		wantState(t, c, Idle)
		if d := time.Since(start); d > 0 {
			t.Errorf("the others stopped ringing %v after the answer (simulated time), want at once", d)
		}
		for _, m := range []*box{a, c} {
			if le := m.Status().LastEnd; !strings.Contains(le, "answered elsewhere") {
				t.Errorf("%s: last end %q, want answered elsewhere", m.name, le)
			}
		}
		st := door.Status()
		for name, want := range map[string]MemberState{"a": MemberElsewhere, "b": MemberAnswered, "c": MemberElsewhere} {
			if got := member(st, name).State; got != want {
				t.Errorf("member %s: %s, want %s", name, got, want)
			}
		}
		// The losers are free for calls again.
		if err := a.Call(context.Background(), peerOf(c)); err != nil {
			t.Fatal(err)
		}
		wantState(t, c, Ringing)
	})
}

// Two members answering at the same instant end with exactly one call.
func TestGroupCallSimultaneousAnswers(t *testing.T) {
	for round := range 5 {
		synctest.Test(t, func(t *testing.T) {
			var n network
			door := n.add(t, "door", nil)
			ring := func(c *Config) { c.AutoAnswer = false }
			a, b := n.add(t, "a", ring), n.add(t, "b", ring)
			door.CallGroup(context.Background(), "house", []Peer{peerOf(a), peerOf(b)})
			wantState(t, a, Ringing)
			wantState(t, b, Ringing)
			var wg sync.WaitGroup
			for _, m := range []*box{a, b} {
				wg.Go(func() { m.Answer(context.Background()) })
			}
			wg.Wait()
			wantState(t, door, InCall)
			winner := door.Status().Peer.Name
			inCall := 0
			for _, m := range []*box{a, b} {
				switch st := m.Status(); {
				case st.State == InCall && m.name == winner:
					inCall++
				case st.State == Idle && m.name != winner && strings.Contains(st.LastEnd, "answered elsewhere"):
				default:
					t.Errorf("round %d: %s is %v (%q); the door is in a call with %s", round, m.name, st.State, st.LastEnd, winner)
				}
			}
			if inCall != 1 {
				t.Fatalf("round %d: %d members in the call, want 1", round, inCall)
			}
		})
	}
}

// Nobody answers: busy, down, or ringing until the ring timeout. The call
// ends and the status names each member's reason.
func TestGroupCallNobodyAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		door := n.add(t, "door", func(c *Config) { c.RingTimeout = 10 * time.Second })
		a := n.add(t, "a", func(c *Config) { c.AutoAnswer = false })
		b := n.add(t, "b", nil)
		x := n.add(t, "x", nil)
		x.Call(context.Background(), peerOf(b))
		wantState(t, b, InCall)
		door.CallGroup(context.Background(), "house", []Peer{peerOf(a), peerOf(b), {Name: "gone", Fingerprint: "fp-gone"}})
		wantState(t, a, Ringing)
		wantState(t, door, Calling)
		time.Sleep(11 * time.Second)
		wantState(t, door, Idle)
		wantState(t, a, Idle)
		le := door.Status().LastEnd
		for _, want := range []string{"nobody in house answered", "a no answer", "b busy", "gone unreachable"} {
			if !strings.Contains(le, want) {
				t.Errorf("last end %q does not say %q", le, want)
			}
		}
		// All down at once ends the call without waiting.
		door.CallGroup(context.Background(), "attic", []Peer{{Name: "g1", Fingerprint: "fp-g1"}, {Name: "g2", Fingerprint: "fp-g2"}})
		wantState(t, door, Idle)
		if le := door.Status().LastEnd; !strings.Contains(le, "g1 unreachable") || !strings.Contains(le, "g2 unreachable") {
			t.Errorf("last end %q", le)
		}
		// And the door takes calls again.
		a.Call(context.Background(), peerOf(door))
		wantState(t, door, InCall)
	})
}

// The caller hanging up stops every member ringing; the phone's
// bookkeeping is clean afterwards.
func TestGroupCallHangupWhileRinging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		door := n.add(t, "door", nil)
		ring := func(c *Config) { c.AutoAnswer = false }
		a, b := n.add(t, "a", ring), n.add(t, "b", ring)
		door.CallGroup(context.Background(), "house", []Peer{peerOf(a), peerOf(b)})
		wantState(t, a, Ringing)
		wantState(t, b, Ringing)
		door.Press(context.Background())
		wantState(t, door, Idle)
		wantState(t, a, Idle)
		wantState(t, b, Idle)
		for _, m := range []*box{a, b} {
			if got := member(door.Status(), m.name).State; got != MemberCancelled {
				t.Errorf("member %s: %s, want cancelled", m.name, got)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if err := door.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		door.do(context.Background(), func() error {
			if len(door.pending) != 0 || door.group != nil {
				t.Errorf("after the hangup: %d sessions left over, group %v", len(door.pending), door.group)
			}
			return nil
		})
		if err := door.CallGroup(context.Background(), "house", []Peer{peerOf(a), peerOf(a)}); err == nil {
			t.Error("a group naming a peer twice was accepted")
		}
	})
}
