package main

import (
	"context"
	"time"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/stream/media"
)

// isLibcamera says whether video.device names a camera module read
// through libcamera ("libcamera", "libcamera:1", "libcamera:imx708").
func isLibcamera(device string) bool {
	_, ok := camera.ParseLibcamera(device)
	return ok
}

// checkLibcamera checks the camera's index or name in video.device.
func checkLibcamera(device string) error {
	cam, _ := camera.ParseLibcamera(device)
	return camera.LibcameraConfig{Camera: cam}.Validate()
}

// libcameraConfig is the camera module's configuration from [video].
func libcameraConfig(v VideoConfig) camera.LibcameraConfig {
	cam, _ := camera.ParseLibcamera(v.Device)
	return camera.LibcameraConfig{Camera: cam, Quality: v.Quality,
		Format:       media.VideoFormat{Width: v.Width, Height: v.Height, FPS: v.FPS},
		StallTimeout: time.Duration(v.StallMs) * time.Millisecond}
}

// newLibcamera runs a camera module as the V4L2 camera is run: behind
// camera.Resilient, which restarts rpicam-vid with backoff when it exits
// or stalls, and stands by with it stopped while nobody needs the
// camera. The look while it stands by is that the program is still
// installed: a CSI camera is not unplugged while the Pi runs, and
// starting rpicam-vid every few seconds to ask would cost an idle box
// far more than a stat.
func (d *daemon) newLibcamera() *camera.Resilient {
	lc := libcameraConfig(d.cfg.Video)
	lc.Logger = d.log
	return camera.NewResilient(func(ctx context.Context) (camera.Source, error) {
		lc := lc
		if f := d.camWant.Load(); f != nil {
			lc.Format = *f // a peer that asked for less
		}
		return camera.OpenLibcamera(ctx, lc)
	}, camera.ResilientConfig{Format: d.cfg.videoFormat(), Logger: d.log,
		OnChange: d.cameraChanged, Standby: true, ProbeEvery: probeEvery,
		Probe: func() error { _, err := camera.FindLibcameraProgram(lc.Program); return err }})
}
