package gpio

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

const ms = time.Millisecond

type rawEdge struct {
	at      time.Duration
	pressed bool
}

type timedEvent struct {
	at time.Duration
	ev Event
}

// press and release shorten the tables.
func p(at time.Duration) rawEdge { return rawEdge{at, true} }
func r(at time.Duration) rawEdge { return rawEdge{at, false} }

// debounce feeds edges at their times to a Debouncer with the default
// config and returns what it emitted and when, over 10 fake seconds.
func debounce(t *testing.T, edges []rawEdge, outCap int) ([]timedEvent, *Debouncer) {
	d, err := NewDebouncer(DebounceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	in := make(chan Edge)
	out := make(chan Event, outCap)
	ctx, cancel := context.WithCancel(t.Context())
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx, in, out) }()

	var got []timedEvent
	collected := make(chan struct{})
	if outCap > 0 {
		go func() {
			defer close(collected)
			for ev := range out {
				got = append(got, timedEvent{time.Since(start), ev})
			}
		}()
	} else {
		close(collected)
	}

	for _, e := range edges {
		time.Sleep(time.Until(start.Add(e.at)))
		in <- Edge{Pressed: e.pressed, Time: time.Now()}
	}
	time.Sleep(time.Until(start.Add(10 * time.Second)))
	cancel()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	close(out)
	<-collected
	return got, d
}

func TestDebounce(t *testing.T) {
	tests := []struct {
		name  string
		edges []rawEdge
		want  []timedEvent
	}{
		{"clean press", []rawEdge{p(0), r(200 * ms)}, []timedEvent{{230 * ms, Press}}},
		{"bouncy press and release",
			[]rawEdge{p(0), r(5 * ms), p(8 * ms), r(12 * ms), p(15 * ms), r(300 * ms), p(304 * ms), r(309 * ms)},
			[]timedEvent{{339 * ms, Press}}},
		{"glitch shorter than settle", []rawEdge{p(0), r(10 * ms), p(100 * ms), r(129 * ms)}, nil},
		{"release glitch while held", []rawEdge{p(0), r(1000 * ms), p(1010 * ms), r(1500 * ms)}, []timedEvent{{1530 * ms, Press}}},
		{"repeated level report", []rawEdge{p(0), p(100 * ms), r(200 * ms), r(210 * ms)}, []timedEvent{{230 * ms, Press}}},
		{"long press at 3s while held", []rawEdge{p(0), r(5 * time.Second)}, []timedEvent{{3 * time.Second, LongPress}}},
		{"long press never released", []rawEdge{p(0)}, []timedEvent{{3 * time.Second, LongPress}}},
		{"release after long press emits nothing",
			[]rawEdge{p(0), r(3100 * ms), p(4000 * ms), r(4100 * ms)},
			[]timedEvent{{3 * time.Second, LongPress}, {4130 * ms, Press}}},
		{"released just before the mark", []rawEdge{p(0), r(2990 * ms)}, []timedEvent{{3020 * ms, Press}}},
		{"release pending at the mark", []rawEdge{p(0), r(2995 * ms)}, []timedEvent{{3025 * ms, Press}}},
		{"release bounces back across the mark",
			[]rawEdge{p(0), r(2990 * ms), p(2995 * ms), r(3400 * ms)},
			[]timedEvent{{3 * time.Second, LongPress}}},
		{"release glitch spanning the mark",
			[]rawEdge{p(0), r(2990 * ms), p(3010 * ms), r(3500 * ms)},
			[]timedEvent{{3010 * ms, LongPress}}},
		{"two presses", []rawEdge{p(0), r(100 * ms), p(500 * ms), r(600 * ms)}, []timedEvent{{130 * ms, Press}, {630 * ms, Press}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got, d := debounce(t, tc.edges, 8)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("events %v, want %v", got, tc.want)
				}
				if d.Dropped() != 0 {
					t.Fatalf("Dropped = %d", d.Dropped())
				}
			})
		})
	}
}

func TestDebounceDropsWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Nobody reads out (capacity 0): every event is dropped, none blocks.
		_, d := debounce(t, []rawEdge{p(0), r(100 * ms), p(500 * ms), r(600 * ms), p(time.Second)}, 0)
		if d.Dropped() != 3 {
			t.Fatalf("Dropped = %d, want 3", d.Dropped())
		}
	})
}

func TestDebounceStopsWhenEdgesClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, err := NewDebouncer(DebounceConfig{Settle: 10 * ms, LongPress: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		in := make(chan Edge, 1)
		out := make(chan Event, 1)
		in <- Edge{Pressed: true, Time: time.Now()}
		close(in)
		if err := d.Run(t.Context(), in, out); err != nil {
			t.Fatalf("Run = %v, want nil when edges close", err)
		}
		if len(out) != 0 {
			t.Fatal("event sent for an unsettled press")
		}
	})
}

func TestDebounceConfig(t *testing.T) {
	tests := []struct {
		cfg DebounceConfig
		bad string
	}{
		{DebounceConfig{}, ""},
		{DebounceConfig{Settle: 5 * ms, LongPress: time.Second}, ""},
		{DebounceConfig{Settle: -1}, "settle"},
		{DebounceConfig{Settle: 2 * time.Second}, "settle"},
		{DebounceConfig{LongPress: -1}, "long press"},
		{DebounceConfig{LongPress: 2 * time.Minute}, "long press"},
		{DebounceConfig{LongPress: 20 * ms}, "longer than settle"},
	}
	for _, tc := range tests {
		_, err := NewDebouncer(tc.cfg)
		if (err == nil) != (tc.bad == "") || (err != nil && !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("NewDebouncer(%+v) = %v, want error about %q", tc.cfg, err, tc.bad)
		}
	}
}

// TestDebounceLateLoop: a press and its release that reach a debouncer
// running late (both edges waiting, with their own times 200 ms apart) are
// a press, not a bounce.
func TestDebounceLateLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, err := NewDebouncer(DebounceConfig{})
		if err != nil {
			t.Fatal(err)
		}
		in := make(chan Edge, 2)
		out := make(chan Event, 4)
		now := time.Now()
		in <- Edge{Pressed: true, Time: now.Add(-300 * ms)}
		in <- Edge{Pressed: false, Time: now.Add(-100 * ms)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { d.Run(ctx, in, out); close(done) }()
		time.Sleep(time.Second)
		cancel()
		<-done
		close(out)
		var got []Event
		for ev := range out {
			got = append(got, ev)
		}
		if !slices.Equal(got, []Event{Press}) {
			t.Fatalf("events %v, want one press", got)
		}
	})
}
