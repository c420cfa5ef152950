//go:build linux

package gpio

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// These run against whatever chips the machine has: none on a build
// host, gpio-sim ones in the QEMU rig. Either way a made-up line is not
// found, and listing works.

func TestListReal(t *testing.T) {
	chips, err := List()
	if err != nil {
		t.Fatalf("List = %v", err)
	}
	b, err := json.Marshal(chips)
	if err != nil {
		t.Fatal(err)
	}
	if len(chips) == 0 && string(b) != "[]" {
		t.Errorf("no chips marshal as %s, want []", b)
	}
	t.Logf("%d chips: %s", len(chips), b)
}

func TestOpenMissingLine(t *testing.T) {
	chips, err := List()
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenButton(PinConfig{Line: "callbox-no-such-line"}, DebounceConfig{}, nil)
	if err == nil || !strings.Contains(err.Error(), "callbox-no-such-line") {
		t.Errorf("OpenButton = %v, want an error naming the line", err)
	}
	if len(chips) == 0 && !errors.Is(err, ErrNoChips) {
		t.Errorf("OpenButton without chips = %v, want ErrNoChips", err)
	}
	_, err = OpenLED(PinConfig{Line: "gpiochip99999:0"})
	if err == nil || !strings.Contains(err.Error(), "gpiochip99999") {
		t.Errorf("OpenLED = %v, want an error naming the chip", err)
	}
	if _, err := OpenButton(PinConfig{Line: "17"}, DebounceConfig{}, nil); err == nil || !strings.Contains(err.Error(), "bare number") {
		t.Errorf("OpenButton(17) = %v", err)
	}
	if _, err := OpenLED(PinConfig{Line: "LED", Pull: "up"}); err == nil || !strings.Contains(err.Error(), "takes no pull") {
		t.Errorf("OpenLED with a pull = %v", err)
	}
}
