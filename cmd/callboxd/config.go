package main

import (
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/device/screen"
	"github.com/callbox/callbox/internal/web"
	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/echo"
	"github.com/callbox/callbox/stream/identity"
	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/opus"
	"github.com/callbox/callbox/stream/room"
	"github.com/callbox/callbox/stream/wire"
)

// Config is the daemon's configuration: the TOML file (see
// systemd/callbox.toml for every key, documented), then flags on top.
type Config struct {
	Name          string `toml:"name"`           // this box's name, shown to the peer; default: host name
	StateDir      string `toml:"state_dir"`      // identity key and paired peers
	Listen        string `toml:"listen"`         // call port, host:port
	ControlSocket string `toml:"control_socket"` // unix socket of the control API
	AutoAnswer    bool   `toml:"auto_answer"`    // answer paired peers at once
	CallPeer      string `toml:"call_peer"`      // who the button calls, a peer or a group; default: the only paired peer
	LogLevel      string `toml:"log_level"`      // debug, info, warn, error

	Video  VideoConfig  `toml:"video"`
	Audio  AudioConfig  `toml:"audio"`
	GPIO   GPIOConfig   `toml:"gpio"`
	Record RecordConfig `toml:"record"`
	Web    WebConfig    `toml:"web"`
	Screen ScreenConfig `toml:"screen"`

	Discovery DiscoveryConfig `toml:"discovery"`
	Pairing   PairingConfig   `toml:"pairing"`

	MQTT  MQTTConfig  `toml:"mqtt"`
	Rings RingsConfig `toml:"rings"`

	Groups  []GroupConfig  `toml:"group"`  // peers called together
	Buttons []ButtonConfig `toml:"button"` // more buttons, each calling a peer or group
	Door    DoorConfig     `toml:"door"`   // the door opener (door.go)

	listDevices bool // -devices: list and exit
}

// VideoConfig selects and shapes the camera.
type VideoConfig struct {
	Device      string `toml:"device"` // "sim" (test pattern), "file:PATH" (MJPEG replay), "libcamera[:N|NAME]" (a camera module through rpicam-vid) or a V4L2 node ("/dev/video0", "/dev/v4l/by-id/...")
	Width       int    `toml:"width"`
	Height      int    `toml:"height"`
	FPS         int    `toml:"fps"`
	Quality     int    `toml:"quality"`     // JPEG quality of the test pattern and of raw (YUYV) cameras, 1..100
	StallMs     int    `toml:"stall_ms"`    // a camera silent this long counts as gone and is re-opened
	Precomputed int    `toml:"precomputed"` // test pattern: pre-encode this many images and cycle them (0: encode live)
	// AdaptiveQuality lowers the quality (not below MinQuality) while the
	// call's link cannot carry the frames at the configured rate.
	AdaptiveQuality bool `toml:"adaptive_quality"`
	MinQuality      int  `toml:"min_quality"`
}

// defaultFrameMs is the device frame (period) by default: 20 ms, one Opus
// packet. A 10 ms frame wakes the daemon twice as often for each packet
// (capture and playback each on its own tick), which costs a call about a
// quarter of its CPU (docs/performance.md), and saves no delay on the way
// out: the Opus packet waits for 20 ms of audio either way.
const defaultFrameMs = 20

// AudioConfig selects the microphone and speaker and shapes playout.
type AudioConfig struct {
	Capture  string `toml:"capture"`  // "sim" (test signal), "silent", "voice" (someone talking), "room" (see Room), "null" or an ALSA PCM name ("default", "hw:1,0")
	Playback string `toml:"playback"` // "sim" (clocked speaker into nothing), "room", "null" or an ALSA PCM name
	Periods  int    `toml:"periods"`  // ALSA buffer length in periods (frames); for playback, at most queued; 0: periods()
	Rate     int    `toml:"rate"`
	Channels int    `toml:"channels"`
	FrameMs  int    `toml:"frame_ms"`
	TargetMs int    `toml:"target_ms"` // playout depth before playing; the floor of the adaptive target
	MaxMs    int    `toml:"max_ms"`    // playout latency cap
	// AdaptivePlayout lets the playout target follow the jitter measured
	// on the peer's audio, between target_ms and max_ms less a frame.
	AdaptivePlayout bool `toml:"adaptive_playout"`

	// The audio on the wire: "opus" offers Opus (preferred) and PCM, "pcm"
	// PCM only; what each call uses is negotiated with the peer.
	Codec          string `toml:"codec"`
	OpusKbps       int    `toml:"opus_kbps"`       // Opus' target bit rate, 12..128 kbit/s (variable)
	OpusComplexity int    `toml:"opus_complexity"` // 0 (cheapest) .. 10; lower it on slow CPUs
	OpusFrameMs    int    `toml:"opus_frame_ms"`   // audio in one Opus packet: 10 or 20 ms, at least frame_ms
	// OpusMode is how Opus codes: "low-delay" (CELT alone: 2.5 ms of
	// look-ahead, about a third of the CPU) or "speech" (SILK and CELT:
	// better below about 24 kbit/s, 6.5 ms of look-ahead).
	OpusMode string `toml:"opus_mode"`
	// OpusKbpsLow is Opus' target while the link holds the call's video
	// back (frames skipped for want of room), 12..128 kbit/s; at or above
	// opus_kbps the target never moves.
	OpusKbpsLow int `toml:"opus_kbps_low"`
	// Datagrams sends the call's Opus audio as sealed UDP datagrams on the
	// call port beside the TLS stream (protocol revision 1.5), where both
	// boxes take them: a lost packet then costs that packet, not a TCP
	// retransmission wait. Off: audio goes on the stream only.
	Datagrams bool `toml:"datagrams"`

	// The microphone's processing (stream/echo), each part on its own;
	// not applied to the simulated microphones ("sim", "silent"), whose
	// test signal is checked bit for bit at the other end.
	EchoCancel     bool `toml:"echo_cancel"`       // cancel what our speaker played
	EchoSuppress   bool `toml:"echo_suppress"`     // suppress the residual echo (needs echo_cancel)
	NoiseSuppress  bool `toml:"noise_suppress"`    // suppress background noise
	AGC            bool `toml:"agc"`               // automatic gain control
	Duck           bool `toml:"duck"`              // half duplex while the canceller is short of duck_below_db
	EchoTailMs     int  `toml:"echo_tail_ms"`      // reverberation the canceller models, 50..500
	EchoMaxDelayMs int  `toml:"echo_max_delay_ms"` // longest speaker-to-microphone delay searched, 50..1000
	DuckBelowDB    int  `toml:"duck_below_db"`     // ERLE under which ducking engages, 0..60

	// Room is the simulated room of capture = playback = "room": the
	// microphone hears the speaker through it (the demo and the tests run
	// the echo stage with it).
	Room RoomSimConfig `toml:"room"`
}

// RoomSimConfig shapes the simulated room (device/audio.Room).
type RoomSimConfig struct {
	DelayMs int     `toml:"delay_ms"` // speaker to microphone, 5..200
	RT60Ms  int     `toml:"rt60_ms"`  // reverberation, 100..1000
	EchoDB  float64 `toml:"echo_db"`  // the direct path's level against what is played, -60..6
	SNRDB   float64 `toml:"snr_db"`   // the talker over the background noise, -10..120 (120: no noise)
	Talk    string  `toml:"talk"`     // always, never, even or odd (4 s turns of the wall clock)
}

// GPIOConfig selects the button and LED.
type GPIOConfig struct {
	Button          string `toml:"button"`            // "sim" (pressed with `callbox press`) or a line: "GPIO17", "gpiochip0:17"
	ButtonActiveLow bool   `toml:"button_active_low"` // pressed reads low (button to ground, pull-up)
	ButtonPull      string `toml:"button_pull"`       // up, down, none
	LED             string `toml:"led"`               // "sim" (shown in `callbox status`), "none" or a line
	LEDActiveLow    bool   `toml:"led_active_low"`    // the LED lights when the line is low
	DebounceMs      int    `toml:"debounce_ms"`       // a level must hold this long to count
	LongPressMs     int    `toml:"long_press_ms"`     // held this long: a long press
}

// GroupConfig is a group of paired peers called together: every member
// rings and the first to answer takes the call.
type GroupConfig struct {
	Name  string   `toml:"name"`
	Peers []string `toml:"peers"`
}

// ButtonConfig is a button besides [gpio]'s: a press calls its peer or
// group when idle (and answers or hangs up like the main button
// otherwise); its LED, if any, shows calls with that peer or group.
// Debounce, pull and active level are [gpio]'s.
type ButtonConfig struct {
	Line string `toml:"line"` // "sim" (pressed with `callbox press -button N`) or a line
	Call string `toml:"call"` // a paired peer's or a group's name
	LED  string `toml:"led"`  // "", "sim" or a line
}

// WebConfig is the web page, MJPEG streams and /metrics (internal/web).
type WebConfig struct {
	Listen     string `toml:"listen"`      // host:port; "" = off; not loopback needs token
	Token      string `toml:"token"`       // password for non-loopback clients, at least 16 characters
	MaxStreams int    `toml:"max_streams"` // MJPEG clients at once, 1..64
}

// DiscoveryConfig is DNS-SD over mDNS (stream/discovery): advertise this
// box and find paired peers on the link by their key.
type DiscoveryConfig struct {
	Enabled    bool     `toml:"enabled"`
	Interfaces []string `toml:"interfaces"` // names; empty: every multicast interface but loopback
	IPv4       bool     `toml:"ipv4"`
	IPv6       bool     `toml:"ipv6"`
}

// PairingConfig is button pairing: a long press opens a window in which
// two boxes find each other and exchange keys.
type PairingConfig struct {
	WindowS int  `toml:"window_s"` // how long the window stays open, seconds
	Confirm bool `toml:"confirm"`  // hold the pairing until `callbox pair -confirm` on this box
}

// ScreenConfig is the display the peer's video is shown on (device/screen).
type ScreenConfig struct {
	Device   string `toml:"device"`    // framebuffer, "/dev/fb0"; "" = no screen
	Idle     string `toml:"idle"`      // without a call: "blank" or "status" (name and call state)
	SelfView bool   `toml:"self_view"` // our own camera small in a corner during a call
	// Prefer is the largest video asked of the peer ("WxH"; "" = any): what
	// this box decodes at frame rate. Told to the peer only with a screen.
	Prefer string `toml:"prefer_video"`
}

// RecordConfig makes the daemon keep what it receives, for tests and demos.
type RecordConfig struct {
	Video string `toml:"video"`  // MJPEG file of the peer's frames
	Audio string `toml:"audio"`  // raw s16le file of what the speaker played
	MaxMB int    `toml:"max_mb"` // per file; recording stops there
}

func defaultConfig() Config {
	host, _ := os.Hostname()
	name := sanitizeName(host)
	return Config{
		Name:          name,
		StateDir:      "/var/lib/callbox",
		Listen:        ":7420",
		ControlSocket: "/run/callbox/control.sock",
		AutoAnswer:    true,
		LogLevel:      "info",
		Video: VideoConfig{Device: "sim", Width: media.DefaultVideo.Width, Height: media.DefaultVideo.Height,
			FPS: media.DefaultVideo.FPS, Quality: 75, StallMs: 5000,
			AdaptiveQuality: true, MinQuality: 15},
		Audio: AudioConfig{Capture: "sim", Playback: "sim", Rate: media.DefaultAudio.Rate,
			Channels: media.DefaultAudio.Channels, FrameMs: defaultFrameMs, TargetMs: 40, MaxMs: 120, AdaptivePlayout: true, Datagrams: true,
			Codec: "opus", OpusKbps: opus.DefaultBitrate / 1000, OpusKbpsLow: 24, OpusComplexity: 5, OpusFrameMs: 20, OpusMode: "low-delay",
			EchoCancel: true, EchoSuppress: true, NoiseSuppress: true, AGC: true, Duck: true,
			EchoTailMs: 200, EchoMaxDelayMs: 500, DuckBelowDB: 20,
			Room: RoomSimConfig{DelayMs: 60, RT60Ms: 400, EchoDB: -6, SNRDB: 30, Talk: "always"}},
		GPIO: GPIOConfig{Button: "sim", ButtonActiveLow: true, ButtonPull: "up", LED: "sim",
			DebounceMs: 30, LongPressMs: 3000},
		Record:    RecordConfig{MaxMB: 64},
		MQTT:      MQTTConfig{DiscoveryPrefix: "homeassistant"},
		Rings:     RingsConfig{Keep: 50, MaxMB: 20},
		Web:       WebConfig{Listen: web.DefaultListen, MaxStreams: web.DefaultMaxStreams},
		Discovery: DiscoveryConfig{Enabled: true, IPv4: true, IPv6: true},
		Pairing:   PairingConfig{WindowS: 120},
		Screen:    ScreenConfig{Idle: "status", SelfView: true, Prefer: "640x480"},
		Door:      defaultDoor(),
	}
}

// codecs is what the box offers the peer for audio, preferred first.
func (c *Config) codecs() []wire.AudioCodec {
	if c.Audio.Codec == "opus" {
		return []wire.AudioCodec{wire.AudioOpus, wire.AudioPCM}
	}
	return []wire.AudioCodec{wire.AudioPCM}
}

func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "callbox"
	}
	return b.String()[:min(b.Len(), 64)]
}

// ConfigError marks a configuration fault: the daemon exits with 78
// (EX_CONFIG) so systemd does not restart it in a loop.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return "config: " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// loadConfig reads the file (if any) and applies the flags over it.
func loadConfig(args []string) (Config, bool, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("callboxd", flag.ContinueOnError)
	path := fs.String("config", "", "config file (TOML); see systemd/callbox.toml")
	version := fs.Bool("version", false, "print the version and exit")
	devices := fs.Bool("devices", false, "list cameras, microphones, speakers, GPIO lines and screens, and exit")
	// Flags land in f and override the file's values where set.
	var f Config
	fs.StringVar(&f.Name, "name", "", "this box's name")
	fs.StringVar(&f.StateDir, "state-dir", "", "directory of the identity key and paired peers")
	fs.StringVar(&f.Listen, "listen", "", "call port, host:port")
	fs.StringVar(&f.ControlSocket, "control", "", "control socket path")
	fs.StringVar(&f.LogLevel, "log-level", "", "debug, info, warn or error")
	fs.StringVar(&f.Video.Device, "video", "", `camera: "sim" or "file:PATH"`)
	fs.StringVar(&f.Record.Video, "record-video", "", "write the peer's frames to this MJPEG file")
	fs.StringVar(&f.Record.Audio, "record-audio", "", "write the played audio to this raw s16le file")
	autoAnswer := fs.String("auto-answer", "", "true or false")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, false, err
		}
		return cfg, false, &ConfigError{err}
	}
	if *version {
		return cfg, true, nil
	}
	if *devices {
		cfg.listDevices = true
		return cfg, false, nil
	}
	if fs.NArg() > 0 {
		return cfg, false, &ConfigError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *path != "" {
		md, err := toml.DecodeFile(*path, &cfg)
		if err != nil {
			return cfg, false, &ConfigError{fmt.Errorf("%s: %w", *path, err)}
		}
		if und := md.Undecoded(); len(und) > 0 {
			return cfg, false, &ConfigError{fmt.Errorf("%s: unknown key %q", *path, und[0].String())}
		}
		// 10 ms Opus packets need frames of at most 10 ms: a config that
		// asks for them without naming frame_ms (valid while 10 was the
		// default) keeps working.
		if !md.IsDefined("audio", "frame_ms") && cfg.Audio.OpusFrameMs < cfg.Audio.FrameMs {
			cfg.Audio.FrameMs = cfg.Audio.OpusFrameMs
		}
	}
	over := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	over(&cfg.Name, f.Name)
	over(&cfg.StateDir, f.StateDir)
	over(&cfg.Listen, f.Listen)
	over(&cfg.ControlSocket, f.ControlSocket)
	over(&cfg.LogLevel, f.LogLevel)
	over(&cfg.Video.Device, f.Video.Device)
	over(&cfg.Record.Video, f.Record.Video)
	over(&cfg.Record.Audio, f.Record.Audio)
	if *autoAnswer != "" {
		b, err := strconv.ParseBool(*autoAnswer)
		if err != nil {
			return cfg, false, &ConfigError{fmt.Errorf("-auto-answer: %q is not true or false", *autoAnswer)}
		}
		cfg.AutoAnswer = b
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, &ConfigError{err}
	}
	return cfg, false, nil
}

// Validate names the first field that is out of range.
func (c Config) Validate() error {
	if err := identity.ValidateName(c.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if c.StateDir == "" {
		return errors.New("state_dir: must be set")
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port: %w", c.Listen, err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("listen: port %q out of range 0..65535", port)
	}
	if c.ControlSocket == "" {
		return errors.New("control_socket: must be set")
	}
	if len(c.ControlSocket) > 100 {
		return fmt.Errorf("control_socket: path longer than 100 bytes (unix socket limit): %s", c.ControlSocket)
	}
	if c.CallPeer != "" {
		if err := identity.ValidateName(c.CallPeer); err != nil {
			return fmt.Errorf("call_peer: %w", err)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	v := c.Video
	switch {
	case v.Device == "sim":
	case strings.HasPrefix(v.Device, "file:") && len(v.Device) > 5:
	case strings.HasPrefix(v.Device, "/dev/"):
	case isLibcamera(v.Device):
		if err := checkLibcamera(v.Device); err != nil {
			return fmt.Errorf("video.device: %w", err)
		}
	default:
		return fmt.Errorf(`video.device: %q is not "sim", "file:PATH", "libcamera[:N or NAME]" or a V4L2 device path under /dev/`, v.Device)
	}
	if v.StallMs < 1000 || v.StallMs > 60000 {
		return fmt.Errorf("video.stall_ms: %d out of range 1000..60000", v.StallMs)
	}
	switch {
	case v.Width < 16 || v.Width > 4096:
		return fmt.Errorf("video.width: %d out of range 16..4096", v.Width)
	case v.Height < 16 || v.Height > 4096:
		return fmt.Errorf("video.height: %d out of range 16..4096", v.Height)
	case v.FPS < 1 || v.FPS > 60:
		return fmt.Errorf("video.fps: %d out of range 1..60", v.FPS)
	}
	if v.Quality < 1 || v.Quality > 100 {
		return fmt.Errorf("video.quality: %d out of range 1..100", v.Quality)
	}
	if v.MinQuality < 1 || v.MinQuality > 100 {
		return fmt.Errorf("video.min_quality: %d out of range 1..100", v.MinQuality)
	}
	if v.Precomputed < 0 || v.Precomputed > 300 {
		return fmt.Errorf("video.precomputed: %d out of range 0..300", v.Precomputed)
	}
	a := c.Audio
	if a.Capture == "" || len(a.Capture) > 255 {
		return fmt.Errorf(`audio.capture: %q: want "sim", "silent", "voice", "room", "null" or an ALSA PCM name`, a.Capture)
	}
	if a.Playback == "" || len(a.Playback) > 255 {
		return fmt.Errorf(`audio.playback: %q: want "sim", "room", "null" or an ALSA PCM name`, a.Playback)
	}
	if (a.Capture == "room") != (a.Playback == "room") {
		return errors.New(`audio: capture = "room" and playback = "room" go together (the simulated room holds both)`)
	}
	if a.Periods != 0 && (a.Periods < audio.MinPeriods || a.Periods > audio.MaxPeriods) {
		return fmt.Errorf("audio.periods: %d out of range %d..%d", a.Periods, audio.MinPeriods, audio.MaxPeriods)
	}
	switch a.Rate {
	case 8000, 16000, 24000, 32000, 44100, 48000:
	default:
		return fmt.Errorf("audio.rate: %d is not one of 8000, 16000, 24000, 32000, 44100, 48000", a.Rate)
	}
	if a.Channels != 1 && a.Channels != 2 {
		return fmt.Errorf("audio.channels: %d is not 1 or 2", a.Channels)
	}
	if a.FrameMs != 10 && a.FrameMs != 20 {
		return fmt.Errorf("audio.frame_ms: %d is not 10 or 20", a.FrameMs)
	}
	if err := c.audioFormat().Validate(); err != nil { // 44100 Hz does not divide into 10 ms
		return fmt.Errorf("audio.rate: %w", err)
	}
	if a.Capture == "room" {
		if _, err := c.simRoom(); err != nil {
			return fmt.Errorf("audio.room: %w", err)
		}
	}
	if (a.Capture == "room" || a.Capture == "voice") && a.Channels != 1 {
		return fmt.Errorf("audio.capture: %q is mono: set audio.channels = 1", a.Capture)
	}
	if c.micProcessed() {
		ec := c.echoConfig()
		if err := ec.Validate(); err != nil {
			return fmt.Errorf("audio: microphone processing: %w (or turn echo_cancel, echo_suppress, noise_suppress, agc and duck off)", err)
		}
		if !ec.Bypass() && !echo.Available() && (ec.Cancel || ec.Denoise || ec.AGC) {
			return errors.New("audio: echo_cancel, noise_suppress and agc: compiled without echo cancellation (no cgo): turn them off")
		}
	}
	switch a.Codec {
	case "pcm":
	case "opus":
		if !opus.Available() {
			return errors.New(`audio.codec = "opus": compiled without Opus (no cgo): set codec = "pcm"`)
		}
		switch a.Rate {
		case 8000, 12000, 16000, 24000, 48000:
		default:
			return fmt.Errorf(`audio.codec = "opus" takes 8000, 12000, 16000, 24000 or 48000 Hz, not %d: change rate or set codec = "pcm"`, a.Rate)
		}
		if a.OpusKbps < opus.MinBitrate/1000 || a.OpusKbps > opus.MaxBitrate/1000 {
			return fmt.Errorf("audio.opus_kbps: %d out of range %d..%d", a.OpusKbps, opus.MinBitrate/1000, opus.MaxBitrate/1000)
		}
		if a.OpusKbpsLow < opus.MinBitrate/1000 || a.OpusKbpsLow > opus.MaxBitrate/1000 {
			return fmt.Errorf("audio.opus_kbps_low: %d out of range %d..%d", a.OpusKbpsLow, opus.MinBitrate/1000, opus.MaxBitrate/1000)
		}
		if a.OpusComplexity < 0 || a.OpusComplexity > 10 {
			return fmt.Errorf("audio.opus_complexity: %d out of range 0..10", a.OpusComplexity)
		}
		if _, err := opus.ParseMode(a.OpusMode); err != nil {
			return fmt.Errorf(`audio.opus_mode: %q is not "low-delay" or "speech"`, a.OpusMode)
		}
		if a.OpusFrameMs != 10 && a.OpusFrameMs != 20 || a.OpusFrameMs < a.FrameMs {
			return fmt.Errorf("audio.opus_frame_ms: %d is not 10 or 20, at least frame_ms (%d)", a.OpusFrameMs, a.FrameMs)
		}
	default:
		return fmt.Errorf(`audio.codec: %q is not "opus" or "pcm"`, a.Codec)
	}
	if a.TargetMs < 10 || a.TargetMs > 500 {
		return fmt.Errorf("audio.target_ms: %d out of range 10..500", a.TargetMs)
	}
	if a.MaxMs < a.TargetMs+a.FrameMs || a.MaxMs > 2000 {
		return fmt.Errorf("audio.max_ms: %d out of range target_ms+frame_ms (%d)..2000", a.MaxMs, a.TargetMs+a.FrameMs)
	}
	g := c.GPIO
	if g.Button != "sim" {
		if _, err := gpio.ParsePin(g.Button); err != nil {
			return fmt.Errorf("gpio.button: %w", err)
		}
	}
	switch g.ButtonPull {
	case "up", "down", "none":
	default:
		return fmt.Errorf("gpio.button_pull: %q is not up, down or none", g.ButtonPull)
	}
	if g.LED != "sim" && g.LED != "none" {
		if _, err := gpio.ParsePin(g.LED); err != nil {
			return fmt.Errorf("gpio.led: %w", err)
		}
	}
	if g.Button != "sim" && g.Button == g.LED {
		return fmt.Errorf("gpio.led: %q is also the button's line", g.LED)
	}
	if g.DebounceMs < 1 || g.DebounceMs > 1000 {
		return fmt.Errorf("gpio.debounce_ms: %d out of range 1..1000", g.DebounceMs)
	}
	if g.LongPressMs <= g.DebounceMs || g.LongPressMs > 60000 {
		return fmt.Errorf("gpio.long_press_ms: %d out of range debounce_ms+1..60000", g.LongPressMs)
	}
	if err := c.validateGroups(); err != nil {
		return err
	}
	if err := c.validateButtons(); err != nil {
		return err
	}
	if err := c.validateHome(); err != nil {
		return err
	}
	if err := c.validateDoor(); err != nil {
		return err
	}
	if err := c.webConfig(nil).Validate(); err != nil {
		return err
	}
	dc := c.Discovery
	if dc.Enabled && !dc.IPv4 && !dc.IPv6 {
		return errors.New("discovery.ipv4, discovery.ipv6: at least one must be true while discovery is enabled")
	}
	for _, name := range dc.Interfaces {
		if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n:") {
			return fmt.Errorf("discovery.interfaces: %q is not an interface name (1..15 characters, no / or spaces)", name)
		}
	}
	if w := c.Pairing.WindowS; w < 10 || w > 3600 {
		return fmt.Errorf("pairing.window_s: %d out of range 10..3600", w)
	}
	if d := c.Screen.Device; d != "" && (!strings.HasPrefix(d, "/dev/") || len(d) > 255) {
		return fmt.Errorf(`screen.device: %q is not "" (no screen) or a framebuffer device under /dev/ ("/dev/fb0")`, d)
	}
	if _, err := screen.ParseIdle(c.Screen.Idle); err != nil {
		return fmt.Errorf("screen.idle: %w", err)
	}
	if _, err := parseSize(c.Screen.Prefer); err != nil {
		return fmt.Errorf("screen.prefer_video: %w", err)
	}
	if c.Record.MaxMB < 1 || c.Record.MaxMB > 4096 {
		return fmt.Errorf("record.max_mb: %d out of range 1..4096", c.Record.MaxMB)
	}
	return nil
}

func (c Config) webConfig(log *slog.Logger) web.Config {
	return web.Config{Listen: c.Web.Listen, Token: c.Web.Token, MaxStreams: c.Web.MaxStreams, Logger: log}
}

// micProcessed says whether the microphone goes through stream/echo:
// not the simulated ones, whose test signal is checked bit for bit.
func (c Config) micProcessed() bool {
	return c.Audio.Capture != "sim" && c.Audio.Capture != "silent"
}

// simRoom builds the simulated room of capture = playback = "room". The
// talker's voice is the box's own (from its name), so two boxes on one
// machine sound apart.
func (c Config) simRoom() (*audio.Room, error) {
	r := c.Audio.Room
	ac := room.Default()
	ac.Delay = time.Duration(r.DelayMs) * time.Millisecond
	ac.RT60 = time.Duration(r.RT60Ms) * time.Millisecond
	ac.EchoDB = r.EchoDB
	ac.SNR = r.SNRDB
	if r.SNRDB > 120 {
		return nil, fmt.Errorf("snr_db %v above 120", r.SNRDB)
	}
	if r.SNRDB == 120 {
		ac.SNR = math.Inf(1)
	}
	return audio.NewRoom(c.audioFormat(), audio.RoomConfig{Acoustics: ac, Talk: audio.Talk(r.Talk), Seed: c.voiceSeed()})
}

// voiceSeed makes the simulated talker ("voice", "room") this box's own,
// from its name.
func (c Config) voiceSeed() uint64 {
	h := fnv.New64a()
	h.Write([]byte(c.Name))
	return h.Sum64()
}

// echoConfig is the microphone's processing as configured.
func (c Config) echoConfig() echo.Config {
	a := c.Audio
	return echo.Config{Format: c.audioFormat(), Cancel: a.EchoCancel, Suppress: a.EchoSuppress && a.EchoCancel,
		Denoise: a.NoiseSuppress, AGC: a.AGC, Duck: a.Duck,
		Tail:      time.Duration(a.EchoTailMs) * time.Millisecond,
		MaxDelay:  time.Duration(a.EchoMaxDelayMs) * time.Millisecond,
		DuckBelow: float64(a.DuckBelowDB)}
}

// periods is the ALSA buffer in periods: audio.periods, or by default
// about 40 ms of it: 2 periods of 20 ms, 3 of 10 ms (for the speaker,
// what may be queued ahead of the playout).
func (a AudioConfig) periods() int {
	if a.Periods != 0 {
		return a.Periods
	}
	if a.FrameMs >= 20 {
		return 2
	}
	return 3
}

func (c Config) audioFormat() media.AudioFormat {
	return media.AudioFormat{Rate: c.Audio.Rate, Channels: c.Audio.Channels, FrameMs: c.Audio.FrameMs}
}

// preferVideo is what the call asks of the peer: the preferred size when
// there is a screen (checked by Validate), else nothing.
func (c Config) preferVideo() media.Size {
	if c.Screen.Device == "" {
		return media.Size{}
	}
	s, _ := parseSize(c.Screen.Prefer)
	return s
}

// parseSize reads "WxH" (16..4096 each); "" is the zero Size.
func parseSize(s string) (media.Size, error) {
	if s == "" {
		return media.Size{}, nil
	}
	w, h, ok := strings.Cut(s, "x")
	wi, err1 := strconv.Atoi(w)
	hi, err2 := strconv.Atoi(h)
	if !ok || err1 != nil || err2 != nil {
		return media.Size{}, fmt.Errorf(`%q is not "WIDTHxHEIGHT" or ""`, s)
	}
	if wi < 16 || wi > 4096 || hi < 16 || hi > 4096 {
		return media.Size{}, fmt.Errorf("%q out of range 16..4096 each way", s)
	}
	return media.Size{Width: wi, Height: hi}, nil
}

func (c Config) videoFormat() media.VideoFormat {
	return media.VideoFormat{Width: c.Video.Width, Height: c.Video.Height, FPS: c.Video.FPS}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not debug, info, warn or error", s)
	}
	return l, nil
}

func (c *Config) validateGroups() error {
	seen := map[string]bool{}
	for i, g := range c.Groups {
		where := fmt.Sprintf("group[%d]", i)
		if err := identity.ValidateName(g.Name); err != nil {
			return fmt.Errorf("%s.name: %w", where, err)
		}
		if seen[g.Name] {
			return fmt.Errorf("%s.name: %q names two groups", where, g.Name)
		}
		seen[g.Name] = true
		if len(g.Peers) == 0 || len(g.Peers) > call.MaxGroup {
			return fmt.Errorf("%s.peers: %d peers, want 1..%d", where, len(g.Peers), call.MaxGroup)
		}
		members := map[string]bool{}
		for _, p := range g.Peers {
			if err := identity.ValidateName(p); err != nil {
				return fmt.Errorf("%s.peers: %w", where, err)
			}
			if members[p] {
				return fmt.Errorf("%s.peers: %q listed twice", where, p)
			}
			members[p] = true
		}
	}
	return nil
}

func (c *Config) validateButtons() error {
	lines := map[string]string{} // line → what uses it
	use := func(line, what string) error {
		if line == "sim" || line == "none" || line == "" {
			return nil
		}
		if _, err := gpio.ParsePin(line); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if other, ok := lines[line]; ok {
			return fmt.Errorf("%s: line %q is also %s", what, line, other)
		}
		lines[line] = what
		return nil
	}
	if err := use(c.GPIO.Button, "gpio.button"); err != nil {
		return err
	}
	if err := use(c.GPIO.LED, "gpio.led"); err != nil {
		return err
	}
	for i, b := range c.Buttons {
		where := fmt.Sprintf("button[%d]", i)
		if b.Line == "" {
			return fmt.Errorf(`%s.line: must be set ("sim" or a GPIO line)`, where)
		}
		if err := use(b.Line, where+".line"); err != nil {
			return err
		}
		if b.LED == "none" {
			return fmt.Errorf(`%s.led: leave it out for no LED`, where)
		}
		if err := use(b.LED, where+".led"); err != nil {
			return err
		}
		if err := identity.ValidateName(b.Call); err != nil {
			return fmt.Errorf("%s.call: %w", where, err)
		}
	}
	return nil
}

// group returns the group called name, if there is one.
func (c *Config) group(name string) (GroupConfig, bool) {
	for _, g := range c.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return GroupConfig{}, false
}
