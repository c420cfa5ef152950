// Package devlist lists what a machine offers to fill in callbox's
// config: cameras (V4L2 nodes, and camera modules through libcamera),
// sound cards, GPIO lines and framebuffers. The daemon serves it on its
// control API (GET /v1/devices), `callboxd -devices` prints it, and
// `callbox devices` uses it directly when no daemon answers: one
// listing, wherever it is asked for.
package devlist

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/device/screen"
	"github.com/callbox/callbox/internal/control"
)

// lists is what the device packages report, marshalled with their own
// JSON names (control.Devices mirrors them for the control tool).
type lists struct {
	Cameras          []camera.DeviceInfo    `json:"cameras"`
	CameraError      string                 `json:"camera_error,omitempty"`
	Libcamera        []camera.LibcameraInfo `json:"libcamera,omitempty"`
	LibcameraProgram string                 `json:"libcamera_program,omitempty"`
	LibcameraError   string                 `json:"libcamera_error,omitempty"`
	Audio            audio.Devices          `json:"audio"`
	AudioError       string                 `json:"audio_error,omitempty"`
	GPIO             []gpio.ChipInfo        `json:"gpio"`
	GPIOError        string                 `json:"gpio_error,omitempty"`
	Screens          []screen.DeviceInfo    `json:"screens"`
	ScreenError      string                 `json:"screen_error,omitempty"`
	ListedBy         string                 `json:"listed_by,omitempty"`
}

// List enumerates what this machine has; listedBy says who listed it
// (control.Devices.ListedBy). A kind that cannot be listed carries its
// error; the others are still listed. Camera modules are listed by
// running `rpicam-vid --list-cameras` when the program is installed
// (ctx bounds it).
func List(ctx context.Context, listedBy string) (control.Devices, error) {
	l := lists{ListedBy: listedBy}
	var err error
	if l.Cameras, err = camera.List(); err != nil {
		l.CameraError = err.Error()
	}
	if p, err := camera.FindLibcameraProgram(""); err == nil {
		l.LibcameraProgram = p
		if l.Libcamera, err = camera.ListLibcamera(ctx, p); err != nil {
			l.LibcameraError = err.Error()
		}
	}
	if l.Audio, err = audio.List(); err != nil {
		l.AudioError = err.Error()
	}
	if l.GPIO, err = gpio.List(); err != nil {
		l.GPIOError = err.Error()
	}
	if l.Screens, err = screen.List(); err != nil {
		l.ScreenError = err.Error()
	}
	return convert(l)
}

func convert(l lists) (control.Devices, error) {
	var d control.Devices
	b, err := json.Marshal(l)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("devices: %w", err)
	}
	return d, nil
}
