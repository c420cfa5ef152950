// Package guest is the agent of the hardware-in-the-loop rig: a static
// program that runs inside the QEMU guest next to the real callboxd. It
// sets up the simulated GPIO chip, starts and watches the daemon, and lets
// the rig on the host drive the guest's real drivers over HTTP: pull the
// button line, sample the LED line, feed JPEGs to a v4l2loopback camera,
// play test audio into and record it from snd-aloop or make it a room
// (the speaker heard at the microphone), and run commands
// such as rmmod. The types here are the wire format of that API; the host
// side is in package rig.
package guest

import "github.com/callbox/callbox/stream/room"

// Port is the TCP port the agent listens on inside the guest.
const Port = 7000

// Config is the agent's configuration: /hil/agent.json in the guest.
type Config struct {
	// Listen is the agent's address; empty means ":7000".
	Listen string `json:"listen,omitempty"`
	// Socket is the daemon's control socket.
	Socket string `json:"socket"`
	// Daemon is the daemon's argv, started by POST /v1/daemon/start.
	Daemon []string `json:"daemon"`
	// Env is added to the daemon's environment.
	Env []string `json:"env,omitempty"`
	// GPIOSim, if set, is the gpio-sim chip made at start, before the
	// daemon runs.
	GPIOSim *GPIOSim `json:"gpio_sim,omitempty"`
}

// GPIOSim describes one simulated GPIO chip made through configfs.
type GPIOSim struct {
	Name   string `json:"name"`   // configfs directory, e.g. "pi"
	Label  string `json:"label"`  // the chip's label, e.g. "pinctrl-bcm2711"
	Lines  int    `json:"lines"`  // number of lines (1..64)
	Prefix string `json:"prefix"` // lines are named Prefix0..Prefix<Lines-1>, e.g. "GPIO17"
}

// Ready is the answer of GET /v1/ready.
type Ready struct {
	Kernel  string `json:"kernel"`            // uname -r
	Machine string `json:"machine"`           // uname -m
	Chip    string `json:"chip,omitempty"`    // the simulated chip's device, e.g. "gpiochip1"
	SimPath string `json:"simpath,omitempty"` // its sysfs directory holding sim_gpioN/
}

// Daemon is the answer of GET /v1/daemon and POST /v1/daemon/start.
type Daemon struct {
	PID     int    `json:"pid"`
	Starts  int    `json:"starts"`  // how often the agent started it
	Running bool   `json:"running"` // still running
	Exit    string `json:"exit,omitempty"`
}

// Press is the body of POST /v1/gpio/press: pull the line to its pressed
// level (low: the button closes to ground) for HoldMs, then release it.
type Press struct {
	Line   string `json:"line"` // e.g. "GPIO17"
	HoldMs int    `json:"hold_ms"`
}

// Pull is the body of POST /v1/gpio/pull.
type Pull struct {
	Line string `json:"line"`
	Up   bool   `json:"up"`
}

// Sample is the body of POST /v1/gpio/sample: read the line's value every
// EveryMs for Ms.
type Sample struct {
	Line    string `json:"line"`
	Ms      int    `json:"ms"`
	EveryMs int    `json:"every_ms"`
}

// Samples is what POST /v1/gpio/sample answers.
type Samples struct {
	Start   bool     `json:"start"`   // value at the first read
	Reads   int      `json:"reads"`   // how many reads were made
	Changes []Change `json:"changes"` // every change seen, in order
	Ms      float64  `json:"ms"`      // how long it sampled
	// Stalls are the pauses between two reads of over 10 times EveryMs
	// (at most 100): the guest did not run the sampler, and likely not
	// the program driving the line either, for that long.
	Stalls []Stall `json:"stalls,omitempty"`
}

// Stall is a pause of the sampler.
type Stall struct {
	AtMs float64 `json:"at_ms"` // the read after it, since the first read
	Ms   float64 `json:"ms"`    // since the read before
}

// Change is one level change of a sampled line.
type Change struct {
	AtMs  float64 `json:"at_ms"` // since the first read
	Value bool    `json:"value"`
}

// Video is the body of POST /v1/video/start: write numbered synthetic
// JPEGs (see camera.FrameNumber) to a v4l2loopback node.
type Video struct {
	Device      string `json:"device"` // e.g. "/dev/video10"
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	FPS         int    `json:"fps"`
	Precomputed int    `json:"precomputed"` // distinct images encoded at the first start
}

// Fed is what POST /v1/video/stop answers: the frame numbers written.
type Fed struct {
	Numbers []uint32 `json:"numbers"`
	Errors  int      `json:"errors"`
	LastErr string   `json:"last_err,omitempty"`
	Ms      float64  `json:"ms"` // how long it fed
}

// Audio is the body of POST /v1/audio/play/start and
// /v1/audio/record/start: an ALSA PCM and the stream format (s16le).
type Audio struct {
	Device   string `json:"device"` // e.g. "hw:Loopback,0,0"
	Rate     int    `json:"rate"`
	Channels int    `json:"channels"`
	FrameMs  int    `json:"frame_ms"`
}

// Played is what POST /v1/audio/play/stop answers.
type Played struct {
	Frames int    `json:"frames"` // test frames written to the player
	Err    string `json:"err,omitempty"`
}

// Exec is the body of POST /v1/exec: a command run to completion (at most
// TimeoutMs, default 10 s).
type Exec struct {
	Argv      []string `json:"argv"`
	TimeoutMs int      `json:"timeout_ms,omitempty"`
}

// ExecResult is what POST /v1/exec answers.
type ExecResult struct {
	Output string `json:"output"`
	Code   int    `json:"code"` // -1 when it could not run or was killed
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// Room is the body of POST /v1/audio/room/start: the guest's sound card
// becomes a room. The agent records what the daemon's speaker plays from
// Tap, passes it through a simulated room (stream/room) with a near-end
// talker mixed in while Talk says so, and plays what the microphone hears
// into the device in Audio (the microphone's loopback), until
// POST /v1/audio/room/stop or MaxMs.
type Room struct {
	Audio       // the microphone's feed, and the format of both
	Tap   Audio `json:"tap"` // the speaker's loopback (only Device is used)
	// Acoustics is the room (its Rate and Frame come from the format).
	Acoustics room.Config `json:"acoustics"`
	VoiceSeed uint64      `json:"voice_seed"`
	PitchHz   float64     `json:"pitch_hz"` // default 200
	Talk      bool        `json:"talk"`     // the near-end talker talks from the start
	// FeedBufferMs is aplay's buffer on the feed (default 4 frames): delay
	// the daemon's echo canceller has to find.
	FeedBufferMs int `json:"feed_buffer_ms,omitempty"`
	MaxMs        int `json:"max_ms"` // the room stops by itself after this (at most 10 min)
}

// RoomMark is the body of POST /v1/audio/room/mark: it ends the current
// span of the room's figures and says whether the near-end talker talks
// in the next. It answers the span that ended (a RoomSpan).
type RoomMark struct {
	Talk bool `json:"talk"`
}

// RoomSpan is a room's figures between two marks: sums of squared sample
// values (full scale 32768) of what the speaker played, its echo at the
// microphone, the background noise, what the near-end talker said and
// what the microphone heard in all, over Frames frames.
type RoomSpan struct {
	Ms         float64 `json:"ms"`          // the span's length on the agent's clock
	Frames     int     `json:"frames"`      // frames passed through the room
	Talk       bool    `json:"talk"`        // the near-end talker was on
	TalkFrames int     `json:"talk_frames"` // frames in which it said something
	Played     float64 `json:"played"`
	Echo       float64 `json:"echo"`
	Noise      float64 `json:"noise"`
	Near       float64 `json:"near"`
	Mic        float64 `json:"mic"`
}

// RoomResult is what POST /v1/audio/room/stop answers: every span, the
// last one up to the stop.
type RoomResult struct {
	Spans  []RoomSpan `json:"spans"`
	Frames int        `json:"frames"`
	// Overruns and Underruns are arecord's on the speaker's tap (the
	// agent read late: what was played then was lost) and aplay's on the
	// microphone's feed (the microphone heard silence, and the echo's
	// delay moved).
	Overruns  int    `json:"overruns"`
	Underruns int    `json:"underruns"`
	Err       string `json:"err,omitempty"` // why the loop ended early, and the tools' complaints
}
