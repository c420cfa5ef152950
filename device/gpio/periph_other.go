//go:build !linux

package gpio

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
)

// errNoCdev explains why real pins cannot be opened here.
var errNoCdev = fmt.Errorf("compiled for %s: real GPIO needs the Linux GPIO character device: %w", runtime.GOOS, errors.ErrUnsupported)

// OpenButton fails: real GPIO lines need Linux. Use SimButton.
func OpenButton(cfg PinConfig, db DebounceConfig, log *slog.Logger) (*PinButton, error) {
	return nil, fmt.Errorf("gpio: button %s: %w", cfg.Line, errNoCdev)
}

// OpenLED fails: real GPIO lines need Linux. Use SimLED.
func OpenLED(cfg PinConfig) (*PinLED, error) {
	return nil, fmt.Errorf("gpio: led %s: %w", cfg.Line, errNoCdev)
}

// OpenOutput fails: real GPIO lines need Linux. Use SimOutput.
func OpenOutput(cfg PinConfig) (*PinOutput, error) {
	return nil, fmt.Errorf("gpio: output %s: %w", cfg.Line, errNoCdev)
}
