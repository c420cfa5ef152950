package door

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/device/gpio"
)

// line records the levels an opener drives, with when (since start).
type line struct {
	*gpio.SimOutput
	start time.Time
	mu    sync.Mutex
	log   []level
}

type level struct {
	at time.Duration
	on bool
}

func newLine() *line { return &line{SimOutput: gpio.NewSimOutput(), start: time.Now()} }

func (l *line) Set(on bool) error {
	if err := l.SimOutput.Set(on); err != nil {
		return err
	}
	l.mu.Lock()
	if n := len(l.log); n == 0 || l.log[n-1].on != on {
		l.log = append(l.log, level{time.Since(l.start), on})
	}
	l.mu.Unlock()
	return nil
}

func (l *line) levels() []level {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.log)
}

const s = time.Second

func newOpener(t *testing.T, out gpio.Output, changes *atomic.Int32) *Opener {
	t.Helper()
	o, err := New(out, Config{Pulse: 3 * s, Gap: 5 * s, OnChange: func() { changes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// One pulse of exactly the configured length; a request during it and
// one inside the gap after it are refused and say why; after the gap the
// door opens again.
func TestPulseAndGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLine()
		var changes atomic.Int32
		o := newOpener(t, l, &changes)
		if err := o.Open("web page"); err != nil {
			t.Fatal(err)
		}
		st := o.Status()
		if !st.Active || !l.Level() || st.Until != l.start.Add(3*s) || st.Last == nil || st.Last.Who != "web page" {
			t.Fatalf("in the pulse: %+v, line %v", st, l.Level())
		}
		time.Sleep(s)
		err := o.Open("mqtt")
		if !errors.Is(err, ErrBusy) || err.Error() != "busy: the door is being opened (2s left of a 3s pulse)" {
			t.Fatalf("during the pulse: %v", err)
		}
		time.Sleep(3 * s) // 1 s after the pulse ended
		synctest.Wait()
		if st := o.Status(); st.Active || l.Level() || st.Until != l.start.Add(8*s) {
			t.Fatalf("after the pulse: %+v, line %v", st, l.Level())
		}
		err = o.Open("peer hall")
		if !errors.Is(err, ErrTooSoon) || err.Error() != "too soon: the door opens again in 4s (at least 5s between openings)" {
			t.Fatalf("inside the gap: %v", err)
		}
		time.Sleep(4 * s)
		if err := o.Open("callbox open"); err != nil {
			t.Fatalf("after the gap: %v", err)
		}
		time.Sleep(10 * s)
		want := []level{{0, false}, {0, true}, {3 * s, false}, {8 * s, true}, {11 * s, false}}
		if got := l.levels(); !slices.Equal(got, want) {
			t.Fatalf("line %v, want %v", got, want)
		}
		st = o.Status()
		if st.Openings != 2 || st.Refusals != 2 || st.Last.Who != "callbox open" || st.Last.At != l.start.Add(8*s) ||
			st.LastRefusal.Who != "peer hall" || !strings.HasPrefix(st.LastRefusal.Why, "too soon") || st.Fault != "" {
			t.Fatalf("record: %+v (last %+v, refusal %+v)", st, st.Last, st.LastRefusal)
		}
		if !st.Until.IsZero() {
			t.Errorf("until %v after the gap, want zero", st.Until)
		}
		if n := changes.Load(); n != 4 {
			t.Errorf("OnChange called %d times, want 4 (two starts, two ends)", n)
		}
	})
}

// Many asking at once get one pulse.
func TestOnePulseAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLine()
		var changes atomic.Int32
		o := newOpener(t, l, &changes)
		var wg sync.WaitGroup
		var mu sync.Mutex
		opened := 0
		for range 8 {
			wg.Go(func() {
				if o.Open("many") == nil {
					mu.Lock()
					opened++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		time.Sleep(10 * s)
		if st := o.Status(); opened != 1 || st.Openings != 1 || st.Refusals != 7 || len(l.levels()) != 3 {
			t.Fatalf("%d opened, %+v, line %v", opened, st, l.levels())
		}
	})
}

// Close during a pulse switches the relay off at once, and no timer
// touches the line after it.
func TestCloseDuringPulse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLine()
		var changes atomic.Int32
		o := newOpener(t, l, &changes)
		o.Open("web page")
		time.Sleep(s)
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		if l.Level() {
			t.Fatal("relay energised after Close")
		}
		time.Sleep(10 * s)
		if got := l.Changes(); got != 2 {
			t.Errorf("%d level changes, want on and off", got)
		}
		if err := o.Open("late"); !errors.Is(err, ErrClosed) {
			t.Errorf("Open after Close: %v", err)
		}
		if err := o.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

// A line that fails is reported, never fatal: the opener refuses with the
// error while it fails and works once it is back; a pulse whose end fails
// is ended again every second until it works, and refuses meanwhile.
func TestLineFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := gpio.NewSimOutput()
		gone := errors.New("gpio: output GPIO22: no such device")
		out.Fail(gone)
		var changes atomic.Int32
		o := newOpener(t, out, &changes)
		if st := o.Status(); st.Fault != gone.Error() {
			t.Fatalf("fault at start: %q", st.Fault)
		}
		if err := o.Open("web page"); !errors.Is(err, ErrFault) || !strings.Contains(err.Error(), "no such device") {
			t.Fatalf("Open on a failing line: %v", err)
		}
		out.Fail(nil)
		if err := o.Open("web page"); err != nil {
			t.Fatalf("Open once the line is back: %v", err)
		}
		if st := o.Status(); st.Fault != "" || !out.Level() {
			t.Fatalf("after a good Open: %+v, line %v", st, out.Level())
		}
		out.Fail(gone)
		time.Sleep(3500 * time.Millisecond) // the end failed
		st := o.Status()
		if !st.Active || !strings.Contains(st.Fault, "may still be energised") {
			t.Fatalf("after a failed end: %+v", st)
		}
		if err := o.Open("mqtt"); !errors.Is(err, ErrBusy) {
			t.Fatalf("Open while the relay may be energised: %v", err)
		}
		time.Sleep(2 * s) // two more tries failed
		out.Fail(nil)
		time.Sleep(s)
		if st := o.Status(); st.Active || out.Level() || st.Fault != "" {
			t.Fatalf("once the line is back: %+v, line %v", st, out.Level())
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Pulse: 3 * s, Gap: 5 * s}, ""},
		{Config{Pulse: s}, ""},
		{Config{Pulse: 500 * time.Millisecond}, "pulse"},
		{Config{Pulse: 11 * s}, "pulse"},
		{Config{Pulse: 3 * s, Gap: -s}, "gap"},
		{Config{Pulse: 3 * s, Gap: time.Hour}, "gap"},
	} {
		_, err := New(gpio.NewSimOutput(), c.cfg)
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
