package backoff

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestSchedule(t *testing.T) {
	b := New(Policy{})
	b.Jitter = func() float64 { return 0.5 } // no jitter
	want := []time.Duration{500, 1000, 2000, 4000, 8000, 10000, 10000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Errorf("retry %d: wait %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Ran(59 * time.Second)
	if got := b.Next(); got != 10*time.Second {
		t.Errorf("after a short run: %v, want the schedule to go on", got)
	}
	b.Ran(time.Minute)
	if got := b.Next(); got != 500*time.Millisecond {
		t.Errorf("after a healthy run: %v, want it to start over", got)
	}
	b.Jitter = func() float64 { return 0 }
	if got := b.Next(); got != 800*time.Millisecond {
		t.Errorf("least jitter on 1 s: %v, want 800ms", got)
	}
}

func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Wait(context.Background(), time.Second); err != nil || time.Since(start) != time.Second {
			t.Errorf("Wait = %v after %v", err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		if err := Wait(ctx, time.Hour); err == nil || time.Since(start) != 100*time.Millisecond {
			t.Errorf("Wait on a cancelled ctx = %v after %v", err, time.Since(start))
		}
	})
}
