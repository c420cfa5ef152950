package main

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/screen"
	"github.com/callbox/callbox/internal/web"
	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/playout"
)

// peerSink receives the peer's media: audio to the playout buffer, the
// latest frame kept for the control API, and optional recordings.
type peerSink struct {
	play   *playout.Buffer
	log    *slog.Logger
	screen *screen.Screen // set before the phone runs; nil without a screen

	mu     sync.Mutex
	frames web.Latest // the peer's latest frame: control API and web page

	// rec queues frames for the recorder goroutine: 8 frames, and a full
	// queue drops the new frame (recording must never slow the call).
	rec      chan media.Frame
	recDrops uint64
	vrec     *camera.Recorder
	arec     *audio.Recorder
	recDone  chan struct{}
}

func newPeerSink(rc RecordConfig, play *playout.Buffer, log *slog.Logger) (*peerSink, error) {
	s := &peerSink{play: play, log: log}
	max := int64(rc.MaxMB) << 20
	var err error
	if rc.Video != "" {
		if s.vrec, err = camera.NewRecorder(rc.Video, max); err != nil {
			return nil, fmt.Errorf("record video: %w", err)
		}
		s.rec = make(chan media.Frame, 8)
		s.recDone = make(chan struct{})
		go func() {
			defer close(s.recDone)
			for f := range s.rec {
				if err := s.vrec.Write(f); err != nil {
					log.Warn("video recording stopped", "err", err)
					return
				}
			}
		}()
	}
	if rc.Audio != "" {
		if s.arec, err = audio.NewRecorder(rc.Audio, max); err != nil {
			s.Close()
			return nil, fmt.Errorf("record audio: %w", err)
		}
	}
	return s, nil
}

// VideoNeverWaits: Video only stores the frame, hands it to the screen
// (latest wins) and to the recorder's queue (dropped when full), so the
// session calls it from its reader (call.InlineVideoSink).
func (*peerSink) VideoNeverWaits() {}

var _ call.InlineVideoSink = (*peerSink)(nil)

func (s *peerSink) Video(f media.Frame) {
	s.frames.Put(f.JPEG)
	if s.screen != nil {
		s.screen.Peer(f.JPEG) // never blocks: latest wins
	}
	if s.rec != nil {
		select {
		case s.rec <- f:
		default:
			s.mu.Lock()
			s.recDrops++
			s.mu.Unlock()
		}
	}
}

func (s *peerSink) Audio(a media.Audio) { s.play.Push(a) }

// SetConcealer and DropConcealer let an Opus call fill playout underruns
// with its decoder's concealment (call.ConcealingSink).
func (s *peerSink) SetConcealer(c call.Concealer)  { s.play.SetConcealer(c) }
func (s *peerSink) DropConcealer(c call.Concealer) { s.play.DropConcealer(c) }

func (s *peerSink) Close() {
	if s.rec != nil {
		close(s.rec)
		<-s.recDone
		s.rec = nil
	}
	if s.vrec != nil {
		s.vrec.Close()
	}
	if s.arec != nil {
		s.arec.Close()
	}
}
