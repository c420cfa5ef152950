package media

import (
	"bytes"
	"errors"
	"fmt"
	"image/jpeg"
)

// MaxDimension is the largest width or height a frame may have.
const MaxDimension = 4096

// ErrNotJPEG is what CheckJPEG wraps for bytes that are not a JPEG image.
var ErrNotJPEG = errors.New("not a JPEG image")

// CheckJPEG reports whether b looks like one complete baseline or
// progressive JPEG image of a sane size: it starts with SOI, ends with
// EOI, and its header parses to 1..MaxDimension pixels each way. It does
// not decode the scan (too costly for every frame of a call); a frame that
// passes may still show damage, but bytes that are not a picture at all
// never pass.
func CheckJPEG(b []byte) error {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return fmt.Errorf("%w: no start-of-image marker", ErrNotJPEG)
	}
	if b[len(b)-2] != 0xFF || b[len(b)-1] != 0xD9 {
		return fmt.Errorf("%w: no end-of-image marker", ErrNotJPEG)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotJPEG, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > MaxDimension || cfg.Height > MaxDimension {
		return fmt.Errorf("%w: %dx%d pixels", ErrNotJPEG, cfg.Width, cfg.Height)
	}
	return nil
}
