package screen

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Display is an open screen. Framebuffer is valid until Close; the Screen
// that opened the display is its only user.
type Display interface {
	Framebuffer() *Framebuffer
	Close() error
}

// IdleMode is what the screen shows when no call is up.
type IdleMode int

const (
	IdleBlank  IdleMode = iota // black
	IdleStatus                 // the lines given to SetStatus, e.g. name and call state
)

// ParseIdle reads the config's names for IdleMode: "blank" or "status".
func ParseIdle(s string) (IdleMode, error) {
	switch s {
	case "blank":
		return IdleBlank, nil
	case "status":
		return IdleStatus, nil
	}
	return 0, fmt.Errorf("%q is not blank or status", s)
}

// Config shapes a Screen. The zero value is valid: blank when idle, no
// self-view.
type Config struct {
	Idle     IdleMode
	SelfView bool // our own camera small in the bottom-right corner during a call
	// SelfEvery is the least time between two self-view updates (each is a
	// JPEG decode); 0 means 200 ms (5 fps is plenty for a thumbnail).
	SelfEvery time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts to open a
	// display that is missing or unusable; 0 means 1 s and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// OnChange, if set, gets every new State from the screen's goroutine.
	// It must not block.
	OnChange func(state string)
	Logger   *slog.Logger // nil discards
}

// Stats counts what a Screen did since it was made.
type Stats struct {
	Shown     uint64 // peer frames drawn
	Dropped   uint64 // peer frames replaced by a newer one before they were drawn
	Broken    uint64 // frames (peer or self) that did not decode: skipped
	SelfShown uint64 // self-view updates drawn
	Opens     uint64 // displays opened
	Failures  uint64 // failed attempts to open one
}

// Screen shows a call on a display. One goroutine owns the display and
// the renderer; Peer, Self, SetVideo and SetStatus only leave work for it
// and never block, so a slow display cannot slow the call. The queue of
// peer frames is one slot, latest wins: a frame not yet drawn when the
// next arrives is dropped and counted. All methods may be called from any
// goroutine.
type Screen struct {
	open func() (Display, error)
	cfg  Config
	log  *slog.Logger

	kick   chan struct{} // cap 1: something to draw
	closed chan struct{}
	done   chan struct{}
	once   sync.Once

	mu        sync.Mutex
	state     string
	peer      []byte // latest undrawn peer frame
	self      []byte // latest undrawn self frame
	selfAt    time.Time
	video     bool     // a call is up: show the peer's video
	lines     []string // idle text
	idleDirty bool
	stats     Stats
}

// New starts a screen on the display open returns. It returns at once;
// opening happens on the screen's goroutine, which retries with a
// doubling, jittered backoff while open fails (no display, an unsupported
// format) and reports it in State, so the daemon runs on without a screen.
func New(open func() (Display, error), cfg Config) *Screen {
	if cfg.SelfEvery <= 0 {
		cfg.SelfEvery = 200 * time.Millisecond
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Screen{open: open, cfg: cfg, log: log, kick: make(chan struct{}, 1),
		closed: make(chan struct{}), done: make(chan struct{}), state: "starting", idleDirty: true}
	go s.run()
	return s
}

// Peer leaves the peer's latest frame (a JPEG, not modified afterwards by
// the caller) to be shown if a call is up.
func (s *Screen) Peer(jpg []byte) {
	s.mu.Lock()
	if s.peer != nil {
		s.stats.Dropped++
	}
	s.peer = jpg
	s.mu.Unlock()
	s.wake()
}

// Self leaves our own camera's latest frame for the self-view; frames
// closer than SelfEvery to the last one taken are ignored.
func (s *Screen) Self(jpg []byte) {
	if !s.cfg.SelfView {
		return
	}
	now := time.Now()
	s.mu.Lock()
	if !s.video || now.Sub(s.selfAt) < s.cfg.SelfEvery {
		s.mu.Unlock()
		return
	}
	s.self, s.selfAt = jpg, now
	s.mu.Unlock()
	s.wake()
}

// SetVideo says whether a call is up. On: the idle screen stays until the
// peer's first frame. Off: the idle screen at once, frames dropped.
func (s *Screen) SetVideo(on bool) {
	s.mu.Lock()
	if s.video != on {
		s.video, s.idleDirty = on, true
		s.peer, s.self, s.selfAt = nil, nil, time.Time{}
	}
	s.mu.Unlock()
	s.wake()
}

// SetStatus sets the idle screen's text (IdleStatus), one string a line.
func (s *Screen) SetStatus(lines ...string) {
	s.mu.Lock()
	if !slices.Equal(s.lines, lines) {
		s.lines, s.idleDirty = append([]string(nil), lines...), true
	}
	s.mu.Unlock()
	s.wake()
}

func (s *Screen) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// State is "starting", "ok: WxH FORMAT" or "down: why; retrying in D".
func (s *Screen) State() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Stats returns the counters.
func (s *Screen) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close stops the goroutine and closes the display, leaving on it what
// was drawn last. Idempotent; waits.
func (s *Screen) Close() error {
	s.once.Do(func() { close(s.closed) })
	<-s.done
	return nil
}

func (s *Screen) setState(st string) {
	s.mu.Lock()
	changed := s.state != st
	s.state = st
	s.mu.Unlock()
	if changed && s.cfg.OnChange != nil {
		s.cfg.OnChange(st)
	}
}

func (s *Screen) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func (s *Screen) run() {
	defer close(s.done)
	wait := s.cfg.MinBackoff
	lastErr := ""
	for {
		d, r, err := s.open1()
		if err == nil {
			s.count(func(st *Stats) { st.Opens++ })
			fb := r.Framebuffer()
			s.setState(fmt.Sprintf("ok: %dx%d %s", fb.Width, fb.Height, fb.Format))
			s.log.Info("screen up", "size", fmt.Sprintf("%dx%d", fb.Width, fb.Height), "format", fb.Format.String(), "stride", fb.Stride)
			s.serve(r)
			d.Close()
			return
		}
		s.count(func(st *Stats) { st.Failures++ })
		jittered := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		s.setState(fmt.Sprintf("down: %v; retrying in %v", err, jittered.Round(100*time.Millisecond)))
		// A box without a display says so once, not every retry.
		if msg := err.Error(); msg != lastErr {
			s.log.Warn("no screen; running without one and retrying", "err", err)
			lastErr = msg
		}
		select {
		case <-s.closed:
			return
		case <-time.After(jittered):
		}
		wait = min(2*wait, s.cfg.MaxBackoff)
	}
}

// open1 makes one attempt at a usable display.
func (s *Screen) open1() (Display, *Renderer, error) {
	d, err := s.open()
	if err != nil {
		return nil, nil, err
	}
	r, err := NewRenderer(d.Framebuffer(), s.cfg.SelfView)
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return d, r, nil
}

// serve draws until Close.
func (s *Screen) serve(r *Renderer) {
	brokenLogged := false
	for {
		s.mu.Lock()
		video, peer, self, dirty := s.video, s.peer, s.self, s.idleDirty
		lines := s.lines
		s.peer, s.self, s.idleDirty = nil, nil, false
		s.mu.Unlock()
		showing := !r.PeerRect().Empty()
		if (!video || !showing) && (dirty || showing) {
			if s.cfg.Idle == IdleBlank {
				lines = nil
			}
			r.Idle(lines)
		}
		if video {
			if peer != nil {
				if err := r.Peer(peer); err != nil {
					s.broken(err, &brokenLogged)
				} else {
					s.count(func(st *Stats) { st.Shown++ })
				}
			}
			if self != nil {
				if err := r.Self(self); err != nil {
					s.broken(err, &brokenLogged)
				} else {
					s.count(func(st *Stats) { st.SelfShown++ })
				}
			}
		}
		select {
		case <-s.closed:
			return
		case <-s.kick:
		}
	}
}

func (s *Screen) broken(err error, logged *bool) {
	s.count(func(st *Stats) { st.Broken++ })
	if !*logged || !errors.Is(err, ErrBadFrame) {
		s.log.Warn("frame not shown; skipping such frames (counted as broken)", "err", err)
		*logged = true
	}
}
