package gpio

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type change struct {
	at time.Duration
	on bool
}

// output records level changes of a fake pin.
type output struct {
	start time.Time
	mu    sync.Mutex
	level bool
	log   []change
	fail  error
}

func (o *output) set(on bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	if on != o.level {
		o.level = on
		o.log = append(o.log, change{time.Since(o.start), on})
	}
	return nil
}

func (o *output) lit() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.level
}

func (o *output) changes() []change {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.log)
}

// toggles lists n changes starting on at 0, every period.
func toggles(period time.Duration, n int) []change {
	var c []change
	for i := range n {
		c = append(c, change{time.Duration(i) * period, i%2 == 0})
	}
	return c
}

func TestBlinkerPatterns(t *testing.T) {
	tests := []struct {
		p    Pattern
		want []change // over the first 1.95 s
	}{
		{Off, nil},
		{On, []change{{0, true}}},
		{SlowBlink, toggles(500*ms, 4)},
		{FastBlink, toggles(125*ms, 16)},
		{PairBlink, toggles(62500*time.Microsecond, 32)},
		{DoorBlink, []change{{0, true}, {300 * ms, false}, {400 * ms, true}, {700 * ms, false}, {800 * ms, true},
			{1100 * ms, false}, {1200 * ms, true}, {1500 * ms, false}, {1600 * ms, true}, {1900 * ms, false}}},
		{ErrorBlink, []change{{0, true}, {100 * ms, false}, {200 * ms, true}, {300 * ms, false},
			{1000 * ms, true}, {1100 * ms, false}, {1200 * ms, true}, {1300 * ms, false}}},
	}
	for _, tc := range tests {
		t.Run(tc.p.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := &output{start: time.Now()}
				b := NewBlinker(o.set)
				b.Set(tc.p)
				time.Sleep(1950 * ms)
				if got := o.changes(); !slices.Equal(got, tc.want) {
					t.Fatalf("changes %v, want %v", got, tc.want)
				}
				if b.Pattern() != tc.p {
					t.Fatalf("Pattern = %v, want %v", b.Pattern(), tc.p)
				}
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				n := len(o.changes())
				if o.lit() || b.Pattern() != Off {
					t.Fatalf("after Close: level %v, pattern %v; want off", o.lit(), b.Pattern())
				}
				time.Sleep(5 * time.Second)
				if len(o.changes()) != n {
					t.Fatal("output changed after Close")
				}
			})
		})
	}
}

func TestBlinkerSwitch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &output{start: time.Now()}
		b := NewBlinker(o.set)
		defer b.Close()
		b.Set(SlowBlink)
		time.Sleep(250 * ms)
		b.Set(SlowBlink) // same pattern: keeps its phase
		time.Sleep(950 * ms)
		b.Set(FastBlink) // at 1.2 s: starts over, on at once
		time.Sleep(300 * ms)
		b.Set(On)
		time.Sleep(time.Second)
		// FastBlink starts in its on phase while the LED is already on, so
		// the first change it makes is off at 1.325 s.
		want := []change{{0, true}, {500 * ms, false}, {1000 * ms, true}, {1325 * ms, false}, {1450 * ms, true}}
		if got := o.changes(); !slices.Equal(got, want) {
			t.Fatalf("changes %v, want %v", got, want)
		}
	})
}

func TestBlinkerSetNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &output{start: time.Now()}
		b := NewBlinker(o.set)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 1000 {
					b.Set(Pattern((g + i) % 5))
				}
			})
		}
		wg.Wait()
		b.Set(FastBlink)
		time.Sleep(10 * ms)
		if b.Pattern() != FastBlink || !o.lit() {
			t.Fatalf("after a storm of Sets: pattern %v, level %v", b.Pattern(), o.lit())
		}
		b.Close()
		b.Set(On) // after Close: ignored
		synctest.Wait()
		if b.Pattern() != Off || o.lit() {
			t.Fatal("Set after Close had an effect")
		}
	})
}

func TestBlinkerOutputErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("pin gone")
		o := &output{start: time.Now(), fail: boom}
		b := NewBlinker(o.set)
		b.Set(SlowBlink)
		time.Sleep(1200 * ms) // off at start, then on, off, on
		if b.Errors() != 4 {
			t.Fatalf("Errors = %d, want 4", b.Errors())
		}
		if err := b.Close(); !errors.Is(err, boom) {
			t.Fatalf("Close = %v, want the output error", err)
		}
		if err := b.Close(); !errors.Is(err, boom) {
			t.Fatalf("second Close = %v, want the same error", err)
		}
	})
}

func TestSimLED(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewSimLED()
		l.Set(SlowBlink)
		synctest.Wait()
		if !l.Level() || l.Pattern() != SlowBlink {
			t.Fatalf("level %v pattern %v", l.Level(), l.Pattern())
		}
		time.Sleep(600 * ms)
		if l.Level() {
			t.Fatal("still on after half a period")
		}
		l.Set(On)
		synctest.Wait()
		if !l.Level() {
			t.Fatal("On is not lit")
		}
		l.Close()
		if l.Level() {
			t.Fatal("lit after Close")
		}
	})
}

func TestSimButton(t *testing.T) {
	b := NewSimButton()
	var ok int
	for i := range 6 {
		if b.Press(i%2 == 1) {
			ok++
		}
	}
	if ok != 4 || b.Dropped() != 2 {
		t.Fatalf("accepted %d, dropped %d; want 4 and 2", ok, b.Dropped())
	}
	b.Close()
	b.Close()
	if b.Press(false) {
		t.Fatal("Press after Close accepted")
	}
	var got []Event
	for e := range b.Events() {
		got = append(got, e)
	}
	if want := []Event{Press, LongPress, Press, LongPress}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestPatternNames(t *testing.T) {
	for p := Off; p <= DoorBlink; p++ {
		got, err := ParsePattern(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePattern(%q) = %v, %v", p.String(), got, err)
		}
	}
	if got, err := ParsePattern("Slow-Blink"); err != nil || got != SlowBlink {
		t.Errorf("case-insensitive parse: %v, %v", got, err)
	}
	if _, err := ParsePattern("disco"); err == nil {
		t.Error("unknown pattern accepted")
	}
	if Pattern(9).String() != "Pattern(9)" || Event(0).String() != "Event(0)" {
		t.Error("unknown values not shown by number")
	}
	if Press.String() != "press" || LongPress.String() != "long-press" {
		t.Error("event names")
	}
}
