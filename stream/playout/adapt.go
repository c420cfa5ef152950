package playout

import (
	"slices"
	"time"
)

// Adaptive target tuning (see Buffer.Read).
const (
	jitterWindow   = 1000                 // arrivals the spread is measured over (10 s of 10 ms frames)
	jitterEvery    = 50                   // arrivals between two measurements
	jitterQuant    = 0.995                // the share of arrivals the target covers
	holdTime       = 20 * time.Second     // a raised target is kept at least this long
	lowerStep      = 5 * time.Millisecond // then it comes down by this much per measurement
	resyncLateness = 2 * time.Second      // an arrival this late or early restarts the measurement (the peer paused)
)

// jitter measures how unevenly frames arrive and turns it into the depth
// the Buffer should keep. Each frame's lateness is its arrival time minus
// its place in the stream (Seq times the frame duration), relative to the
// first one; the spread between the window's earliest and its jitterQuant
// quantile is the jitter to absorb (a slow clock drift moves both, so it
// does not count). The target is that spread plus one frame (the speaker
// reads whole frames), between the floor (Config.Target) and the cap
// (Config.Max less one frame): raised at once, kept for holdTime, then
// lowered step by step. On a LAN the spread is a millisecond or two and
// the target stays at its floor.
type jitter struct {
	frame      time.Duration
	floor, cap time.Duration

	have     bool
	t0       time.Time
	seq0     uint32
	late     []float64 // ring of lateness, seconds
	n        int       // arrivals in the ring
	next     int       // ring slot to write
	since    int       // arrivals since the last measurement
	scratch  []float64
	target   time.Duration
	raisedAt time.Time
	spread   time.Duration // the last measurement
}

func newJitter(frame, floor, cap time.Duration) jitter {
	return jitter{frame: frame, floor: floor, cap: max(cap, floor), target: floor,
		late: make([]float64, jitterWindow), scratch: make([]float64, jitterWindow)}
}

// restart forgets the arrivals (a new call) and goes back to the floor.
func (j *jitter) restart() {
	j.have, j.n, j.next, j.since = false, 0, 0, 0
	j.target, j.spread, j.raisedAt = j.floor, 0, time.Time{}
}

// arrive records frame seq arriving at t and says whether the target
// changed.
func (j *jitter) arrive(seq uint32, t time.Time) bool {
	if !j.have {
		j.have, j.t0, j.seq0 = true, t, seq
	}
	late := t.Sub(j.t0).Seconds() - float64(int32(seq-j.seq0))*j.frame.Seconds()
	j.late[j.next] = late
	j.next = (j.next + 1) % jitterWindow
	j.n = min(j.n+1, jitterWindow)
	j.since++
	if j.since < jitterEvery {
		return false
	}
	j.since = 0
	s := j.scratch[:j.n]
	copy(s, j.late[:j.n])
	slices.Sort(s)
	// Frames later than the cap came through a stall that no depth the
	// cap allows could cover (they underran whatever the target): they
	// are not jitter to follow.
	top := j.cap.Seconds()
	k, _ := slices.BinarySearch(s, s[0]+top)
	s = s[:max(k, 1)]
	q := s[min(int(float64(len(s)-1)*jitterQuant+0.5), len(s)-1)]
	j.spread = time.Duration((q - s[0]) * float64(time.Second))
	want := min(max(j.spread+j.frame, j.floor), j.cap)
	want = want.Round(time.Millisecond)
	old := j.target
	switch {
	case want > j.target:
		j.target, j.raisedAt = want, t
	case want < j.target && t.Sub(j.raisedAt) >= holdTime:
		j.target = max(want, j.target-lowerStep)
	}
	return j.target != old
}
