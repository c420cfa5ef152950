//go:build linux

package gpio

import (
	"fmt"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/host/v3/gpioioctl"
)

// List describes the GPIO chips and their named or used lines. periph
// reads the chips once per process (at the first List or Open), so chips
// added later are not seen. No chip gives an empty list and no error.
// Safe from any goroutine.
func List() ([]ChipInfo, error) {
	periphMu.Lock()
	defer periphMu.Unlock()
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("gpio: list chips: periph init: %w", err)
	}
	return chipInfos(gpioioctl.Chips), nil
}

// chipInfos copies periph's chip table; periphMu must be held. periph
// renames a line whose name an earlier chip already has to
// "CHIPNAME-NAME"; the names here are periph's.
func chipInfos(chips []*gpioioctl.GPIOChip) []ChipInfo {
	out := make([]ChipInfo, 0, len(chips))
	for _, c := range chips {
		ci := ChipInfo{Name: c.Name(), Label: c.Label(), Path: c.Path(), LineCount: c.LineCount(), Lines: []LineInfo{}}
		for _, l := range c.Lines() {
			if l.Name() == "" && l.Consumer() == "" {
				continue
			}
			ci.Lines = append(ci.Lines, LineInfo{Offset: l.Number(), Name: l.Name(), Consumer: l.Consumer()})
		}
		out = append(out, ci)
	}
	return out
}
