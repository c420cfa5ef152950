package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/rings"
	"github.com/callbox/callbox/stream/call"
)

// fakeBackend is a daemon as the web server sees it.
type fakeBackend struct {
	self, peer Latest

	mu      sync.Mutex
	st      control.Status
	actions []string
	err     error // what the next action returns
}

func (f *fakeBackend) Status() control.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeBackend) Latest(which Stream) ([]byte, uint64, <-chan struct{}) {
	if which == Peer {
		return f.peer.Get()
	}
	return f.self.Get()
}

func (f *fakeBackend) act(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, name)
	return f.err
}

func (f *fakeBackend) Call(ctx context.Context, target string) error {
	if target != "" {
		return f.act("call " + target)
	}
	return f.act("call")
}
func (f *fakeBackend) Hangup(ctx context.Context) error { return f.act("hangup") }
func (f *fakeBackend) Press(ctx context.Context, long bool) error {
	if long {
		return f.act("long press")
	}
	return f.act("press")
}

func (f *fakeBackend) done() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.actions...)
}

func newServer(t *testing.T, cfg Config) (*Server, *fakeBackend) {
	t.Helper()
	f := &fakeBackend{st: control.Status{Name: "door", Version: "test"}}
	s, err := New(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

const goodToken = "0123456789abcdef-secret"

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"zero value: off", Config{}, ""},
		{"default", Config{Listen: DefaultListen}, ""},
		{"loopback v6", Config{Listen: "[::1]:8080"}, ""},
		{"localhost", Config{Listen: "localhost:8080"}, ""},
		{"any port", Config{Listen: "127.0.0.1:0"}, ""},
		{"LAN without token", Config{Listen: "0.0.0.0:8080"}, "web.token"},
		{"all v6 without token", Config{Listen: "[::]:8080"}, "web.token"},
		{"empty host without token", Config{Listen: ":8080"}, "web.token"},
		{"LAN address without token", Config{Listen: "192.168.1.20:8080"}, "web.token"},
		{"a name without token", Config{Listen: "callbox.lan:8080"}, "web.token"},
		{"LAN with token", Config{Listen: "0.0.0.0:8080", Token: goodToken}, ""},
		{"LAN with short token", Config{Listen: "0.0.0.0:8080", Token: "short"}, "web.token"},
		{"loopback with short token", Config{Listen: DefaultListen, Token: "123456789012345"}, "web.token"},
		{"token with a space", Config{Listen: DefaultListen, Token: "0123456789 abcdef"}, "web.token"},
		{"not host:port", Config{Listen: "8080"}, "web.listen"},
		{"port out of range", Config{Listen: "127.0.0.1:70000"}, "web.listen"},
		{"max streams negative", Config{MaxStreams: -1}, "web.max_streams"},
		{"max streams too many", Config{MaxStreams: 65}, "web.max_streams"},
		{"max streams", Config{MaxStreams: 64}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("want an error naming %s, got none", c.wantErr)
			case c.wantErr != "" && !strings.HasPrefix(err.Error(), c.wantErr):
				t.Fatalf("error %q does not name %s", err, c.wantErr)
			}
			if _, nerr := New(c.cfg, &fakeBackend{}); (nerr == nil) != (err == nil) {
				t.Fatalf("New and Validate disagree: %v vs %v", nerr, err)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	withToken, _ := newServer(t, Config{Listen: "0.0.0.0:8080", Token: goodToken})
	noToken, _ := newServer(t, Config{Listen: DefaultListen})
	cases := []struct {
		name   string
		s      *Server
		remote string
		url    string
		setup  func(r *http.Request)
		want   int
	}{
		{"loopback, no token needed", noToken, "127.0.0.1:5000", "http://127.0.0.1:8080/api/status", nil, 200},
		{"loopback v6", noToken, "[::1]:5000", "http://[::1]:8080/api/status", nil, 200},
		{"loopback by name", noToken, "127.0.0.1:5000", "http://localhost:8080/api/status", nil, 200},
		{"loopback on a LAN server", withToken, "127.0.0.1:5000", "http://127.0.0.1:8080/api/status", nil, 200},
		{"loopback, foreign Host (DNS rebinding)", noToken, "127.0.0.1:5000", "http://evil.example:8080/api/status", nil, 401},
		{"LAN, no token", withToken, "192.0.2.7:5000", "http://192.0.2.2:8080/api/status", nil, 401},
		{"LAN, no token, stream", withToken, "192.0.2.7:5000", "http://192.0.2.2:8080/peer.mjpg", nil, 401},
		{"LAN, no token, page", withToken, "192.0.2.7:5000", "http://192.0.2.2:8080/", nil, 401},
		{"LAN, wrong bearer", withToken, "192.0.2.7:5000", "http://192.0.2.2:8080/api/status",
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+goodToken+"x") }, 401},
		{"LAN, wrong basic", withToken, "192.0.2.7:5000", "http://192.0.2.2:8080/api/status",
			func(r *http.Request) { r.SetBasicAuth("callbox", goodToken[:len(goodToken)-1]) }, 401},
		{"LAN, wrong query", withToken, "192.0.2.7:5000", "http://192.0.2.2:8080/api/status?token=nope", nil, 401},
		{"LAN, empty bearer", withToken, "192.0.2.7:5000", "http://192.0.2.2:8080/api/status",
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, 401},
		{"LAN, right bearer", withToken, "192.0.2.7:5000", "http://192.0.2.2:8080/api/status",
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+goodToken) }, 200},
		{"LAN, right basic, any user", withToken, "192.0.2.7:5000", "http://192.0.2.2:8080/api/status",
			func(r *http.Request) { r.SetBasicAuth("anyone", goodToken) }, 200},
		{"LAN, right query", withToken, "192.0.2.7:5000", "http://192.0.2.2:8080/api/status?token=" + goodToken, nil, 200},
		{"LAN v6, right bearer", withToken, "[2001:db8::7]:5000", "http://[2001:db8::2]:8080/api/status",
			func(r *http.Request) { r.Header.Set("Authorization", "bearer "+goodToken) }, 200},
		{"LAN to a loopback-only server, any token", noToken, "192.0.2.7:5000", "http://192.0.2.2:8080/api/status",
			func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+goodToken) }, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", c.url, nil)
			r.RemoteAddr = c.remote
			if c.setup != nil {
				c.setup(r)
			}
			w := httptest.NewRecorder()
			c.s.Handler().ServeHTTP(w, r)
			if w.Code != c.want {
				t.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body)
			}
			if c.want == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Fatalf("401 without a Basic challenge: %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
	if n := withToken.unauthorized.Load(); n != 7 {
		t.Errorf("unauthorized counter %d, want 7", n)
	}
}

// get serves one request from loopback through the whole handler.
func get(t *testing.T, s *Server, method, path string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "http://127.0.0.1:8080"+path, body)
	r.RemoteAddr = "127.0.0.1:5000"
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

func TestPage(t *testing.T) {
	s, _ := newServer(t, Config{})
	cases := []struct {
		path, ctype string
		contains    []string
	}{
		{"/", "text/html", []string{`src="app.js"`, `data-stream="peer.mjpg"`, `data-stream="self.mjpg"`, `id="call"`, `id="hangup"`, `id="pair"`, `id="state"`, `id="peers"`}},
		{"/app.js", "javascript", []string{"api/status", "api/call", "api/hangup", "api/press", "p.summary"}},
		{"/style.css", "text/css", []string{".view"}},
	}
	for _, c := range cases {
		w := get(t, s, "GET", c.path, nil)
		if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Type"), c.ctype) {
			t.Fatalf("%s: %d %q", c.path, w.Code, w.Header().Get("Content-Type"))
		}
		for _, want := range c.contains {
			if !strings.Contains(w.Body.String(), want) {
				t.Errorf("%s lacks %q", c.path, want)
			}
		}
	}
	if w := get(t, s, "GET", "/nothing", nil); w.Code != 404 {
		t.Errorf("/nothing: %d, want 404", w.Code)
	}
	if w := get(t, s, "POST", "/", nil); w.Code != 405 {
		t.Errorf("POST /: %d, want 405", w.Code)
	}
}

func TestStatusJSON(t *testing.T) {
	s, f := newServer(t, Config{})
	f.st.Phone.State = call.InCall
	f.st.Camera = "sim: ok"
	f.st.Peers = []control.PeerSeen{{Name: "hall", Summary: "seen 2 min ago by discovery at 10.0.0.1:7420",
		Last: &control.Sighting{By: control.SeenByDiscovery, AgoS: 130, Address: "10.0.0.1:7420"}}}
	w := get(t, s, "GET", "/api/status", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", w.Code, w.Header().Get("Content-Type"))
	}
	var got control.Status
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "door" || got.Phone.State != call.InCall || got.Camera != "sim: ok" {
		t.Fatalf("got %+v", got)
	}
	if len(got.Peers) != 1 || got.Peers[0].Summary != f.st.Peers[0].Summary || got.Peers[0].Last == nil || got.Peers[0].Last.AgoS != 130 {
		t.Errorf("peers: %+v", got.Peers)
	}
}

func TestActions(t *testing.T) {
	s, f := newServer(t, Config{})
	ctJSON := []string{"Content-Type", "application/json"}
	for _, c := range []struct {
		path, body string
		err        error
		hdr        []string
		want       int
		action     string
	}{
		{"/api/call", "", nil, nil, 200, "call"},
		{"/api/call", "{}", call.ErrBusy, ctJSON, 409, "call"},
		{"/api/call", `{"peer":"house"}`, nil, ctJSON, 200, "call house"},
		{"/api/call", `{"peer":`, nil, ctJSON, 400, ""},
		{"/api/hangup", "", call.ErrNotInCall, nil, 409, "hangup"},
		{"/api/hangup", "", nil, []string{"Sec-Fetch-Site", "same-origin"}, 200, "hangup"},
		{"/api/press", "", nil, nil, 200, "press"},
		{"/api/press", `{"long":true}`, nil, ctJSON, 200, "long press"},
		{"/api/press", `{"long":`, nil, ctJSON, 400, ""},
		{"/api/call", "", errors.New("no paired peer"), nil, 400, "call"},
		// A page on another site cannot press the buttons through the
		// user's browser.
		{"/api/hangup", "", nil, []string{"Sec-Fetch-Site", "cross-site"}, 403, ""},
		{"/api/call", "", nil, []string{"Origin", "http://evil.example"}, 403, ""},
	} {
		f.mu.Lock()
		f.err, f.actions = c.err, nil
		f.mu.Unlock()
		w := get(t, s, "POST", c.path, strings.NewReader(c.body), c.hdr...)
		if w.Code != c.want {
			t.Errorf("%s %q %v: %d, want %d: %s", c.path, c.body, c.hdr, w.Code, c.want, w.Body)
		}
		got := f.done()
		if (c.action == "" && len(got) != 0) || (c.action != "" && (len(got) != 1 || got[0] != c.action)) {
			t.Errorf("%s %q %v: backend did %q, want %q", c.path, c.body, c.hdr, got, c.action)
		}
		if w.Code != 200 && w.Code != 403 {
			var e control.Error
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Errorf("%s: error answer %q is not a control.Error", c.path, w.Body)
			}
		}
	}
	if w := get(t, s, "GET", "/api/call", nil); w.Code != 405 {
		t.Errorf("GET /api/call: %d, want 405", w.Code)
	}
}

func TestSnapshot(t *testing.T) {
	s, f := newServer(t, Config{})
	if w := get(t, s, "GET", "/snapshot/peer.jpg", nil); w.Code != 503 {
		t.Fatalf("no frame: %d, want 503", w.Code)
	}
	img := testJPEG(t, 3)
	f.peer.Put(img)
	w := get(t, s, "GET", "/snapshot/peer.jpg", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "image/jpeg" || !bytesEqual(w.Body.Bytes(), img) {
		t.Fatalf("%d %q, %d bytes", w.Code, w.Header().Get("Content-Type"), w.Body.Len())
	}
	if w := get(t, s, "GET", "/snapshot/self.jpg", nil); w.Code != 503 {
		t.Fatalf("self has no frame: %d, want 503", w.Code)
	}
}

func TestLatest(t *testing.T) {
	var l Latest
	jpeg, v, ch := l.Get()
	if jpeg != nil || v != 0 {
		t.Fatalf("empty: %v %d", jpeg, v)
	}
	select {
	case <-ch:
		t.Fatal("changed before any Put")
	default:
	}
	l.Put([]byte{1})
	select {
	case <-ch:
	default:
		t.Fatal("Put did not close the channel")
	}
	l.Put([]byte{2})
	jpeg, v, ch2 := l.Get()
	if string(jpeg) != "\x02" || v != 2 {
		t.Fatalf("got %v %d", jpeg, v)
	}
	if ch2 == ch {
		t.Fatal("the same channel after a Put")
	}
	l.Put(nil)
	if jpeg, v, _ := l.Get(); jpeg != nil || v != 3 {
		t.Fatalf("after clearing: %v %d", jpeg, v)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// Shutdown ends a stream that waits for a frame, and Serve returns nil.
func TestShutdownEndsStreams(t *testing.T) {
	s, f := newServer(t, Config{Listen: "127.0.0.1:0"})
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	f.self.Put(testJPEG(t, 1))
	resp, err := http.Get("http://" + ln.Addr().String() + "/self.mjpg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mr := partReader(t, resp)
	if _, err := mr.NextPart(); err != nil { // the first frame, then it waits
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Logf("stream ended with %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
}

// watchingBackend is a daemon that opens its camera while someone
// watches: Watch counts the watchers, and a self watcher makes the
// "camera" deliver a frame.
type watchingBackend struct {
	*fakeBackend
	mu       sync.Mutex
	watching map[Stream]int
	frame    []byte
}

func (b *watchingBackend) Watch(which Stream) func() {
	b.mu.Lock()
	b.watching[which]++
	b.mu.Unlock()
	if which == Self {
		go b.self.Put(b.frame) // the camera opens and delivers
	}
	return sync.OnceFunc(func() {
		b.mu.Lock()
		b.watching[which]--
		b.mu.Unlock()
	})
}

func (b *watchingBackend) count(which Stream) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.watching[which]
}

// A stream client is a watcher while it is connected; a self snapshot
// with no frame (the camera closed) watches until the camera delivers.
func TestWatchers(t *testing.T) {
	b := &watchingBackend{fakeBackend: &fakeBackend{}, watching: map[Stream]int{}, frame: testJPEG(t, 1)}
	s, err := New(Config{}, b)
	if err != nil {
		t.Fatal(err)
	}
	w := get(t, s, "GET", "/snapshot/self.jpg", nil)
	if w.Code != 200 || !bytesEqual(w.Body.Bytes(), b.frame) {
		t.Fatalf("self snapshot with the camera closed: %d, %d bytes; want the frame it opened the camera for", w.Code, w.Body.Len())
	}
	if n := b.count(Self); n != 0 {
		t.Errorf("%d self watchers after the snapshot", n)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/self.mjpg")
	if err != nil {
		t.Fatal(err)
	}
	if n := b.count(Self); n != 1 {
		t.Errorf("%d self watchers while a stream client is connected, want 1", n)
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for b.count(Self) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream client left; its watch did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ringBackend is a backend that keeps who rang.
type ringBackend struct {
	*fakeBackend
	list []rings.Ring
}

func (r ringBackend) Rings() ([]rings.Ring, error) { return r.list, nil }
func (r ringBackend) RingPicture(id string) ([]byte, error) {
	for _, x := range r.list {
		if x.ID == id && x.Bytes > 0 {
			return []byte("jpeg of " + id), nil
		}
	}
	return nil, errors.New("no ring " + id)
}

func TestRings(t *testing.T) {
	b := ringBackend{fakeBackend: &fakeBackend{}, list: []rings.Ring{
		{ID: "20261203T180000.000000000Z-ring", Kind: rings.Button, Peer: "house", Bytes: 7},
		{ID: "20261203T170000.000000000Z-incoming", Kind: rings.Incoming, Peer: "door"},
	}}
	s, err := New(Config{Listen: "127.0.0.1:0"}, b)
	if err != nil {
		t.Fatal(err)
	}
	w := get(t, s, "GET", "/api/rings", nil)
	var list []rings.Ring
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list) != 2 || list[0].Peer != "house" {
		t.Fatalf("/api/rings: %d %s", w.Code, w.Body)
	}
	w = get(t, s, "GET", "/rings/20261203T180000.000000000Z-ring.jpg", nil)
	if w.Code != 200 || w.Body.String() != "jpeg of 20261203T180000.000000000Z-ring" || w.Header().Get("Content-Type") != "image/jpeg" {
		t.Errorf("picture: %d %q", w.Code, w.Body)
	}
	for _, p := range []string{"/rings/20261203T170000.000000000Z-incoming.jpg", "/rings/nothing.jpg"} {
		if w := get(t, s, "GET", p, nil); w.Code != 404 {
			t.Errorf("%s: %d, want 404", p, w.Code)
		}
	}
	// Without a Ringer there is no list.
	plain, _ := newServer(t, Config{})
	if w := get(t, plain, "GET", "/api/rings", nil); w.Code != 404 {
		t.Errorf("/api/rings without rings: %d", w.Code)
	}
}
