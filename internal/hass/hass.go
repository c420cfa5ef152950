// Package hass puts a box into Home Assistant over MQTT: discovery
// configs for one device (a doorbell event, the call state, the picture
// of the last ring, buttons to call, hang up and open the door), the
// state and events as they happen, availability through a last will, and
// commands back. Nothing on the call path waits for the broker: state
// and events go to a queue that a goroutine of its own sends, the latest
// state winning; a broker that is down or refuses the login leaves the
// box working and says so in Status.
package hass

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/callbox/callbox/internal/backoff"
)

// Config configures the MQTT side.
type Config struct {
	Broker          string // tcp://host:port or tls://host:port
	CAFile          string // PEM roots for tls:// (empty: the system's)
	ClientID        string
	User            string
	Password        string
	TopicPrefix     string // callbox/<name>
	DiscoveryPrefix string // homeassistant

	// The Home Assistant device: its name, this box's key fingerprint
	// (identifiers and unique ids), the software version.
	Name        string
	Fingerprint string
	Version     string
	Door        bool // a door opener is configured: offer its button

	Logger *slog.Logger
}

// Validate checks the broker URL and the topics.
func (c Config) Validate() error {
	u, err := url.Parse(c.Broker)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "tls") || u.Host == "" || u.Port() == "" {
		return fmt.Errorf("broker %q is not tcp://host:port or tls://host:port", c.Broker)
	}
	if c.CAFile != "" && u.Scheme != "tls" {
		return errors.New("ca_file is for a tls:// broker")
	}
	for _, t := range []struct{ name, v string }{{"topic_prefix", c.TopicPrefix}, {"discovery_prefix", c.DiscoveryPrefix}} {
		if t.v == "" || strings.ContainsAny(t.v, "#+\x00") || strings.HasPrefix(t.v, "/") || strings.HasSuffix(t.v, "/") {
			return fmt.Errorf("%s %q: want a topic without wildcards or a leading or trailing /", t.name, t.v)
		}
	}
	if c.ClientID == "" || len(c.ClientID) > 64 {
		return fmt.Errorf("client_id %q: want 1..64 characters", c.ClientID)
	}
	if c.Fingerprint == "" {
		return errors.New("no fingerprint for the device's identifiers")
	}
	return nil
}

// Handler is what commands from Home Assistant do. Each runs in a
// goroutine of its own; an error is logged.
type Handler interface {
	Call(ctx context.Context, target string) error
	Hangup(ctx context.Context) error
	OpenDoor(ctx context.Context, who string) error
}

// Status is the connection's state for status lines.
type Status struct {
	Broker    string    `json:"broker"`
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since"`
	Error     string    `json:"error,omitempty"` // why it is not connected
	Published uint64    `json:"published"`
	Dropped   uint64    `json:"dropped"` // events not sent: broker away or queue full
}

// State is the call state as published.
type State struct {
	State string `json:"state"`          // idle, calling, ringing, in call
	Peer  string `json:"peer,omitempty"` // whom, during a call
}

// Client publishes to one broker. Its methods are safe for concurrent use
// and never block on the network.
type Client struct {
	cfg   Config
	log   *slog.Logger
	h     Handler
	node  string // Home Assistant node id: callbox_<fingerprint>
	topic func(string) string

	mu      sync.Mutex
	st      Status
	state   State
	image   []byte // the last ring's picture, published retained
	door    bool   // the door's strike is released (a pulse is under way)
	doorNew bool   // door changed since published
	dirty   bool   // state or image changed since published
	imgNew  bool
	events  []event
	kick    chan struct{}
	online  bool // connected and the discovery set sent
	runCtx  context.Context
	handled sync.WaitGroup // command goroutines
}

type event struct {
	Type string `json:"event_type"`
	Peer string `json:"peer,omitempty"`
}

// maxEvents bounds events waiting to be sent; older ones are dropped.
const maxEvents = 16

// New makes a client; Run connects it.
func New(cfg Config, h Handler) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	node := "callbox_" + strings.ReplaceAll(cfg.Fingerprint, "-", "")
	if len(node) > 8+20 {
		node = node[:8+20]
	}
	c := &Client{
		cfg: cfg, log: log.With("component", "mqtt"), h: h, node: node,
		topic: func(s string) string { return cfg.TopicPrefix + "/" + s },
		kick:  make(chan struct{}, 1),
		state: State{State: "idle"},
		dirty: true,
	}
	c.st = Status{Broker: cfg.Broker, Since: time.Now(), Error: "not connected yet"}
	return c, nil
}

// Topics under the prefix.
const (
	topicAvail  = "availability"
	topicState  = "state"
	topicEvent  = "event"
	topicImage  = "ring/image"
	topicCall   = "command/call"
	topicHangup = "command/hangup"
	topicOpen   = "command/open"
	topicDoor   = "door"
)

// SetState publishes the call state (retained); the latest wins.
func (c *Client) SetState(s State) {
	c.mu.Lock()
	if s != c.state {
		c.state, c.dirty = s, true
	}
	c.mu.Unlock()
	c.poke()
}

// Ring fires the doorbell event: kind "ring" (this box's button) or
// "incoming" (a call came in), with the peer's name.
func (c *Client) Ring(kind, peer string) {
	c.mu.Lock()
	if !c.online {
		c.st.Dropped++ // an event is now or never
	} else {
		if len(c.events) == maxEvents {
			c.events = c.events[1:]
			c.st.Dropped++
		}
		c.events = append(c.events, event{Type: kind, Peer: peer})
	}
	c.mu.Unlock()
	c.poke()
}

// SetDoor publishes whether the door's strike is released (retained,
// "ON" while a pulse is under way, "OFF" otherwise); the latest wins.
func (c *Client) SetDoor(open bool) {
	c.mu.Lock()
	if open != c.door {
		c.door, c.doorNew = open, true
	}
	c.mu.Unlock()
	c.poke()
}

// SetImage publishes the picture of the last ring (retained). The client
// takes jpeg.
func (c *Client) SetImage(jpeg []byte) {
	c.mu.Lock()
	c.image, c.imgNew = jpeg, true
	c.mu.Unlock()
	c.poke()
}

// Status returns the connection's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *Client) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Client) setConn(up bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if up != c.st.Connected || err != nil {
		c.st.Since = time.Now()
	}
	c.st.Connected = up
	c.st.Error = ""
	if err != nil {
		c.st.Error = err.Error()
	}
	if !up {
		c.online = false
		c.events = nil
	}
}

// Run connects, publishes and reconnects with backoff until ctx ends;
// then it publishes "offline" and disconnects.
func (c *Client) Run(ctx context.Context) {
	c.runCtx = ctx
	defer c.handled.Wait()
	retry := backoff.New(backoff.Policy{First: time.Second, Max: time.Minute, Healthy: time.Minute})
	for ctx.Err() == nil {
		began := time.Now()
		err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		retry.Ran(time.Since(began))
		wait := retry.Next()
		c.setConn(false, err)
		c.log.Warn("broker unreachable; the box works without it", "broker", c.cfg.Broker, "err", err, "retry_in", wait.Round(100*time.Millisecond))
		if backoff.Wait(ctx, wait) != nil {
			return
		}
	}
}

// session runs one connection until it is lost or ctx ends.
func (c *Client) session(ctx context.Context) error {
	opts := mqtt.NewClientOptions().
		AddBroker(c.cfg.Broker).
		SetClientID(c.cfg.ClientID).
		SetUsername(c.cfg.User).
		SetPassword(c.cfg.Password).
		SetCleanSession(true).
		SetAutoReconnect(false). // Run's loop reconnects, and knows why it failed
		SetConnectRetry(false).
		SetConnectTimeout(5*time.Second).
		SetKeepAlive(30*time.Second).
		SetPingTimeout(5*time.Second).
		SetWriteTimeout(5*time.Second).
		SetOrderMatters(false).
		SetBinaryWill(c.topic(topicAvail), []byte("offline"), 1, true)
	if strings.HasPrefix(c.cfg.Broker, "tls://") {
		tc, err := c.tlsConfig()
		if err != nil {
			return err
		}
		opts.SetTLSConfig(tc)
	}
	lost := make(chan error, 1)
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case lost <- err:
		default:
		}
	})
	cl := mqtt.NewClient(opts)
	if err := wait(ctx, cl.Connect(), 10*time.Second); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		// Say goodbye: the will covers a crash, this a clean stop.
		cl.Publish(c.topic(topicAvail), 1, true, "offline").WaitTimeout(time.Second)
		cl.Disconnect(250)
	}()
	for _, t := range []string{topicCall, topicHangup, topicOpen} {
		if err := wait(ctx, cl.Subscribe(c.topic(t), 1, c.command), 5*time.Second); err != nil {
			return fmt.Errorf("subscribe %s: %w", c.topic(t), err)
		}
	}
	for _, d := range c.discovery() {
		if err := c.publish(ctx, cl, d.topic, true, d.payload); err != nil {
			return err
		}
	}
	if err := c.publish(ctx, cl, c.topic(topicAvail), true, []byte("online")); err != nil {
		return err
	}
	c.mu.Lock()
	c.dirty, c.imgNew, c.doorNew = true, c.image != nil, c.cfg.Door // all again on a new connection
	c.online = true
	c.mu.Unlock()
	c.setConn(true, nil)
	c.log.Info("connected to the broker", "broker", c.cfg.Broker, "discovery", c.cfg.DiscoveryPrefix)
	for {
		if err := c.flush(ctx, cl); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case <-c.kick:
		}
	}
}

// flush sends what changed: events, then the state, then the picture.
func (c *Client) flush(ctx context.Context, cl mqtt.Client) error {
	for {
		c.mu.Lock()
		var (
			topic   string
			payload []byte
			retain  bool
		)
		switch {
		case len(c.events) > 0:
			topic, payload = c.topic(topicEvent), mustJSON(c.events[0])
			c.events = c.events[1:]
		case c.dirty:
			topic, payload, retain = c.topic(topicState), mustJSON(c.state), true
			c.dirty = false
		case c.doorNew:
			topic, payload, retain = c.topic(topicDoor), []byte("OFF"), true
			if c.door {
				payload = []byte("ON")
			}
			c.doorNew = false
		case c.imgNew:
			topic, payload, retain = c.topic(topicImage), c.image, true
			c.imgNew = false
		}
		c.mu.Unlock()
		if topic == "" {
			return nil
		}
		if err := c.publish(ctx, cl, topic, retain, payload); err != nil {
			return err
		}
	}
}

func (c *Client) publish(ctx context.Context, cl mqtt.Client, topic string, retain bool, payload []byte) error {
	if err := wait(ctx, cl.Publish(topic, 1, retain, payload), 10*time.Second); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	c.mu.Lock()
	c.st.Published++
	c.mu.Unlock()
	return nil
}

// command runs a message on a command topic (in paho's goroutine: hand
// it on at once).
func (c *Client) command(_ mqtt.Client, m mqtt.Message) {
	topic, payload := m.Topic(), strings.TrimSpace(string(m.Payload()))
	if len(payload) > 64 {
		c.log.Warn("command ignored: payload too long", "topic", topic, "bytes", len(payload))
		return
	}
	var do func(ctx context.Context) error
	switch topic {
	case c.topic(topicCall):
		target := payload
		if target == "PRESS" { // Home Assistant's button: the default target
			target = ""
		}
		do = func(ctx context.Context) error { return c.h.Call(ctx, target) }
	case c.topic(topicHangup):
		do = c.h.Hangup
	case c.topic(topicOpen):
		do = func(ctx context.Context) error { return c.h.OpenDoor(ctx, "mqtt") }
	default:
		return
	}
	ctx := c.runCtx
	if ctx == nil || ctx.Err() != nil {
		return
	}
	c.handled.Add(1)
	go func() {
		defer c.handled.Done()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := do(ctx); err != nil {
			c.log.Warn("command from the broker failed", "topic", topic, "payload", payload, "err", err)
			return
		}
		c.log.Info("command from the broker", "topic", topic, "payload", payload)
	}()
}

func (c *Client) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.cfg.CAFile != "" {
		pem, err := os.ReadFile(c.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", c.cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// wait waits for a paho token, ctx, or timeout.
func wait(ctx context.Context, t mqtt.Token, timeout time.Duration) error {
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return errors.New("timed out")
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // our own plain structs
	}
	return b
}
