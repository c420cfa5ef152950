package process

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/call"
)

func member(st control.Status, name string) call.MemberStatus {
	if g := st.Phone.Group; g != nil {
		for _, m := range g.Members {
			if m.Name == name {
				return m
			}
		}
	}
	return call.MemberStatus{}
}

// waitMember polls until the door's status shows member name in state.
func waitMember(t *testing.T, door *testbox.Box, name string, state call.MemberState) control.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := door.Status(t.Context())
		if err == nil && member(st, name).State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s of the door's group call: %+v, want %s (group %+v, err %v)", name, member(st, name), state, st.Phone.Group, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Four daemons: the door rings the house group with its button; the
// kitchen rings (though it answers single calls by itself), the office is
// busy, upstairs is down. The kitchen answers; the door's status says who
// rang and who answered. A second button calls the kitchen alone and its
// LED shows that call.
func TestGroupCallOneAnswersOneBusyOneDown(t *testing.T) {
	door := start(t, "door", testbox.Options{AutoAnswer: true, Extra: `call_peer = "house"
[[group]]
name = "house"
peers = ["kitchen", "office", "upstairs"]
[[button]]
line = "sim"
call = "kitchen"
led = "sim"
`})
	kitchen := start(t, "kitchen", testbox.Options{AutoAnswer: true})
	office := start(t, "office", testbox.Options{AutoAnswer: true})
	upstairs := start(t, "upstairs", testbox.Options{AutoAnswer: true})
	x := start(t, "x", testbox.Options{AutoAnswer: true})
	for _, m := range []*testbox.Box{kitchen, office, upstairs} {
		pair(t, door, m)
	}
	pair(t, x, office)
	if err := upstairs.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := callCmd(t, x, "/v1/call", control.CallRequest{Peer: "office"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, office, "in call", 10*time.Second)

	if err := door.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, kitchen, "ringing", 10*time.Second)
	waitMember(t, door, "office", call.MemberBusy)
	st := waitMember(t, door, "upstairs", call.MemberUnreachable)
	if st.Phone.State.String() != "calling" || st.Phone.Peer == nil || st.Phone.Peer.Name != "house" {
		t.Fatalf("door while ringing the group: %v with %+v", st.Phone.State, st.Phone.Peer)
	}
	if m := member(st, "kitchen"); m.State != call.MemberRinging {
		t.Fatalf("kitchen: %+v, want ringing", m)
	}
	if err := callCmd(t, kitchen, "/v1/answer", nil); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, door, "in call", 10*time.Second)
	if st.Phone.Peer == nil || st.Phone.Peer.Name != "kitchen" || st.Phone.Group == nil || st.Phone.Group.AnsweredBy != "kitchen" {
		t.Fatalf("door in call: peer %+v, group %+v", st.Phone.Peer, st.Phone.Group)
	}
	waitState(t, kitchen, "in call", 10*time.Second)
	// Media flows in the group call like in any other.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ = kitchen.Status(t.Context())
		if c := st.Phone.Call; c != nil && c.In.VideoFrames > 10 && c.In.AudioFrames > 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no media reached the kitchen: %+v", st.Phone.Call)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s, _ := office.Status(t.Context()); s.Phone.State.String() != "in call" || s.Phone.Peer == nil || s.Phone.Peer.Name != "x" {
		t.Errorf("the busy member's call was disturbed: %v", s.Phone.State)
	}
	if err := door.Press(t.Context()); err != nil { // hang up
		t.Fatal(err)
	}
	waitState(t, door, "idle", 10*time.Second)
	waitState(t, kitchen, "idle", 10*time.Second)

	// The second button calls the kitchen alone, which answers by itself;
	// the button's LED shows the call.
	if err := callCmd(t, door, "/v1/press", control.PressRequest{Button: 1}); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, door, "in call", 10*time.Second)
	if st.Phone.Peer == nil || st.Phone.Peer.Name != "kitchen" || st.Phone.Group != nil {
		t.Fatalf("button 1 called %+v (group %+v), want kitchen alone", st.Phone.Peer, st.Phone.Group)
	}
	if st.ButtonLEDs != "1 on" {
		t.Errorf("button LEDs in the kitchen call: %q, want \"1 on\"", st.ButtonLEDs)
	}
	if err := callCmd(t, door, "/v1/press", control.PressRequest{Button: 1}); err != nil { // hangs up
		t.Fatal(err)
	}
	st = waitState(t, door, "idle", 10*time.Second)
	if st.ButtonLEDs != "1 off" {
		t.Errorf("button LEDs after the call: %q, want \"1 off\"", st.ButtonLEDs)
	}
	if err := callCmd(t, door, "/v1/press", control.PressRequest{Button: 2}); err == nil {
		t.Error("pressing a button that is not configured worked")
	}
}

// Two members answering at the same moment end with exactly one call: the
// other stops with "answered elsewhere", and every box can call again.
func TestGroupCallRaceOfTwoAnswers(t *testing.T) {
	door := start(t, "door", testbox.Options{AutoAnswer: true, Extra: `[[group]]
name = "house"
peers = ["a", "b"]
`})
	a := start(t, "a", testbox.Options{})
	b := start(t, "b", testbox.Options{})
	pair(t, door, a)
	pair(t, door, b)
	for round := range 3 {
		if err := callCmd(t, door, "/v1/call", control.CallRequest{Peer: "house"}); err != nil {
			t.Fatal(err)
		}
		waitState(t, a, "ringing", 10*time.Second)
		waitState(t, b, "ringing", 10*time.Second)
		var wg sync.WaitGroup
		for _, m := range []*testbox.Box{a, b} {
			wg.Go(func() { m.Client.Do(t.Context(), "POST", "/v1/answer", nil, nil) })
		}
		wg.Wait()
		st := waitState(t, door, "in call", 10*time.Second)
		winner := st.Phone.Peer.Name
		inCall := 0
		for _, m := range []*testbox.Box{a, b} {
			want := "idle"
			if m.Name == winner {
				want = "in call"
				inCall++
			}
			s := waitState(t, m, want, 10*time.Second)
			if want == "idle" && !strings.Contains(s.Phone.LastEnd, "answered elsewhere") {
				t.Errorf("round %d: %s's last end %q, want answered elsewhere", round, m.Name, s.Phone.LastEnd)
			}
		}
		if inCall != 1 {
			t.Fatalf("round %d: %d members in the call with the door", round, inCall)
		}
		// Still exactly one call a moment later.
		time.Sleep(300 * time.Millisecond)
		for _, m := range []*testbox.Box{a, b} {
			s, _ := m.Status(t.Context())
			if (m.Name == winner) != (s.Phone.State.String() == "in call") {
				t.Fatalf("round %d: %s is %v; the door's call is with %s", round, m.Name, s.Phone.State, winner)
			}
		}
		if err := callCmd(t, door, "/v1/hangup", nil); err != nil {
			t.Fatal(err)
		}
		waitState(t, door, "idle", 10*time.Second)
		waitState(t, a, "idle", 10*time.Second)
		waitState(t, b, "idle", 10*time.Second)
	}
}
