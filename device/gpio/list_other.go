//go:build !linux

package gpio

import "fmt"

// List fails: GPIO chips are only found on Linux.
func List() ([]ChipInfo, error) {
	return nil, fmt.Errorf("gpio: list chips: %w", errNoCdev)
}
