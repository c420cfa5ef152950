package audio

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// SpeakerStats counts a ClockedSpeaker's periods.
type SpeakerStats struct {
	Periods   uint64 // calls of fill
	Missed    uint64 // periods skipped because Run fell more than the backlog behind
	RecordErr error  // the write error that stopped recording; nil while recording works
}

// ClockedSpeaker is a simulated speaker: it pulls one frame per frame
// duration, in real time, on an absolute schedule from the start of Run, and
// records what it pulled as s16le. After a stall it catches up at most the
// backlog of periods back to back and skips older ones (counted as Missed,
// not recorded), as a playback device would underrun.
type ClockedSpeaker struct {
	format  media.AudioFormat
	err     error // invalid format, returned by Run
	rec     io.Writer
	running atomic.Bool

	periods, missed atomic.Uint64
	mu              sync.Mutex
	recErr          error // guarded by mu; once set, recording has stopped
}

var _ Speaker = (*ClockedSpeaker)(nil)

// NewClockedSpeaker returns a ClockedSpeaker in format f (the zero value means
// media.DefaultAudio) that writes what it plays to rec, if rec is not nil. A
// failing rec is reported once in Stats and no longer written; playback goes
// on. If f is invalid, Run returns the error.
func NewClockedSpeaker(f media.AudioFormat, rec io.Writer) *ClockedSpeaker {
	f, err := format(f)
	return &ClockedSpeaker{format: f, err: err, rec: rec}
}

// Format is the speaker's audio format.
func (s *ClockedSpeaker) Format() media.AudioFormat { return s.format }

// Stats may be called from any goroutine.
func (s *ClockedSpeaker) Stats() SpeakerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SpeakerStats{Periods: s.periods.Load(), Missed: s.missed.Load(), RecordErr: s.recErr}
}

// Run calls fill with one frame at once and then every frame duration until
// ctx ends, then returns nil. A second concurrent Run returns ErrRunning.
func (s *ClockedSpeaker) Run(ctx context.Context, fill func(dst []int16)) error {
	if s.err != nil {
		return s.err
	}
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)

	period := s.format.FrameDuration()
	buf := make([]int16, s.format.FrameLen())
	raw := make([]byte, 2*len(buf))
	timer := stoppedTimer()
	start := time.Now()
	for n := uint64(0); ; n++ {
		// Periods up to due have come round; play only the newest backlog.
		if due := uint64(time.Since(start) / period); due >= n+backlog {
			skip := due + 1 - backlog - n
			n += skip
			s.missed.Add(skip)
		}
		if wait(ctx, nil, timer, start.Add(time.Duration(n)*period)) != nil {
			return nil
		}
		fill(buf)
		s.periods.Add(1)
		s.record(buf, raw)
	}
}

func (s *ClockedSpeaker) record(buf []int16, raw []byte) {
	if s.rec == nil {
		return
	}
	s.mu.Lock()
	failed := s.recErr != nil
	s.mu.Unlock()
	if failed {
		return
	}
	for i, v := range buf {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
	}
	if _, err := s.rec.Write(raw); err != nil {
		s.mu.Lock()
		s.recErr = fmt.Errorf("audio: speaker: record: %w", err)
		s.mu.Unlock()
	}
}
