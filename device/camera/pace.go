package camera

import (
	"context"
	"time"
)

// pacer hands out capture slots on an absolute schedule: slot k is due at
// start + (k+1)/fps, so N frames take exactly N/fps and lateness never
// accumulates. The clock starts at the first call, as a V4L2 stream starts
// at STREAMON. Not safe for concurrent use (sources allow one reader).
type pacer struct {
	fps   int64
	start time.Time
	next  int64 // index of the next slot to hand out
}

// due returns when slot k is due, without overflowing for long runs.
func (p *pacer) due(k int64) time.Time {
	q, r := (k+1)/p.fps, (k+1)%p.fps
	return p.start.Add(time.Duration(q)*time.Second + time.Duration(r)*time.Second/time.Duration(p.fps))
}

// wait blocks until the next slot is due and returns the capture time and
// how many slots were skipped. A caller that comes back after a stall gets
// the latest slot already due at once and the older ones are skipped, so a
// slow reader never sees a burst of back-to-back frames.
func (p *pacer) wait(ctx context.Context, done <-chan struct{}) (time.Time, uint64, error) {
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	var skipped uint64
	if d := p.due(p.next); now.Before(d) {
		t := time.NewTimer(d.Sub(now))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return time.Time{}, 0, ctx.Err()
		case <-done:
			return time.Time{}, 0, ErrClosed
		case <-t.C:
			now = time.Now()
		}
	} else {
		// Latest slot j with due(j) <= now: j+1 = floor(elapsed*fps).
		el := now.Sub(p.start)
		j := int64(el/time.Second)*p.fps + int64(el%time.Second)*p.fps/int64(time.Second) - 1
		for !p.due(j + 1).After(now) { // due() rounds down; stay consistent with it
			j++
		}
		if j > p.next {
			skipped = uint64(j - p.next)
			p.next = j
		}
	}
	p.next++
	return now, skipped, nil
}

// restart starts the clock again at the next wait, slot numbering
// included, as a V4L2 stream's at a new STREAMON.
func (p *pacer) restart() { p.start, p.next = time.Time{}, 0 }
