// Package backoff is the one retry schedule of callbox's parts that come
// and go (a camera, a sound card, a peer's address): a wait that doubles
// from a first to a largest value with jitter, and starts over once a try
// has run well for long enough.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is a retry schedule. The zero value of each field means its
// default.
type Policy struct {
	First   time.Duration // the wait before the first retry; default 500 ms
	Max     time.Duration // the largest wait; default 10 s
	Healthy time.Duration // a try that ran this long starts the schedule over; default 1 minute
}

func (p *Policy) setDefaults() {
	if p.First <= 0 {
		p.First = 500 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 10 * time.Second
	}
	p.Max = max(p.Max, p.First)
	if p.Healthy <= 0 {
		p.Healthy = time.Minute
	}
}

// Backoff counts the retries of one thing. Not safe for concurrent use:
// one retry loop owns it.
type Backoff struct {
	p Policy
	n int
	// Jitter returns a number in [0, 1); the wait is scaled by 0.8 + 0.4×
	// it (±20 %), so that boxes that lost the same thing do not retry in
	// step. Tests may replace it.
	Jitter func() float64
}

// New starts a schedule.
func New(p Policy) *Backoff {
	p.setDefaults()
	return &Backoff{p: p, Jitter: rand.Float64}
}

// Nominal is the wait before retry n (0 for the first) without jitter.
func (b *Backoff) Nominal(n int) time.Duration {
	d := b.p.First
	for i := 0; i < n && d < b.p.Max; i++ {
		d *= 2
	}
	return min(d, b.p.Max)
}

// Next returns the wait before the next retry and counts it.
func (b *Backoff) Next() time.Duration {
	d := b.Nominal(b.n)
	b.n++
	return time.Duration(float64(d) * (0.8 + 0.4*b.Jitter()))
}

// Ran tells the schedule that a try worked for d before it failed: a long
// enough run starts the schedule over at First.
func (b *Backoff) Ran(d time.Duration) {
	if d >= b.p.Healthy {
		b.n = 0
	}
}

// Reset starts the schedule over.
func (b *Backoff) Reset() { b.n = 0 }

// Wait sleeps d or until ctx ends, whichever is first, and returns
// ctx.Err() in the second case.
func Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
