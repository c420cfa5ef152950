package devlist

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/camera/cameratest"
	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/device/screen"
	"github.com/callbox/callbox/internal/control"
)

// The control tool's mirror types must carry every field the device
// packages report, so nothing is lost between daemon and tool.
func TestDeviceListsSurviveTheControlAPI(t *testing.T) {
	l := lists{
		Cameras: []camera.DeviceInfo{{Path: "/dev/video0", Driver: "uvcvideo", Card: "C920", Bus: "usb-1",
			Links: []string{"/dev/v4l/by-id/usb-cam-video-index0", "/dev/v4l/by-path/p"},
			Formats: []camera.FormatInfo{{FourCC: "MJPG", Description: "Motion-JPEG",
				Sizes: []camera.FrameSize{{Width: 640, Height: 480, FPS: []float64{30, 15}}, {Width: 16, Height: 16, MaxWidth: 1920, MaxHeight: 1080, StepWidth: 2, StepHeight: 2, MinFPS: 1, MaxFPS: 60}}}},
			Use: "/dev/v4l/by-id/usb-cam-video-index0"},
			{Path: "/dev/video1", Driver: "unicam", Card: "unicam", Bus: "platform:fe801000.csi", Formats: []camera.FormatInfo{{FourCC: "pRAA", Description: "10-bit Bayer RGRG/GBGB Packed"}},
				Role: camera.RoleCSI, Use: "libcamera"}},
		Libcamera:        []camera.LibcameraInfo{{Index: 0, Model: "imx708", Sensor: "4608x2592 10-bit RGGB", ID: "/base/soc/i2c0mux/i2c@1/imx708@1a"}, {Index: 1, Model: "ov5647", ID: "/base/x"}},
		LibcameraProgram: "/usr/bin/rpicam-vid",
		LibcameraError:   "",
		ListedBy:         control.ListedByTool,
		Audio: audio.Devices{Capture: []audio.PCM{{Name: "default", Description: "Default\nALSA", Default: true}},
			Playback: []audio.PCM{{Name: "hw:1,0", Description: "USB"}}},
		GPIO:      []gpio.ChipInfo{{Name: "gpiochip0", Label: "pinctrl-bcm2711", Path: "/dev/gpiochip0", LineCount: 58, Lines: []gpio.LineInfo{{Offset: 17, Name: "GPIO17", Consumer: "callboxd"}}}},
		GPIOError: "",
		Screens:   []screen.DeviceInfo{{Path: "/dev/fb0", Driver: "vc4drmfb", Width: 1920, Height: 1080, BitsPerPixel: 32, Stride: 7680}},
	}
	raw, _ := json.Marshal(l)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var d control.Devices
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("the control types miss a field: %v", err)
	}
	back, _ := json.Marshal(d)
	var a, b any
	json.Unmarshal(raw, &a)
	json.Unmarshal(back, &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip changed the listing:\n%s\n%s", raw, back)
	}
	var out bytes.Buffer
	control.PrintDevices(&out, d)
	for _, want := range []string{"/dev/video0", "640x480@30/15", "16x16..1920x1080@1-60", "by-id/usb-cam", "hw:1,0", "GPIO17 (used by callboxd)", "/dev/fb0  vc4drmfb, 1920x1080, 32 bits",
		"use video.device = \"/dev/v4l/by-id/usb-cam-video-index0\"", "camera module's CSI receiver", "0  imx708 [4608x2592 10-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx708@1a)\n    use video.device = \"libcamera\"",
		"use video.device = \"libcamera:1\"", "listed by callbox itself"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed listing lacks %q:\n%s", want, out.String())
		}
	}
}

func TestEmptyMachineSaysSoPlainly(t *testing.T) {
	var out bytes.Buffer
	control.PrintDevices(&out, control.Devices{})
	for _, want := range []string{"no /dev/video*", "no sound card", "no /dev/gpiochip*", "no /dev/fb*", "none (rpicam-vid is not installed)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("listing lacks %q:\n%s", want, out.String())
		}
	}
}

// A camera module whose program is missing is named, with what to
// install; with the program, List asks it.
func TestLibcameraInTheListing(t *testing.T) {
	var out bytes.Buffer
	control.PrintDevices(&out, control.Devices{Cameras: []control.Camera{{Path: "/dev/video0", Driver: "rp1-cfe", Role: "csi", Use: "libcamera"}}})
	if !strings.Contains(out.String(), "rpicam-vid is not installed: apt install rpicam-apps") {
		t.Errorf("listing:\n%s", out.String())
	}
	dir := cameratest.BuildFakeRpicam(t)
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	d, err := List(t.Context(), control.ListedByTool)
	if err != nil {
		t.Fatal(err)
	}
	if d.LibcameraProgram != filepath.Join(dir, "rpicam-vid") || len(d.Libcamera) != 2 || d.Libcamera[1].Model != "ov5647" || d.ListedBy != control.ListedByTool {
		t.Errorf("listing %+v", d)
	}
}
