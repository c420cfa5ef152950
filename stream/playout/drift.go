package playout

import (
	"time"

	"github.com/callbox/callbox/stream/media"
)

// driftDir is what the drift controller is doing.
type driftDir int

const (
	idle    driftDir = 0
	squeeze driftDir = 1  // too deep: merge samples, play faster
	stretch driftDir = -1 // too shallow: insert samples, play slower
)

// Drift controller tuning (see Buffer.Read).
const (
	settleWindows = 5           // one-second windows before the controller may act
	smoothing     = 5           // the level moves 1/smoothing of the way to each window's mean
	closeTime     = 10          // seconds to close the gap
	minPPM        = 500         // slowest correction, parts per million of samples
	maxPPM        = 4000        // fastest
	hiFrames      = 1.5         // start correcting this many frames from Target
	loFrames      = 0.5         // stop within this many frames of Target
	driftWindow   = time.Second // averaging window
)

// drift is the Buffer's drift controller. The two boxes' sample clocks never
// run at exactly one rate: if the sender's is faster the queue grows without
// bound (until the latency cap drops whole frames, a click), if slower it
// empties (an underrun, a gap). The controller watches the depth before each
// Read, averaged over seconds, and steers it back to Target by squeezing or
// stretching single samples. It also takes back depth that a network burst
// left behind. It belongs to the Buffer and runs under its mutex.
type drift struct {
	on     bool
	rate   int     // samples per second per channel
	target float64 // Target, samples per channel
	hi, lo float64 // thresholds, samples

	sum     int64 // depth samples summed in the current window
	reads   int   // depth samples in the current window
	samples int   // output samples in the current window
	windows int   // complete windows since playing (re)started
	level   float64

	dir   driftDir
	step  int // output samples between adjustments while correcting
	until int // output samples until the next adjustment

	squeezed, stretched uint64
}

func newDrift(f media.AudioFormat, target int, on bool) drift {
	fs := float64(f.FrameSamples())
	return drift{on: on, rate: f.Rate, target: float64(target), hi: hiFrames * fs, lo: loFrames * fs}
}

// restart forgets the measurements: a new call.
func (d *drift) restart() {
	d.sum, d.reads, d.samples, d.windows = 0, 0, 0, 0
	d.level, d.dir, d.until = 0, idle, 0
}

// resume is called when playing (re)starts at depth (samples per channel).
// After an underrun in a call that has played long enough, the controller
// stays settled and starts from that depth, so that what a burst of late
// frames adds after the gap is taken back without another settling time.
func (d *drift) resume(depth int) {
	if d.windows < settleWindows {
		d.restart()
		return
	}
	d.sum, d.reads, d.samples = 0, 0, 0
	d.level, d.dir, d.until = float64(depth), idle, 0
}

// observe records the depth (samples per channel) before a Read of n samples
// per channel and, at the end of each window, decides what to do.
func (d *drift) observe(depth, n int) {
	if !d.on {
		return
	}
	d.sum += int64(depth)
	d.reads++
	d.samples += n
	if d.samples < d.rate*int(driftWindow/time.Second) {
		return
	}
	mean := float64(d.sum) / float64(d.reads)
	d.sum, d.reads, d.samples = 0, 0, 0
	d.windows++
	if d.windows == 1 {
		d.level = mean
	} else {
		d.level += (mean - d.level) / smoothing
	}
	if d.windows < settleWindows {
		return
	}
	e := d.level - d.target
	switch d.dir {
	case idle:
		if e > d.hi {
			d.dir = squeeze
		} else if e < -d.hi {
			d.dir = stretch
		}
	case squeeze:
		if e < d.lo {
			d.dir = idle
		}
	case stretch:
		if e > -d.lo {
			d.dir = idle
		}
	}
	if d.dir == idle {
		return
	}
	// Close the gap in about closeTime, within minPPM..maxPPM.
	perSec := min(max(abs64(e)/closeTime, float64(d.rate)*minPPM/1e6), float64(d.rate)*maxPPM/1e6)
	d.step = max(int(float64(d.rate)/perSec), 1)
	if d.until == 0 || d.until > d.step {
		d.until = d.step
	}
}

// levelDuration is the level as a duration, zero before the first window.
func (d *drift) levelDuration() time.Duration {
	if d.windows == 0 || d.rate == 0 {
		return 0
	}
	return time.Duration(d.level * float64(time.Second) / float64(d.rate))
}

func abs64(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
