// Package audio is callbox's microphone and speaker layer: the Source and
// Speaker interfaces the daemon wires to a call, ALSA capture and playback
// through malgo (cgo builds), and simulated devices (a voice-like test
// source that marks every frame, a silent source, a clocked speaker, a
// bounded recorder and a checker) for running without hardware.
package audio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// ErrClosed is returned by Read and Write after Close.
var ErrClosed = errors.New("audio: closed")

// ErrRunning is returned by a Speaker's Run while another Run is active.
var ErrRunning = errors.New("audio: speaker already running")

// Source is a microphone.
//
// Read blocks until the next chunk (one frame of Format) is captured, ctx ends
// (ctx.Err()) or the source is closed (ErrClosed). The returned Samples are
// owned by the caller. Concurrent Reads are served one at a time; normally a
// single goroutine reads. A device whose capture ring overruns because Read
// was late drops the oldest audio and says so in its Seq gap.
//
// Close releases the device and makes a blocked Read return ErrClosed; it is
// idempotent and may be called from any goroutine.
type Source interface {
	Read(ctx context.Context) (media.Audio, error)
	Format() media.AudioFormat
	Close() error
}

// Speaker plays audio pulled from fill at the device's own clock.
//
// Run blocks until ctx ends (then it returns nil) or the device fails (then it
// returns the error); one Run at a time. fill is called once per device period
// from the device's own thread (for ALSA, its callback) with dst of one period,
// interleaved, usually one frame of Format. fill must write all of dst, must not
// block, and must not keep dst after it returns.
type Speaker interface {
	Run(ctx context.Context, fill func(dst []int16)) error
	Format() media.AudioFormat
}

// backlog is how many frames the simulated devices catch up after a stall,
// like an ALSA ring of four periods; anything older is dropped and counted.
const backlog = 4

// format applies the zero-value default and validates.
func format(f media.AudioFormat) (media.AudioFormat, error) {
	if f == (media.AudioFormat{}) {
		f = media.DefaultAudio
	}
	if err := f.Validate(); err != nil {
		return f, fmt.Errorf("audio: %w", err)
	}
	return f, nil
}

// wait blocks until due, ctx ends or done is closed. t is a stopped timer
// owned by the caller, reused to avoid one allocation per period.
func wait(ctx context.Context, done <-chan struct{}, t *time.Timer, due time.Time) error {
	d := time.Until(due)
	if d <= 0 {
		select {
		case <-done:
			return ErrClosed
		default:
			return ctx.Err()
		}
	}
	t.Reset(d)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-done:
		t.Stop()
		return ErrClosed
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
