//go:build !(linux && cgo)

package audio

import "fmt"

// List would list ALSA PCMs; this build has no cgo, so it always fails.
func List() (Devices, error) {
	return Devices{}, fmt.Errorf("audio: list devices: %w", errNoCgo)
}
