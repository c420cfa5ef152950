package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/device/screen"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/web"
	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/discovery"
	"github.com/callbox/callbox/stream/identity"
	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/playout"
)

// Limits of the call listener: handshakes under way at once, and how long
// one may take. Beyond the first, connections are closed at once so that a
// flood cannot hold the daemon's memory or starve a real call.
// A source (an IPv4 address, an IPv6 /64) may have maxPerSource of them,
// so one flooding host cannot take every slot from a paired peer.
const (
	maxHandshakes    = 16
	maxPerSource     = 4
	handshakeTimeout = 5 * time.Second
	notSentLowat     = 16 << 10
	// lookupTimeout bounds the mDNS lookup before a call falls back to
	// the stored address; dialTimeout bounds each address tried.
	lookupTimeout = 2 * time.Second
	dialTimeout   = 3 * time.Second
)

// daemon wires devices to the phone. run owns it.
type daemon struct {
	cfg   Config
	log   *slog.Logger
	id    *identity.Identity
	peers *identity.Store
	phone *call.Phone
	ln    net.Listener
	disc  *discovery.Node // nil when discovery is off
	pair  *pairer

	cam    camera.Source
	rec    io.Writer // where a simulated speaker records, or nil
	button gpio.Button
	simBtn *gpio.SimButton // the button, when simulated: `callbox press` presses it
	led    gpio.LED
	play   *playout.Buffer
	sink   *peerSink
	web    *web.Server    // nil when web.listen is empty
	self   web.Latest     // latest local frame, for the control API and the web page
	screen *screen.Screen // nil when screen.device is empty
	// camWant is the size a re-opening camera opens at: the configured
	// one, or smaller for a call whose peer asked for less (fitVideo).
	camWant atomic.Pointer[media.VideoFormat]

	mu         sync.Mutex
	camState   string
	micState   string
	spkState   string
	gpioState  string // empty when button and LED work
	flashing   bool   // a 2 s flash is on the LED
	flashSeq   int
	drops      uint64 // connections refused before their handshake
	dropLogged time.Time

	runCtx context.Context // the daemon's, for work a request starts (pairing)

	// progress counters for the watchdog's health check
	fills, frames         atomic.Uint64
	seenFills, seenFrames uint64
	fillsAt, framesAt     time.Time

	statusKick chan struct{} // cap 1: the human status may have changed
}

func newDaemon(cfg Config, log *slog.Logger) (*daemon, error) {
	d := &daemon{cfg: cfg, log: log, camState: "starting", micState: "starting", spkState: "starting",
		statusKick: make(chan struct{}, 1)}
	id, created, err := identity.LoadOrCreate(cfg.StateDir, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if created {
		log.Info("created a new identity", "fingerprint", id.Fingerprint.String(), "dir", cfg.StateDir)
	}
	d.id = id
	d.pair = &pairer{d: d, st: control.Pairing{State: control.PairOff}}
	if cfg.Discovery.Enabled {
		d.disc, err = discovery.New(discovery.Config{Interfaces: cfg.Discovery.Interfaces,
			IPv4: cfg.Discovery.IPv4, IPv6: cfg.Discovery.IPv6, Logger: log})
		if err != nil {
			return nil, &ConfigError{err}
		}
	}
	d.peers, err = identity.OpenStore(filepath.Join(cfg.StateDir, "peers.json"))
	if err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	d.play, err = playout.New(playout.Config{
		Format: cfg.audioFormat(),
		Target: time.Duration(cfg.Audio.TargetMs) * time.Millisecond,
		Max:    time.Duration(cfg.Audio.MaxMs) * time.Millisecond,
	})
	if err != nil {
		return nil, &ConfigError{fmt.Errorf("audio: %w", err)}
	}
	d.sink, err = newPeerSink(cfg.Record, d.play, log)
	if err != nil {
		return nil, err
	}
	d.phone, err = call.New(call.Config{
		Name:       cfg.Name,
		ID:         id.Fingerprint.String(),
		Video:      cfg.videoFormat(),
		Audio:      cfg.audioFormat(),
		Prefer:     cfg.preferVideo(),
		AutoAnswer: cfg.AutoAnswer,
		Default:    d.defaultPeer,
		OnChange:   d.stateChanged,
		Logger:     log,
	}, d.dial, d.sink)
	if err != nil {
		d.sink.Close()
		return nil, &ConfigError{err}
	}
	if cfg.Web.Listen != "" {
		if d.web, err = web.New(cfg.webConfig(log), webBackend{d}); err != nil {
			d.sink.Close()
			return nil, &ConfigError{err}
		}
	}
	// Devices last: a camera's own goroutine may report to the phone at once.
	if err := d.openDevices(); err != nil {
		d.closeDevices()
		d.sink.Close()
		return nil, err
	}
	return d, nil
}

func (d *daemon) openDevices() error {
	cfg := d.cfg
	var err error
	// The LED first: the others report their state through it.
	g := cfg.GPIO
	if g.Button == "sim" {
		d.simBtn = gpio.NewSimButton()
		d.button = d.simBtn
	} else {
		pull := g.ButtonPull
		d.button, err = gpio.OpenButton(gpio.PinConfig{Line: g.Button, ActiveLow: g.ButtonActiveLow, Pull: pull},
			gpio.DebounceConfig{Settle: time.Duration(g.DebounceMs) * time.Millisecond, LongPress: time.Duration(g.LongPressMs) * time.Millisecond},
			d.log)
		if err != nil {
			// Without its button the box still answers calls and can be
			// driven with `callbox press`: keep running and say so.
			d.log.Error("button unusable", "component", "gpio", "line", g.Button, "err", err)
			d.gpioState = fmt.Sprintf("button %s failed: %v", g.Button, err)
			d.simBtn = gpio.NewSimButton()
			d.button = d.simBtn
		}
	}
	switch g.LED {
	case "sim":
		d.led = gpio.NewSimLED()
	case "none":
		d.led = gpio.NewBlinker(func(bool) error { return nil })
	default:
		d.led, err = gpio.OpenLED(gpio.PinConfig{Line: g.LED, ActiveLow: g.LEDActiveLow})
		if err != nil {
			d.log.Error("LED unusable", "component", "gpio", "line", g.LED, "err", err)
			d.gpioState = strings.TrimPrefix(d.gpioState+fmt.Sprintf("; LED %s failed: %v", g.LED, err), "; ")
			d.led = gpio.NewBlinker(func(bool) error { return nil })
		}
	}
	if cfg.Screen.Device != "" {
		// A missing or unusable display is retried in the screen's own
		// goroutine and shown in status; the box works without it.
		idle, _ := screen.ParseIdle(cfg.Screen.Idle) // validated with the config
		dev := cfg.Screen.Device
		d.screen = screen.New(func() (screen.Display, error) { return screen.OpenFB(dev) },
			screen.Config{Idle: idle, SelfView: cfg.Screen.SelfView, Logger: d.log.With("component", "screen"),
				OnChange: func(string) { d.kickStatus() }})
		d.screen.SetStatus(d.screenLines(d.phone.Status())...)
		d.sink.screen = d.screen
	}
	switch {
	case cfg.Video.Device == "sim":
		d.cam, err = camera.NewSynthetic(camera.SyntheticConfig{
			Format: cfg.videoFormat(), Quality: cfg.Video.Quality,
			Precomputed: cfg.Video.Precomputed, Name: cfg.Name,
		})
	case strings.HasPrefix(cfg.Video.Device, "file:"):
		d.cam, err = camera.NewReplay(strings.TrimPrefix(cfg.Video.Device, "file:"), cfg.Video.FPS, true)
	default:
		// A real camera comes and goes: the wrapper re-opens it with backoff
		// while the call goes on without video, and says so in its state.
		vc := camera.V4L2Config{Device: cfg.Video.Device, Format: cfg.videoFormat(), Quality: cfg.Video.Quality,
			StallTimeout: time.Duration(cfg.Video.StallMs) * time.Millisecond, Logger: d.log}
		if err = vc.Validate(); err != nil {
			return &ConfigError{fmt.Errorf("video: %w", err)}
		}
		d.cam = camera.NewResilient(func(ctx context.Context) (camera.Source, error) {
			vc := vc
			if f := d.camWant.Load(); f != nil {
				vc.Format = *f
			}
			return camera.OpenV4L2(vc)
		}, camera.ResilientConfig{Format: cfg.videoFormat(), Logger: d.log,
			OnChange: d.cameraChanged})
	}
	if err != nil {
		return fmt.Errorf("camera %s: %w", cfg.Video.Device, err)
	}
	if d.sink.arec != nil {
		d.rec = d.sink.arec
	}
	return nil
}

func (d *daemon) closeDevices() {
	if d.cam != nil {
		d.cam.Close()
	}
	if d.screen != nil {
		d.screen.Close() // the last picture stays on the display
	}
	if d.button != nil {
		d.button.Close()
	}
	if d.led != nil {
		d.led.Close() // LED off when the daemon stops
	}
}

// run serves until ctx ends, telling systemd (if it started us) when it is
// ready, what it is doing, and that it is alive.
func (d *daemon) run(ctx context.Context) error {
	n, err := newNotifier(d.log)
	if err != nil {
		return err
	}
	defer n.close()
	wd, err := watchdogInterval()
	if err != nil {
		return err
	}
	defer d.closeDevices()
	defer d.sink.Close()
	lc := net.ListenConfig{}
	ln, err := lc.Listen(ctx, "tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", d.cfg.Listen, err)
	}
	d.ln = ln
	ctl, err := d.listenControl()
	if err != nil {
		ln.Close()
		return err
	}
	var wln net.Listener
	if d.web != nil {
		if wln, err = lc.Listen(ctx, "tcp", d.cfg.Web.Listen); err != nil {
			ln.Close()
			ctl.Close()
			return fmt.Errorf("web: listen %s: %w", d.cfg.Web.Listen, err)
		}
	}
	d.log.Info("callbox up", "name", d.cfg.Name, "fingerprint", d.id.Fingerprint.String(),
		"listen", ln.Addr().String(), "control", d.cfg.ControlSocket, "peers", len(d.peers.List()))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.runCtx = ctx
	var wg sync.WaitGroup
	goDo := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	goDo(func() { d.phone.Run(ctx) })
	goDo(func() { d.acceptLoop(ctx, ln) })
	goDo(func() { d.videoLoop(ctx) })
	goDo(func() { d.audioLoop(ctx) })
	goDo(func() { d.speakerLoop(ctx) })
	goDo(func() { d.buttonLoop(ctx) })
	if d.disc != nil {
		d.advertise()
		goDo(func() {
			if err := d.disc.Run(ctx); err != nil {
				// Calls still work on stored addresses.
				d.log.Error("discovery unusable", "component", "discovery", "err", err)
			}
		})
	}
	srv := d.controlServer()
	goDo(func() { srv.Serve(ctl) })
	if d.web != nil {
		goDo(func() {
			if err := d.web.Serve(wln); err != nil {
				d.log.Error("web page stopped", "component", "web", "err", err)
			}
		})
	}
	if err := n.send("READY=1\nSTATUS=" + d.humanStatus()); err != nil {
		d.log.Warn("telling systemd we are ready failed", "err", err)
	}
	goDo(func() { notifyLoop(ctx, n, wd, d.humanStatus, d.statusKick, d.healthy) })
	<-ctx.Done()
	n.send("STOPPING=1")
	shut, cancelShut := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShut()
	srv.Shutdown(shut)
	if d.web != nil {
		d.web.Shutdown(shut) // ends the MJPEG streams at once
	}
	ln.Close()
	wg.Wait()
	os.Remove(d.cfg.ControlSocket)
	d.log.Info("callbox stopped")
	return nil
}

func (d *daemon) defaultPeer() (call.Peer, error) {
	if d.cfg.CallPeer != "" {
		return d.peerByName(d.cfg.CallPeer)
	}
	list := d.peers.List()
	switch len(list) {
	case 0:
		return call.Peer{}, errors.New("no paired peer: add one with `callbox peers add`")
	case 1:
		return toCallPeer(list[0]), nil
	}
	return call.Peer{}, fmt.Errorf("%d paired peers and no call_peer set: the button does not know whom to call", len(list))
}

func (d *daemon) peerByName(name string) (call.Peer, error) {
	p, ok := d.peers.ByName(name)
	if !ok {
		return call.Peer{}, fmt.Errorf("no paired peer named %q", name)
	}
	return toCallPeer(p), nil
}

func toCallPeer(p identity.Peer) call.Peer {
	return call.Peer{Name: p.Name, Fingerprint: p.Fingerprint.String(), Addr: p.Address}
}

// dial opens an authenticated connection to a paired peer: first where
// discovery finds its key on the link, then at the last address a call
// worked at, then at its configured address. The address that works is
// stored as the last one (the configured one stays). Whoever answers
// anywhere must have the peer's key: an address is only a hint.
func (d *daemon) dial(ctx context.Context, peer call.Peer) (net.Conn, error) {
	want, err := identity.ParseFingerprint(peer.Fingerprint)
	if err != nil {
		return nil, err
	}
	var cands []string
	if d.disc != nil {
		lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		f, err := d.disc.Lookup(lctx, want.String())
		cancel()
		if err == nil {
			for _, a := range f.Addrs {
				cands = append(cands, a.String())
			}
		} else {
			d.log.Info("peer not found by discovery; trying its stored address", "component", "discovery", "peer", peer.Name, "err", err)
		}
	}
	last := ""
	if p, ok := d.peers.ByName(peer.Name); ok {
		last = p.LastAddress
	}
	for _, a := range []string{last, peer.Addr} {
		if a != "" && !slices.Contains(cands, a) {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("peer %s has no address and was not found on the link", peer.Name)
	}
	var errs []error
	for _, addr := range cands {
		conn, err := d.dial1(ctx, peer, addr, want)
		if err == nil {
			if addr != last {
				if err := d.peers.SetLastAddress(peer.Name, addr); err != nil {
					d.log.Warn("storing the peer's address failed", "peer", peer.Name, "err", err)
				} else {
					d.log.Info("peer address updated", "component", "discovery", "peer", peer.Name, "address", addr)
				}
			}
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// dial1 makes one attempt at one address.
func (d *daemon) dial1(ctx context.Context, peer call.Peer, addr string, want identity.Fingerprint) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var nd net.Dialer
	raw, err := nd.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := call.TuneTCP(raw, notSentLowat); err != nil {
		d.log.Warn("socket tuning failed", "err", err)
	}
	tc := tls.Client(raw, d.id.ClientTLS(want))
	hctx, cancel2 := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel2()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		if errors.Is(err, identity.ErrKeyMismatch) {
			d.log.Warn("refused peer: wrong key for its name", "component", "identity", "peer", peer.Name, "addr", addr, "err", err)
		}
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tc, nil
}

// dropped closes a connection refused before its handshake, logging at
// most one line a second about it (a flood must not flood the journal).
func (d *daemon) dropped(conn net.Conn, why string) {
	conn.Close()
	d.mu.Lock()
	d.drops++
	n := d.drops
	logNow := time.Since(d.dropLogged) >= time.Second
	if logNow {
		d.dropLogged = time.Now()
	}
	d.mu.Unlock()
	if logNow {
		d.log.Warn("connection dropped before its handshake", "reason", why, "remote", conn.RemoteAddr().String(), "dropped_so_far", n)
	}
}

// sourceKey groups connections by where they come from: an IPv4 address
// or an IPv6 /64 (one host usually has a whole /64).
func sourceKey(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

func (d *daemon) acceptLoop(ctx context.Context, ln net.Listener) {
	sem := make(chan struct{}, maxHandshakes)
	var perMu sync.Mutex
	per := map[string]int{} // handshakes under way per source
	var wg sync.WaitGroup
	defer wg.Wait() // handshakes end with ctx
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			d.log.Error("accept failed", "err", err)
			select {
			case <-time.After(100 * time.Millisecond): // e.g. out of file descriptors
			case <-ctx.Done():
				return
			}
			continue
		}
		src := sourceKey(conn.RemoteAddr())
		perMu.Lock()
		tooMany := per[src] >= maxPerSource
		if !tooMany {
			per[src]++
		}
		perMu.Unlock()
		if tooMany {
			d.dropped(conn, "too many handshakes from one source")
			continue
		}
		release := func() {
			perMu.Lock()
			if per[src]--; per[src] <= 0 {
				delete(per, src)
			}
			perMu.Unlock()
		}
		select {
		case sem <- struct{}{}:
		default:
			release()
			d.dropped(conn, "too many handshakes under way")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem; release() }()
			d.handshake(ctx, conn)
		}()
	}
}

func (d *daemon) handshake(ctx context.Context, raw net.Conn) {
	remote := raw.RemoteAddr().String()
	if err := call.TuneTCP(raw, notSentLowat); err != nil {
		d.log.Warn("socket tuning failed", "err", err)
	}
	tc := tls.Server(raw, d.id.ServerTLSWithPairing(d.peers, d.pair.isOpen))
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		var ue *identity.UnpairedError
		switch {
		case errors.As(err, &ue):
			d.log.Warn("refused unpaired peer", "component", "identity", "remote", remote, "fingerprint", ue.Fingerprint.String())
		case errors.Is(err, identity.ErrNotPairing):
			d.log.Warn("refused pairing attempt: pairing window closed", "component", "pairing", "remote", remote)
		case errors.Is(err, identity.ErrProtocolVersion):
			d.log.Warn("refused peer speaking another protocol version", "component", "identity", "remote", remote, "err", err)
		default:
			d.log.Info("handshake failed", "component", "identity", "remote", remote, "err", err)
		}
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == identity.PairALPN {
		cancel()
		d.pair.accept(ctx, tc)
		return
	}
	fp, err := identity.PeerFingerprint(tc.ConnectionState())
	if err != nil {
		tc.Close()
		return
	}
	p, ok := d.peers.ByFingerprint(fp)
	if !ok { // removed between handshake and now
		d.log.Warn("refused unpaired peer", "component", "identity", "remote", remote, "fingerprint", fp.String())
		tc.Close()
		return
	}
	d.phone.Accept(tc, toCallPeer(p))
}

// cameraChanged runs in the re-opening camera's goroutine: keep it short.
func (d *daemon) cameraChanged(state string) {
	if strings.HasPrefix(state, "ok") {
		state = "ok" // the chosen format is logged by the camera
	}
	d.setCam(state)
}

// videoLoop feeds camera frames to the phone.
func (d *daemon) videoLoop(ctx context.Context) {
	if _, ok := d.cam.(*camera.Resilient); !ok {
		d.setCam("ok")
	}
	for {
		f, err := d.cam.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.setCam("failed: " + err.Error())
			d.log.Error("camera stopped", "component", "camera", "err", err)
			return
		}
		d.self.Put(f.JPEG)
		if d.screen != nil {
			d.screen.Self(f.JPEG)
		}
		d.frames.Add(1)
		d.phone.SendVideo(f)
	}
}

func (d *daemon) openMic() (audio.Source, error) {
	f := d.cfg.audioFormat()
	switch d.cfg.Audio.Capture {
	case "sim":
		return audio.NewTestSource(f), nil
	case "silent":
		return audio.NewSilentSource(f), nil
	}
	return audio.OpenCapture(audio.ALSAConfig{Device: d.cfg.Audio.Capture, Format: f,
		Periods: d.cfg.Audio.Periods, Logger: d.log})
}

type closingSpeaker interface {
	audio.Speaker
	Close() error
}

func (d *daemon) openSpeaker() (closingSpeaker, error) {
	f := d.cfg.audioFormat()
	switch d.cfg.Audio.Playback {
	case "sim", "silent":
		return nopCloser{audio.NewClockedSpeaker(f, d.rec)}, nil
	}
	return audio.OpenPlayback(audio.ALSAConfig{Device: d.cfg.Audio.Playback, Format: f,
		Periods: d.cfg.Audio.Periods, Logger: d.log})
}

type nopCloser struct{ *audio.ClockedSpeaker }

func (nopCloser) Close() error { return nil }

// audioLoop feeds the microphone to the phone. A microphone that fails is
// re-opened with backoff; meanwhile the call goes on without our audio.
func (d *daemon) audioLoop(ctx context.Context) {
	keepOpen(ctx, d.log, "microphone", d.setMic, func() (func() error, error) {
		mic, err := d.openMic()
		if err != nil {
			return nil, err
		}
		return func() error {
			defer mic.Close()
			for {
				a, err := mic.Read(ctx)
				if err != nil {
					return err
				}
				d.phone.SendAudio(a)
			}
		}, nil
	})
}

// speakerLoop plays the peer through the playout buffer, re-opening a
// speaker that fails.
func (d *daemon) speakerLoop(ctx context.Context) {
	fill := func(dst []int16) {
		d.fills.Add(1)
		d.play.Read(dst)
	}
	keepOpen(ctx, d.log, "speaker", d.setSpk, func() (func() error, error) {
		spk, err := d.openSpeaker()
		if err != nil {
			return nil, err
		}
		return func() error {
			defer spk.Close()
			if err := spk.Run(ctx, fill); err != nil {
				return err
			}
			return ctx.Err()
		}, nil
	})
}

// keepOpen opens a device and runs it until ctx ends. When opening or
// running fails it reports the device down and tries again after a backoff
// that doubles from 0.5 s to 10 s (with jitter), and starts again from
// 0.5 s once the device has run well for a minute: no busy loop, and a
// device that comes back is used again without a restart.
func keepOpen(ctx context.Context, log *slog.Logger, name string, setState func(string), open func() (run func() error, err error)) {
	const first, most, healthy = 500 * time.Millisecond, 10 * time.Second, time.Minute
	wait := first
	for ctx.Err() == nil {
		run, err := open()
		if err == nil {
			setState("ok")
			began := time.Now()
			err = run()
			if ctx.Err() != nil {
				return
			}
			if time.Since(began) > healthy {
				wait = first
			}
		}
		jittered := wait/2 + time.Duration(rand.Int64N(int64(wait)))
		setState(fmt.Sprintf("down: %v; retrying in %v", err, jittered.Round(100*time.Millisecond)))
		log.Error(name+" down", "component", "audio", "err", err, "retry_in", jittered.Round(100*time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(jittered):
		}
		wait = min(2*wait, most)
	}
}

func (d *daemon) buttonLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-d.button.Events():
			if !ok {
				return
			}
			d.pressed(ctx, ev)
		}
	}
}

// pressed is what a button event does: a short press calls, answers or
// hangs up; a long press is kept for pairing.
func (d *daemon) pressed(ctx context.Context, ev gpio.Event) {
	switch ev {
	case gpio.Press:
		if st := d.pair.status(); d.pair.isOpen() || st.State == control.PairConfirm {
			// A short press in the window ends it, and does nothing else.
			d.pair.stop()
			return
		}
		if err := d.phone.Press(ctx); err != nil {
			d.log.Warn("button press did nothing", "component", "gpio", "err", err)
			d.flashError()
		}
	case gpio.LongPress:
		d.pair.start(d.runCtx)
	}
}

// flashError shows the error pattern briefly, then the usual one.
func (d *daemon) flashError() { d.flash(gpio.ErrorBlink) }

// flash shows p for 2 s, then the usual pattern.
func (d *daemon) flash(p gpio.Pattern) {
	d.mu.Lock()
	d.flashSeq++
	seq := d.flashSeq
	d.flashing = true
	d.mu.Unlock()
	d.led.Set(p)
	time.AfterFunc(2*time.Second, func() {
		d.mu.Lock()
		if d.flashSeq == seq {
			d.flashing = false
		}
		d.mu.Unlock()
		d.refreshLED(d.phone.Status().State)
	})
}

// refreshLED shows the call state: off when idle, fast blink when calling
// or ringing, on in a call; and the error pattern when idle with a device
// down, so a box by the door shows it needs a look.
func (d *daemon) refreshLED(s call.State) {
	d.mu.Lock()
	flashing := d.flashing
	d.mu.Unlock()
	if flashing {
		return // the flash's end shows the state
	}
	p := gpio.Off
	switch s {
	case call.Calling, call.Ringing:
		p = gpio.FastBlink
	case call.InCall:
		p = gpio.On
	default:
		if st := d.pair.status().State; st == control.PairWaiting || st == control.PairConfirm {
			p = gpio.PairBlink
			break
		}
		d.mu.Lock()
		for _, st := range []string{d.camState, d.micState, d.spkState} {
			if strings.HasPrefix(st, "down") || strings.HasPrefix(st, "failed") {
				p = gpio.ErrorBlink
			}
		}
		if d.gpioState != "" {
			p = gpio.ErrorBlink
		}
		d.mu.Unlock()
	}
	d.led.Set(p)
}

// stateChanged runs in the phone's goroutine: keep it short.
func (d *daemon) stateChanged(st call.Status) {
	d.refreshLED(st.State)
	switch st.State {
	case call.InCall:
		d.fitVideo(st.PeerPrefers)
	case call.Idle:
		d.fitVideo(nil)
	}
	if d.screen != nil {
		d.screen.SetVideo(st.State == call.InCall)
		d.screen.SetStatus(d.screenLines(st)...)
	}
	d.kickStatus()
	if st.State == call.InCall {
		d.play.Reset()
	}
}

// fitVideo makes the camera capture no larger than the peer asked for
// (its aspect kept) for the call, or at the configured size again (nil).
// A V4L2 camera is re-opened for it (a short gap in our video); the test
// pattern just draws smaller; a file replay stays as it is. It runs in the
// phone's goroutine and does not block.
func (d *daemon) fitVideo(prefer *media.Size) {
	want := d.cfg.videoFormat()
	if prefer != nil {
		s := want.Fit(*prefer)
		want.Width, want.Height = s.Width, s.Height
	}
	switch cam := d.cam.(type) {
	case *camera.Synthetic:
		if cam.Format() == want {
			return
		}
		cam.SetFormat(want)
	case *camera.Resilient:
		cur := d.cfg.videoFormat()
		if f := d.camWant.Load(); f != nil {
			cur = *f
		}
		if cur == want {
			return
		}
		d.camWant.Store(&want)
		cam.Reopen()
	default:
		return
	}
	if prefer != nil {
		d.log.Info("peer prefers smaller video: capturing less for this call", "component", "camera",
			"prefers", fmt.Sprintf("%dx%d", prefer.Width, prefer.Height), "capture", fmt.Sprintf("%dx%d", want.Width, want.Height))
	} else {
		d.log.Info("capturing at the configured size again", "component", "camera", "capture", fmt.Sprintf("%dx%d", want.Width, want.Height))
	}
}

// screenLines is the idle screen's text: this box's name and the call
// state ("calling door", "door rings", "in call with door").
func (d *daemon) screenLines(st call.Status) []string {
	peer := ""
	if st.Peer != nil {
		peer = st.Peer.Name
	}
	state := st.State.String()
	switch {
	case peer == "":
	case st.State == call.Calling:
		state = "calling " + peer
	case st.State == call.Ringing:
		state = peer + " rings"
	case st.State == call.InCall:
		state = "in call with " + peer
	}
	return []string{d.cfg.Name, state}
}

func (d *daemon) setCam(s string) { d.setDev(&d.camState, s) }
func (d *daemon) setMic(s string) { d.setDev(&d.micState, s) }
func (d *daemon) setSpk(s string) { d.setDev(&d.spkState, s) }

func (d *daemon) setDev(field *string, s string) {
	d.mu.Lock()
	changed := *field != s
	*field = s
	d.mu.Unlock()
	if changed && d.phone != nil {
		d.refreshLED(d.phone.Status().State)
	}
	d.kickStatus()
}

// kickStatus tells the notify loop the human status may have changed.
func (d *daemon) kickStatus() {
	select {
	case d.statusKick <- struct{}{}:
	default:
	}
}

// peerSink receives the peer's media: audio to the playout buffer, the
// latest frame kept for the control API, and optional recordings.
type peerSink struct {
	play   *playout.Buffer
	log    *slog.Logger
	screen *screen.Screen // set before the phone runs; nil without a screen

	mu     sync.Mutex
	frames web.Latest // the peer's latest frame: control API and web page

	// rec queues frames for the recorder goroutine: 8 frames, and a full
	// queue drops the new frame (recording must never slow the call).
	rec      chan media.Frame
	recDrops uint64
	vrec     *camera.Recorder
	arec     *audio.Recorder
	recDone  chan struct{}
}

func newPeerSink(rc RecordConfig, play *playout.Buffer, log *slog.Logger) (*peerSink, error) {
	s := &peerSink{play: play, log: log}
	max := int64(rc.MaxMB) << 20
	var err error
	if rc.Video != "" {
		if s.vrec, err = camera.NewRecorder(rc.Video, max); err != nil {
			return nil, fmt.Errorf("record video: %w", err)
		}
		s.rec = make(chan media.Frame, 8)
		s.recDone = make(chan struct{})
		go func() {
			defer close(s.recDone)
			for f := range s.rec {
				if err := s.vrec.Write(f); err != nil {
					log.Warn("video recording stopped", "err", err)
					return
				}
			}
		}()
	}
	if rc.Audio != "" {
		if s.arec, err = audio.NewRecorder(rc.Audio, max); err != nil {
			s.Close()
			return nil, fmt.Errorf("record audio: %w", err)
		}
	}
	return s, nil
}

func (s *peerSink) Video(f media.Frame) {
	s.frames.Put(f.JPEG)
	if s.screen != nil {
		s.screen.Peer(f.JPEG) // never blocks: latest wins
	}
	if s.rec != nil {
		select {
		case s.rec <- f:
		default:
			s.mu.Lock()
			s.recDrops++
			s.mu.Unlock()
		}
	}
}

func (s *peerSink) Audio(a media.Audio) { s.play.Push(a) }

func (s *peerSink) Close() {
	if s.rec != nil {
		close(s.rec)
		<-s.recDone
		s.rec = nil
	}
	if s.vrec != nil {
		s.vrec.Close()
	}
	if s.arec != nil {
		s.arec.Close()
	}
}
