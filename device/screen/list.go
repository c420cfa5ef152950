package screen

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DeviceInfo is one framebuffer the kernel offers, from sysfs.
type DeviceInfo struct {
	Path         string `json:"path"`   // /dev/fb0
	Driver       string `json:"driver"` // the framebuffer's name: "vc4drmfb", "bochs-drmdrmfb"
	Width        int    `json:"width"`  // virtual size: the visible one or larger
	Height       int    `json:"height"`
	BitsPerPixel int    `json:"bits_per_pixel"`
	Stride       int    `json:"stride"`
}

// List reports the framebuffers in /sys/class/graphics. No framebuffer is
// an empty list, not an error.
func List() ([]DeviceInfo, error) { return listIn("/sys/class/graphics", "/dev") }

func listIn(sys, dev string) ([]DeviceInfo, error) {
	ents, err := os.ReadDir(sys)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []DeviceInfo
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "fb") {
			continue
		}
		if _, err := strconv.Atoi(n[2:]); err != nil {
			continue
		}
		read := func(f string) string {
			b, _ := os.ReadFile(filepath.Join(sys, n, f))
			return strings.TrimSpace(string(b))
		}
		d := DeviceInfo{Path: filepath.Join(dev, n), Driver: read("name")}
		if w, h, ok := strings.Cut(read("virtual_size"), ","); ok {
			d.Width, _ = strconv.Atoi(w)
			d.Height, _ = strconv.Atoi(h)
		}
		d.BitsPerPixel, _ = strconv.Atoi(read("bits_per_pixel"))
		d.Stride, _ = strconv.Atoi(read("stride"))
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}
