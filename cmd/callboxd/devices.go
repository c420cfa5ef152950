package main

import (
	"encoding/json"
	"fmt"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/device/screen"
	"github.com/callbox/callbox/internal/control"
)

// deviceLists is what the device packages report, marshalled with their
// own JSON names (control.Devices mirrors them for the control tool).
type deviceLists struct {
	Cameras     []camera.DeviceInfo `json:"cameras"`
	CameraError string              `json:"camera_error,omitempty"`
	Audio       audio.Devices       `json:"audio"`
	AudioError  string              `json:"audio_error,omitempty"`
	GPIO        []gpio.ChipInfo     `json:"gpio"`
	GPIOError   string              `json:"gpio_error,omitempty"`
	Screens     []screen.DeviceInfo `json:"screens"`
	ScreenError string              `json:"screen_error,omitempty"`
}

// listDevices enumerates what this machine has. A kind that cannot be
// listed carries its error; the others are still listed.
func listDevices() (control.Devices, error) {
	var l deviceLists
	var err error
	if l.Cameras, err = camera.List(); err != nil {
		l.CameraError = err.Error()
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
	return convertDevices(l)
}

func convertDevices(l deviceLists) (control.Devices, error) {
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
