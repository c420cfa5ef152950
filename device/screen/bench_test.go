package screen

import (
	"context"
	"fmt"
	"testing"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/stream/media"
)

// testFrame is one frame of the synthetic camera: a realistic JPEG
// (colour bars, text, 4:2:0, quality 75).
func testFrame(b *testing.B, w, h int) []byte {
	cam, err := camera.NewSynthetic(camera.SyntheticConfig{Format: media.VideoFormat{Width: w, Height: h, FPS: 30}, Name: "door"})
	if err != nil {
		b.Fatal(err)
	}
	defer cam.Close()
	f, err := cam.Read(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return f.JPEG
}

// BenchmarkDecodeScale is what the screen spends per peer frame: JPEG
// decode, then scale and convert into the framebuffer's format. Figures,
// never pass/fail; `make bench` prints them with a Pi 4 estimate.
func BenchmarkDecodeScale(b *testing.B) {
	for _, src := range [][2]int{{640, 480}, {1280, 720}} {
		jpg := testFrame(b, src[0], src[1])
		for _, dst := range []struct {
			w, h int
			f    PixelFormat
		}{{1920, 1080, XRGB8888}, {800, 480, RGB565}} {
			b.Run(fmt.Sprintf("%dx%d-to-%dx%d-%v", src[0], src[1], dst.w, dst.h, dst.f), func(b *testing.B) {
				fb, _ := NewFramebuffer(dst.w, dst.h, 0, dst.f)
				r, _ := NewRenderer(fb, true)
				if err := r.Self(jpg); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(jpg)))
				for b.Loop() {
					if err := r.Peer(jpg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDecodeOnly separates the decoder's share.
func BenchmarkDecodeOnly(b *testing.B) {
	for _, src := range [][2]int{{640, 480}, {1280, 720}} {
		jpg := testFrame(b, src[0], src[1])
		b.Run(fmt.Sprintf("%dx%d", src[0], src[1]), func(b *testing.B) {
			for b.Loop() {
				if _, err := decode(jpg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
