package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/hass"
	"github.com/callbox/callbox/internal/rings"
	"github.com/callbox/callbox/internal/web"
	"github.com/callbox/callbox/stream/call"
)

// The household side: who rang (internal/rings) and Home Assistant over
// MQTT (internal/hass). Neither is on the call path: a ring is recorded
// and published by goroutines of its own, and the broker is never waited
// for.

// MQTTConfig is [mqtt]: Home Assistant over MQTT; off without a broker.
type MQTTConfig struct {
	Broker          string `toml:"broker"`           // tcp://host:1883 or tls://host:8883; "" = off
	CAFile          string `toml:"ca_file"`          // PEM roots for tls:// (default: the system's)
	ClientID        string `toml:"client_id"`        // default callbox-<name>
	User            string `toml:"user"`             // login name, if the broker wants one
	PasswordFile    string `toml:"password_file"`    // the password, alone in a file (never in this config)
	TopicPrefix     string `toml:"topic_prefix"`     // default callbox/<name>
	DiscoveryPrefix string `toml:"discovery_prefix"` // Home Assistant's, default homeassistant
}

// RingsConfig is [rings]: the pictures of who rang, kept in the state
// directory.
type RingsConfig struct {
	Keep  int `toml:"keep"`   // rings kept, 1..10000
	MaxMB int `toml:"max_mb"` // their pictures in all, 1..10000 MB
}

func (c *Config) validateHome() error {
	r := c.Rings
	if r.Keep < 1 || r.Keep > 10000 {
		return fmt.Errorf("rings.keep: %d out of range 1..10000", r.Keep)
	}
	if r.MaxMB < 1 || r.MaxMB > 10000 {
		return fmt.Errorf("rings.max_mb: %d out of range 1..10000", r.MaxMB)
	}
	if c.MQTT.Broker == "" {
		return nil
	}
	hc := c.hassConfig("")
	hc.Fingerprint = "-" // known once the identity is loaded
	if err := hc.Validate(); err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	if c.MQTT.PasswordFile != "" && c.MQTT.User == "" {
		return errors.New("mqtt.password_file: set mqtt.user too")
	}
	return nil
}

// hassConfig is the MQTT side's config, defaults filled in, without the
// password (read from its file at start).
func (c *Config) hassConfig(password string) hass.Config {
	m := c.MQTT
	hc := hass.Config{
		Broker: m.Broker, CAFile: m.CAFile, ClientID: m.ClientID, User: m.User, Password: password,
		TopicPrefix: m.TopicPrefix, DiscoveryPrefix: m.DiscoveryPrefix,
		Name: c.Name, Version: version,
	}
	if hc.ClientID == "" {
		hc.ClientID = "callbox-" + c.Name
	}
	if hc.TopicPrefix == "" {
		hc.TopicPrefix = "callbox/" + c.Name
	}
	return hc
}

// readSecret reads a password file: its first line, without the line end.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s, _, _ := strings.Cut(string(b), "\n")
	s = strings.TrimRight(s, "\r")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// openHome opens the rings store and makes the MQTT client (Run starts
// it). Errors are the config's: the daemon exits 78.
func (d *daemon) openHome() error {
	var err error
	d.rings, err = rings.Open(rings.Config{
		Dir:      filepath.Join(d.cfg.StateDir, "rings"),
		MaxCount: d.cfg.Rings.Keep,
		MaxBytes: int64(d.cfg.Rings.MaxMB) << 20,
		Logger:   d.log,
	})
	if err != nil {
		return &ConfigError{fmt.Errorf("rings: %w", err)}
	}
	if d.cfg.MQTT.Broker == "" {
		return nil
	}
	password := ""
	if f := d.cfg.MQTT.PasswordFile; f != "" {
		if password, err = readSecret(f); err != nil {
			d.rings.Close()
			return &ConfigError{fmt.Errorf("mqtt.password_file: %w", err)}
		}
	}
	hc := d.cfg.hassConfig(password)
	hc.Fingerprint = d.id.Fingerprint.String()
	hc.Door = d.hasDoor()
	hc.Logger = d.log
	if d.mqtt, err = hass.New(hc, homeHandler{d}); err != nil {
		d.rings.Close()
		return &ConfigError{err}
	}
	return nil
}

// closeHome waits for the rings being saved and closes the store.
func (d *daemon) closeHome() {
	d.ringWG.Wait()
	if d.rings != nil {
		d.rings.Close()
	}
}

// homeHandler is what Home Assistant's commands do.
type homeHandler struct{ d *daemon }

func (h homeHandler) Call(ctx context.Context, target string) error {
	return h.d.callTarget(ctx, target)
}
func (h homeHandler) Hangup(ctx context.Context) error { return h.d.phone.Hangup(ctx) }
func (h homeHandler) OpenDoor(ctx context.Context, who string) error {
	return h.d.openDoor(ctx, who)
}

// homeState follows the call state (phone goroutine: quick, no I/O): the
// MQTT state, and an incoming call as a ring.
func (d *daemon) homeState(st call.Status) {
	prev := d.lastState
	d.lastState = st.State
	if d.mqtt != nil {
		s := hass.State{State: st.State.String()}
		if st.Peer != nil {
			s.Peer = st.Peer.Name
		}
		d.mqtt.SetState(s)
	}
	if prev == call.Idle && (st.State == call.Ringing || st.State == call.InCall) && st.Peer != nil {
		d.rang(rings.Incoming, st.Peer.Name)
	}
}

// ringWait bounds the wait for a ring's picture: the camera opens when
// the call starts (a V4L2 camera well within a second); the peer's first
// frame comes once the call is answered.
const (
	ringWaitSelf = 3 * time.Second
	ringWaitPeer = 10 * time.Second
)

// rang records a ring: the event to Home Assistant at once, the picture
// (this box's camera for a button press, the peer's first frame for an
// incoming call) when it comes, then the ring with it (or without one).
func (d *daemon) rang(kind, peer string) {
	at := time.Now()
	d.log.Info("ring", "component", "rings", "kind", kind, "peer", peer)
	if d.mqtt != nil {
		d.mqtt.Ring(kind, peer)
	}
	if d.rings == nil {
		return
	}
	get, wait := d.self.Get, ringWaitSelf
	if kind == rings.Incoming {
		get, wait = d.sink.frames.Get, ringWaitPeer
	}
	_, since, _ := get()
	ctx := d.runCtx
	if ctx == nil {
		ctx = context.Background()
	}
	d.ringWG.Add(1)
	go func() {
		defer d.ringWG.Done()
		if kind == rings.Button {
			// Hold the camera open for the picture even if the call ends
			// at once.
			defer d.video.hold("ring picture")()
		}
		pic := newerFrame(ctx, get, since, wait)
		d.rings.Add(kind, peer, at, pic)
		if d.mqtt != nil && pic != nil {
			d.mqtt.SetImage(pic)
		}
	}()
}

// newerFrame waits (at most wait) for a frame after version since and
// returns it, or nil.
func newerFrame(ctx context.Context, get func() ([]byte, uint64, <-chan struct{}), since uint64, wait time.Duration) []byte {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return web.WaitFrame(ctx, get, since)
}

// mqttStatus is the broker connection for status; nil when MQTT is off.
func (d *daemon) mqttStatus() *control.MQTT {
	if d.mqtt == nil {
		return nil
	}
	st := d.mqtt.Status()
	return &control.MQTT{Broker: st.Broker, Connected: st.Connected, Since: st.Since, Error: st.Error, Published: st.Published, Dropped: st.Dropped}
}

// ringErrors says why rings were not saved, if any were not.
func (d *daemon) ringErrors() string {
	n, last := d.rings.Errors()
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d rings not saved, the last: %s", n, last)
}
