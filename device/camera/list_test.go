package camera

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestVideoNodesAndLinks(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"video10", "video2", "video0", "videox", "video-1", "media0"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	nodes, err := videoNodes(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "video0"), filepath.Join(dir, "video2"), filepath.Join(dir, "video10")}
	if !reflect.DeepEqual(nodes, want) {
		t.Errorf("videoNodes = %v, want %v", nodes, want)
	}

	byID := filepath.Join(dir, "v4l", "by-id")
	os.MkdirAll(byID, 0o755)
	os.Symlink("../../video2", filepath.Join(byID, "usb-Cam_B-video-index0"))
	os.Symlink(filepath.Join(dir, "video2"), filepath.Join(byID, "usb-Cam_A-video-index0"))
	os.Symlink("../../video9", filepath.Join(byID, "dangling"))
	os.WriteFile(filepath.Join(byID, "plain"), nil, 0o600)
	links := linksTo(byID)
	wantLinks := map[string][]string{filepath.Join(dir, "video2"): {
		filepath.Join(byID, "usb-Cam_A-video-index0"), filepath.Join(byID, "usb-Cam_B-video-index0")}}
	if !reflect.DeepEqual(links, wantLinks) {
		t.Errorf("linksTo = %v, want %v", links, wantLinks)
	}
	if got := linksTo(filepath.Join(dir, "none")); len(got) != 0 {
		t.Errorf("linksTo(missing) = %v", got)
	}
}

func TestFrameSizeString(t *testing.T) {
	discrete := FrameSize{Width: 640, Height: 480}
	discrete.addIntervals([]fract{{1, 30}, {1001, 30000}, {2, 25}})
	for _, c := range []struct {
		s    FrameSize
		want string
	}{
		{discrete, "640x480 (30/29.97/12.5 fps)"},
		{FrameSize{Width: 320, Height: 240}, "320x240"},
		{FrameSize{Width: 48, Height: 32, MaxWidth: 1920, MaxHeight: 1080, StepWidth: 16, StepHeight: 8, MinFPS: 1, MaxFPS: 25}, "48x32..1920x1080 step 16x8 (1-25 fps)"},
		{FrameSize{Width: 1, Height: 1, MaxWidth: 4096, MaxHeight: 4096, StepWidth: 1, StepHeight: 1}, "1x1..4096x4096"},
	} {
		if got := c.s.String(); got != c.want {
			t.Errorf("String = %q, want %q", got, c.want)
		}
	}
}

// A camera module's nodes are recognised and point at "libcamera"; a
// camera callbox reads directly points at its stable name.
func TestClassify(t *testing.T) {
	mjpg := []FormatInfo{{FourCC: "MJPG"}}
	bayer := []FormatInfo{{FourCC: "pRAA"}, {FourCC: "RG10"}}
	for _, c := range []struct {
		d         DeviceInfo
		role, use string
	}{
		{DeviceInfo{Path: "/dev/video0", Driver: "unicam", Card: "unicam", Formats: bayer}, RoleCSI, "libcamera"},
		{DeviceInfo{Path: "/dev/video0", Driver: "rp1-cfe", Card: "rp1-cfe", Formats: bayer}, RoleCSI, "libcamera"},
		{DeviceInfo{Path: "/dev/video14", Driver: "bcm2835-isp", Card: "bcm2835-isp-capture0", Formats: []FormatInfo{{FourCC: "YUYV"}}}, RoleISP, "libcamera"},
		{DeviceInfo{Path: "/dev/video20", Driver: "pispbe", Card: "pispbe"}, RoleISP, "libcamera"},
		{DeviceInfo{Path: "/dev/video10", Driver: "bcm2835-codec", Card: "bcm2835-codec-decode"}, RoleCodec, ""},
		{DeviceInfo{Path: "/dev/video0", Driver: "uvcvideo", Formats: mjpg, Links: []string{"/dev/v4l/by-id/usb-C920-video-index0", "/dev/v4l/by-path/p"}}, "", "/dev/v4l/by-id/usb-C920-video-index0"},
		{DeviceInfo{Path: "/dev/video2", Driver: "uvcvideo", Formats: mjpg, Links: []string{"/dev/v4l/by-path/p"}}, "", "/dev/video2"},
		{DeviceInfo{Path: "/dev/video0", Driver: "bcm2835 mmal", Card: "mmal service 16.1", Formats: []FormatInfo{{FourCC: "YU12"}, {FourCC: "MJPG"}}}, "", "/dev/video0"},
		{DeviceInfo{Path: "/dev/video3", Driver: "vivid", Formats: []FormatInfo{{FourCC: "Y16 "}}}, "", ""},
	} {
		d := c.d
		d.classify()
		if d.Role != c.role || d.Use != c.use {
			t.Errorf("%s %s: role %q use %q, want %q %q", d.Driver, d.Card, d.Role, d.Use, c.role, c.use)
		}
	}
}
