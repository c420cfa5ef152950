// Package media holds the value types that flow between devices and the call
// session: video frames, audio chunks, their formats and capture timestamps.
package media

import (
	"fmt"
	"time"
)

// VideoFormat describes a video stream: frame size and rate. Frames are
// always MJPEG (one complete JPEG image per frame).
type VideoFormat struct {
	Width  int // pixels
	Height int // pixels
	FPS    int // frames per second
}

// Validate reports a format outside what the protocol can carry.
func (f VideoFormat) Validate() error {
	switch {
	case f.Width < 16 || f.Width > 4096:
		return fmt.Errorf("video width %d out of range 16..4096", f.Width)
	case f.Height < 16 || f.Height > 4096:
		return fmt.Errorf("video height %d out of range 16..4096", f.Height)
	case f.FPS < 1 || f.FPS > 60:
		return fmt.Errorf("video fps %d out of range 1..60", f.FPS)
	}
	return nil
}

// Size is a picture's width and height in pixels.
type Size struct {
	Width, Height int
}

// Fit returns the largest size with f's aspect (rounded down to even
// numbers, at least 16x16) that fits within max, or f's own size when it
// fits already or max is zero.
func (f VideoFormat) Fit(limit Size) Size {
	if limit.Width <= 0 || limit.Height <= 0 || (f.Width <= limit.Width && f.Height <= limit.Height) {
		return Size{f.Width, f.Height}
	}
	w, h := limit.Width, f.Height*limit.Width/f.Width
	if h > limit.Height {
		w, h = f.Width*limit.Height/f.Height, limit.Height
	}
	return Size{Width: max(w&^1, 16), Height: max(h&^1, 16)}
}

// AudioFormat describes a PCM stream: signed 16-bit little-endian samples,
// interleaved when Channels > 1, carried in frames of FrameMs milliseconds.
type AudioFormat struct {
	Rate     int // samples per second per channel
	Channels int // 1 or 2
	FrameMs  int // 10 or 20
}

// DefaultAudio is the format callbox uses unless configured otherwise.
var DefaultAudio = AudioFormat{Rate: 48000, Channels: 1, FrameMs: 10}

// DefaultVideo is the video format callbox uses unless configured otherwise.
var DefaultVideo = VideoFormat{Width: 640, Height: 480, FPS: 30}

// Validate reports a format outside what the protocol can carry.
func (f AudioFormat) Validate() error {
	switch f.Rate {
	case 8000, 16000, 24000, 32000, 44100, 48000:
	default:
		return fmt.Errorf("audio rate %d not one of 8000, 16000, 24000, 32000, 44100, 48000", f.Rate)
	}
	if f.Channels != 1 && f.Channels != 2 {
		return fmt.Errorf("audio channels %d not 1 or 2", f.Channels)
	}
	if f.FrameMs != 10 && f.FrameMs != 20 {
		return fmt.Errorf("audio frame length %d ms not 10 or 20", f.FrameMs)
	}
	if f.Rate*f.FrameMs%1000 != 0 {
		return fmt.Errorf("audio rate %d does not divide into %d ms frames", f.Rate, f.FrameMs)
	}
	return nil
}

// FrameSamples is the number of samples per channel in one frame.
func (f AudioFormat) FrameSamples() int { return f.Rate * f.FrameMs / 1000 }

// FrameLen is the number of int16 values (all channels) in one frame.
func (f AudioFormat) FrameLen() int { return f.FrameSamples() * f.Channels }

// FrameDuration is the duration of one frame.
func (f AudioFormat) FrameDuration() time.Duration {
	return time.Duration(f.FrameMs) * time.Millisecond
}

// Frame is one video frame: a complete JPEG image.
type Frame struct {
	Seq  uint32    // capture sequence number, increasing by one per captured frame
	Time time.Time // capture time on the capturing box's clock
	JPEG []byte    // owned by whoever holds the Frame; never aliases driver memory
}

// Audio is one chunk of PCM audio, normally exactly one frame of its format.
type Audio struct {
	Seq     uint32    // capture sequence number, increasing by one per chunk
	Time    time.Time // capture time of the first sample on the capturing box's clock
	Samples []int16   // interleaved; owned by whoever holds the Audio
	// Concealed frames were made up by the receiver's decoder for audio
	// lost on the way: they keep the timeline, and timing figures (the
	// playout's jitter) skip them.
	Concealed bool
	// Arrived is when the packet that carried these samples reached this
	// box (the kernel's receive time where known); zero means "when it is
	// handed over", which is what a receiver reading as packets arrive
	// sees anyway. A receiver that reads its socket on a tick of its own
	// sets it, so that the playout's jitter is the network's, not the
	// tick's.
	Arrived time.Time
}
