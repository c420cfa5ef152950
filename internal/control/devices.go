package control

import (
	"fmt"
	"io"
	"strings"
)

// Devices is what GET /v1/devices returns: what the machine offers, to
// fill in the config. The daemon fills it from the device packages'
// listings, which marshal to these same fields; the control tool decodes
// it without linking any device library.
type Devices struct {
	Cameras     []Camera      `json:"cameras"`
	CameraError string        `json:"camera_error,omitempty"`
	Audio       AudioPCMs     `json:"audio"`
	AudioError  string        `json:"audio_error,omitempty"`
	GPIO        []GPIOChip    `json:"gpio"`
	GPIOError   string        `json:"gpio_error,omitempty"`
	Screens     []Framebuffer `json:"screens"`
	ScreenError string        `json:"screen_error,omitempty"`
}

// Framebuffer is one framebuffer (device/screen.DeviceInfo).
type Framebuffer struct {
	Path         string `json:"path"`
	Driver       string `json:"driver"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	BitsPerPixel int    `json:"bits_per_pixel"`
	Stride       int    `json:"stride"`
}

// Camera is a V4L2 capture node (device/camera.DeviceInfo).
type Camera struct {
	Path    string         `json:"path"`
	Driver  string         `json:"driver"`
	Card    string         `json:"card"`
	Bus     string         `json:"bus"`
	Links   []string       `json:"links,omitempty"` // by-id (stable per camera) first, then by-path
	Formats []CameraFormat `json:"formats"`
	Error   string         `json:"error,omitempty"`
}

// CameraFormat is one pixel format (device/camera.FormatInfo).
type CameraFormat struct {
	FourCC      string      `json:"fourcc"`
	Description string      `json:"description"`
	Sizes       []FrameSize `json:"sizes"`
}

// FrameSize is a discrete size with its rates, or a range (device/camera.FrameSize).
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
}

func (s FrameSize) String() string {
	size := fmt.Sprintf("%dx%d", s.Width, s.Height)
	if s.MaxWidth > 0 {
		size = fmt.Sprintf("%dx%d..%dx%d", s.Width, s.Height, s.MaxWidth, s.MaxHeight)
	}
	var rates []string
	for _, f := range s.FPS {
		rates = append(rates, fmt.Sprintf("%g", f))
	}
	switch {
	case len(rates) > 0:
		return size + "@" + strings.Join(rates, "/")
	case s.MaxFPS > 0:
		return fmt.Sprintf("%s@%g-%g", size, s.MinFPS, s.MaxFPS)
	}
	return size
}

// AudioPCMs are the ALSA PCMs (device/audio.Devices).
type AudioPCMs struct {
	Capture  []PCM `json:"capture"`
	Playback []PCM `json:"playback"`
}

// PCM is one ALSA PCM (device/audio.PCM).
type PCM struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Default     bool   `json:"default,omitempty"`
}

// GPIOChip is a GPIO chip with its named lines (device/gpio.ChipInfo).
type GPIOChip struct {
	Name      string     `json:"name"`
	Label     string     `json:"label"`
	Path      string     `json:"path"`
	LineCount int        `json:"line_count"`
	Lines     []GPIOLine `json:"lines"`
}

// GPIOLine is one line of a chip (device/gpio.LineInfo).
type GPIOLine struct {
	Offset   int    `json:"offset"`
	Name     string `json:"name,omitempty"`
	Consumer string `json:"consumer,omitempty"`
}

// PrintDevices writes d for a person, saying plainly when a kind is absent.
func PrintDevices(w io.Writer, d Devices) {
	fmt.Fprintln(w, "cameras (video.device):")
	switch {
	case d.CameraError != "":
		fmt.Fprintf(w, "  cannot list: %s\n", d.CameraError)
	case len(d.Cameras) == 0:
		fmt.Fprintln(w, "  none found (no /dev/video* capture device)")
	}
	for _, c := range d.Cameras {
		fmt.Fprintf(w, "  %s  %s (%s, %s)\n", c.Path, c.Card, c.Driver, c.Bus)
		if c.Error != "" {
			fmt.Fprintf(w, "    cannot query: %s\n", c.Error)
		}
		for _, l := range c.Links {
			fmt.Fprintf(w, "    also %s\n", l)
		}
		for _, f := range c.Formats {
			var sizes []string
			for _, s := range f.Sizes {
				sizes = append(sizes, s.String())
			}
			fmt.Fprintf(w, "    %s %s: %s\n", f.FourCC, f.Description, strings.Join(sizes, ", "))
		}
	}
	pcms := func(title string, list []PCM) {
		fmt.Fprintf(w, "%s:\n", title)
		if d.AudioError != "" {
			fmt.Fprintf(w, "  cannot list: %s\n", d.AudioError)
			return
		}
		if len(list) == 0 {
			fmt.Fprintln(w, "  none found (no sound card)")
		}
		for _, p := range list {
			def := ""
			if p.Default {
				def = " (default)"
			}
			fmt.Fprintf(w, "  %-28s %s%s\n", p.Name, firstLine(p.Description), def)
		}
	}
	pcms("microphones (audio.capture)", d.Audio.Capture)
	pcms("speakers (audio.playback)", d.Audio.Playback)
	fmt.Fprintln(w, "GPIO chips (gpio.button, gpio.led):")
	switch {
	case d.GPIOError != "":
		fmt.Fprintf(w, "  cannot list: %s\n", d.GPIOError)
	case len(d.GPIO) == 0:
		fmt.Fprintln(w, "  none found (no /dev/gpiochip*)")
	}
	for _, c := range d.GPIO {
		fmt.Fprintf(w, "  %s  %s, %d lines\n", c.Name, c.Label, c.LineCount)
		for _, l := range c.Lines {
			if l.Name == "" {
				continue
			}
			used := ""
			if l.Consumer != "" {
				used = " (used by " + l.Consumer + ")"
			}
			fmt.Fprintf(w, "    %3d %s%s\n", l.Offset, l.Name, used)
		}
	}
	printScreens(w, d)
}

func printScreens(w io.Writer, d Devices) {
	fmt.Fprintln(w, "screens (screen.device):")
	switch {
	case d.ScreenError != "":
		fmt.Fprintf(w, "  cannot list: %s\n", d.ScreenError)
	case len(d.Screens) == 0:
		fmt.Fprintln(w, "  none found (no /dev/fb*)")
	}
	for _, s := range d.Screens {
		fmt.Fprintf(w, "  %s  %s, %dx%d, %d bits per pixel\n", s.Path, s.Driver, s.Width, s.Height, s.BitsPerPixel)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
