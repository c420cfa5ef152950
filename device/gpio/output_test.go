package gpio

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

func TestPinOutput(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		on, off := pgpio.Level(!activeLow), pgpio.Level(activeLow)
		pin := newOutPin()
		pin.L = on // left energised by whatever ran before
		var released atomic.Int32
		o, err := newPinOutput(pin, "RELAY", PinConfig{Line: "RELAY", ActiveLow: activeLow}, func() { released.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		if pin.level() != off {
			t.Fatalf("active-low %v: %v after open, want off (%v)", activeLow, pin.level(), off)
		}
		for _, v := range []bool{true, true, false, true} {
			if err := o.Set(v); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		var got []pgpio.Level
		for _, l := range pin.written() {
			got = append(got, l.level)
		}
		if want := []pgpio.Level{off, on, off, on, off}; !slices.Equal(got, want) {
			t.Errorf("active-low %v: levels %v, want %v", activeLow, got, want)
		}
		if err := o.Set(true); !errors.Is(err, ErrClosed) || pin.level() != off {
			t.Errorf("Set after Close: %v, level %v", err, pin.level())
		}
		if err := o.Close(); err != nil || released.Load() != 1 {
			t.Errorf("second Close = %v, released %d times", err, released.Load())
		}
		if n := pin.reads.Load(); n != 0 {
			t.Errorf("the output line was read %d times", n)
		}
	}
}

func TestPinOutputErrors(t *testing.T) {
	for _, pull := range []string{"up", "down", "sideways"} {
		if _, err := newPinOutput(newOutPin(), "RELAY", PinConfig{Line: "RELAY", Pull: pull}, nil); err == nil {
			t.Errorf("pull %q accepted on an output", pull)
		}
	}
	_, err := newPinOutput(failOut{&gpiotest.Pin{N: "RELAY"}}, "GPIO22 (gpiochip0:22)", PinConfig{Line: "GPIO22"}, nil)
	if !errors.Is(err, errBusy) || !strings.Contains(err.Error(), "gpio: output GPIO22 (gpiochip0:22)") {
		t.Fatalf("error %v, want one naming the line and the cause", err)
	}
}

func TestSimOutput(t *testing.T) {
	o := NewSimOutput()
	o.Set(true)
	o.Set(true)
	if !o.Level() || o.Changes() != 1 {
		t.Fatalf("level %v, %d changes; want on, 1", o.Level(), o.Changes())
	}
	boom := errors.New("line gone")
	o.Fail(boom)
	if err := o.Set(false); err != boom || !o.Level() {
		t.Fatalf("failing Set: %v, level %v", err, o.Level())
	}
	o.Fail(nil)
	if err := o.Close(); err != nil || o.Level() || o.Changes() != 2 {
		t.Fatalf("Close: %v, level %v, %d changes", err, o.Level(), o.Changes())
	}
	if err := o.Set(true); !errors.Is(err, ErrClosed) || o.Level() {
		t.Fatalf("Set after Close: %v, level %v", err, o.Level())
	}
}
