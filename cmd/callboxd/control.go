package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/web"
	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/echo"
	"github.com/callbox/callbox/stream/identity"
)

// listenControl opens the control socket, readable and writable by the
// daemon's user and group only (0660).
func (d *daemon) listenControl() (net.Listener, error) {
	path := d.cfg.ControlSocket
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// A socket file left by a killed daemon blocks bind; remove it only if
	// nobody answers on it.
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another daemon is listening", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// controlRoutes is the control API: one handler per route, each a method
// of the daemon. docs/design.md lists them with what they do.
var controlRoutes = []struct {
	pattern string
	serve   func(d *daemon, w http.ResponseWriter, r *http.Request)
}{
	{"GET /v1/status", (*daemon).serveStatus},
	{"GET /v1/id", (*daemon).serveID},
	{"POST /v1/call", (*daemon).serveCall},
	{"POST /v1/hangup", (*daemon).serveHangup},
	{"POST /v1/answer", (*daemon).serveAnswer},
	{"POST /v1/press", (*daemon).servePress},
	{"POST /v1/pair", (*daemon).servePair},
	{"GET /v1/peers", (*daemon).servePeers},
	{"POST /v1/peers", (*daemon).serveAddPeer},
	{"DELETE /v1/peers/{name}", (*daemon).serveRemovePeer},
	{"GET /v1/devices", (*daemon).serveDevices},
	{"GET /v1/frame/{which}", (*daemon).serveFrame},
	{"GET /v1/rings", (*daemon).serveRings},
	{"GET /v1/rings/{id}", (*daemon).serveRingPicture},
	{"POST /v1/door/open", (*daemon).serveDoorOpen},
}

func (d *daemon) controlServer() *http.Server {
	mux := http.NewServeMux()
	for _, rt := range controlRoutes {
		serve := rt.serve
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { serve(d, w, r) })
	}
	// An idle client's connection is closed after a minute: connections
	// kept open forever would hold descriptors the call port needs.
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
}

func (d *daemon) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.status())
}

func (d *daemon) serveID(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, control.ID{Name: d.cfg.Name, Fingerprint: d.id.Fingerprint.String(), Listen: d.ln.Addr().String()})
}

func (d *daemon) serveCall(w http.ResponseWriter, r *http.Request) {
	var req control.CallRequest
	if !readJSON(w, r, &req) {
		return
	}
	err := d.callTarget(r.Context(), req.Peer)
	if te := (*targetError)(nil); errors.As(err, &te) {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	d.reply(w, err)
}

func (d *daemon) serveHangup(w http.ResponseWriter, r *http.Request) {
	d.reply(w, d.phone.Hangup(r.Context()))
}

func (d *daemon) serveAnswer(w http.ResponseWriter, r *http.Request) {
	d.reply(w, d.phone.Answer(r.Context()))
}

func (d *daemon) servePress(w http.ResponseWriter, r *http.Request) {
	var req control.PressRequest
	if !readJSON(w, r, &req) {
		return
	}
	// A simulated button is pressed through its own event path, exactly
	// as a finger would; with a real button the press acts directly.
	if err := d.pressButton(r.Context(), req.Button, req.Long); err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, errNoButton) {
			code = http.StatusNotFound
		}
		writeErr(w, code, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (d *daemon) servePair(w http.ResponseWriter, r *http.Request) {
	var req control.PairRequest
	if !readJSON(w, r, &req) {
		return
	}
	switch {
	case req.Confirm:
		if err := d.pair.userConfirm(); err != nil {
			writeErr(w, http.StatusConflict, err)
			return
		}
	case req.Cancel:
		d.pair.stop()
	default:
		d.pair.start(d.runCtx)
	}
	writeJSON(w, http.StatusOK, d.pair.status())
}

func (d *daemon) servePeers(w http.ResponseWriter, r *http.Request) {
	var out []control.Peer
	for _, p := range d.peers.List() {
		out = append(out, control.Peer{Name: p.Name, Fingerprint: p.Fingerprint.String(), Address: p.Address, LastAddress: p.LastAddress})
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *daemon) serveAddPeer(w http.ResponseWriter, r *http.Request) {
	var req control.Peer
	if !readJSON(w, r, &req) {
		return
	}
	fp, err := identity.ParseFingerprint(req.Fingerprint)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	if fp == d.id.Fingerprint {
		writeErr(w, http.StatusBadRequest, errors.New("that is this box's own fingerprint"))
		return
	}
	if err := d.peers.Add(identity.Peer{Name: req.Name, Fingerprint: fp, Address: req.Address}); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, identity.ErrNameTaken) || errors.Is(err, identity.ErrFingerprintTaken) {
			code = http.StatusConflict
		}
		writeErr(w, code, err)
		return
	}
	d.log.Info("paired peer added", "component", "identity", "peer", req.Name, "fingerprint", fp.String(), "address", req.Address)
	d.panel.setStore("") // someone looked after the peers: a recovery is settled
	writeJSON(w, http.StatusOK, struct{}{})
}

func (d *daemon) serveRemovePeer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := d.peers.Remove(name); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, identity.ErrNoPeer) {
			code = http.StatusNotFound
		}
		writeErr(w, code, err)
		return
	}
	d.log.Info("paired peer removed", "component", "identity", "peer", name)
	d.panel.setStore("")
	writeJSON(w, http.StatusOK, struct{}{})
}

func (d *daemon) serveDevices(w http.ResponseWriter, r *http.Request) {
	devs, err := listDevices()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, devs)
}

// serveFrame serves the latest frame of ours or the peer's; only frames
// that passed the media checks ever get here.
func (d *daemon) serveFrame(w http.ResponseWriter, r *http.Request) {
	var jpeg []byte
	switch r.PathValue("which") {
	case "peer":
		jpeg, _, _ = d.sink.frames.Get()
	case "self":
		jpeg = d.selfFrame(r.Context())
	default:
		writeErr(w, http.StatusNotFound, errors.New(`frame: want "peer" or "self"`))
		return
	}
	if len(jpeg) == 0 {
		writeErr(w, http.StatusNotFound, errors.New("no frame yet"))
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Write(jpeg)
}

func (d *daemon) serveRings(w http.ResponseWriter, r *http.Request) {
	list, err := d.rings.List()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (d *daemon) serveRingPicture(w http.ResponseWriter, r *http.Request) {
	jpeg, err := d.rings.Picture(strings.TrimSuffix(r.PathValue("id"), ".jpg"))
	if err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Write(jpeg)
}

func (d *daemon) status() control.Status {
	ps := d.play.Stats()
	gp, store, dev := d.panel.problems()
	ls := d.calls.Stats()
	var scr *control.Screen
	if d.screen != nil {
		st := d.screen.Stats()
		scr = &control.Screen{Device: d.cfg.Screen.Device, State: d.screen.State(), Shown: st.Shown,
			Dropped: st.Dropped, Broken: st.Broken, SelfShown: st.SelfShown}
	}
	def, _ := d.defaultTarget()
	return control.Status{
		Screen:      scr,
		Name:        d.cfg.Name,
		Fingerprint: d.id.Fingerprint.String(),
		Listen:      d.ln.Addr().String(),
		Version:     version,
		Phone:       d.phone.Status(),
		LED:         d.led.Pattern().String(),
		ButtonLEDs:  d.buttonLEDs(),
		CallTargets: d.callTargets(),
		MQTT:        d.mqttStatus(),
		RingErrors:  d.ringErrors(),
		Default:     def,
		Camera:      d.cfg.Video.Device + ": " + dev[devCamera].String(),
		Microphone:  d.cfg.Audio.Capture + ": " + dev[devMic].String(),
		Speaker:     d.cfg.Audio.Playback + ": " + dev[devSpeaker].String(),
		Devices:     d.panel.devices([numDevs]string{d.cfg.Video.Device, d.cfg.Audio.Capture, d.cfg.Audio.Playback}),
		GPIO:        gp,
		PeerStore:   store,
		Listener:    control.Listener{InUse: ls.InUse, Friends: ls.Friends, Accepted: ls.Accepted, Dropped: ls.Dropped, DatagramsRefused: d.phone.DatagramsRefused()},
		Pairing:     d.pair.status(),
		Discovery:   d.discoveryState(),
		Playout: control.Playout{
			DepthMs: float64(ps.Depth.Microseconds()) / 1000, Played: ps.Played,
			Underruns: ps.Underruns, Concealed: ps.Concealed, Overflow: ps.Overflow, Late: ps.Late,
			Squeezed: ps.Squeezed, Stretched: ps.Stretched,
			TargetMs: float64(ps.Target.Microseconds()) / 1000, JitterMs: float64(ps.Jitter.Microseconds()) / 1000,
		},
		Process: processFigures(),
		Echo:    d.echoStatus(),
		Media: control.Media{Video: d.video.describe(), Audio: d.audio.describe(),
			VideoFrames: d.frames.Load(), AudioFrames: d.micFrames.Load()},
		VideoQuality: d.videoQuality(),
		Peers:        d.peersSeen(time.Now()),
		Door:         d.doorStatus(),
	}
}

// selfFrame is our camera's newest frame. The camera is closed while
// nobody needs it (and then there is no frame): it is opened for this
// request, which waits up to selfWait for its first frame.
func (d *daemon) selfFrame(ctx context.Context) []byte {
	if jpeg, _, _ := d.self.Get(); len(jpeg) > 0 {
		return jpeg
	}
	release := d.video.hold("snapshot")
	defer release()
	ctx, cancel := context.WithTimeout(ctx, selfWait)
	defer cancel()
	return web.WaitFrame(ctx, d.self.Get, web.AnyFrame)
}

// selfWait bounds how long a request for our own frame waits for the
// camera to open and deliver.
const selfWait = 3 * time.Second

// echoStatus is the microphone processing's state; nil without one.
func (d *daemon) echoStatus() *control.Echo {
	if d.echo == nil {
		return nil
	}
	st := d.echo.Stats()
	return &control.Echo{Parts: echoParts(d.echo.Config()), DelayKnown: st.DelayKnown,
		DelayMs: float64(st.Delay.Microseconds()) / 1000, DelayChanges: st.DelayChanges,
		ERLE: math.Round(st.ERLE*10) / 10, Ducking: st.Duck >= 1, DuckDB: max(math.Round(st.Duck*10)/10, 0),
		DuckedFrames: st.DuckedFrames, Frames: st.Frames}
}

// echoParts names the parts of the processing that run.
func echoParts(c echo.Config) string {
	var p []string
	for _, x := range []struct {
		on   bool
		name string
	}{{c.Cancel, "cancel"}, {c.Suppress, "suppress"}, {c.Denoise, "denoise"}, {c.AGC, "agc"}, {c.Duck, "duck"}} {
		if x.on {
			p = append(p, x.name)
		}
	}
	return strings.Join(p, "+")
}

// processFigures counts the daemon's goroutines, live heap and open file
// descriptors.
func processFigures() control.Process {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds := -1
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(ents) - 1 // the directory being read is one of them
	}
	return control.Process{Goroutines: runtime.NumGoroutine(), HeapBytes: ms.HeapAlloc, OpenFDs: fds}
}

func (d *daemon) discoveryState() string {
	if d.disc == nil {
		return "off"
	}
	st := d.disc.Stats()
	if len(st.Interfaces) == 0 {
		return "no interface"
	}
	return fmt.Sprintf("on %s; %d boxes seen; %d malformed packets", strings.Join(st.Interfaces, ", "), st.Known, st.Malformed)
}

func (d *daemon) reply(w http.ResponseWriter, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, struct{}{})
	case errors.Is(err, call.ErrBusy):
		writeErr(w, http.StatusConflict, err)
	default:
		writeErr(w, http.StatusBadRequest, err)
	}
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return false
	}
	if len(body) == 0 {
		return true
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, control.Error{Error: err.Error()})
}
