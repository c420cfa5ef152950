// Package web is the daemon's HTTP face for people and other programs: a
// page with both videos, the call state and buttons; the videos as MJPEG
// streams (multipart/x-mixed-replace, so browsers, VLC, ffmpeg and
// home-automation systems can use them) and snapshots; the status as JSON;
// and /metrics in Prometheus text format.
//
// It listens on loopback by default. Requests from any other address need
// the configured token, and a server that listens beyond loopback without
// one does not start (Config.Validate).
package web

import (
	"context"
	_ "embed" // the page
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/rings"
)

// DefaultListen is where the daemon serves the page unless configured.
const DefaultListen = "127.0.0.1:8080"

// DefaultMaxStreams is how many MJPEG stream clients are served at once
// unless configured.
const DefaultMaxStreams = 8

// MinTokenLen is the shortest token accepted.
const MinTokenLen = 16

// Timeouts of the server: a request's headers must arrive within
// headerTimeout; an answer (or one stream part) must be taken by the client
// within writeTimeout, else the connection is dropped.
const (
	headerTimeout = 5 * time.Second
	writeTimeout  = 10 * time.Second
	idleTimeout   = 60 * time.Second
)

// Config shapes the web server. Its zero value is valid and serves
// nothing (Listen empty: off); the daemon's default is DefaultListen.
type Config struct {
	// Listen is host:port; empty turns the server off. A host that is not
	// a loopback address ("0.0.0.0", a LAN address, a name other than
	// localhost) needs Token.
	Listen string
	// Token is the password for requests from non-loopback addresses: the
	// Basic-auth password (any user name), an "Authorization: Bearer"
	// token, or a ?token= query parameter (for players that take only a
	// URL). At least MinTokenLen characters, printable ASCII without
	// spaces.
	Token string
	// MaxStreams caps the MJPEG clients served at once (both streams
	// together); more get 503. 0 means DefaultMaxStreams; at most 64.
	MaxStreams int
	// Logger receives state changes and faults; nil discards them.
	Logger *slog.Logger
}

// Validate names the first field out of range, by its key in the daemon's
// config file ([web] section).
func (c Config) Validate() error {
	for _, r := range c.Token {
		if r <= ' ' || r > '~' {
			return errors.New("web.token: only printable ASCII without spaces")
		}
	}
	if c.Token != "" && len(c.Token) < MinTokenLen {
		return fmt.Errorf("web.token: %d characters, want at least %d", len(c.Token), MinTokenLen)
	}
	if c.MaxStreams < 0 || c.MaxStreams > 64 {
		return fmt.Errorf("web.max_streams: %d out of range 1..64 (0: %d)", c.MaxStreams, DefaultMaxStreams)
	}
	if c.Listen == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("web.listen: %q is not host:port: %w", c.Listen, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("web.listen: port %q out of range 0..65535", port)
	}
	if !loopbackHost(host) && c.Token == "" {
		return fmt.Errorf("web.token: must be set (at least %d characters) to listen on %s, which is not loopback", MinTokenLen, c.Listen)
	}
	return nil
}

// loopbackHost tells whether a listen or Host-header host names this
// machine only. Other names are not resolved: they count as reachable.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Stream names one of the two videos.
type Stream string

// The two videos.
const (
	Self Stream = "self" // this box's camera
	Peer Stream = "peer" // what the peer sends, during a call
)

// Backend is what the daemon gives the web server. All methods may be
// called from many goroutines at once.
type Backend interface {
	// Status is what `callbox status --json` prints. It must not block
	// for long: /api/status and /metrics call it on every request.
	Status() control.Status
	// Latest returns the newest JPEG of a stream (nil: none yet), a
	// version that grows with every new frame, and a channel closed when a
	// newer frame arrives. The JPEG is not modified after it is handed
	// out. Latest (the type) implements this for one stream.
	Latest(which Stream) (jpeg []byte, version uint64, changed <-chan struct{})
	// Call calls a paired peer or a group by name ("": the default one);
	// Hangup ends the call; Press is the
	// button (long: the long press, which opens the pairing window). They
	// return once the request is taken, like the control API's.
	Call(ctx context.Context, target string) error
	Hangup(ctx context.Context) error
	Press(ctx context.Context, long bool) error
}

// Watcher is a Backend that wants to know who watches a stream: a
// daemon opens its camera only while a call or someone needs it. The
// server calls Watch for every stream client, and for a self snapshot
// while it waits for a frame; it calls done (once) when that ends.
// Watch must not block.
type Watcher interface {
	Watch(which Stream) (done func())
}

// Ringer is a Backend that keeps who rang (internal/rings): the page
// lists them with their pictures (/api/rings, /rings/ID.jpg).
type Ringer interface {
	Rings() ([]rings.Ring, error)
	RingPicture(id string) ([]byte, error)
}

// snapshotWait bounds how long a self snapshot waits for the camera to
// deliver when it has no frame (it was closed).
const snapshotWait = 3 * time.Second

// The page: three small files, served from memory (http.FileServer would
// cost the arm64 binary some 50 KB for ranges, directory listings and MIME
// tables this page does not need).
var (
	//go:embed static/index.html
	indexHTML string
	//go:embed static/app.js
	appJS string
	//go:embed static/style.css
	styleCSS string
)

// Server serves the page, the streams, the API and /metrics. Serve and
// Shutdown may be called from different goroutines.
type Server struct {
	cfg   Config
	b     Backend
	log   *slog.Logger
	token []byte
	srv   *http.Server
	h     http.Handler

	streams  chan struct{} // one token per stream client served; capacity MaxStreams
	quit     chan struct{} // closed by Shutdown: streams end
	quitOnce sync.Once

	// figures for /metrics
	refused      atomic.Uint64 // stream clients turned away (limit)
	unauthorized atomic.Uint64 // requests refused for want of the token
	sent, skip   [2]atomic.Uint64
}

// New checks cfg and returns a server that has not started.
func New(cfg Config, b Backend) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("web: no backend")
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg,
		b:       b,
		log:     log.With("component", "web"),
		token:   []byte(cfg.Token),
		streams: make(chan struct{}, cfg.MaxStreams),
		quit:    make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", s.plain(file("text/html; charset=utf-8", indexHTML)))
	mux.Handle("GET /app.js", s.plain(file("text/javascript; charset=utf-8", appJS)))
	mux.Handle("GET /style.css", s.plain(file("text/css; charset=utf-8", styleCSS)))
	mux.HandleFunc("GET /self.mjpg", s.stream(Self))
	mux.HandleFunc("GET /peer.mjpg", s.stream(Peer))
	mux.Handle("GET /snapshot/self.jpg", s.plain(s.snapshot(Self)))
	mux.Handle("GET /snapshot/peer.jpg", s.plain(s.snapshot(Peer)))
	mux.Handle("GET /api/status", s.plain(http.HandlerFunc(s.status)))
	if rb, ok := b.(Ringer); ok {
		mux.Handle("GET /api/rings", s.plain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			list, err := rb.Rings()
			if err != nil {
				writeJSON(w, http.StatusInternalServerError, control.Error{Error: err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, list)
		})))
		mux.Handle("GET /rings/{id}", s.plain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			jpeg, err := rb.RingPicture(strings.TrimSuffix(r.PathValue("id"), ".jpg"))
			if err != nil {
				http.Error(w, "callbox: "+err.Error(), http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "image/jpeg")
			w.Header().Set("Cache-Control", "private, max-age=86400") // a ring's picture never changes
			w.Write(jpeg)
		})))
	}
	mux.Handle("GET /metrics", s.plain(http.HandlerFunc(s.metrics)))
	// The buttons: refused when sent by another site's page (a browser
	// says so in Sec-Fetch-Site or Origin), so a page elsewhere cannot
	// hang up a call through the user's browser.
	cop := http.NewCrossOriginProtection()
	mux.Handle("POST /api/call", cop.Handler(s.plain(http.HandlerFunc(s.call))))
	mux.Handle("POST /api/hangup", cop.Handler(s.plain(s.action(func(r *http.Request) error { return b.Hangup(r.Context()) }))))
	mux.Handle("POST /api/press", cop.Handler(s.plain(http.HandlerFunc(s.press))))
	mux.Handle("POST /api/door/open", cop.Handler(s.plain(http.HandlerFunc(s.openDoor))))
	s.h = s.auth(mux)
	s.srv = &http.Server{
		Handler:           s.h,
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Handler is the server's whole handler, authentication included (for
// tests and for serving it some other way).
func (s *Server) Handler() http.Handler { return s.h }

// Serve answers requests on ln until Shutdown; it returns nil after
// Shutdown and the listener's error otherwise. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("web page up", "addr", ln.Addr().String(), "token", s.cfg.Token != "")
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("web: %w", err)
}

// Shutdown ends the streams, stops accepting, and waits for the requests
// under way until ctx ends; then it closes what is left. It may be called
// more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.quitOnce.Do(func() { close(s.quit) })
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
		return fmt.Errorf("web: shutdown: %w", err)
	}
	return nil
}

// file serves one of the page's files. The browser checks it again on
// every load (no-cache), so a new daemon's page is used at once.
func file(ctype, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		io.WriteString(w, body)
	})
}

// plain bounds a non-streaming answer by writeTimeout: a client that does
// not take it in time is dropped.
func (s *Server) plain(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
		h.ServeHTTP(w, r)
	})
}
