package media

import "testing"

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		f    VideoFormat
		max  Size
		want Size
	}{
		{VideoFormat{Width: 1280, Height: 720, FPS: 30}, Size{Width: 640, Height: 480}, Size{Width: 640, Height: 360}},
		{VideoFormat{Width: 640, Height: 480, FPS: 30}, Size{Width: 640, Height: 480}, Size{Width: 640, Height: 480}},
		{VideoFormat{Width: 640, Height: 480, FPS: 30}, Size{Width: 800, Height: 300}, Size{Width: 400, Height: 300}},
		{VideoFormat{Width: 1920, Height: 1080, FPS: 30}, Size{}, Size{Width: 1920, Height: 1080}},
		{VideoFormat{Width: 1920, Height: 1080, FPS: 30}, Size{Width: 20, Height: 20}, Size{Width: 20, Height: 16}},
	} {
		if got := tc.f.Fit(tc.max); got != tc.want {
			t.Errorf("%v.Fit(%v) = %v, want %v", tc.f, tc.max, got, tc.want)
		}
	}
}
