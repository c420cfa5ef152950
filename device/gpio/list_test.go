package gpio

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// testChips is a made-up machine: a Pi's header chip, its expander, a
// gpio-sim bank, two chips sharing a label, one labelled like another's
// name, and a label with a colon.
var testChips = []ChipInfo{
	{Name: "gpiochip0", Label: "pinctrl-bcm2711", LineCount: 58, Lines: []LineInfo{
		{Offset: 17, Name: "GPIO17"}, {Offset: 27, Name: "GPIO27", Consumer: "other@12"}, {Offset: 5, Name: "TWICE"}}},
	{Name: "gpiochip1", Label: "raspberrypi-exp-gpio", LineCount: 8, Lines: []LineInfo{
		{Offset: 2, Name: "TWICE"}}},
	{Name: "gpiochip2", Label: "gpio-sim.0-node0", LineCount: 4, Lines: []LineInfo{
		{Offset: 0, Name: "BTN"}, {Offset: 1, Name: "LED"}}},
	{Name: "gpiochip3", Label: "twin", LineCount: 4},
	{Name: "gpiochip4", Label: "twin", LineCount: 4},
	{Name: "gpiochip5", Label: "gpiochip0", LineCount: 2},
	{Name: "gpiochip6", Label: "odd:label", LineCount: 2},
}

func TestFindLine(t *testing.T) {
	tests := []struct {
		spec       string
		chip, line int
		bad        string
	}{
		{"GPIO17", 0, 17, ""},
		{"BTN", 2, 0, ""},
		{"LED", 2, 1, ""},
		{"gpiochip0:17", 0, 17, ""},
		{"gpiochip1:7", 1, 7, ""},
		{"raspberrypi-exp-gpio:3", 1, 3, ""},
		{"gpio-sim.0-node0:1", 2, 1, ""},
		{"gpiochip3:0", 3, 0, ""},
		{"odd:label:1", 6, 1, ""},
		{"GPIO4", 0, 0, "no line of that name on gpiochip0 (pinctrl-bcm2711), gpiochip1"},
		{"TWICE", 0, 0, "several lines (gpiochip0:5, gpiochip1:2)"},
		{"gpiochip9:0", 0, 0, "no chip of that name or label"},
		{"twin:0", 0, 0, "several chips (gpiochip3, gpiochip4)"},
		{"gpiochip1:8", 0, 0, "offset out of range, gpiochip1 has 8 lines"},
	}
	for _, tc := range tests {
		spec, err := ParsePin(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		chip, line, err := findLine(testChips, spec)
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("findLine(%s) = %v, want error about %q", tc.spec, err, tc.bad)
			}
			continue
		}
		if err != nil || chip != tc.chip || line != tc.line {
			t.Errorf("findLine(%s) = %d, %d, %v; want %d, %d", tc.spec, chip, line, err, tc.chip, tc.line)
		}
	}
	// A chip's name wins over another chip's label.
	if chip, _, err := findLine(testChips, LineSpec{Chip: "gpiochip0"}); err != nil || chip != 0 {
		t.Errorf("gpiochip0 resolved to chip %d, %v", chip, err)
	}
	if _, _, err := findLine(nil, LineSpec{Name: "GPIO17"}); !errors.Is(err, ErrNoChips) {
		t.Errorf("no chips: %v, want ErrNoChips", err)
	}
}

func TestChipInfoJSON(t *testing.T) {
	b, err := json.Marshal(testChips[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"gpiochip0"`, `"label":"pinctrl-bcm2711"`, `"line_count":58`,
		`{"offset":17,"name":"GPIO17"}`, `{"offset":27,"name":"GPIO27","consumer":"other@12"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
}
