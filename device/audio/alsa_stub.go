//go:build !(linux && cgo)

package audio

import (
	"errors"
	"fmt"
)

var errNoCgo = errors.New("compiled without cgo: ALSA audio needs a cgo build")

// OpenCapture would open an ALSA capture PCM; this build has no cgo, so it
// always fails.
func OpenCapture(cfg ALSAConfig) (*ALSACapture, error) {
	cfg, _ = cfg.withDefaults()
	return nil, fmt.Errorf("audio: open capture %q: %w", cfg.Device, errNoCgo)
}

// OpenPlayback would open an ALSA playback PCM; this build has no cgo, so
// it always fails.
func OpenPlayback(cfg ALSAConfig) (*ALSAPlayback, error) {
	cfg, _ = cfg.withDefaults()
	return nil, fmt.Errorf("audio: open playback %q: %w", cfg.Device, errNoCgo)
}
