package rig

import (
	"errors"
	"fmt"
)

// VideoCounts are what a camera scenario measured of one call's video,
// from both daemons' own counters and the host peer's recording. The pass
// rule (Check) judges the call against what the emulated guest actually
// sent, not against what was fed at the wall clock's rate: how much of
// the feed a TCG guest manages to capture, encode and send depends on how
// fast the emulator runs on a machine that may be busy with other work.
type VideoCounts struct {
	// Checkpoint: the guest's count of frames sent (its Out.VideoFrames)
	// at a moment in the call, and the host peer's count of frames
	// received (its In.VideoFrames) once it got there or gave up waiting.
	SentAt, ArrivedBy int
	// At the end of the call: the host peer's frames received, and those
	// it replaced (latest wins) before its sink took them.
	Received, SinkDrops int
	// The recording: frames in it (each decoded at the configured size
	// before it is counted here) and their numbers, where frames carry
	// one (frames fed to v4l2loopback do, the guest's own encodes of a
	// raw camera do not).
	Recorded int
	Numbers  []uint32
	// Fed is how many frames were written to the guest's camera while the
	// call ran (between the first and last number recorded); 0 when the
	// frames carry no numbers.
	Fed int
	// MinShare is the least share of Fed that must be recorded.
	MinShare float64
}

// FrameOrder is how the numbers of recorded frames follow each other.
type FrameOrder struct {
	Distinct  int
	Backwards int // numbered below the frame before
	Repeats   int // numbered the same as the frame before
}

// OrderOf checks that frame numbers only go up.
func OrderOf(numbers []uint32) FrameOrder {
	var o FrameOrder
	seen := map[uint32]bool{}
	for i, n := range numbers {
		if !seen[n] {
			seen[n] = true
			o.Distinct++
		}
		if i == 0 {
			continue
		}
		switch p := numbers[i-1]; {
		case n < p:
			o.Backwards++
		case n == p:
			o.Repeats++
		}
	}
	return o
}

// Share is the share of the frames fed during the call that were recorded
// (distinct numbers); 0 without numbers.
func (v VideoCounts) Share() float64 {
	if v.Fed == 0 {
		return 0
	}
	return float64(OrderOf(v.Numbers).Distinct) / float64(v.Fed)
}

// Check is the pass rule of a camera scenario:
//   - every frame the guest had sent at the checkpoint reached the host
//     peer (the call runs over TCP: a frame that the sender counts and the
//     receiver never completes is lost in the daemons);
//   - the recording holds every frame the host peer's sink took (the
//     received ones less those replaced before the sink took them; the last
//     one may be cut off by the hangup);
//   - recorded frames are in the order they were fed: numbers only go up,
//     none twice (a camera that hands out a stale buffer again repeats one);
//   - where frames carry numbers, at least MinShare of those fed while the
//     call ran were recorded: proof that video flows at a real rate, not a
//     frame now and then.
//
// Decoding every recorded frame at the configured size is the caller's
// (it needs the JPEGs); frames that do not decode are never counted.
func (v VideoCounts) Check() error {
	var errs []error
	if v.Recorded == 0 {
		errs = append(errs, errors.New("no frames recorded"))
	}
	if v.ArrivedBy < v.SentAt {
		errs = append(errs, fmt.Errorf("the guest had sent %d frames but only %d reached the host peer: %d lost in the daemons",
			v.SentAt, v.ArrivedBy, v.SentAt-v.ArrivedBy))
	}
	if took := v.Received - v.SinkDrops; v.Recorded < took-1 || v.Recorded > v.Received {
		errs = append(errs, fmt.Errorf("the host peer recorded %d frames, its sink took %d (%d received, %d replaced before the sink took them)",
			v.Recorded, took, v.Received, v.SinkDrops))
	}
	o := OrderOf(v.Numbers)
	if o.Backwards > 0 || o.Repeats > 0 {
		errs = append(errs, fmt.Errorf("recorded frames out of the order they were fed: %d went backwards, %d repeated the one before", o.Backwards, o.Repeats))
	}
	if v.Fed > 0 && v.Share() < v.MinShare {
		errs = append(errs, fmt.Errorf("only %.1f%% of the %d frames fed during the call were recorded, want ≥ %.0f%%", 100*v.Share(), v.Fed, 100*v.MinShare))
	}
	return errors.Join(errs...)
}
