package process

import (
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
)

// openDoor is `callbox open [--remote]` on b.
func openDoor(t *testing.T, b *testbox.Box, remote bool) (control.DoorOpened, error) {
	t.Helper()
	var res control.DoorOpened
	err := b.Client.Do(t.Context(), "POST", "/v1/door/open", control.DoorRequest{Remote: remote}, &res)
	return res, err
}

// waitDoor polls b's status until ok accepts its door.
func waitDoor(t *testing.T, b *testbox.Box, what string, ok func(*control.Door) bool) *control.Door {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := b.Status(t.Context())
		if err == nil && st.Door != nil && ok(st.Door) {
			return st.Door
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's door: %s: not so within 15s: %+v (err %v)", b.Name, what, st.Door, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The indoor box, in a call with the door box, opens the door box's
// (simulated) door: its line goes on and off once, both statuses say who
// and how it went; a second request inside the gap is refused and the
// reason reaches the asker; the call goes on throughout. Outside a call
// the indoor box cannot ask, and the door box cannot open the indoor
// box's door, which has none.
func TestDoorOpenedByPeerInCall(t *testing.T) {
	door := start(t, "door", testbox.Options{AutoAnswer: true, Extra: "[door]\nline = \"sim\"\npulse_s = 1\ngap_s = 60\n"})
	hall := start(t, "hall", testbox.Options{AutoAnswer: true})
	pair(t, door, hall)

	if _, err := openDoor(t, hall, true); err == nil || !strings.Contains(err.Error(), "not in a call") {
		t.Fatalf("asking outside a call: %v, want it refused (not in a call)", err)
	}
	if st, _ := door.Status(t.Context()); st.Door == nil || st.Door.Line != "sim" || st.Door.Active || st.Door.SimChanges != 0 || st.Door.Remote != "call" {
		t.Fatalf("door at rest: %+v", st.Door)
	}

	if err := callCmd(t, hall, "/v1/call", control.CallRequest{Peer: "door"}); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, hall, "in call", 10*time.Second)
	waitState(t, door, "in call", 10*time.Second)
	if !st.Phone.PeerDoor {
		t.Fatal("hall does not see door's door opener")
	}
	res, err := openDoor(t, hall, true)
	if err != nil || res.Door != "door" {
		t.Fatalf("hall asking door to open: %+v, %v", res, err)
	}
	d := waitDoor(t, door, "pulsed once", func(d *control.Door) bool { return !d.Active && d.SimChanges == 2 })
	if d.Openings != 1 || d.Last == nil || d.Last.Who != "peer hall" || d.State != "idle" || d.Until.IsZero() {
		t.Fatalf("door after the opening: %+v (last %+v)", d, d.Last)
	}
	if st, _ := hall.Status(t.Context()); st.Phone.DoorAsk == nil || !st.Phone.DoorAsk.Opened || st.Phone.DoorAsk.Peer != "door" {
		t.Fatalf("hall's last request: %+v", st.Phone.DoorAsk)
	}

	_, err = openDoor(t, hall, true)
	if err == nil || !strings.Contains(err.Error(), "door refused to open its door: too soon") {
		t.Fatalf("second request inside the gap: %v, want door's refusal (too soon)", err)
	}
	d = waitDoor(t, door, "one refusal", func(d *control.Door) bool { return d.Refusals == 1 })
	if d.SimChanges != 2 || d.LastRefusal == nil || d.LastRefusal.Who != "peer hall" || !strings.HasPrefix(d.LastRefusal.Why, "too soon") {
		t.Fatalf("door after the refusal: %+v (refusal %+v)", d, d.LastRefusal)
	}
	if st, _ := hall.Status(t.Context()); st.Phone.DoorAsk == nil || st.Phone.DoorAsk.Opened || !strings.Contains(st.Phone.DoorAsk.Answer, "too soon") {
		t.Fatalf("hall's last request: %+v", st.Phone.DoorAsk)
	}
	// The door box's own `callbox open` is refused inside the gap too.
	if _, err := openDoor(t, door, false); err == nil || !strings.Contains(err.Error(), "too soon") {
		t.Fatalf("callbox open inside the gap: %v", err)
	}
	// Hall has no door: door cannot open it, and nothing is sent.
	if _, err := openDoor(t, door, true); err == nil || !strings.Contains(err.Error(), "no door opener") {
		t.Fatalf("door asking hall: %v, want no door opener", err)
	}
	for _, b := range []*testbox.Box{door, hall} {
		if st, _ := b.Status(t.Context()); st.Phone.State.String() != "in call" {
			t.Fatalf("%s left the call: %q", b.Name, st.Phone.LastEnd)
		}
	}
	if err := callCmd(t, hall, "/v1/hangup", nil); err != nil {
		t.Fatal(err)
	}
	waitState(t, door, "idle", 10*time.Second)
	if _, err := openDoor(t, hall, true); err == nil || !strings.Contains(err.Error(), "not in a call") {
		t.Fatalf("asking after the call: %v", err)
	}
	if !strings.Contains(door.Log(), `msg="door opened" component=door who="peer hall"`) {
		t.Errorf("door's log does not say who opened:\n%s", door.Log())
	}
}
