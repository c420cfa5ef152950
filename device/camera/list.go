package camera

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// DeviceInfo describes one V4L2 video capture node, as `callbox devices`
// shows it.
type DeviceInfo struct {
	Path   string `json:"path"`   // the node, e.g. /dev/video0
	Driver string `json:"driver"` // kernel driver, e.g. uvcvideo
	Card   string `json:"card"`   // device name, e.g. "HD Webcam C920"
	Bus    string `json:"bus"`    // bus info, e.g. usb-0000:01:00.0-1.3
	// Links are the udev symlinks to Path, /dev/v4l/by-id ones (stable per
	// camera: the best video.device) before /dev/v4l/by-path ones (stable
	// per port).
	Links   []string     `json:"links,omitempty"`
	Formats []FormatInfo `json:"formats"`         // capture formats; empty if Error is set
	Error   string       `json:"error,omitempty"` // why the node could not be queried (permission, ...)
	// Role is set for a node of a Raspberry Pi camera module's pipeline
	// (RoleCSI, RoleISP, RoleCodec): not a camera to open as a V4L2
	// device.
	Role string `json:"role,omitempty"`
	// Use is the video.device value that reads this camera: its by-id
	// link or its path for a camera offering MJPEG or YUV, "libcamera"
	// for a camera module's nodes, "" for a node callbox cannot use.
	Use string `json:"use,omitempty"`
}

// Roles of the V4L2 nodes of a Raspberry Pi camera module's pipeline,
// which libcamera drives (video.device = "libcamera").
const (
	RoleCSI   = "csi"   // the CSI-2 receiver (unicam on a Pi 4 and older, rp1-cfe on a Pi 5): raw sensor frames
	RoleISP   = "isp"   // the image signal processor (bcm2835-isp, pispbe)
	RoleCodec = "codec" // the VideoCore's codec (bcm2835-codec)
)

// roleOf names the camera-module role of a node by its driver and card.
func roleOf(driver, card string) string {
	d, c := strings.ToLower(driver), strings.ToLower(card)
	switch {
	case d == "unicam" || d == "bcm2835-unicam" || d == "rp1-cfe" || strings.HasPrefix(c, "unicam") || strings.HasPrefix(c, "rp1-cfe"):
		return RoleCSI
	case d == "bcm2835-isp" || d == "pispbe" || strings.HasPrefix(c, "bcm2835-isp") || strings.HasPrefix(c, "pispbe"):
		return RoleISP
	case d == "bcm2835-codec" || strings.HasPrefix(c, "bcm2835-codec"):
		return RoleCodec
	}
	return ""
}

// classify sets Role and Use.
func (d *DeviceInfo) classify() {
	d.Role = roleOf(d.Driver, d.Card)
	switch d.Role {
	case RoleCSI, RoleISP:
		d.Use = LibcameraDevice
		return
	case RoleCodec:
		return
	}
	for _, f := range d.Formats {
		if slices.Contains(preferred, f.FourCC) {
			d.Use = d.Path
			if len(d.Links) > 0 && strings.Contains(d.Links[0], "/v4l/by-id/") {
				d.Use = d.Links[0]
			}
			return
		}
	}
}

// FormatInfo is one pixel format a capture node offers.
type FormatInfo struct {
	FourCC      string      `json:"fourcc"`      // e.g. "MJPG", "YUYV"
	Description string      `json:"description"` // the driver's text, e.g. "Motion-JPEG"
	Sizes       []FrameSize `json:"sizes"`       // empty when the driver does not enumerate sizes
}

// FrameSize is one frame size of a format: a discrete size, or a range when
// MaxWidth is set (from Width x Height to MaxWidth x MaxHeight in steps).
// FPS lists the discrete frame rates at a discrete size; MinFPS/MaxFPS give
// a range when the driver reports one instead.
type FrameSize struct {
	Width      int       `json:"width"`
	Height     int       `json:"height"`
	MaxWidth   int       `json:"max_width,omitempty"`
	MaxHeight  int       `json:"max_height,omitempty"`
	StepWidth  int       `json:"step_width,omitempty"`
	StepHeight int       `json:"step_height,omitempty"`
	FPS        []float64 `json:"fps,omitempty"`
	MinFPS     float64   `json:"min_fps,omitempty"`
	MaxFPS     float64   `json:"max_fps,omitempty"`

	intervals []fract // the discrete frame intervals FPS was made from, same order
}

// String writes the size and rates compactly: "640x480 (30/15 fps)",
// "48x32..1920x1080 step 16x8 (1-25 fps)", or just "640x480".
func (s FrameSize) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%dx%d", s.Width, s.Height)
	if s.isRange() {
		fmt.Fprintf(&b, "..%dx%d", s.MaxWidth, s.MaxHeight)
		if s.StepWidth > 1 || s.StepHeight > 1 {
			fmt.Fprintf(&b, " step %dx%d", s.StepWidth, s.StepHeight)
		}
	}
	switch {
	case len(s.FPS) > 0:
		rates := make([]string, len(s.FPS))
		for i, r := range s.FPS {
			rates[i] = strconv.FormatFloat(r, 'f', -1, 64)
		}
		fmt.Fprintf(&b, " (%s fps)", strings.Join(rates, "/"))
	case s.MaxFPS > 0:
		fmt.Fprintf(&b, " (%s-%s fps)", strconv.FormatFloat(s.MinFPS, 'f', -1, 64), strconv.FormatFloat(s.MaxFPS, 'f', -1, 64))
	}
	return b.String()
}

// fract is a V4L2 frame interval: Num/Den seconds per frame.
type fract struct{ num, den uint32 }

// fps returns the frame rate of interval f, or 0 if f is not a rate.
func (f fract) fps() float64 {
	if f.num == 0 || f.den == 0 {
		return 0
	}
	return float64(f.den) / float64(f.num)
}

// isRange reports whether s is a stepwise or continuous size range.
func (s FrameSize) isRange() bool { return s.MaxWidth > 0 }

// addIntervals records discrete frame intervals and the rates they mean.
func (s *FrameSize) addIntervals(iv []fract) {
	for _, f := range iv {
		if r := f.fps(); r > 0 {
			s.intervals = append(s.intervals, f)
			s.FPS = append(s.FPS, roundFPS(r))
		}
	}
}

// roundFPS keeps two decimals, enough for 29.97.
func roundFPS(r float64) float64 {
	return float64(int64(r*100+0.5)) / 100
}

// fourccString spells a V4L2 fourcc code as its four characters.
func fourccString(code uint32) string {
	b := []byte{byte(code), byte(code >> 8), byte(code >> 16), byte(code >> 24)}
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			b[i] = '?'
		}
	}
	return string(b)
}

// fourccCode is the inverse of fourccString; s must be 4 bytes long.
func fourccCode(s string) uint32 {
	if len(s) != 4 {
		return 0
	}
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// videoNodes returns the /dev/videoN nodes under dir, in numeric order.
func videoNodes(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type node struct {
		n    int
		path string
	}
	var nodes []node
	for _, e := range entries {
		num, ok := strings.CutPrefix(e.Name(), "video")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			continue
		}
		nodes = append(nodes, node{n, filepath.Join(dir, e.Name())})
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].n < nodes[j].n }) // smaller than slices.SortFunc's instantiation
	paths := make([]string, len(nodes))
	for i, n := range nodes {
		paths[i] = n.path
	}
	return paths, nil
}

// linksTo maps each target of the symlinks in dir (as an absolute, cleaned
// path) to the links pointing at it, sorted. A missing dir (no udev) gives
// an empty map.
func linksTo(dir string) map[string][]string {
	out := map[string][]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		link := filepath.Join(dir, e.Name())
		target, err := filepath.EvalSymlinks(link)
		if err != nil {
			continue
		}
		out[target] = append(out[target], link)
	}
	for _, links := range out {
		slices.Sort(links)
	}
	return out
}
