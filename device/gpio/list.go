package gpio

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoChips means the system has no usable GPIO chip: none exists, or
// none could be opened. Callers may fall back to a simulated device.
var ErrNoChips = errors.New("no usable GPIO chip")

// ChipInfo describes one GPIO chip (a /dev/gpiochipN character device),
// for `callbox devices` and for finding a line by its spec.
type ChipInfo struct {
	Name      string     `json:"name"`       // device name, "gpiochip0"
	Label     string     `json:"label"`      // driver label, "pinctrl-bcm2711"
	Path      string     `json:"path"`       // "/dev/gpiochip0"
	LineCount int        `json:"line_count"` // lines on the chip, offsets 0..LineCount-1
	Lines     []LineInfo `json:"lines"`      // lines with a name or a consumer, by offset
}

// LineInfo describes one line of a chip.
type LineInfo struct {
	Offset int    `json:"offset"`
	Name   string `json:"name,omitempty"` // kernel line name, "GPIO17"
	// Consumer is who holds the line: as the kernel reported it when this
	// process first looked (periph reads chips once), or this process
	// ("callboxd@PID") for lines it holds. Empty means free.
	Consumer string `json:"consumer,omitempty"`
}

// findLine resolves spec on chips, returning the chip's index and the
// line's offset. Errors say what exists, so a wrong spec can be fixed.
func findLine(chips []ChipInfo, spec LineSpec) (chip, offset int, err error) {
	if len(chips) == 0 {
		return 0, 0, fmt.Errorf("gpio: line %s: %w", spec, ErrNoChips)
	}
	if spec.Chip == "" {
		var found []string
		for ci, c := range chips {
			for _, l := range c.Lines {
				if l.Name == spec.Name {
					if len(found) == 0 {
						chip, offset = ci, l.Offset
					}
					found = append(found, fmt.Sprintf("%s:%d", c.Name, l.Offset))
				}
			}
		}
		switch len(found) {
		case 0:
			return 0, 0, fmt.Errorf("gpio: line %s: no line of that name on %s (see `callbox devices`)", spec, chipNames(chips))
		case 1:
			return chip, offset, nil
		}
		return 0, 0, fmt.Errorf("gpio: line %s: name is on several lines (%s); use CHIP:OFFSET", spec, strings.Join(found, ", "))
	}

	chip = -1
	for ci, c := range chips {
		if c.Name == spec.Chip {
			chip = ci
			break
		}
	}
	if chip < 0 {
		var found []string
		for ci, c := range chips {
			if c.Label == spec.Chip {
				chip = ci
				found = append(found, c.Name)
			}
		}
		if len(found) > 1 {
			return 0, 0, fmt.Errorf("gpio: line %s: label is on several chips (%s); use the chip's name", spec, strings.Join(found, ", "))
		}
	}
	if chip < 0 {
		return 0, 0, fmt.Errorf("gpio: line %s: no chip of that name or label; have %s", spec, chipNames(chips))
	}
	if n := chips[chip].LineCount; spec.Offset >= n {
		return 0, 0, fmt.Errorf("gpio: line %s: offset out of range, %s has %d lines", spec, chips[chip].Name, n)
	}
	return chip, spec.Offset, nil
}

// chipNames lists chips as "gpiochip0 (pinctrl-bcm2711), ...".
func chipNames(chips []ChipInfo) string {
	s := make([]string, len(chips))
	for i, c := range chips {
		s[i] = c.Name
		if c.Label != "" && c.Label != c.Name {
			s[i] += " (" + c.Label + ")"
		}
	}
	return strings.Join(s, ", ")
}
