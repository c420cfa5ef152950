package camera

import (
	"errors"
	"testing"

	"github.com/callbox/callbox/stream/media"
)

func TestChooseFormat(t *testing.T) {
	vga30 := media.VideoFormat{Width: 640, Height: 480, FPS: 30}
	mjpg := func(spec string) FormatInfo { return FormatInfo{FourCC: "MJPG", Sizes: sizes(t, spec)} }
	yuyv := func(spec string) FormatInfo { return FormatInfo{FourCC: "YUYV", Sizes: sizes(t, spec)} }
	stepwise := FormatInfo{FourCC: "YUYV", Sizes: []FrameSize{{Width: 48, Height: 32, MaxWidth: 1920, MaxHeight: 1080, StepWidth: 16, StepHeight: 8, MinFPS: 1, MaxFPS: 25}}}

	for _, c := range []struct {
		name    string
		offered []FormatInfo
		want    media.VideoFormat
		choice  string // choice.String()
		noFmt   bool
	}{
		{"exact", []FormatInfo{mjpg("320x240@30;640x480@30,15;1280x720@30")}, vga30, "MJPG 640x480 30 fps", false},
		{"mjpeg preferred over yuyv listed first",
			[]FormatInfo{yuyv("640x480@30"), mjpg("1280x720@30")}, vga30, "MJPG 1280x720 30 fps", false},
		{"nearest area", []FormatInfo{mjpg("320x240@30;800x600@30;1920x1080@30")}, vga30, "MJPG 800x600 30 fps", false},
		{"area tie: nearer aspect wins", []FormatInfo{mjpg("640x360@30;640x600@30")}, vga30, "MJPG 640x600 30 fps", false},
		{"aspect breaks an area tie", []FormatInfo{mjpg("480x640@30;640x480@30")},
			media.VideoFormat{Width: 800, Height: 600, FPS: 30}, "MJPG 640x480 30 fps", false},
		{"nearest fps", []FormatInfo{mjpg("640x480@60,30,25,15")}, media.VideoFormat{Width: 640, Height: 480, FPS: 24}, "MJPG 640x480 25 fps", false},
		{"higher fps on a tie", []FormatInfo{mjpg("640x480@10,20")}, media.VideoFormat{Width: 640, Height: 480, FPS: 15}, "MJPG 640x480 20 fps", false},
		{"fractional fps", []FormatInfo{mjpg("640x480@30000/1001,15")}, vga30, "MJPG 640x480 29.97 fps", false},
		{"yuyv fallback", []FormatInfo{{FourCC: "H264"}, yuyv("320x180@30;640x360@30;1280x720@30")}, vga30, "YUYV 640x360 30 fps", false},
		{"stepwise sizes snap to the grid, rate clamped", []FormatInfo{stepwise}, media.VideoFormat{Width: 650, Height: 485, FPS: 30}, "YUYV 656x488 25 fps", false},
		{"no sizes enumerated: ask", []FormatInfo{{FourCC: "MJPG"}}, vga30, "MJPG 640x480 ? fps", false},
		{"sizes without rates", []FormatInfo{{FourCC: "YU12", Sizes: []FrameSize{{Width: 640, Height: 480}}}}, vga30, "YU12 640x480 ? fps", false},
		{"nothing usable", []FormatInfo{{FourCC: "H264"}, {FourCC: "RGB3"}}, vga30, "", true},
		{"nothing offered", nil, vga30, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := chooseFormat(c.offered, c.want)
			if c.noFmt {
				if !errors.Is(err, ErrNoFormat) {
					t.Fatalf("chooseFormat = %v, %v; want ErrNoFormat", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != c.choice {
				t.Errorf("chose %s, want %s", got, c.choice)
			}
		})
	}
}

func TestSnap(t *testing.T) {
	for _, c := range []struct{ v, lo, hi, step, want int }{
		{650, 48, 1920, 16, 656},
		{10, 48, 1920, 16, 48},
		{5000, 48, 1920, 16, 1920},
		{1919, 48, 1910, 16, 1904}, // hi off the grid: stay on it
		{333, 1, 4096, 1, 333},
	} {
		if got := snap(c.v, c.lo, c.hi, c.step); got != c.want {
			t.Errorf("snap(%d, %d..%d step %d) = %d, want %d", c.v, c.lo, c.hi, c.step, got, c.want)
		}
	}
}

func TestFourCC(t *testing.T) {
	for _, s := range []string{"MJPG", "YUYV", "NV12", "Y16 "} {
		if got := fourccString(fourccCode(s)); got != s {
			t.Errorf("round trip %q = %q", s, got)
		}
	}
	if got := fourccString(0x47504A4D); got != "MJPG" {
		t.Errorf("0x47504A4D = %q, want MJPG", got)
	}
}
