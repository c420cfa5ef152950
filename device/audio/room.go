package audio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/room"
)

// VoiceSource is a simulated microphone in front of someone talking: the
// speech-like voice of stream/room (phrases and pauses), paced in real
// time like a TestSource. Mono only.
type VoiceSource struct{ p *pacer }

var _ Source = (*VoiceSource)(nil)

// NewVoiceSource returns a VoiceSource in format f (the zero value means
// media.DefaultAudio); the same seed gives the same voice.
func NewVoiceSource(f media.AudioFormat, seed uint64) (*VoiceSource, error) {
	f, err := format(f)
	if err != nil {
		return nil, err
	}
	if f.Channels != 1 {
		return nil, fmt.Errorf("audio: the simulated voice is mono, not %d channels", f.Channels)
	}
	v := room.NewVoice(seed, pitchFor(seed), f.Rate)
	return &VoiceSource{p: newPacer(f, func(dst []int16, _ uint32) { v.Read(dst) })}, nil
}

// pitchFor gives each seed a voice of its own between 100 and 220 Hz.
func pitchFor(seed uint64) float64 { return 100 + float64(seed%7)*20 }

// Read blocks until the next frame is due; see Source.
func (s *VoiceSource) Read(ctx context.Context) (media.Audio, error) { return s.p.read(ctx) }

// Format is the source's audio format.
func (s *VoiceSource) Format() media.AudioFormat { return s.p.format }

// Close makes Read return ErrClosed. It is idempotent.
func (s *VoiceSource) Close() error { return s.p.shut() }

// Stats may be called from any goroutine.
func (s *VoiceSource) Stats() SourceStats { return s.p.stats() }

// Talk says when the person in a simulated room talks.
type Talk string

// Talk patterns: always (in phrases, with pauses), never, or in turns of
// TurnLength on the wall clock, so that two boxes on one machine, one
// "even" and one "odd", take turns and also overlap where a phrase runs on.
const (
	TalkAlways Talk = "always"
	TalkNever  Talk = "never"
	TalkEven   Talk = "even"
	TalkOdd    Talk = "odd"
)

// TurnLength is the length of a turn for TalkEven and TalkOdd.
const TurnLength = 4 * time.Second

// RoomConfig describes a simulated room: the acoustics (stream/room; its
// Rate and Frame come from the audio format) and who talks in it.
type RoomConfig struct {
	Acoustics room.Config
	Talk      Talk
	Seed      uint64 // the talker's voice
}

// Room is a simulated room holding a box's speaker and microphone: the
// microphone hears what the speaker played, through the room's echo path,
// plus background noise and, when Talk says so, a person talking. The
// demo and the tests use it to run the echo stage inside the daemon.
// The speaker and the microphone each keep their own clock, as a real
// sound card's two directions do; what the speaker played waits in a
// bounded queue for the microphone.
type Room struct {
	format media.AudioFormat
	talk   Talk

	mu     sync.Mutex
	r      *room.Room
	voice  *room.Voice
	played []int16 // samples played, not yet heard; at most maxQueued
	near   []int16 // scratch: the talker's frame
	out    []int16 // scratch: the speaker's frame
	primed bool    // the microphone has primeFrames of the speaker's in hand
	now    func() time.Time
}

// primeFrames is how much of what the speaker played the microphone keeps
// in hand against the two clocks' jitter.
const primeFrames = 3

// maxQueuedMs bounds what the speaker may play ahead of the microphone:
// 200 ms, beyond which the oldest goes (the microphone stalled).
const maxQueuedMs = 200

// NewRoom builds a simulated room for format f (mono).
func NewRoom(f media.AudioFormat, c RoomConfig) (*Room, error) {
	f, err := format(f)
	if err != nil {
		return nil, err
	}
	if f.Channels != 1 {
		return nil, fmt.Errorf("audio: the simulated room is mono, not %d channels", f.Channels)
	}
	switch c.Talk {
	case TalkAlways, TalkNever, TalkEven, TalkOdd:
	case "":
		c.Talk = TalkAlways
	default:
		return nil, fmt.Errorf("audio: room: talk %q is not always, never, even or odd", c.Talk)
	}
	c.Acoustics.Rate, c.Acoustics.Frame = f.Rate, f.FrameSamples()
	r, err := room.New(c.Acoustics)
	if err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	return &Room{format: f, talk: c.Talk, r: r, voice: room.NewVoice(c.Seed, pitchFor(c.Seed), f.Rate),
		near: make([]int16, f.FrameSamples()), out: make([]int16, f.FrameSamples()), now: time.Now}, nil
}

// play queues what the speaker played.
func (r *Room) play(frame []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.played = append(r.played, frame...)
	if limit := maxQueuedMs * r.format.Rate / 1000; len(r.played) > limit {
		r.played = append(r.played[:0], r.played[len(r.played)-limit:]...)
	}
}

// hear writes one frame of what the microphone hears.
func (r *Room) hear(dst []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// What the speaker played over this frame. The two clocks tick at the
	// same rate but each with its own phase and jitter: the microphone
	// keeps primeFrames of what was played in hand, so that the echo's
	// delay stays put; when the speaker falls behind by more than that, the
	// room hears silence and primes again (the delay moves, as a real
	// card's does after an xrun).
	out := r.out
	clear(out)
	if !r.primed && len(r.played) >= primeFrames*len(out) {
		r.primed = true
	}
	if r.primed {
		if len(r.played) < len(out) {
			r.primed = false
		} else {
			// A microphone that fell behind (its frames skipped) or a
			// speaker that caught up leaves more in hand: what a real
			// card would have played and heard meanwhile is gone, and
			// the delay stays put.
			if hold := (primeFrames + 1) * len(out); len(r.played) > hold+len(out) {
				r.played = append(r.played[:0], r.played[len(r.played)-hold:]...)
			}
			k := copy(out, r.played)
			r.played = append(r.played[:0], r.played[k:]...)
		}
	}
	var near []int16
	if r.talking() {
		r.voice.Read(r.near)
		near = r.near
	}
	copy(dst, r.r.Hear(out, near).Mic)
}

func (r *Room) talking() bool {
	switch r.talk {
	case TalkAlways:
		return true
	case TalkEven, TalkOdd:
		turn := r.now().UnixNano() / int64(TurnLength) % 2
		return (turn == 0) == (r.talk == TalkEven)
	}
	return false
}

// Microphone is the room's microphone: a Source paced in real time.
func (r *Room) Microphone() *RoomMicrophone {
	return &RoomMicrophone{p: newPacer(r.format, func(dst []int16, _ uint32) { r.hear(dst) })}
}

// Speaker is the room's loudspeaker: a ClockedSpeaker (recording to rec,
// if not nil) whose every period the room's microphone hears.
func (r *Room) Speaker(rec io.Writer) *RoomSpeaker {
	return &RoomSpeaker{ClockedSpeaker: NewClockedSpeaker(r.format, rec), r: r}
}

// RoomMicrophone is a Room's microphone.
type RoomMicrophone struct{ p *pacer }

var _ Source = (*RoomMicrophone)(nil)

// Read blocks until the next frame is due; see Source.
func (m *RoomMicrophone) Read(ctx context.Context) (media.Audio, error) { return m.p.read(ctx) }

// Format is the microphone's audio format.
func (m *RoomMicrophone) Format() media.AudioFormat { return m.p.format }

// Close makes Read return ErrClosed. It is idempotent.
func (m *RoomMicrophone) Close() error { return m.p.shut() }

// RoomSpeaker is a Room's loudspeaker.
type RoomSpeaker struct {
	*ClockedSpeaker
	r *Room
}

var _ Speaker = (*RoomSpeaker)(nil)

// Run plays like ClockedSpeaker.Run, into the room.
func (s *RoomSpeaker) Run(ctx context.Context, fill func(dst []int16)) error {
	if s.r == nil {
		return errors.New("audio: room speaker without a room")
	}
	return s.ClockedSpeaker.Run(ctx, func(dst []int16) {
		fill(dst)
		s.r.play(dst)
	})
}
