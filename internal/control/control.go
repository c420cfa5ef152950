// Package control is the daemon's local control API: the JSON types it
// speaks over its unix socket and the client the callbox tool uses.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/callbox/callbox/stream/call"
)

// Status is what GET /v1/status returns.
type Status struct {
	Name        string      `json:"name"`
	Fingerprint string      `json:"fingerprint"`
	Listen      string      `json:"listen"`
	Version     string      `json:"version"`
	Phone       call.Status `json:"phone"`
	LED         string      `json:"led"`
	// ButtonLEDs are the [[button]] LEDs' patterns: "1 off, 2 fast-blink".
	ButtonLEDs string `json:"button_leds,omitempty"`
	// CallTargets are the names a call may name: the groups, then the
	// paired peers; Default is whom the button calls ("" when it cannot
	// tell).
	CallTargets []string `json:"call_targets,omitempty"`
	// MQTT is the broker connection (Home Assistant); nil when off.
	MQTT *MQTT `json:"mqtt,omitempty"`
	// RingErrors says why rings were not saved, if any were not.
	RingErrors string  `json:"ring_errors,omitempty"`
	Default    string  `json:"default_target,omitempty"`
	Camera     string  `json:"camera"`
	Microphone string  `json:"microphone"`
	Speaker    string  `json:"speaker"`
	GPIO       string  `json:"gpio,omitempty"`   // what is wrong with the button or LED, if anything
	Screen     *Screen `json:"screen,omitempty"` // nil: no screen configured
	Playout    Playout `json:"playout"`
	Pairing    Pairing `json:"pairing"`
	Discovery  string  `json:"discovery,omitempty"` // "off", or the interfaces mDNS runs on
	Process    Process `json:"process"`
	// Devices holds the camera's, microphone's and speaker's state in a
	// form to branch on; Camera, Microphone and Speaker say the same for
	// people.
	Devices []Device `json:"devices,omitempty"`
	// PeerStore says what was done about a corrupt peer store at start
	// (restored from its good copy, or started empty); empty when it was
	// fine. The LED shows the error pattern while it is set.
	PeerStore string `json:"peer_store,omitempty"`
	// Listener is the call port's handshake slots.
	Listener Listener `json:"listener"`
	// Echo is the microphone's processing; nil when there is none (a
	// simulated test microphone, or every part turned off).
	Echo *Echo `json:"echo,omitempty"`
	// Media says whether the camera and the microphone and speaker are
	// open, and for what: they are closed while nobody needs them.
	Media Media `json:"media"`
	// VideoQuality is the JPEG quality of the frames we send, which
	// follows the call's link.
	VideoQuality VideoQuality `json:"video_quality"`
	// Peers is every paired peer and when this box last saw it.
	Peers []PeerSeen `json:"peers"`
	// Door is the door opener; nil when none is configured. Whether the
	// peer of a call has one, and our last request to it, are in Phone.
	Door *Door `json:"door,omitempty"`
}

// PeerSeen is a paired peer and when this box last saw it, by each of
// the ways a box sees another: discovery heard its key, a call of ours
// reached it (the handshake showed its key), or it called us. The daemon
// keeps sightings in memory only: after a restart it has seen nobody yet.
type PeerSeen struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	// Last is the latest of the three; nil: not seen since the daemon
	// started.
	Last      *Sighting `json:"last,omitempty"`
	Discovery *Sighting `json:"discovery,omitempty"`
	OurCall   *Sighting `json:"our_call,omitempty"`
	TheirCall *Sighting `json:"their_call,omitempty"`
	// Summary says Last for people: "seen 2 min ago by discovery at
	// 192.168.1.20:7420", "never seen since start" (SeenSummary).
	Summary string `json:"summary"`
}

// How a peer was seen (Sighting.By).
const (
	SeenByDiscovery = "discovery" // an mDNS answer carried its key
	SeenByOurCall   = "our call"  // a call of ours reached it
	SeenByTheirCall = "its call"  // it called us
)

// Sighting is one time a peer was seen: how, when, where, and how long
// before the status was made (so that a client need not trust its own
// clock against the box's).
type Sighting struct {
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	AgoS    float64   `json:"ago_s"`
	Address string    `json:"address,omitempty"` // where it answered or called from
}

// SeenSummary says a peer's last sighting for people: "seen 2 min ago by
// discovery at 192.168.1.20:7420", "seen 4 s ago by our call to
// door.lan:7420", "seen 3 h ago by its call from 10.0.0.7", or, for nil,
// "never seen since start".
func SeenSummary(s *Sighting) string {
	if s == nil {
		return "never seen since start"
	}
	out := "seen " + Ago(time.Duration(s.AgoS*float64(time.Second))) + " by " + s.By
	if s.Address != "" {
		switch s.By {
		case SeenByOurCall:
			out += " to "
		case SeenByTheirCall:
			out += " from "
		default:
			out += " at "
		}
		out += s.Address
	}
	return out
}

// Ago says how long ago something happened, in the largest whole unit:
// "just now" (under 2 s), "40 s ago", "2 min ago", "3 h ago", "5 days
// ago". A negative duration (clocks) is "just now".
func Ago(d time.Duration) string {
	switch {
	case d < 2*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}

// VideoQuality is the JPEG quality of the frames we send. For a camera
// whose JPEGs the daemon encodes (the test pattern, a raw V4L2 format) it
// follows the call's link, between Min and Configured; a camera's own
// MJPEG and a file replay are sent as they come (Adjustable false,
// Quality 0).
type VideoQuality struct {
	Quality    int    `json:"quality"`    // in use now; 0: not ours to set
	Configured int    `json:"configured"` // video.quality
	Min        int    `json:"min"`        // video.min_quality
	Adjustable bool   `json:"adjustable"` // the frames are encoded here and the quality follows the link
	Reason     string `json:"reason"`     // why it is what it is
	Changes    uint64 `json:"changes"`    // changes since the start
}

// Media is what the daemon captures and plays now: "closed", or "open
// (call)", "open (call, web viewer)", "open (lingering)" (the last reason
// went a moment ago; it closes soon).
type Media struct {
	Video string `json:"video"` // the camera
	Audio string `json:"audio"` // the microphone and the speaker
	// Frames the camera and the microphone delivered since the start:
	// they stand still while both are closed.
	VideoFrames uint64 `json:"video_frames"`
	AudioFrames uint64 `json:"audio_frames"`
}

// Echo is the microphone's processing (stream/echo): which parts run, the
// speaker-to-microphone delay it found, the echo reduction it reaches,
// and whether it is ducking the microphone (half duplex, the fallback when
// the canceller alone falls short).
type Echo struct {
	Parts        string  `json:"parts"`         // "cancel+suppress+denoise+agc+duck", as configured
	DelayKnown   bool    `json:"delay_known"`   // the speaker-to-microphone delay has been found
	DelayMs      float64 `json:"delay_ms"`      // the delay in use
	DelayChanges uint64  `json:"delay_changes"` // times it was found or moved
	ERLE         float64 `json:"erle_db"`       // echo return loss enhancement reached, dB
	Ducking      bool    `json:"ducking"`       // the microphone is being ducked now
	DuckDB       float64 `json:"duck_db"`       // by this much
	DuckedFrames uint64  `json:"ducked_frames"` // frames ducked since the start
	Frames       uint64  `json:"frames"`        // frames processed since the start
}

// Device is one device's state.
type Device struct {
	Name   string `json:"name"`   // camera, microphone, speaker
	Device string `json:"device"` // as configured: /dev/video0, hw:1,0, sim
	Health string `json:"health"` // starting, up, down (being retried), failed (given up)
	Detail string `json:"detail,omitempty"`
}

// Up reports whether the device works.
func (d Device) Up() bool { return d.Health == "up" }

// Listener is the call port's handshake slots: in use now (of them, the
// ones kept for paired peers' addresses), and the connections accepted
// and dropped for lack of a slot since the start.
type Listener struct {
	InUse    int    `json:"in_use"`
	Friends  int    `json:"friends"`
	Accepted uint64 `json:"accepted"`
	Dropped  uint64 `json:"dropped"`
	// DatagramsRefused counts UDP datagrams on the call port that opened
	// under no call's key (junk, replays, another box's): dropped unanswered.
	DatagramsRefused uint64 `json:"datagrams_refused"`
}

// Process is what the daemon process itself holds: a soak test watches
// these for growth, and a leak shows here before it takes the box down.
type Process struct {
	Goroutines int    `json:"goroutines"`
	HeapBytes  uint64 `json:"heap_bytes"` // live heap objects (runtime HeapAlloc)
	OpenFDs    int    `json:"open_fds"`   // -1 where it cannot be counted
}

// Pairing states.
const (
	PairOff     = "off"     // no window open, nothing to report
	PairWaiting = "waiting" // window open, looking for the other box
	PairConfirm = "confirm" // found it; waiting for the user to confirm the code
	PairPaired  = "paired"  // the last window paired a box
	PairFailed  = "failed"  // the last window ended without pairing
)

// Pairing is the state of button pairing. Window counts the windows
// opened since the daemon started, so a client can tell the result of
// the window it opened from an older one.
type Pairing struct {
	State       string    `json:"state"`
	Window      int       `json:"window"`
	Until       time.Time `json:"until,omitzero"` // when an open window closes
	Peer        string    `json:"peer,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Code        string    `json:"code,omitempty"` // confirmation code: the same on both boxes
	Error       string    `json:"error,omitempty"`
}

// PairRequest is the body of POST /v1/pair: open the window (empty), or
// confirm the code, or cancel.
type PairRequest struct {
	Confirm bool `json:"confirm,omitempty"`
	Cancel  bool `json:"cancel,omitempty"`
}

// Screen is the display's state and figures (device/screen).
type Screen struct {
	Device    string `json:"device"`
	State     string `json:"state"`      // "ok: 800x480 RGB565", "down: ...; retrying in 4s"
	Shown     uint64 `json:"shown"`      // peer frames drawn
	Dropped   uint64 `json:"dropped"`    // replaced by a newer one before being drawn
	Broken    uint64 `json:"broken"`     // did not decode: skipped
	SelfShown uint64 `json:"self_shown"` // self-view updates
}

// Playout is the audio jitter buffer's figures.
type Playout struct {
	DepthMs   float64 `json:"depth_ms"`
	Played    uint64  `json:"played"`
	Underruns uint64  `json:"underruns"`
	Concealed uint64  `json:"concealed"` // frames made up by the codec's loss concealment after underruns
	Overflow  uint64  `json:"overflow"`
	Late      uint64  `json:"late"`
	// Drift compensation between the two boxes' sample clocks, in samples
	// merged (squeezed) or inserted (stretched) since the call began.
	Squeezed  uint64 `json:"squeezed"`
	Stretched uint64 `json:"stretched"`
	// The depth the buffer keeps now: the configured target, or more
	// while the peer's frames arrive unevenly (JitterMs, measured).
	TargetMs float64 `json:"target_ms"`
	JitterMs float64 `json:"jitter_ms"`
}

// ID is what GET /v1/id returns.
type ID struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Listen      string `json:"listen"`
}

// Peer is one paired box.
type Peer struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Address     string `json:"address,omitempty"`      // configured (peers add)
	LastAddress string `json:"last_address,omitempty"` // where a call last worked (read only)
}

// CallRequest is the body of POST /v1/call: a paired peer's or a group's
// name; empty calls the default one (call_peer).
type CallRequest struct {
	Peer string `json:"peer,omitempty"`
}

// MQTT is the broker connection of the Home Assistant side.
type MQTT struct {
	Broker    string    `json:"broker"`
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since"`           // of the last change
	Error     string    `json:"error,omitempty"` // why it is not connected
	Published uint64    `json:"published"`
	Dropped   uint64    `json:"dropped"` // events not sent: broker away or queue full
}

// PressRequest is the body of POST /v1/press.
type PressRequest struct {
	Long bool `json:"long,omitempty"`
	// Button is which button: 0 the [gpio] one, 1.. the [[button]]
	// entries in the order of the config file.
	Button int `json:"button,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// Client talks to a daemon's control socket.
type Client struct {
	hc *http.Client
}

// NewClient returns a client for the unix socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// ErrUnreachable is wrapped by Do's error when no daemon answered on
// the socket (not running, another socket, no permission).
var ErrUnreachable = errors.New("cannot reach the daemon")

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (if non-nil). A non-2xx answer becomes an error with the
// daemon's message.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://callbox"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}

// CodecName is how people are shown an audio codec of call.Direction's
// AudioCodec ("opus" → "Opus").
func CodecName(c string) string {
	switch c {
	case "opus":
		return "Opus"
	case "pcm":
		return "PCM"
	case "":
		return "(codec not agreed yet)"
	}
	return c
}

// Door is the door opener's state ([door]): its relay line, whether the
// relay is energised, its record of openings and refusals.
type Door struct {
	Line   string `json:"line"`   // as configured: "GPIO22", "gpiochip0:22", "sim"
	State  string `json:"state"`  // "idle", "opening" (the relay is energised), "fault: ..."
	Active bool   `json:"active"` // the relay is energised: its line at its active level
	// Until is when the pulse ends while Active, else when the door may
	// open again (the minimum gap); absent when it may open now.
	Until  time.Time `json:"until,omitzero"`
	PulseS int       `json:"pulse_s"`
	GapS   int       `json:"gap_s"`
	// Remote is whom besides this box's own users the door opens for:
	// "call" (the peer in a call with this box) or "never".
	Remote      string     `json:"remote"`
	Openings    uint64     `json:"openings"`
	Refusals    uint64     `json:"refusals"`
	Last        *DoorEvent `json:"last,omitempty"`         // the last opening
	LastRefusal *DoorEvent `json:"last_refusal,omitempty"` // the last refusal
	// Error says why the line is unusable or failed last; empty while it
	// works.
	Error string `json:"error,omitempty"`
	// SimChanges counts the level changes of a simulated line ("sim"):
	// what tests watch instead of a relay.
	SimChanges uint64 `json:"sim_changes,omitempty"`
}

// DoorEvent is an opening or a refusal of the door opener.
type DoorEvent struct {
	At  time.Time `json:"at"`
	Who string    `json:"who"`           // "callbox open", "web page (192.168.1.5)", "peer hall", "mqtt"
	Why string    `json:"why,omitempty"` // a refusal's reason
}

// DoorRequest is the body of POST /v1/door/open: open this box's door,
// or (Remote) ask the peer of the call in progress to open its own.
type DoorRequest struct {
	Remote bool `json:"remote,omitempty"`
}

// DoorOpened is what POST /v1/door/open answers when the door opened; a
// refusal is an Error (409: refused, 404: no door opener).
type DoorOpened struct {
	Door   string `json:"door"`              // this box's name, or the peer's
	PulseS int    `json:"pulse_s,omitempty"` // this box's pulse (the peer's is not known)
}
