//go:build !(linux && cgo)

package camera

import "fmt"

// List fails in a build without V4L2 support with an error wrapping
// ErrNoV4L2.
func List() ([]DeviceInfo, error) {
	return nil, fmt.Errorf("camera: list devices: %w", ErrNoV4L2)
}
