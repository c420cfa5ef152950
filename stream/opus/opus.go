// Package opus is the Opus audio codec for the call's audio (issue 14):
// an Encoder and a Decoder over the system's libopus, linked dynamically
// through cgo (Debian libopus0, buildroot opus). 48 kHz (or 8/12/16/24
// kHz), mono or stereo, frames of 10 or 20 ms, variable bit rate at a
// configurable target, a complexity setting for slow CPUs, and packet-loss
// concealment: decoding a missing packet synthesises what it likely held.
// Built without cgo, New* say "compiled without Opus" and Available
// reports false.
package opus

import (
	"errors"
	"fmt"

	"github.com/callbox/callbox/stream/media"
)

// Bit rate limits and the default (bits per second).
const (
	MinBitrate     = 12000
	MaxBitrate     = 128000
	DefaultBitrate = 32000
)

// MaxPacket bounds an encoded packet: Opus' own limit for one frame.
const MaxPacket = 1275

// ErrUnavailable is what New* return in a build without cgo.
var ErrUnavailable = errors.New("opus: compiled without Opus (no cgo)")

// Mode is how the encoder codes.
type Mode int

const (
	// Speech lets the encoder pick SILK, CELT or both (hybrid) for voice
	// (OPUS_APPLICATION_VOIP): the best speech at low bit rates, in-band
	// forward error correction, 6.5 ms of look-ahead.
	Speech Mode = iota
	// LowDelay codes with CELT alone (OPUS_APPLICATION_RESTRICTED_LOWDELAY):
	// 2.5 ms of look-ahead and, on x86 and ARM, about 2.5 times cheaper to
	// encode than Speech at the same complexity; full-band speech is good
	// from about 24 kbit/s. No in-band forward error correction.
	LowDelay
)

// ParseMode reads "speech" or "low-delay".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "speech":
		return Speech, nil
	case "low-delay":
		return LowDelay, nil
	}
	return 0, fmt.Errorf(`opus: mode %q is not "speech" or "low-delay"`, s)
}

func (m Mode) String() string {
	switch m {
	case Speech:
		return "speech"
	case LowDelay:
		return "low-delay"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Config shapes an Encoder.
type Config struct {
	Format     media.AudioFormat // zero: media.DefaultAudio
	Bitrate    int               // target, bits per second; zero: DefaultBitrate
	Complexity int               // 0 (cheapest) .. 10; zero means 0: set it
	Mode       Mode              // zero: Speech
	// LossPercent tells the encoder how much loss to expect, so that it
	// spends bits on in-band forward error correction (0: none).
	LossPercent int
}

func (c Config) withDefaults() Config {
	if c.Format == (media.AudioFormat{}) {
		c.Format = media.DefaultAudio
	}
	if c.Bitrate == 0 {
		c.Bitrate = DefaultBitrate
	}
	return c
}

// Validate says what is wrong with c, if anything.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := checkFormat(c.Format); err != nil {
		return err
	}
	if c.Bitrate < MinBitrate || c.Bitrate > MaxBitrate {
		return fmt.Errorf("opus: bit rate %d out of %d..%d", c.Bitrate, MinBitrate, MaxBitrate)
	}
	if c.Complexity < 0 || c.Complexity > 10 {
		return fmt.Errorf("opus: complexity %d out of 0..10", c.Complexity)
	}
	if c.LossPercent < 0 || c.LossPercent > 100 {
		return fmt.Errorf("opus: loss %d%% out of 0..100", c.LossPercent)
	}
	switch c.Mode {
	case Speech:
	case LowDelay:
		if c.LossPercent > 0 {
			return errors.New("opus: forward error correction (LossPercent) needs the speech mode")
		}
	default:
		return fmt.Errorf("opus: unknown %v", c.Mode)
	}
	return nil
}

func checkFormat(f media.AudioFormat) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("opus: %w", err)
	}
	switch f.Rate {
	case 8000, 12000, 16000, 24000, 48000:
	default:
		return fmt.Errorf("opus: rate %d Hz is not 8000, 12000, 16000, 24000 or 48000", f.Rate)
	}
	if f.Channels != 1 && f.Channels != 2 {
		return fmt.Errorf("opus: %d channels, want 1 or 2", f.Channels)
	}
	if f.FrameMs != 10 && f.FrameMs != 20 {
		return fmt.Errorf("opus: %d ms frames, want 10 or 20", f.FrameMs)
	}
	return nil
}

// Available says whether this build has Opus.
func Available() bool { return available }
