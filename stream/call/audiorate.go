package call

import (
	"fmt"
	"time"
)

// The audio's bit rate follows the link (issue 14). On a link too thin
// for the call's video, the sender skips frames (latest wins, see
// linkGate): every bit the audio spends is a bit less for the picture. A
// thin uplink is also where each Opus packet's overhead weighs most (a
// sealed datagram adds 33 bytes, 13 kbit/s at 50 packets a second). So
// while the link holds the video back, the Opus encoder aims lower
// (Config.OpusLow, 24 kbit/s by the daemon's default: still super-wideband
// speech), and goes back to its configured target once the link has had
// room for a while. Audio alone never lowers it: without frames skipped
// there is no sign that the link is short, and audio goes first anyway.
const (
	// rateLookEvery is how often the writer looks at the call's video.
	rateLookEvery = time.Second
	// rateFull is the share of frames skipped at the sender above which
	// a look counts as "the link holds the video back"; rateRoom the
	// share below which it counts as room.
	rateFull = 0.10
	rateRoom = 0.02
	// rateDownAfter and rateUpAfter are how many looks in a row must
	// agree: down after 2 s of a full link, up after 10 s of room, so
	// that a link at the edge does not flip the rate every few seconds.
	rateDownAfter = 2
	rateUpAfter   = 10
)

// audioRate decides the Opus target from the video's counters. Not safe
// for concurrent use: the session's writer owns it.
type audioRate struct {
	hi, lo int  // bits per second: the configured target, and the one for a full link
	low    bool // the target is lo

	at            time.Time // the last look
	frames, drops uint64    // the video counters then
	have          bool      // at, frames and drops are set
	full, room    int       // looks in a row that saw a full link / room
	why           string    // the reason for the last change
}

func newAudioRate(hi, lo int) *audioRate {
	return &audioRate{hi: hi, lo: min(lo, hi)}
}

// target is the Opus target in use, bits per second.
func (r *audioRate) target() int {
	if r.low {
		return r.lo
	}
	return r.hi
}

// look takes the video counters (frames sent, frames skipped at the
// sender, in all) and reports whether the target changed. Looks closer
// than rateLookEvery to the last one are ignored.
func (r *audioRate) look(now time.Time, frames, drops uint64) bool {
	if r.lo >= r.hi {
		return false
	}
	if !r.have || frames < r.frames || drops < r.drops {
		r.at, r.frames, r.drops, r.have = now, frames, drops, true
		return false
	}
	if now.Sub(r.at) < rateLookEvery*9/10 {
		return false
	}
	f, d := frames-r.frames, drops-r.drops
	r.at, r.frames, r.drops = now, frames, drops
	share := 0.0
	if f+d > 0 {
		share = float64(d) / float64(f+d)
	}
	switch {
	case share > rateFull:
		r.room = 0
		if r.full++; r.full >= rateDownAfter && !r.low {
			r.low = true
			r.why = fmt.Sprintf("the link holds the video back (%.0f%% of frames skipped)", share*100)
			return true
		}
	case share < rateRoom:
		r.full = 0
		if r.room++; r.room >= rateUpAfter && r.low {
			r.low = false
			r.why = fmt.Sprintf("the link has room (%.0f%% of frames skipped for %d s)", share*100, rateUpAfter)
			return true
		}
	default:
		r.full, r.room = 0, 0
	}
	return false
}

// adaptAudio lets the Opus target follow the link (writer goroutine, at
// its ping ticks).
func (s *session) adaptAudio(now time.Time) {
	pk := s.tx.Load()
	if pk == nil || pk.ctl == nil {
		return
	}
	s.st.mu.Lock()
	frames, drops := s.st.out.videoFrames, s.st.out.videoDrops
	s.st.mu.Unlock()
	r := pk.ctl
	if !r.look(now, frames, drops) {
		return
	}
	bps := r.target()
	pk.setBitrate(bps)
	s.st.mu.Lock()
	s.st.out.audioTarget = float64(bps) / 1000
	s.st.mu.Unlock()
	what := "audio bit rate lowered"
	if !r.low {
		what = "audio bit rate back up"
	}
	s.log.Info(what, "opus_kbps", bps/1000, "why", r.why)
}
