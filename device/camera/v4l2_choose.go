package camera

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/callbox/callbox/stream/media"
)

// preferred lists the pixel formats a V4L2 camera can be used with, best
// first: compressed JPEG passes through untouched, raw YUV is encoded here.
var preferred = []string{"MJPG", "JPEG", "YUYV", "UYVY", "NV12", "YU12"}

// ErrNoFormat is wrapped by OpenV4L2's error when the camera offers none of
// the pixel formats callbox can use.
var ErrNoFormat = errors.New("no usable pixel format")

// isJPEG reports whether frames of fourcc are JPEG images.
func isJPEG(fourcc string) bool { return fourcc == "MJPG" || fourcc == "JPEG" }

// choice is the format OpenV4L2 asks the driver for.
type choice struct {
	fourcc        string
	width, height int
	interval      fract // zero: no rate was enumerated, ask for the wanted fps
}

// String describes the choice for logs and errors.
func (c choice) String() string {
	fps := "?"
	if r := c.interval.fps(); r > 0 {
		fps = fmt.Sprint(roundFPS(r))
	}
	return fmt.Sprintf("%s %dx%d %s fps", c.fourcc, c.width, c.height, fps)
}

// chooseFormat picks, from what a device offers, the best pixel format in
// preference order (MJPEG first), the frame size nearest want (smallest area
// difference, then nearest aspect ratio, then the order offered), and the
// offered frame rate nearest want.FPS (the higher one on a tie).
func chooseFormat(offered []FormatInfo, want media.VideoFormat) (choice, error) {
	var f *FormatInfo
	for _, p := range preferred {
		for i := range offered {
			if offered[i].FourCC == p {
				f = &offered[i]
				break
			}
		}
		if f != nil {
			break
		}
	}
	if f == nil {
		have := make([]string, len(offered))
		for i, o := range offered {
			have[i] = strings.TrimSpace(o.FourCC)
		}
		offers := "nothing"
		if len(have) > 0 {
			offers = strings.Join(have, ", ")
		}
		return choice{}, fmt.Errorf("%w: offers %s; needs one of %s", ErrNoFormat, offers, strings.Join(preferred, ", "))
	}
	c := choice{fourcc: f.FourCC, width: want.Width, height: want.Height}
	if len(f.Sizes) == 0 {
		return c, nil // the driver does not enumerate: ask and read back
	}
	best, bestArea, bestAspect := -1, 0.0, 0.0
	var bw, bh int
	for i, s := range f.Sizes {
		w, h := s.Width, s.Height
		if s.isRange() {
			w = snap(want.Width, s.Width, s.MaxWidth, s.StepWidth)
			h = snap(want.Height, s.Height, s.MaxHeight, s.StepHeight)
		}
		if w <= 0 || h <= 0 {
			continue
		}
		area := math.Abs(float64(w*h - want.Width*want.Height))
		aspect := math.Abs(math.Log(float64(w) * float64(want.Height) / (float64(h) * float64(want.Width))))
		if best < 0 || area < bestArea || area == bestArea && aspect < bestAspect {
			best, bestArea, bestAspect, bw, bh = i, area, aspect, w, h
		}
	}
	if best < 0 {
		return c, nil
	}
	c.width, c.height = bw, bh
	c.interval = nearestInterval(f.Sizes[best], want.FPS)
	return c, nil
}

// snap returns the value in [lo, hi] on the step grid from lo nearest v.
func snap(v, lo, hi, step int) int {
	if hi < lo {
		hi = lo
	}
	v = min(max(v, lo), hi)
	if step > 1 {
		v = lo + (v-lo+step/2)/step*step
		if v > hi {
			v -= step
		}
	}
	return v
}

// nearestInterval picks the frame interval of s whose rate is nearest fps:
// a discrete one, or 1/fps clamped into a reported range; zero if s reports
// no rates.
func nearestInterval(s FrameSize, fps int) fract {
	if len(s.intervals) == 0 {
		if s.MaxFPS > 0 {
			r := min(max(float64(fps), s.MinFPS), s.MaxFPS)
			return fract{num: 1000, den: uint32(math.Round(r * 1000))}
		}
		return fract{}
	}
	best := s.intervals[0]
	for _, iv := range s.intervals[1:] {
		d, bd := math.Abs(iv.fps()-float64(fps)), math.Abs(best.fps()-float64(fps))
		if d < bd || d == bd && iv.fps() > best.fps() {
			best = iv
		}
	}
	return best
}
