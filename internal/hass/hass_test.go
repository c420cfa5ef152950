package hass

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testbox"
)

func broker(t *testing.T) *testbox.Broker {
	t.Helper()
	b, err := testbox.StartBroker(filepath.Join(t.TempDir(), "broker"), "box", "secret-pass")
	if errors.Is(err, testbox.ErrNoMosquitto) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("broker log:\n%s", b.Log())
		}
	})
	return b
}

func watch(t *testing.T, b *testbox.Broker, topics ...string) *watcher {
	t.Helper()
	w, err := b.Watch(topics...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return &watcher{w}
}

type watcher struct{ *testbox.Watcher }

func (w *watcher) wait(t *testing.T, what string, f func(last map[string][]byte, events []string) bool) {
	t.Helper()
	if err := w.Wait(15*time.Second, what, f); err != nil {
		t.Fatal(err)
	}
}

func (w *watcher) publish(t *testing.T, topic, payload string) {
	t.Helper()
	if err := w.Publish(topic, payload); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

type fakeHandler struct {
	mu   sync.Mutex
	did  []string
	fail error
}

func (f *fakeHandler) rec(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.did = append(f.did, s)
	return f.fail
}
func (f *fakeHandler) Call(_ context.Context, target string) error { return f.rec("call " + target) }
func (f *fakeHandler) Hangup(context.Context) error                { return f.rec("hangup") }
func (f *fakeHandler) OpenDoor(_ context.Context, who string) error {
	return f.rec("open by " + who)
}
func (f *fakeHandler) done() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.did...)
}

func config(b *testbox.Broker) Config {
	return Config{
		Broker: b.URL, ClientID: "callbox-door", User: b.User, Password: b.Pass,
		TopicPrefix: "callbox/door", DiscoveryPrefix: "homeassistant",
		Name: "door", Fingerprint: "ab3d-efgh-ijkl", Version: "test", Door: true,
	}
}

func run(t *testing.T, cfg Config, h Handler) (*Client, context.CancelFunc) {
	t.Helper()
	c, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return c, stop
}

func testJPEG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	img.Set(1, 1, color.White)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The discovery set follows Home Assistant's documented schema per
// platform; state, events, the picture and commands flow; a clean stop
// leaves "offline".
func TestDiscoveryStateEventsCommands(t *testing.T) {
	b := broker(t)
	w := watch(t, b, "homeassistant/#", "callbox/door/#")
	h := &fakeHandler{}
	c, stop := run(t, config(b), h)

	w.wait(t, "online", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/availability"]) == "online"
	})
	w.wait(t, "seven discovery configs", func(last map[string][]byte, _ []string) bool {
		n := 0
		for k := range last {
			if strings.HasPrefix(k, "homeassistant/") {
				n++
			}
		}
		return n == 7
	})
	for _, topic := range w.Topics("homeassistant/") {
		if err := CheckDiscovery(topic, w.Last(topic)); err != nil {
			t.Errorf("%s: %v", topic, err)
		}
	}
	if st := c.Status(); !st.Connected || st.Error != "" {
		t.Errorf("status %+v, want connected", st)
	}
	// The door strike: released while a pulse is under way.
	w.wait(t, "door strike locked", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/door"]) == "OFF"
	})
	c.SetDoor(true)
	w.wait(t, "door strike released", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/door"]) == "ON"
	})
	c.SetDoor(false)
	w.wait(t, "door strike locked again", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/door"]) == "OFF"
	})

	c.SetState(State{State: "calling", Peer: "house"})
	w.wait(t, "state calling", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/state"]) == `{"state":"calling","peer":"house"}`
	})
	c.Ring("ring", "house")
	w.wait(t, "ring event", func(_ map[string][]byte, ev []string) bool {
		return len(ev) == 1 && ev[0] == `{"event_type":"ring","peer":"house"}`
	})
	pic := testJPEG(t)
	c.SetImage(pic)
	w.wait(t, "picture", func(last map[string][]byte, _ []string) bool {
		return len(last["callbox/door/ring/image"]) > 0
	})
	if _, err := jpeg.Decode(bytes.NewReader(w.Last("callbox/door/ring/image"))); err != nil {
		t.Errorf("the picture does not decode as JPEG: %v", err)
	}

	w.publish(t, "callbox/door/command/call", "kitchen")
	w.publish(t, "callbox/door/command/call", "PRESS")
	w.publish(t, "callbox/door/command/hangup", "PRESS")
	w.publish(t, "callbox/door/command/open", "PRESS")
	w.publish(t, "callbox/door/command/open", strings.Repeat("x", 100)) // ignored
	deadline := time.Now().Add(10 * time.Second)
	want := []string{"call kitchen", "call ", "hangup", "open by mqtt"}
	for {
		got := h.done()
		if len(got) == len(want) {
			for _, x := range want {
				found := false
				for _, g := range got {
					found = found || g == x
				}
				if !found {
					t.Errorf("commands done %q, want %q", got, want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commands done %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}

	stop()
	w.wait(t, "offline after the stop", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/availability"]) == "offline"
	})
}

// A broker that is down, goes away or refuses the login never blocks the
// box; the client says why, and reconnects and republishes when the
// broker comes back.
func TestBrokerDownRefusedAndBack(t *testing.T) {
	b := broker(t)
	b.Stop()
	c, _ := run(t, config(b), &fakeHandler{})
	// Nothing blocks while the broker is away.
	for i := range 100 {
		c.SetState(State{State: "in call", Peer: "kitchen"})
		c.Ring("incoming", "kitchen")
		c.SetImage([]byte{byte(i)})
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Status().Error == "not connected yet" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := c.Status(); st.Connected || !strings.Contains(st.Error, "connect") {
		t.Fatalf("status with the broker down: %+v", st)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	w := watch(t, b, "callbox/door/#")
	// The retry waits up to ~2 s at this point of its schedule.
	w.wait(t, "the state published after the broker came back", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/state"]) == `{"state":"in call","peer":"kitchen"}` &&
			string(last["callbox/door/availability"]) == "online"
	})
	if st := c.Status(); !st.Connected || st.Dropped == 0 {
		t.Errorf("status %+v: want connected and the events of the outage dropped", st)
	}

	b.Kill()
	deadline = time.Now().Add(45 * time.Second) // keepalive 30 s is the worst case; a kill is seen at once
	for c.Status().Connected && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := c.Status(); st.Connected {
		t.Fatalf("still connected after the broker was killed: %+v", st)
	}
	c.SetState(State{State: "idle"})
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	w.wait(t, "idle published after the second outage", func(last map[string][]byte, _ []string) bool {
		return string(last["callbox/door/state"]) == `{"state":"idle"}`
	})

	// Wrong password: refused, said so, and nothing blocks.
	bad := config(b)
	bad.ClientID, bad.Password = "callbox-other", "wrong"
	c2, _ := run(t, bad, &fakeHandler{})
	c2.Ring("ring", "x")
	deadline = time.Now().Add(10 * time.Second)
	for c2.Status().Error == "not connected yet" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := c2.Status(); st.Connected || !strings.Contains(strings.ToLower(st.Error), "not authorized") {
		t.Errorf("status with a wrong password: %+v, want not authorized", st)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Broker: "tcp://h:1883", ClientID: "c", TopicPrefix: "callbox/d", DiscoveryPrefix: "homeassistant", Fingerprint: "f"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mod := range []func(*Config){
		func(c *Config) { c.Broker = "mqtt://h:1883" },
		func(c *Config) { c.Broker = "tcp://h" },
		func(c *Config) { c.CAFile = "/ca.pem" },
		func(c *Config) { c.TopicPrefix = "callbox/#" },
		func(c *Config) { c.TopicPrefix = "/callbox" },
		func(c *Config) { c.DiscoveryPrefix = "" },
		func(c *Config) { c.ClientID = "" },
	} {
		c := good
		mod(&c)
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// The checker itself refuses what Home Assistant would.
func TestCheckDiscoveryRefuses(t *testing.T) {
	dev := `"device":{"identifiers":["x"],"name":"door"},"availability_topic":"a"`
	for _, c := range []struct{ topic, payload string }{
		{"homeassistant/event/n/o/config", `{"name":"n","unique_id":"u",` + dev + `,"state_topic":"s"}`},
		{"homeassistant/event/n/o/config", `{"name":"n","unique_id":"u",` + dev + `,"state_topic":"s","event_types":[]}`},
		{"homeassistant/sensor/n/o/config", `{"name":"n","unique_id":"u",` + dev + `,"state_topic":"s","device_class":"enum"}`},
		{"homeassistant/image/n/o/config", `{"name":"n","unique_id":"u",` + dev + `}`},
		{"homeassistant/button/n/o/config", `{"name":"n",` + dev + `,"command_topic":"c"}`},
		{"homeassistant/button/n/o/config", `{"name":"n","unique_id":"u","device":{"name":"d"},"command_topic":"c"}`},
		{"homeassistant/lock/n/o/config", `{}`},
		{"homeassistant/button/n/config", `{}`},
	} {
		if err := CheckDiscovery(c.topic, []byte(c.payload)); err == nil {
			t.Errorf("%s %s: accepted", c.topic, c.payload)
		}
	}
}
