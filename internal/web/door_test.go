package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
)

// doorBackend is a daemon with a door opener.
type doorBackend struct {
	*fakeBackend
	mu    sync.Mutex
	asked []string // "local from ADDR" or "remote from ADDR"
	err   error
}

func (d *doorBackend) OpenDoor(ctx context.Context, remote bool, from string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	which := "local"
	if remote {
		which = "remote"
	}
	d.asked = append(d.asked, which+" from "+from)
	return d.err
}

func (d *doorBackend) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.asked
	d.asked = nil
	return a
}

// The door buttons: this box's door and the peer's, refusals with their
// reason, and the same protections as the other buttons (the token
// beyond loopback, no cross-site POST).
func TestOpenDoor(t *testing.T) {
	plain, _ := newServer(t, Config{})
	if w := get(t, plain, "POST", "/api/door/open", nil); w.Code != 404 {
		t.Fatalf("a backend without a door opener: %d, want 404", w.Code)
	}
	d := &doorBackend{fakeBackend: &fakeBackend{}}
	s, err := New(Config{Listen: "0.0.0.0:8080", Token: goodToken}, d)
	if err != nil {
		t.Fatal(err)
	}
	ctJSON := []string{"Content-Type", "application/json"}
	for _, c := range []struct {
		body  string
		hdr   []string
		err   error
		want  int
		asked string
	}{
		{"", nil, nil, 200, "local from 127.0.0.1:5000"},
		{`{"remote":true}`, ctJSON, nil, 200, "remote from 127.0.0.1:5000"},
		{"{}", ctJSON, errors.New("too soon: the door opens again in 4s"), 409, "local from 127.0.0.1:5000"},
		{`{"remote":`, ctJSON, nil, 400, ""},
		{"", []string{"Sec-Fetch-Site", "cross-site"}, nil, 403, ""},
		{"", []string{"Origin", "http://evil.example"}, nil, 403, ""},
	} {
		d.err = c.err
		w := get(t, s, "POST", "/api/door/open", strings.NewReader(c.body), c.hdr...)
		if w.Code != c.want {
			t.Errorf("%q %v: %d, want %d: %s", c.body, c.hdr, w.Code, c.want, w.Body)
		}
		if got := d.take(); (c.asked == "") != (len(got) == 0) || c.asked != "" && (len(got) != 1 || got[0] != c.asked) {
			t.Errorf("%q %v: backend asked %q, want %q", c.body, c.hdr, got, c.asked)
		}
		if c.want == 409 {
			var e control.Error
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || !strings.Contains(e.Error, "too soon") {
				t.Errorf("a refusal's answer %q does not say why", w.Body)
			}
		}
	}
	// From the LAN: the token, like every other request.
	r := httptest.NewRequest("POST", "http://192.0.2.2:8080/api/door/open", nil)
	r.RemoteAddr = "192.0.2.7:5000"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != 401 || len(d.take()) != 0 {
		t.Fatalf("from the LAN without the token: %d", w.Code)
	}
	r = httptest.NewRequest("POST", "http://192.0.2.2:8080/api/door/open", nil)
	r.RemoteAddr = "192.0.2.7:5000"
	r.SetBasicAuth("anyone", goodToken)
	w = httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if got := d.take(); w.Code != 200 || len(got) != 1 || got[0] != "local from 192.0.2.7:5000" {
		t.Fatalf("from the LAN with the token: %d, asked %q", w.Code, got)
	}

	for path, want := range map[string]string{"/": `id="door"`, "/app.js": "api/door/open"} {
		if body := get(t, s, "GET", path, nil).Body.String(); !strings.Contains(body, want) {
			t.Errorf("%s lacks %q", path, want)
		}
	}
}

func TestDoorMetrics(t *testing.T) {
	s, f := newServer(t, Config{})
	text := get(t, s, "GET", "/metrics", nil).Body.String()
	if strings.Contains(text, "callbox_door") || strings.Contains(text, `device="door"`) {
		t.Fatalf("door metrics without a door opener:\n%s", text)
	}
	f.mu.Lock()
	f.st.Door = &control.Door{Line: "GPIO22", State: "opening", Active: true, Openings: 3, Refusals: 2,
		Last: &control.DoorEvent{At: time.Unix(1700000000, 500e6), Who: "peer hall"}}
	f.mu.Unlock()
	text = get(t, s, "GET", "/metrics", nil).Body.String()
	for _, want := range []string{
		`callbox_device_up{device="door"} 1`,
		"callbox_door_active 1",
		"callbox_door_openings_total 3",
		"callbox_door_refusals_total 2",
		"callbox_door_last_opening_timestamp_seconds 1.7000000005e+09",
		"# TYPE callbox_door_openings_total counter",
	} {
		if !strings.Contains(text, "\n"+want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The device_up family stays in one piece.
	if i, j := strings.Index(text, `device_up{device="gpio"}`), strings.Index(text, `device_up{device="door"}`); j < i || strings.Contains(text[i:j], "# TYPE") {
		t.Error("the door's device_up sample is not with the others")
	}
}
