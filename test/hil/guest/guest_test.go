package guest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fakeChip is a simChip over a temporary directory laid out like
// gpio-sim's sysfs attributes, every line reading value.
func fakeChip(t *testing.T, lines int, value string) *simChip {
	t.Helper()
	dir := t.TempDir()
	for i := range lines {
		d := filepath.Join(dir, "sim_gpio"+strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "value"), []byte(value+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "pull"), []byte("pull-up\n"), 0o644)
	}
	return &simChip{spec: GPIOSim{Name: "pi", Lines: lines, Prefix: "GPIO"}, chip: "gpiochip9", dir: dir}
}

func TestLineDir(t *testing.T) {
	c := fakeChip(t, 28, "0")
	for _, bad := range []string{"GPIO28", "GPIO-1", "17", "GPIOx", "LED"} {
		if _, err := c.lineDir(bad); err == nil {
			t.Errorf("line %q accepted", bad)
		}
	}
	if d, err := c.lineDir("GPIO17"); err != nil || filepath.Base(d) != "sim_gpio17" {
		t.Errorf("GPIO17: %q, %v", d, err)
	}
}

func TestPressReleasesTheLine(t *testing.T) {
	c := fakeChip(t, 18, "1")
	a := &Agent{chip: c}
	if err := a.press(context.Background(), Press{Line: "GPIO17", HoldMs: 0}); err == nil {
		t.Error("hold 0 accepted")
	}
	if err := a.press(context.Background(), Press{Line: "GPIO17", HoldMs: 5}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(c.dir, "sim_gpio17", "pull")); string(b) != "pull-up" {
		t.Errorf("after a press the pull is %q, want pull-up", b)
	}
	if err := (&Agent{}).press(context.Background(), Press{Line: "GPIO17", HoldMs: 5}); err == nil {
		t.Error("a press without a gpio-sim chip succeeded")
	}
}

func TestSampleSteadyLine(t *testing.T) {
	a := &Agent{chip: fakeChip(t, 28, "1")}
	res, err := a.sample(context.Background(), Sample{Line: "GPIO27", Ms: 20, EveryMs: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Start || len(res.Changes) != 0 || res.Reads < 2 {
		t.Errorf("steady high line sampled as %+v", res)
	}
	if _, err := a.sample(context.Background(), Sample{Line: "GPIO27", Ms: 10, EveryMs: 20}); err == nil {
		t.Error("an interval longer than the sampling accepted")
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	tl := newTail(8)
	tl.Write([]byte("hello "))
	tl.Write([]byte("world"))
	if got := string(tl.bytes()); got != "lo world" {
		t.Errorf("tail %q", got)
	}
}
