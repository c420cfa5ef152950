package gpio

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/pin"
)

func TestParsePin(t *testing.T) {
	tests := []struct {
		in   string
		want LineSpec
		bad  string // part of the error; "" = valid
	}{
		{"GPIO17", LineSpec{Name: "GPIO17"}, ""},
		{"BTN", LineSpec{Name: "BTN"}, ""},
		{"P9_12 [gpio1_28]", LineSpec{Name: "P9_12 [gpio1_28]"}, ""},
		{"gpiochip0:17", LineSpec{Chip: "gpiochip0", Offset: 17}, ""},
		{"gpiochip0:017", LineSpec{Chip: "gpiochip0", Offset: 17}, ""},
		{"pinctrl-bcm2711:0", LineSpec{Chip: "pinctrl-bcm2711"}, ""},
		{"gpio-sim.0-node0:3", LineSpec{Chip: "gpio-sim.0-node0", Offset: 3}, ""},
		{"odd:label:65535", LineSpec{Chip: "odd:label", Offset: 65535}, ""},
		{"", LineSpec{}, "empty"},
		{" GPIO17", LineSpec{}, "space"},
		{"GPIO17 ", LineSpec{}, "space"},
		{"17", LineSpec{}, "bare number"},
		{"0", LineSpec{}, "bare number"},
		{":17", LineSpec{}, "no chip"},
		{"gpiochip0:", LineSpec{}, "offset"},
		{"gpiochip0:-1", LineSpec{}, "offset"},
		{"gpiochip0:+1", LineSpec{}, "offset"},
		{"gpiochip0:0x11", LineSpec{}, "offset"},
		{"gpiochip0: 17", LineSpec{}, "offset"},
		{"gpiochip0:65536", LineSpec{}, "offset"},
		{"gpiochip0 :17", LineSpec{}, "space"},
		{"GPIO17:name", LineSpec{}, "offset"},
		{strings.Repeat("n", 32), LineSpec{}, "longer"},
		{strings.Repeat("c", 32) + ":1", LineSpec{}, "longer"},
	}
	for _, tc := range tests {
		got, err := ParsePin(tc.in)
		if tc.bad == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParsePin(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
				continue
			}
			// String writes what ParsePin reads.
			if again, err := ParsePin(got.String()); err != nil || again != got {
				t.Errorf("ParsePin(%q.String() = %q) = %+v, %v", tc.in, got.String(), again, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.bad) || !strings.Contains(err.Error(), "gpio: line") {
			t.Errorf("ParsePin(%q) = %+v, %v; want an error about %q", tc.in, got, err, tc.bad)
		}
	}
}

func TestPinConfigValidate(t *testing.T) {
	tests := []struct {
		cfg PinConfig
		bad string
	}{
		{PinConfig{Line: "GPIO17"}, ""},
		{PinConfig{Line: "GPIO17", Pull: "up"}, ""},
		{PinConfig{Line: "GPIO17", Pull: "Down"}, ""},
		{PinConfig{Line: "GPIO17", Pull: "none", ActiveLow: true}, ""},
		{PinConfig{}, "empty"},
		{PinConfig{Line: "17"}, "bare number"},
		{PinConfig{Line: "GPIO17", Pull: "float"}, "pull"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.bad == "") || (err != nil && !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("Validate(%+v) = %v, want error about %q", tc.cfg, err, tc.bad)
		}
	}
}

// lineLevel is a level the fake line takes at a time after the button opened.
type lineLevel struct {
	at    time.Duration
	level pgpio.Level
}

// fakeButtonPin returns a gpiotest pin whose edges the test injects.
func fakeButtonPin() *gpiotest.Pin {
	return &gpiotest.Pin{N: "BTN", EdgesChan: make(chan pgpio.Level, 16)}
}

// runButton opens a button on pin, makes the changes as edges at their
// times and returns the events and when they came, over total.
func runButton(t *testing.T, pin *gpiotest.Pin, cfg PinConfig, changes []lineLevel, total time.Duration) []timedEvent {
	t.Helper()
	b, err := newPinButton(pin, "BTN", cfg, DebounceConfig{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var got []timedEvent
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for e := range b.Events() {
			got = append(got, timedEvent{time.Since(start), e})
		}
	}()
	for _, c := range changes {
		time.Sleep(time.Until(start.Add(c.at)))
		pin.EdgesChan <- c.level
	}
	time.Sleep(time.Until(start.Add(total)))
	if err := b.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	<-collected
	if b.Dropped() != 0 || b.EdgesDropped() != 0 || b.WaitFailures() != 0 {
		t.Errorf("dropped %d events, %d edges; %d wait failures", b.Dropped(), b.EdgesDropped(), b.WaitFailures())
	}
	return got
}

func TestPinButton(t *testing.T) {
	const lo, hi = pgpio.Low, pgpio.High
	activeLow := PinConfig{Line: "BTN", ActiveLow: true} // pull-up by default
	activeHigh := PinConfig{Line: "BTN", Pull: "down"}
	tests := []struct {
		name    string
		cfg     PinConfig
		changes []lineLevel
		want    []timedEvent
	}{
		{"clean press, active-low", activeLow,
			[]lineLevel{{0, lo}, {200 * ms, hi}},
			[]timedEvent{{230 * ms, Press}}},
		{"clean press, active-high", activeHigh,
			[]lineLevel{{0, hi}, {200 * ms, lo}},
			[]timedEvent{{230 * ms, Press}}},
		{"active-high line ignores the active-low press", activeHigh,
			[]lineLevel{{0, lo}, {200 * ms, lo}}, nil},
		{"bouncy press is one press", activeLow,
			[]lineLevel{{0, lo}, {5 * ms, hi}, {8 * ms, lo}, {12 * ms, hi}, {15 * ms, lo},
				{300 * ms, hi}, {304 * ms, lo}, {309 * ms, hi}},
			[]timedEvent{{339 * ms, Press}}},
		{"hold 3s is a long press", activeLow,
			[]lineLevel{{0, lo}, {5 * time.Second, hi}},
			[]timedEvent{{3 * time.Second, LongPress}}},
		{"repeated level is not an edge", activeLow,
			[]lineLevel{{0, lo}, {100 * ms, lo}, {200 * ms, hi}, {210 * ms, hi}},
			[]timedEvent{{230 * ms, Press}}},
		{"two presses", activeLow,
			[]lineLevel{{0, lo}, {100 * ms, hi}, {500 * ms, lo}, {600 * ms, hi}},
			[]timedEvent{{130 * ms, Press}, {630 * ms, Press}}},
		// Pull-up and active-high: the line reads pressed at open. That
		// is ignored (no LongPress at 3s); presses after a release count.
		{"pressed at open is ignored until released", PinConfig{Line: "BTN"},
			[]lineLevel{{time.Second, lo}, {2 * time.Second, hi}, {2100 * ms, lo}},
			[]timedEvent{{2000*ms + 100*ms + 30*ms, Press}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				got := runButton(t, fakeButtonPin(), tc.cfg, tc.changes, 6*time.Second)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("events %v, want %v", got, tc.want)
				}
			})
		})
	}
}

func TestPinButtonConfiguresInput(t *testing.T) {
	for _, tc := range []struct {
		pull string
		want pgpio.Pull
	}{{"", pgpio.PullUp}, {"up", pgpio.PullUp}, {"down", pgpio.PullDown}, {"none", pgpio.Float}} {
		synctest.Test(t, func(t *testing.T) {
			pin := fakeButtonPin()
			b, err := newPinButton(pin, "BTN", PinConfig{Line: "BTN", Pull: tc.pull}, DebounceConfig{}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if pin.Pull() != tc.want {
				t.Errorf("pull %q: line set to %v, want %v", tc.pull, pin.Pull(), tc.want)
			}
		})
	}
	if _, err := newPinButton(fakeButtonPin(), "BTN", PinConfig{Line: "BTN", Pull: "sideways"}, DebounceConfig{}, nil, nil); err == nil {
		t.Error("unknown pull accepted")
	}
	if _, err := newPinButton(fakeButtonPin(), "BTN", PinConfig{Line: "BTN"}, DebounceConfig{Settle: -1}, nil, nil); err == nil {
		t.Error("bad debounce config accepted")
	}
	// gpiotest refuses edges without a channel: In's error must surface.
	_, err := newPinButton(&gpiotest.Pin{N: "BTN"}, "BTN", PinConfig{Line: "BTN"}, DebounceConfig{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "gpio: button BTN") {
		t.Errorf("In failure = %v", err)
	}
}

func TestPinButtonClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var released atomic.Int32
		pin := fakeButtonPin()
		b, err := newPinButton(pin, "BTN", PinConfig{Line: "BTN", ActiveLow: true}, DebounceConfig{}, nil, func() { released.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		pin.EdgesChan <- pgpio.Low
		time.Sleep(50 * ms)
		pin.EdgesChan <- pgpio.High
		time.Sleep(70 * ms)

		start := time.Now()
		if err := b.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if d := time.Since(start); d > pollTimeout {
			t.Errorf("Close took %v, more than one poll timeout", d)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if n := released.Load(); n != 1 {
			t.Errorf("line released %d times, want 1", n)
		}
		// The press that settled before Close is kept, then the channel ends.
		var got []Event
		for e := range b.Events() {
			got = append(got, e)
		}
		if !slices.Equal(got, []Event{Press}) {
			t.Errorf("events %v, want [press]", got)
		}
	})
}

// A level lineLevel whose edge was lost (kernel queue overflow) is read at
// the next quiet timeout.
func TestPinButtonLostEdge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := fakeButtonPin()
		b, err := newPinButton(pin, "BTN", PinConfig{Line: "BTN", ActiveLow: true}, DebounceConfig{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		setLevel(pin, pgpio.Low)
		time.Sleep(500 * ms)
		setLevel(pin, pgpio.High)
		e := <-b.Events()
		at := time.Since(start)
		if e != Press || at < 530*ms || at > 630*ms {
			t.Errorf("got %v at %v, want press between 530ms and 630ms", e, at)
		}
		b.Close()
	})
}

func setLevel(p *gpiotest.Pin, l pgpio.Level) {
	p.Lock()
	p.L = l
	p.Unlock()
}

// brokenPin fails every edge wait at once, as a line whose fd went bad.
type brokenPin struct {
	*gpiotest.Pin
	waits atomic.Int64
}

func (p *brokenPin) WaitForEdge(time.Duration) bool {
	p.waits.Add(1)
	return false
}

func TestPinButtonBrokenWaitPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pin := &brokenPin{Pin: fakeButtonPin()}
		b, err := newPinButton(pin, "BTN", PinConfig{Line: "BTN", ActiveLow: true}, DebounceConfig{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		setLevel(pin.Pin, pgpio.Low)
		time.Sleep(500 * ms)
		setLevel(pin.Pin, pgpio.High)
		time.Sleep(500 * ms)
		// Without the pause this would spin: under synctest the fake clock
		// would never move and the test would hang instead.
		if n := pin.waits.Load(); n > 20 {
			t.Errorf("%d waits in 1s; the loop spins", n)
		}
		if b.WaitFailures() == 0 {
			t.Error("failures not counted")
		}
		select {
		case e := <-b.Events():
			if e != Press {
				t.Errorf("event %v, want press", e)
			}
		default:
			t.Error("press not seen by polling")
		}
		b.Close()
	})
}

func TestSendDropsOldest(t *testing.T) {
	b := &PinButton{edges: make(chan Edge, 2)}
	t0 := time.Unix(0, 0)
	for i := range 3 {
		b.send(Edge{Pressed: i%2 == 0, Time: t0.Add(time.Duration(i))})
	}
	if b.EdgesDropped() != 1 {
		t.Fatalf("EdgesDropped = %d, want 1", b.EdgesDropped())
	}
	if a, c := <-b.edges, <-b.edges; a.Time != t0.Add(1) || c.Time != t0.Add(2) {
		t.Fatalf("kept %v and %v, want the two newest", a.Time, c.Time)
	}
}

// outPin records what an LED writes and counts the reads it must never
// make: on gpioioctl, Read or Func on an output line makes it an input.
type outPin struct {
	*gpiotest.Pin
	start time.Time
	reads atomic.Int32

	mu     sync.Mutex
	levels []lineLevel // every lineLevel of the written level
}

func newOutPin() *outPin {
	return &outPin{Pin: &gpiotest.Pin{N: "LED"}, start: time.Now()}
}

func (p *outPin) Out(l pgpio.Level) error {
	p.mu.Lock()
	if n := len(p.levels); n == 0 || p.levels[n-1].level != l {
		p.levels = append(p.levels, lineLevel{time.Since(p.start), l})
	}
	p.mu.Unlock()
	return p.Pin.Out(l)
}

func (p *outPin) Read() pgpio.Level { p.reads.Add(1); return p.Pin.Read() }
func (p *outPin) Func() pin.Func    { p.reads.Add(1); return p.Pin.Func() }
func (p *outPin) Function() string  { p.reads.Add(1); return p.Pin.Function() }
func (p *outPin) written() []lineLevel {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.levels)
}
func (p *outPin) level() pgpio.Level { p.Pin.Lock(); defer p.Pin.Unlock(); return p.Pin.L }

func TestPinLED(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		name := "active-high"
		if activeLow {
			name = "active-low"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				on, off := pgpio.Level(!activeLow), pgpio.Level(activeLow)
				pin := newOutPin()
				var released atomic.Int32
				l, err := newPinLED(pin, "LED", PinConfig{Line: "LED", ActiveLow: activeLow}, func() { released.Add(1) })
				if err != nil {
					t.Fatal(err)
				}
				l.Set(SlowBlink)
				time.Sleep(2200 * ms)
				if err := l.Close(); err != nil {
					t.Fatalf("Close = %v", err)
				}
				want := []lineLevel{{0, off}, {0, on}, {500 * ms, off}, {1000 * ms, on}, {1500 * ms, off}, {2000 * ms, on}, {2200 * ms, off}}
				if got := pin.written(); !slices.Equal(got, want) {
					t.Errorf("levels %v, want %v", got, want)
				}
				if pin.level() != off {
					t.Error("not off after Close")
				}
				if err := l.Close(); err != nil || released.Load() != 1 {
					t.Errorf("second Close = %v, released %d times", err, released.Load())
				}
				l.Set(On)
				synctest.Wait()
				if pin.level() != off || l.Pattern() != Off {
					t.Error("Set after Close lit the LED")
				}
				if n := pin.reads.Load(); n != 0 {
					t.Errorf("the LED line was read %d times", n)
				}
			})
		})
	}
}

func TestPinLEDRefusesPull(t *testing.T) {
	for _, pull := range []string{"up", "down", "sideways"} {
		if _, err := newPinLED(newOutPin(), "LED", PinConfig{Line: "LED", Pull: pull}, nil); err == nil {
			t.Errorf("pull %q accepted on an output", pull)
		}
	}
}

// failOut fails every write, as a line another process took.
type failOut struct{ *gpiotest.Pin }

func (failOut) Out(pgpio.Level) error { return errBusy }

var errBusy = errors.New("device or resource busy")

func TestPinLEDOutputError(t *testing.T) {
	_, err := newPinLED(failOut{&gpiotest.Pin{N: "LED"}}, "GPIO27 (gpiochip0:27)", PinConfig{Line: "GPIO27"}, nil)
	if !errors.Is(err, errBusy) || !strings.Contains(err.Error(), "gpio: led GPIO27 (gpiochip0:27)") {
		t.Fatalf("error %v, want one naming the line and the cause", err)
	}
}
