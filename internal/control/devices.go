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
	Cameras     []Camera `json:"cameras"`
	CameraError string   `json:"camera_error,omitempty"`
	// Libcamera are the camera modules `rpicam-vid --list-cameras`
	// reported; LibcameraProgram is the program asked ("": none is
	// installed) and LibcameraError why it could not list them.
	Libcamera        []LibcameraCamera `json:"libcamera,omitempty"`
	LibcameraProgram string            `json:"libcamera_program,omitempty"`
	LibcameraError   string            `json:"libcamera_error,omitempty"`
	Audio            AudioPCMs         `json:"audio"`
	AudioError       string            `json:"audio_error,omitempty"`
	GPIO             []GPIOChip        `json:"gpio"`
	GPIOError        string            `json:"gpio_error,omitempty"`
	Screens          []Framebuffer     `json:"screens"`
	ScreenError      string            `json:"screen_error,omitempty"`
	// ListedBy says who listed the devices: ListedByDaemon or
	// ListedByTool.
	ListedBy string `json:"listed_by,omitempty"`
}

// Who listed the devices (Devices.ListedBy).
const (
	ListedByDaemon = "callboxd" // the daemon, as its user (or callboxd -devices)
	ListedByTool   = "callbox"  // the control tool itself, no daemon answering
)

// LibcameraCamera is a camera module libcamera sees (device/camera.LibcameraInfo).
type LibcameraCamera struct {
	Index  int    `json:"index"`
	Model  string `json:"model"`
	Sensor string `json:"sensor,omitempty"`
	ID     string `json:"id"`
}

// Setting is the video.device value for camera module i.
func (c LibcameraCamera) Setting() string {
	if c.Index == 0 {
		return "libcamera"
	}
	return fmt.Sprintf("libcamera:%d", c.Index)
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
	Role    string         `json:"role,omitempty"` // "csi", "isp", "codec": part of a camera module's pipeline
	Use     string         `json:"use,omitempty"`  // the video.device value for it; "" none
}

// roleText says what a camera module's node is.
var roleText = map[string]string{
	"csi":   "a camera module's CSI receiver: raw sensor frames that only libcamera turns into pictures",
	"isp":   "the ISP of the camera module pipeline (libcamera's), not a camera by itself",
	"codec": "the VideoCore's video codec, not a camera",
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
	switch d.ListedBy {
	case ListedByDaemon:
		fmt.Fprintln(w, "listed by callboxd (as its user):")
	case ListedByTool:
		fmt.Fprintln(w, "listed by callbox itself (no daemon answered; as your user, who may see other devices than callboxd):")
	}
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
		if t, ok := roleText[c.Role]; ok {
			fmt.Fprintf(w, "    %s\n", t)
			if c.Use != "" {
				fmt.Fprintf(w, "    use video.device = %q\n", c.Use)
			}
			continue // its raw formats are libcamera's business
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
		if c.Use != "" {
			fmt.Fprintf(w, "    use video.device = %q\n", c.Use)
		} else if c.Error == "" {
			fmt.Fprintln(w, "    no format callbox reads (MJPEG, YUYV, UYVY, NV12, YU12)")
		}
	}
	printLibcamera(w, d)
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

func printLibcamera(w io.Writer, d Devices) {
	fmt.Fprintln(w, "camera modules through libcamera (video.device = \"libcamera\" or \"libcamera:N\"):")
	csi := false
	for _, c := range d.Cameras {
		csi = csi || c.Role == "csi"
	}
	switch {
	case d.LibcameraProgram == "" && csi:
		fmt.Fprintln(w, "  a camera module is connected, but rpicam-vid is not installed: apt install rpicam-apps")
		return
	case d.LibcameraProgram == "":
		fmt.Fprintln(w, "  none (rpicam-vid is not installed)")
		return
	case d.LibcameraError != "":
		fmt.Fprintf(w, "  cannot list: %s\n", d.LibcameraError)
		return
	case len(d.Libcamera) == 0:
		fmt.Fprintf(w, "  none found (%s --list-cameras; one that callboxd streams from is not listed while it does)\n", d.LibcameraProgram)
	}
	for _, c := range d.Libcamera {
		sensor := ""
		if c.Sensor != "" {
			sensor = " [" + c.Sensor + "]"
		}
		fmt.Fprintf(w, "  %d  %s%s (%s)\n    use video.device = %q\n", c.Index, c.Model, sensor, c.ID, c.Setting())
	}
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
