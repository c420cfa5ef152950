package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/callbox/callbox/stream/call"
)

// The JPEG quality follows the link (issue 14): on a link too thin for
// the camera's frames at the configured quality, the sender skips frames
// (latest wins) and the picture stutters. Smaller frames get more of them
// through. qualityCtl lowers the quality of the frames callbox encodes
// itself (the test pattern, a raw V4L2 format) in steps while the frames
// sent are larger than the link's share per frame and frames are being
// skipped for want of room, and raises it again, a step at a time, once
// the link has room for the next step up for a few seconds.
const (
	// qualityShare is the part of the link, less the audio, video may
	// plan on: the sender's estimate reads high on a shaped link (a
	// token bucket lets short bursts through faster than its rate).
	qualityShare = 0.85
	// qualityAudioKbps is the least audio (payload and message headers)
	// kept out of the link's rate; more when the call's audio needs it.
	qualityAudioKbps = 40
	// qualityHeaderKbps covers the audio's message headers, which the
	// call's audio rate (payload only) leaves out.
	qualityHeaderKbps = 15
	// qualityEvery is how often the controller looks at the call.
	qualityEvery = time.Second
	// qualityDownAfter and qualityUpAfter are how many looks in a row
	// must agree before a step down or up: a first step down after 2 s
	// of frames too large with frames skipped (then one more per look
	// while that goes on), a step up after 4 s of room for the next
	// step's frames.
	qualityDownAfter = 2
	qualityUpAfter   = 4
	// qualityMaxDown is the most steps down one look takes.
	qualityMaxDown = 3
	// qualitySkipped is the share of frames skipped at the sender above
	// which the link counts as full; below qualityRoomSkipped it counts
	// as having room.
	qualitySkipped     = 0.10
	qualityRoomSkipped = 0.05
	// qualityHeadroom: a step up needs the next step's frames (as last
	// seen, or this one's times qualityStepGrowth) within this part of
	// the budget, so that a step up is not undone by the next look.
	// qualityStepGrowth is also what a step down is expected to save.
	qualityHeadroom   = 0.9
	qualityStepGrowth = 1.2
	// qualitySeenFor is how long a frame size seen at a quality is
	// trusted for a step up; after that the picture may have changed.
	qualitySeenFor = 30 * time.Second
)

// qualityLevels lists the qualities the controller steps through, from
// hi down to lo: 10 apart down to 50, then each about a fifth lower
// (image/jpeg scales its tables by 5000/q below 50, so these steps change
// the frame size about as much as the steps of 10 above).
func qualityLevels(hi, lo int) []int {
	levels := []int{hi}
	for q := hi; q > lo; {
		if q > 50 {
			q = max(q-10, 50)
		} else {
			q = q * 4 / 5
		}
		q = max(q, lo)
		levels = append(levels, q)
	}
	return levels
}

// linkLook is what the controller reads of the call once a look: the
// call's counters of what was sent, and the sender's estimates.
type linkLook struct {
	at        time.Time
	started   time.Time // the call's start: a new call starts over
	frames    uint64    // video frames sent in the call
	bytes     uint64    // video bytes sent in the call
	skipped   uint64    // video frames skipped at the sender (latest wins)
	linkKbps  float64   // the sender's link-rate estimate; 0 unknown
	audioKbps float64   // the call's audio payload rate
}

// lookAt makes a linkLook of a call's figures.
func lookAt(now time.Time, cs *call.CallStats) linkLook {
	return linkLook{at: now, started: cs.Started, frames: cs.Out.VideoFrames, bytes: cs.Out.VideoBytes,
		skipped: cs.Out.VideoDrops, linkKbps: cs.Out.LinkKbps, audioKbps: cs.Out.AudioKbps}
}

// qualityCtl picks the JPEG quality of our frames from what the call's
// link carries. Not safe for concurrent use: the video loop owns it.
type qualityCtl struct {
	fps    float64
	levels []int // levels[0] is the configured quality
	level  int   // index into levels: the quality in use
	why    string

	last     linkLook
	haveLast bool
	over     int // looks in a row with frames too large and skipped
	room     int // looks in a row with room for the next step up
	seen     map[int]seenSize
}

// seenSize is the mean frame size last sent at one quality.
type seenSize struct {
	bytes float64
	at    time.Time
}

// Reasons the controller gives for its quality.
const (
	whyConfigured = "configured (video.quality)"
	whyNoLink     = "configured (video.quality): no call"
)

func newQualityCtl(hi, lo, fps int) *qualityCtl {
	c := &qualityCtl{fps: float64(fps), levels: qualityLevels(hi, lo)}
	c.reset()
	c.why = whyNoLink
	return c
}

// quality is the quality in use.
func (c *qualityCtl) quality() int { return c.levels[c.level] }

// reset goes back to the configured quality and forgets the call: between
// calls, and when a call starts. It reports whether the quality changed.
func (c *qualityCtl) reset() bool {
	changed := c.level != 0
	c.level, c.over, c.room, c.haveLast = 0, 0, 0, false
	c.seen = map[int]seenSize{}
	c.why = whyConfigured
	return changed
}

// budget is the largest frame, in bytes, that the link carries at the
// configured frame rate, after the audio: 0 when the link is unknown.
func (c *qualityCtl) budget(l linkLook) float64 {
	if l.linkKbps <= 0 {
		return 0
	}
	audio := max(l.audioKbps+qualityHeaderKbps, qualityAudioKbps)
	return max(l.linkKbps-audio, 0) * qualityShare * 1000 / 8 / c.fps
}

// observe takes a look at the call and reports whether the quality
// changed. Looks closer than qualityEvery to the last one are ignored.
func (c *qualityCtl) observe(l linkLook) bool {
	if !c.haveLast || !l.started.Equal(c.last.started) || l.frames < c.last.frames {
		changed := c.reset()
		c.last, c.haveLast = l, true
		return changed
	}
	if l.at.Sub(c.last.at) < qualityEvery*9/10 {
		return false
	}
	frames, bytes, skipped := l.frames-c.last.frames, l.bytes-c.last.bytes, l.skipped-c.last.skipped
	c.last = l
	budget := c.budget(l)
	if frames == 0 || budget == 0 {
		c.over, c.room = 0, 0
		return false
	}
	size := float64(bytes) / float64(frames)
	q := c.quality()
	c.seen[q] = seenSize{bytes: size, at: l.at}
	skipShare := float64(skipped) / float64(frames+skipped)

	if size > budget && skipShare > qualitySkipped {
		c.room = 0
		c.over++
		if c.over < qualityDownAfter || c.level == len(c.levels)-1 {
			if c.level == len(c.levels)-1 {
				c.why = fmt.Sprintf("at the floor (video.min_quality): frames of %.1f kB, the link carries %.1f kB a frame at %g fps",
					size/1000, budget/1000, c.fps)
			}
			return false
		}
		// Step as far as frames shrinking by qualityStepGrowth a step need
		// to fit, at most qualityMaxDown steps at once: on a link far
		// too thin for the configured quality the picture stops
		// stuttering within seconds, and a step too far is taken back by
		// the steps up. The next look sees a whole second at the new
		// quality: if that is still too much, step on then.
		steps := 1
		for s := size / qualityStepGrowth; s > budget && steps < qualityMaxDown; s /= qualityStepGrowth {
			steps++
		}
		c.over = qualityDownAfter - 1
		c.level = min(c.level+steps, len(c.levels)-1)
		c.why = fmt.Sprintf("lowered: frames of %.1f kB, the link (%.0f kbit/s) carries %.1f kB a frame at %g fps",
			size/1000, l.linkKbps, budget/1000, c.fps)
		return true
	}
	c.over = 0
	if c.level == 0 {
		c.room = 0
		return false
	}
	up := c.levels[c.level-1]
	next := size * qualityStepGrowth
	if s, ok := c.seen[up]; ok && l.at.Sub(s.at) < qualitySeenFor {
		next = max(next, s.bytes)
	}
	if next > budget*qualityHeadroom || skipShare > qualityRoomSkipped {
		c.room = 0
		return false
	}
	c.room++
	if c.room < qualityUpAfter {
		return false
	}
	c.room = 0
	c.level--
	c.why = fmt.Sprintf("raised: the link (%.0f kbit/s) carries %.1f kB a frame at %g fps", l.linkKbps, budget/1000, c.fps)
	if c.level == 0 {
		c.why = whyConfigured + ": the link has room"
	}
	return true
}

// qualityLogEvery bounds the log to a line about the quality per this
// long while it moves; a step back to the configured quality at the end of
// a call is logged at once.
const qualityLogEvery = 10 * time.Second

// qualityLog logs the quality's changes at INFO, rate-limited: the first
// change at once, later ones at most once per qualityLogEvery (the
// quality then, and how many changes it sums up).
type qualityLog struct {
	at      time.Time // the last line
	logged  int       // the quality that line named; 0: none yet
	pending uint64    // changes not logged yet
	changes uint64    // changes since the start
}

// note is called at every look, changed or not.
func (l *qualityLog) note(log *slog.Logger, now time.Time, c *qualityCtl, changed, force bool) {
	if changed {
		l.changes++
		l.pending++
	}
	if l.pending == 0 || (!force && !l.at.IsZero() && now.Sub(l.at) < qualityLogEvery) {
		return
	}
	q := c.quality()
	from := l.logged
	if from == 0 {
		from = c.levels[0]
	}
	if q != from {
		what := "video quality lowered"
		if q > from {
			what = "video quality raised"
		}
		log.Info(what, "component", "camera", "quality", q, "from", from, "changes", l.pending, "why", c.why)
	}
	l.at, l.logged, l.pending = now, q, 0
}
