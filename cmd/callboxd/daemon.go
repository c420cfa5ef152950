package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/device/screen"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/hass"
	"github.com/callbox/callbox/internal/rings"
	"github.com/callbox/callbox/internal/web"
	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/discovery"
	"github.com/callbox/callbox/stream/echo"
	"github.com/callbox/callbox/stream/identity"
	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/opus"
	"github.com/callbox/callbox/stream/playout"
)

const (
	// handshakeTimeout bounds one TLS handshake on the call port, either
	// way.
	handshakeTimeout = 5 * time.Second
	notSentLowat     = 16 << 10
	// lookupTimeout bounds how long a call's dial waits for discovery to
	// hear of the peer (it dials the addresses it knows meanwhile);
	// dialTimeout bounds a TCP connect. The whole dial is bounded by
	// dialBudget (dialrace.go).
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
	calls *callListener // owns the call port's accept loop and its limits
	// friends is where paired peers were seen: the listener keeps slots
	// for them.
	friends *friendAddrs
	disc    *discovery.Node // nil when discovery is off
	finder  finder          // what a call's dial asks: disc, or nil
	// sightings is when and how each paired peer was last seen (status).
	sightings *sightings
	pair      *pairer

	cam    camera.Source
	rec    io.Writer // where a simulated speaker records, or nil
	button gpio.Button
	simBtn *gpio.SimButton // the button, when simulated: `callbox press` presses it
	extra  []*extraButton  // the [[button]] entries
	door   *doorPart       // the door opener; nil without one (door.go)
	led    gpio.LED
	play   *playout.Buffer
	echo   *echo.Stage // the microphone's processing; nil: none
	room   *audio.Room // the simulated room of capture = playback = "room"; nil: none
	sink   *peerSink
	web    *web.Server    // nil when web.listen is empty
	self   web.Latest     // latest local frame, for the control API and the web page
	screen *screen.Screen // nil when screen.device is empty
	// camWant is the size a re-opening camera opens at: the configured
	// one, or smaller for a call whose peer asked for less (fitVideo).
	camWant atomic.Pointer[media.VideoFormat]
	// video and audio say when the camera, and the microphone and the
	// speaker, must be open: in a call (from calling or ringing on), and
	// for the camera while someone watches the self view; closed
	// otherwise, after mediaLinger.
	video, audio *gate

	// panel shows the box's state on the LED and keeps the devices'
	// states.
	panel *panel
	// storeProblem says the peer store was found corrupt at start and
	// what was done about it; the panel shows it until peers change.
	storeProblem string
	mu           sync.Mutex // guards the watchdog's progress counters

	runCtx context.Context // the daemon's, for work a request starts (pairing)

	// progress counters for the watchdog's health check
	fills, frames         atomic.Uint64
	micFrames             atomic.Uint64 // frames the microphone delivered (status)
	seenFills, seenFrames uint64
	fillsAt, framesAt     time.Time

	// The JPEG quality that follows the link (quality.go): the
	// controller and its bookkeeping belong to the video loop; status
	// reads qstat.
	qctl  *qualityCtl
	qlook time.Time // the controller's last look
	qlog  qualityLog
	qstat atomic.Pointer[control.VideoQuality]

	// The household side (home.go): who rang, and Home Assistant over
	// MQTT (nil without a broker).
	rings     *rings.Store
	mqtt      *hass.Client
	ringWG    sync.WaitGroup // ring pictures being waited for
	lastState call.State     // the phone's, as stateChanged last saw it

	statusKick chan struct{}    // cap 1: the human status may have changed
	hup        <-chan os.Signal // SIGHUP; nil when nobody listens for it
}

func newDaemon(cfg Config, log *slog.Logger) (*daemon, error) {
	d := &daemon{cfg: cfg, log: log, statusKick: make(chan struct{}, 1)}
	gateChanged := func(name string, on bool, why string) {
		if on {
			log.Info(name+" open", "component", "media", "for", why)
		} else {
			log.Info(name+" closed: nobody needs it", "component", "media")
		}
		d.kickStatus()
	}
	d.video = newGate("camera", mediaLinger, gateChanged)
	d.audio = newGate("microphone and speaker", mediaLinger, gateChanged)
	id, created, err := identity.LoadOrCreate(cfg.StateDir, cfg.Name)
	if err != nil {
		// The key is never replaced, and a state directory we cannot
		// write does not get better by restarting: exit 78 (see main).
		return nil, &ConfigError{fmt.Errorf("state_dir %s: %w", cfg.StateDir, err)}
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
		d.finder = d.disc
	}
	d.sightings = newSightings()
	d.peers, err = identity.OpenStore(filepath.Join(cfg.StateDir, identity.PeersFile))
	if err != nil {
		return nil, err
	}
	if rec := d.peers.Recovered(); rec != nil {
		// Loud but not fatal: a box that exits here is restarted into the
		// same file forever; one that runs can be paired again by button.
		d.storeProblem = rec.String()
		log.Error("peer store recovered", "component", "identity", "err", rec.Err,
			"kept_as", rec.KeptAs, "from_good_copy", rec.FromGood, "peers", len(d.peers.List()))
	}
	d.friends = newFriendAddrs(d.peers)
	d.play, err = playout.New(playout.Config{
		Format: cfg.audioFormat(),
		Target: time.Duration(cfg.Audio.TargetMs) * time.Millisecond,
		Max:    time.Duration(cfg.Audio.MaxMs) * time.Millisecond,
		Fixed:  !cfg.Audio.AdaptivePlayout,
	})
	if err != nil {
		return nil, &ConfigError{fmt.Errorf("audio: %w", err)}
	}
	if cfg.Audio.Capture == "room" {
		if d.room, err = cfg.simRoom(); err != nil {
			return nil, &ConfigError{fmt.Errorf("audio.room: %w", err)}
		}
	}
	if cfg.micProcessed() && !cfg.echoConfig().Bypass() {
		d.echo, err = echo.New(cfg.echoConfig())
		if err != nil {
			return nil, &ConfigError{fmt.Errorf("audio: %w", err)}
		}
	}
	d.sink, err = newPeerSink(cfg.Record, d.play, log)
	if err != nil {
		return nil, err
	}
	opusMode, _ := opus.ParseMode(cfg.Audio.OpusMode) // checked with the config (codec "opus")
	d.phone, err = call.New(call.Config{
		Name:        cfg.Name,
		ID:          id.Fingerprint.String(),
		Video:       cfg.videoFormat(),
		Audio:       cfg.audioFormat(),
		Prefer:      cfg.preferVideo(),
		Codecs:      cfg.codecs(),
		Opus:        opus.Config{Bitrate: cfg.Audio.OpusKbps * 1000, Complexity: cfg.Audio.OpusComplexity, Mode: opusMode},
		OpusFrameMs: cfg.Audio.OpusFrameMs,
		OpusLow:     cfg.Audio.OpusKbpsLow * 1000,
		AutoAnswer:  cfg.AutoAnswer,
		Door:        cfg.doorRemote(),
		OnDoor:      d.remoteDoor,
		OnChange:    d.stateChanged,
		Logger:      log,
	}, explainingDialer(d.dial), d.sink)
	if err != nil {
		d.sink.Close()
		return nil, &ConfigError{err}
	}
	if err := d.openHome(); err != nil {
		d.sink.Close()
		return nil, err
	}
	if cfg.Web.Listen != "" {
		if d.web, err = web.New(cfg.webConfig(log), webBackend{d}); err != nil {
			d.sink.Close()
			d.closeHome()
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
	gpioState := "" // what is wrong with the button or LED
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
			gpioState = fmt.Sprintf("button %s failed: %v", g.Button, err)
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
			gpioState = strings.TrimPrefix(gpioState+fmt.Sprintf("; LED %s failed: %v", g.LED, err), "; ")
			d.led = gpio.NewBlinker(func(bool) error { return nil })
		}
	}
	if p := d.openButtons(); len(p) > 0 {
		gpioState = strings.TrimPrefix(gpioState+"; "+strings.Join(p, "; "), "; ")
	}
	if p := d.setupDoor(); p != "" {
		gpioState = strings.TrimPrefix(gpioState+"; "+p, "; ")
	}
	d.panel = newPanel(d.led, func() (call.State, string) { return d.phone.Status().State, d.pair.status().State }, d.kickStatus)
	d.panel.setGPIO(gpioState)
	d.panel.setStore(d.storeProblem)
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
	case isLibcamera(cfg.Video.Device):
		d.cam = d.newLibcamera()
	default:
		// A real camera comes and goes: the wrapper re-opens it with backoff
		// while the call goes on without video, and says so in its state.
		vc := camera.V4L2Config{Device: cfg.Video.Device, Format: cfg.videoFormat(), Quality: cfg.Video.Quality,
			StallTimeout: time.Duration(cfg.Video.StallMs) * time.Millisecond, Logger: d.log}
		if err = vc.Validate(); err != nil {
			return &ConfigError{fmt.Errorf("video: %w", err)}
		}
		// It stands by (closed) while nobody needs it; a look at the
		// device node every few seconds tells an unplugged one.
		dev := cfg.Video.Device
		d.cam = camera.NewResilient(func(ctx context.Context) (camera.Source, error) {
			vc := vc
			if f := d.camWant.Load(); f != nil {
				vc.Format = *f
			}
			return camera.OpenV4L2(vc)
		}, camera.ResilientConfig{Format: cfg.videoFormat(), Logger: d.log,
			OnChange: d.cameraChanged, Standby: true, ProbeEvery: probeEvery,
			Probe: func() error { _, err := os.Stat(dev); return err }})
	}
	if err != nil {
		return fmt.Errorf("camera %s: %w", cfg.Video.Device, err)
	}
	d.initQuality()
	if d.sink.arec != nil {
		d.rec = d.sink.arec
	}
	return nil
}

func (d *daemon) closeDevices() {
	d.video.close()
	d.audio.close()
	if d.cam != nil {
		d.cam.Close()
	}
	if d.echo != nil {
		d.echo.Close() // a late Played or Process after this is a no-op
	}
	if d.screen != nil {
		d.screen.Close() // the last picture stays on the display
	}
	if d.button != nil {
		d.button.Close()
	}
	d.closeButtons()
	d.closeDoor() // the relay off
	if d.panel != nil {
		d.panel.Close() // no flash ends after this
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
	defer d.closeHome()
	lc := net.ListenConfig{}
	ln, err := lc.Listen(ctx, "tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", d.cfg.Listen, err)
	}
	d.ln = ln
	if d.cfg.Audio.Datagrams {
		d.listenDatagrams(ctx, lc, ln.Addr())
	}
	d.calls = newCallListener(ln, listenerConfig{Friend: d.friends.is, Logger: d.log}, d.handshake)
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
	goDo(func() { d.calls.Run(ctx) })
	goDo(func() { d.videoLoop(ctx) })
	goDo(func() { d.audioLoop(ctx) })
	goDo(func() { d.speakerLoop(ctx) })
	goDo(func() { d.buttonLoop(ctx) })
	if d.mqtt != nil {
		goDo(func() { d.mqtt.Run(ctx) })
	}
	for _, b := range d.extra {
		goDo(func() { d.extraButtonLoop(ctx, b) })
	}
	goDo(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.hup:
				d.log.Warn("SIGHUP ignored: callboxd does not reload its config; restart the service to apply changes")
			}
		}
	})
	if d.disc != nil {
		d.advertise()
		goDo(func() {
			if err := d.disc.Run(ctx); err != nil {
				// Calls still work on stored addresses.
				d.log.Error("discovery unusable", "component", "discovery", "err", err)
			}
		})
		goDo(func() { d.watchDiscovery(ctx) })
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
	d.pair.close() // its exchanges ran in the listener's goroutines, ended above
	os.Remove(d.cfg.ControlSocket)
	d.log.Info("callbox stopped")
	return nil
}

// defaultTarget is whom the button calls: call_peer (a peer or a group),
// else the only paired peer.
func (d *daemon) defaultTarget() (string, error) {
	if d.cfg.CallPeer != "" {
		return d.cfg.CallPeer, nil
	}
	list := d.peers.List()
	switch len(list) {
	case 0:
		return "", errors.New("no paired peer: add one with `callbox peers add`")
	case 1:
		return list[0].Name, nil
	}
	return "", fmt.Errorf("%d paired peers and no call_peer set: the button does not know whom to call", len(list))
}

// callTarget calls a paired peer or rings a group ([[group]]) by name;
// "" is the default target. A group's members that are not paired are
// left out (and logged); a group with none paired is an error. A group's
// name wins over a peer's of the same name.
func (d *daemon) callTarget(ctx context.Context, name string) error {
	if name == "" {
		var err error
		if name, err = d.defaultTarget(); err != nil {
			return &targetError{err}
		}
	}
	g, ok := d.cfg.group(name)
	if !ok {
		peer, err := d.peerByName(name)
		if err != nil {
			return &targetError{err}
		}
		return d.phone.Call(ctx, peer)
	}
	var members []call.Peer
	var missing []string
	for _, m := range g.Peers {
		p, err := d.peerByName(m)
		if err != nil {
			missing = append(missing, m)
			continue
		}
		members = append(members, p)
	}
	if len(missing) > 0 {
		d.log.Warn("group members not paired: left out", "group", name, "peers", strings.Join(missing, ", "))
	}
	if len(members) == 0 {
		return &targetError{fmt.Errorf("group %s: none of its peers (%s) is paired", name, strings.Join(g.Peers, ", "))}
	}
	return d.phone.CallGroup(ctx, name, members)
}

// callTargets lists what a call may name: the groups, then the paired
// peers whose names no group takes.
func (d *daemon) callTargets() []string {
	var names []string
	for _, g := range d.cfg.Groups {
		names = append(names, g.Name)
	}
	for _, p := range d.peers.List() {
		if _, ok := d.cfg.group(p.Name); !ok {
			names = append(names, p.Name)
		}
	}
	return names
}

// targetError says whom to call could not be worked out: no such peer or
// group, or nobody to call by default.
type targetError struct{ err error }

func (e *targetError) Error() string { return e.err.Error() }
func (e *targetError) Unwrap() error { return e.err }

// press is a short press of a button that calls target ("" = the
// default): idle, it calls; otherwise it answers or hangs up as the phone's
// Press does.
//
// A press that places a call is a ring (rings.Button): Home Assistant's
// doorbell event and a picture from this box's camera.
func (d *daemon) press(ctx context.Context, target string) error {
	if d.phone.Status().State == call.Idle {
		if target == "" {
			t, err := d.defaultTarget()
			if err != nil {
				return &targetError{err}
			}
			target = t
		}
		err := d.callTarget(ctx, target)
		if err == nil {
			d.rang(rings.Button, target)
		}
		if !errors.Is(err, call.ErrBusy) {
			return err
		}
		// A call came in meanwhile: the press is for it.
	}
	return d.phone.Press(ctx)
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
		if err := d.press(ctx, ""); err != nil {
			d.log.Warn("button press did nothing", "component", "gpio", "err", err)
			d.panel.flash(gpio.ErrorBlink)
		}
	case gpio.LongPress:
		d.pair.start(d.runCtx)
	}
}

// refreshLED shows the call state on the LED (see panel.pattern).
func (d *daemon) refreshLED(s call.State) { d.panel.show(s, d.pair.status().State) }

// stateChanged runs in the phone's goroutine: keep it short.
func (d *daemon) stateChanged(st call.Status) {
	// From calling or ringing on, so that the first frame is ready when
	// the call is answered.
	d.video.set("call", st.State != call.Idle)
	d.audio.set("call", st.State != call.Idle)
	d.refreshLED(st.State)
	d.showButtons(st)
	d.homeState(st)
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
	if l := d.doorLine(); l != "" {
		return []string{d.cfg.Name, state, l}
	}
	return []string{d.cfg.Name, state}
}

// kickStatus tells the notify loop the human status may have changed.
func (d *daemon) kickStatus() {
	select {
	case d.statusKick <- struct{}{}:
	default:
	}
}
