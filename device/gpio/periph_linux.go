//go:build linux

package gpio

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"
)

// periphMu orders this package's opens, releases and listings: periph's
// chip table (gpioioctl.Chips) and its line objects are process-global and
// not safe for concurrent requests, so a lock beside them is the least
// global state that keeps two opens from taking one line.
var periphMu sync.Mutex

// OpenButton opens the button on the GPIO line cfg names through the GPIO
// character device (gpioioctl; never sysfs numbers) and starts debouncing
// its edges. Drivers periph failed to start are logged, not fatal; log may
// be nil. The line is held until Close. Opens and List may be called from
// any goroutine.
func OpenButton(cfg PinConfig, db DebounceConfig, log *slog.Logger) (*PinButton, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := db.Validate(); err != nil {
		return nil, err
	}
	periphMu.Lock()
	defer periphMu.Unlock()
	line, name, err := openLine(cfg, log)
	if err != nil {
		return nil, err
	}
	b, err := newPinButton(line, name, cfg, db, log, releaser(line))
	if err != nil {
		line.Close()
		return nil, err
	}
	return b, nil
}

// OpenLED opens the LED on the GPIO line cfg names, drives it off and
// starts its pattern goroutine. The line is only ever written. It is held
// until Close, which turns the LED off.
func OpenLED(cfg PinConfig) (*PinLED, error) { return openWritten(cfg, newPinLED) }

// OpenOutput opens an output line (the door opener's relay) on the GPIO
// line cfg names and drives it off: low, or high with ActiveLow. The line
// is only ever written. It is held until Close, which drives it off.
func OpenOutput(cfg PinConfig) (*PinOutput, error) { return openWritten(cfg, newPinOutput) }

// openWritten opens the line cfg names for output and hands it to wrap
// (newPinLED, newPinOutput); the line is closed if wrap fails.
func openWritten[T any](cfg PinConfig, wrap func(pgpio.PinOut, string, PinConfig, func()) (T, error)) (T, error) {
	var zero T
	if err := cfg.Validate(); err != nil {
		return zero, err
	}
	if err := cfg.outputPull(); err != nil {
		return zero, err
	}
	periphMu.Lock()
	defer periphMu.Unlock()
	line, name, err := openLine(cfg, nil)
	if err != nil {
		return zero, err
	}
	v, err := wrap(line, name, cfg, releaser(line))
	if err != nil {
		line.Close()
		return zero, err
	}
	return v, nil
}

// openLine finds the free line cfg names; periphMu must be held. It
// returns the line and its name for logs: "GPIO17 (gpiochip0:17)".
func openLine(cfg PinConfig, log *slog.Logger) (*gpioioctl.GPIOLine, string, error) {
	spec, err := ParsePin(cfg.Line)
	if err != nil {
		return nil, "", err
	}
	// Only the GPIO character device driver is linked in (gpioioctl): the
	// board drivers host.Init would add map /dev/gpiomem, which the unit does
	// not allow, and add a megabyte to the binary.
	state, err := driverreg.Init() // runs the drivers once per process; later calls return that state
	if err != nil {
		return nil, "", fmt.Errorf("gpio: line %s: periph init: %w", spec, err)
	}
	var failed []string
	for _, f := range state.Failed {
		failed = append(failed, f.String())
		if log != nil {
			log.Warn("periph driver failed", "component", "gpio", "driver", f.D.String(), "err", f.Err)
		}
	}
	chips := gpioioctl.Chips
	if len(chips) == 0 {
		if found, _ := filepath.Glob("/dev/gpiochip*"); len(found) > 0 {
			return nil, "", fmt.Errorf("gpio: line %s: %w: %s present but not readable (is the daemon in the gpio group?)", spec, ErrNoChips, strings.Join(found, ", "))
		}
		return nil, "", fmt.Errorf("gpio: line %s: %w (no /dev/gpiochip*)", spec, ErrNoChips)
	}
	ci, off, err := findLine(chipInfos(chips), spec)
	if err != nil {
		if len(failed) > 0 {
			err = fmt.Errorf("%w (periph drivers failed: %s)", err, strings.Join(failed, "; "))
		}
		return nil, "", err
	}
	line := chips[ci].ByNumber(off)
	if line == nil {
		return nil, "", fmt.Errorf("gpio: line %s: periph has no line %d on %s", spec, off, chips[ci].Name())
	}
	name := fmt.Sprintf("%s:%d", chips[ci].Name(), off)
	if line.Name() != "" {
		name = fmt.Sprintf("%s (%s)", line.Name(), name)
	}
	if c := line.Consumer(); c != "" {
		return nil, "", fmt.Errorf("gpio: line %s: busy, held by %q", name, c)
	}
	return line, name, nil
}

// releaser gives line back to the kernel.
func releaser(line *gpioioctl.GPIOLine) func() {
	return func() {
		periphMu.Lock()
		defer periphMu.Unlock()
		line.Close()
	}
}
