package process

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/hass"
	"github.com/callbox/callbox/internal/rings"
	"github.com/callbox/callbox/internal/testbox"
)

// A door box with Home Assistant over a real Mosquitto: a button press
// gives a valid discovery set, a ring event and a decodable picture, and
// the state during the call; the broker killed mid-call changes nothing
// for the call, and the box reconnects when it comes back; a SIGKILLed
// box is reported offline by its last will.
func TestHomeAssistantOverMQTT(t *testing.T) {
	b, pwFile := startBroker(t, "door-secret\n")
	w, err := b.Watch("homeassistant/#", "callbox/door/#")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	wait := func(what string, f func(last map[string][]byte, events []string) bool) {
		t.Helper()
		if err := w.Wait(20*time.Second, what, f); err != nil {
			t.Fatal(err)
		}
	}
	state := func(want string) func(map[string][]byte, []string) bool {
		return func(last map[string][]byte, _ []string) bool {
			var s hass.State
			return json.Unmarshal(last["callbox/door/state"], &s) == nil && s.State == want
		}
	}

	door := start(t, "door", testbox.Options{AutoAnswer: true, Extra: fmt.Sprintf(`[video]
precomputed = 30
[door]
line = "sim"
pulse_s = 1
[mqtt]
broker = %q
user = "door"
password_file = %q
`, b.URL, pwFile)})
	kitchen := start(t, "kitchen", recording)
	pair(t, door, kitchen)

	wait("the door online with its discovery set", func(last map[string][]byte, _ []string) bool {
		n := 0
		for k := range last {
			if strings.HasPrefix(k, "homeassistant/") {
				n++
			}
		}
		return string(last["callbox/door/availability"]) == "online" && n == 7
	})
	if w.Last("homeassistant/button/"+nodeOf(t, door)+"/open_door/config") == nil ||
		w.Last("homeassistant/binary_sensor/"+nodeOf(t, door)+"/door/config") == nil {
		t.Errorf("no open-door button or door strike sensor among %q", w.Topics("homeassistant/"))
	}
	for _, topic := range w.Topics("homeassistant/") {
		if err := hass.CheckDiscovery(topic, w.Last(topic)); err != nil {
			t.Errorf("%s: %v", topic, err)
		}
	}
	wait("idle", state("idle"))

	if err := door.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	wait("the ring event", func(_ map[string][]byte, ev []string) bool {
		return len(ev) == 1 && ev[0] == `{"event_type":"ring","peer":"kitchen"}`
	})
	wait("in call", state("in call"))
	wait("the ring's picture", func(last map[string][]byte, _ []string) bool { return len(last["callbox/door/ring/image"]) > 0 })
	if _, err := jpeg.Decode(bytes.NewReader(w.Last("callbox/door/ring/image"))); err != nil {
		t.Errorf("the ring's picture does not decode: %v", err)
	}
	var list []rings.Ring
	if err := door.Client.Do(t.Context(), "GET", "/v1/rings", nil, &list); err != nil || len(list) != 1 || list[0].Kind != rings.Button || list[0].Bytes == 0 {
		t.Errorf("the door's rings: %+v, %v", list, err)
	}

	// The broker dies mid-call: the call goes on, media flows.
	before := waitState(t, kitchen, "in call", 10*time.Second).Phone.Call.In.VideoFrames
	b.Kill()
	deadline := time.Now().Add(40 * time.Second)
	for {
		st, err := door.Status(t.Context())
		if err == nil && st.MQTT != nil && !st.MQTT.Connected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the door never noticed the broker died: %+v", st.MQTT)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	st := waitState(t, kitchen, "in call", time.Second)
	if st.Phone.Call.In.VideoFrames < before+20 {
		t.Errorf("video stalled while the broker was away: %d → %d frames", before, st.Phone.Call.In.VideoFrames)
	}
	ds := waitState(t, door, "in call", time.Second)
	if ds.MQTT.Error == "" {
		t.Errorf("the door's status does not say why MQTT is down: %+v", ds.MQTT)
	}
	w.Reset() // the broker keeps nothing over a restart: what comes now is new
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	wait("in call again after the broker came back", func(last map[string][]byte, ev []string) bool {
		return state("in call")(last, ev) && string(last["callbox/door/availability"]) == "online"
	})
	// Commands from Home Assistant: open the door (the line pulses),
	// hang up.
	if err := w.Publish("callbox/door/command/open", "PRESS"); err != nil {
		t.Fatal(err)
	}
	// Home Assistant sees the strike released for the pulse (1 s), then
	// locked again (below).
	wait("the door strike released", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/door"]) == "ON"
	})
	deadline = time.Now().Add(10 * time.Second)
	for {
		st, err := door.Status(t.Context())
		if err == nil && st.Door != nil && st.Door.Openings == 1 && st.Door.SimChanges >= 1 && st.Door.Last != nil && strings.Contains(st.Door.Last.Who, "mqtt") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the door command did not pulse the line: %+v", st.Door)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wait("the door strike locked after the pulse", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/door"]) == "OFF"
	})
	if err := w.Publish("callbox/door/command/hangup", "PRESS"); err != nil {
		t.Fatal(err)
	}
	waitState(t, door, "idle", 10*time.Second)
	wait("idle after the hangup command", state("idle"))
	var kr []rings.Ring
	if err := kitchen.Client.Do(t.Context(), "GET", "/v1/rings", nil, &kr); err != nil || len(kr) != 1 || kr[0].Kind != rings.Incoming || kr[0].Peer != "door" {
		t.Errorf("the kitchen's rings: %+v, %v", kr, err)
	}

	door.Kill()
	wait("the last will", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/availability"]) == "offline"
	})
}

// startBroker starts a Mosquitto that takes the user "door" with the
// password door-secret, and writes password to a file for the box.
func startBroker(t *testing.T, password string) (*testbox.Broker, string) {
	t.Helper()
	b, err := testbox.StartBroker(filepath.Join(t.TempDir(), "broker"), "door", "door-secret")
	if errors.Is(err, testbox.ErrNoMosquitto) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	pwFile := filepath.Join(t.TempDir(), "mqtt-password")
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	return b, pwFile
}

// nodeOf is the box's Home Assistant node id: callbox_ and its
// fingerprint without dashes, cut to 20 characters.
func nodeOf(t *testing.T, b *testbox.Box) string {
	t.Helper()
	n := "callbox_" + strings.ReplaceAll(b.FP, "-", "")
	return n[:min(len(n), 28)]
}

// A broker that refuses the login leaves the box working and says so.
func TestMQTTLoginRefusedBoxWorks(t *testing.T) {
	b, pwFile := startBroker(t, "wrong")
	door := start(t, "door", testbox.Options{AutoAnswer: true, Extra: fmt.Sprintf("[mqtt]\nbroker = %q\nuser = \"door\"\npassword_file = %q\n", b.URL, pwFile)})
	kitchen := start(t, "kitchen", testbox.Options{AutoAnswer: true})
	pair(t, door, kitchen)
	deadline := time.Now().Add(20 * time.Second)
	var st control.Status
	var err error
	for {
		st, err = door.Status(t.Context())
		if err == nil && st.MQTT != nil && strings.Contains(strings.ToLower(st.MQTT.Error), "not authorized") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never said the login was refused: %+v", st.MQTT)
		}
		time.Sleep(50 * time.Millisecond)
	}
	door.Press(t.Context())
	waitState(t, kitchen, "in call", 10*time.Second)
	waitState(t, door, "in call", 10*time.Second)
}
