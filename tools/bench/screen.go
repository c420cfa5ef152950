package main

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"slices"
	"strings"
	"time"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/screen"
	"github.com/callbox/callbox/stream/media"
)

// piFactor is how much slower a Raspberry Pi 4 (Cortex-A72, 1.5 GHz) is
// assumed to run this single-threaded integer workload (Huffman decoding,
// IDCT, colour conversion, memory writes) than one core of the machine
// measuring: 3 to 5 times for a current x86 server or desktop core, which
// runs at twice the clock with about twice the work per clock.
const piFactorLo, piFactorHi = 3.0, 5.0

// screenRow is one decode+scale measurement.
type screenRow struct {
	src, dst     string
	format       string
	decodeMs     float64 // median, JPEG decode alone
	totalMs      float64 // median, decode + scale + convert into the framebuffer
	p90Ms        float64
	frames, size int // frames timed, mean JPEG bytes
}

// measureScreen times what the screen does per peer frame, in process:
// the synthetic camera's JPEGs (colour bars, text, 4:2:0, quality 75)
// decoded and drawn letterboxed into an in-memory framebuffer, as on a
// Pi's 1080p HDMI monitor (XRGB8888) and its 800x480 touch display
// (RGB565).
func measureScreen(ctx context.Context, frames int) ([]screenRow, error) {
	var rows []screenRow
	for _, src := range []media.VideoFormat{{Width: 640, Height: 480, FPS: 30}, {Width: 1280, Height: 720, FPS: 30}} {
		cam, err := camera.NewSynthetic(camera.SyntheticConfig{Format: src, Name: "door"})
		if err != nil {
			return nil, err
		}
		var jpgs [][]byte
		size := 0
		for range 8 { // distinct frames, 1/30 s apart (the camera paces itself)
			f, err := cam.Read(ctx)
			if err != nil {
				cam.Close()
				return nil, err
			}
			jpgs = append(jpgs, f.JPEG)
			size += len(f.JPEG)
		}
		cam.Close()
		for _, dst := range []struct {
			w, h int
			f    screen.PixelFormat
		}{{1920, 1080, screen.XRGB8888}, {800, 480, screen.RGB565}} {
			fb, err := screen.NewFramebuffer(dst.w, dst.h, 0, dst.f)
			if err != nil {
				return nil, err
			}
			r, err := screen.NewRenderer(fb, true)
			if err != nil {
				return nil, err
			}
			if err := r.Self(jpgs[0]); err != nil {
				return nil, err
			}
			row := screenRow{src: fmt.Sprintf("%dx%d", src.Width, src.Height), dst: fmt.Sprintf("%dx%d", dst.w, dst.h),
				format: dst.f.String(), frames: frames, size: size / len(jpgs)}
			var dec, tot []float64
			for i := range frames {
				j := jpgs[i%len(jpgs)]
				t := time.Now()
				if _, err := jpeg.Decode(bytes.NewReader(j)); err != nil { // what the renderer calls first
					return nil, err
				}
				dec = append(dec, ms(time.Since(t)))
				t = time.Now()
				if err := r.Peer(j); err != nil {
					return nil, err
				}
				tot = append(tot, ms(time.Since(t)))
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
			}
			slices.Sort(dec)
			slices.Sort(tot)
			row.decodeMs, row.totalMs, row.p90Ms = dec[len(dec)/2], tot[len(tot)/2], tot[len(tot)*9/10]
			rows = append(rows, row)
		}
	}
	return rows, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// formatScreen is the report's screen section.
func formatScreen(rows []screenRow) string {
	var b strings.Builder
	b.WriteString("\n## Screen: decode + scale per frame\n\n")
	b.WriteString("In process, one core: the screen's renderer (device/screen) decodes each peer JPEG (image/jpeg) and draws it\n" +
		"letterboxed, nearest neighbour, straight from the YCbCr planes into the framebuffer's format, with the self-view over it.\n" +
		fmt.Sprintf("The Pi 4 estimate assumes its Cortex-A72 at 1.5 GHz is %.0f–%.0f× slower per thread than this machine's core.\n\n", piFactorLo, piFactorHi))
	b.WriteString("| peer frame | screen | JPEG bytes | decode ms p50 | decode + scale ms p50 / p90 | Pi 4 estimate ms | fits 30 fps (33 ms)? |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		lo, hi := r.totalMs*piFactorLo, r.totalMs*piFactorHi
		fits := "yes"
		switch {
		case lo > 33.3:
			fits = fmt.Sprintf("no: about %.0f fps shown, the rest dropped (latest wins)", 1000/((lo+hi)/2))
		case hi > 33.3:
			fits = "marginal"
		}
		fmt.Fprintf(&b, "| %s | %s %s | %d | %.1f | %.1f / %.1f | %.0f–%.0f | %s |\n",
			r.src, r.dst, r.format, r.size, r.decodeMs, r.totalMs, r.p90Ms, lo, hi, fits)
	}
	return b.String()
}
