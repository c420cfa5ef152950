package camera

import (
	"image"
	"image/color"
	"strconv"
)

// ycc is a colour in the JPEG's own (full-range BT.601) YCbCr space.
type ycc struct{ y, cb, cr uint8 }

func rgb(r, g, b uint8) ycc {
	y, cb, cr := color.RGBToYCbCr(r, g, b)
	return ycc{y, cb, cr}
}

var (
	white  = rgb(255, 255, 255)
	black  = rgb(0, 0, 0)
	orange = rgb(255, 128, 0)
)

// canvas draws the synthetic test picture straight into a 4:2:0 YCbCr image,
// the layout image/jpeg encodes without a colour conversion pass. The image
// is reused for every frame, so a canvas belongs to one goroutine.
type canvas struct {
	img  *image.YCbCr
	name string
	// Colour bar rows, twice as long as needed so a scrolled row is one
	// slice of them: bar*[off : off+width].
	barY, barCb, barCr []byte
}

func newCanvas(w, h int, name string) *canvas {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	// 75% colour bars: white, yellow, cyan, green, magenta, red, blue, black.
	bars := [8]ycc{
		rgb(191, 191, 191), rgb(191, 191, 0), rgb(0, 191, 191), rgb(0, 191, 0),
		rgb(191, 0, 191), rgb(191, 0, 0), rgb(0, 0, 191), rgb(0, 0, 0),
	}
	c := &canvas{img: img, name: name, barY: make([]byte, 2*w)}
	for x := range c.barY {
		c.barY[x] = bars[x%w*8/w].y
	}
	cw := img.CStride
	c.barCb, c.barCr = make([]byte, 2*cw), make([]byte, 2*cw)
	for x := range c.barCb {
		b := bars[2*x%w*8/w]
		c.barCb[x], c.barCr[x] = b.cb, b.cr
	}
	return c
}

// render draws the picture for frame n: scrolling colour bars, a bouncing
// square, the frame number large in the middle and the box name below.
func (c *canvas) render(n uint32) {
	img := c.img
	w, h := img.Rect.Dx(), img.Rect.Dy()
	off := int(uint64(n) * 4 % uint64(w) &^ 1) // even, so luma and chroma scroll together
	for y := 0; y < h; y++ {
		copy(img.Y[y*img.YStride:][:w], c.barY[off:])
	}
	for y := 0; y < (h+1)/2; y++ {
		copy(img.Cb[y*img.CStride:][:img.CStride], c.barCb[off/2:])
		copy(img.Cr[y*img.CStride:][:img.CStride], c.barCr[off/2:])
	}

	sq := max(h/5, 2)
	x, y := bounce(uint64(n)*6, w-sq), bounce(uint64(n)*4, h-sq)
	c.fill(image.Rect(x, y, x+sq, y+sq), orange)

	num := strconv.FormatUint(uint64(n), 10)
	nx, ny, s := numberLayout(w, h, len(num))
	c.fill(image.Rect(nx-s, ny-s, nx+len(num)*(glyphW+1)*s, ny+(glyphH+1)*s), black)
	c.text(nx, ny, s, num, white)

	if c.name != "" {
		s := max(h/96, 1)
		band := (glyphH + 2) * s
		c.fill(image.Rect(0, h-band, w, h), black)
		fit := max((w-s)/((glyphW+1)*s), 0)
		name := []rune(c.name)
		if len(name) > fit {
			name = name[:fit]
		}
		c.text(s, h-band+s, s, string(name), white)
	}
}

// numberLayout places a number of the given digit count: top-left corner
// and the size of one font cell, as large as fits (about half the height).
func numberLayout(w, h, digits int) (x, y, scale int) {
	scale = max(min(h/14, w/(digits*(glyphW+1)+1)), 1)
	tw := digits*(glyphW+1)*scale - scale
	return (w - tw) / 2, (h - glyphH*scale) / 2, scale
}

// bounce moves back and forth over 0..span as v grows.
func bounce(v uint64, span int) int {
	if span <= 0 {
		return 0
	}
	p := int(v % uint64(2*span))
	if p > span {
		p = 2*span - p
	}
	return p
}

// text draws s with its top-left corner at (x, y), each font cell scale
// pixels square, one empty column between glyphs.
func (c *canvas) text(x, y, scale int, s string, col ycc) {
	for _, r := range s {
		g := glyph(r)
		for row, bits := range g {
			for colIdx := 0; colIdx < glyphW; colIdx++ {
				if bits&(1<<(glyphW-1-colIdx)) != 0 {
					px, py := x+colIdx*scale, y+row*scale
					c.fill(image.Rect(px, py, px+scale, py+scale), col)
				}
			}
		}
		x += (glyphW + 1) * scale
	}
}

// fill paints r (clipped to the image) in one colour.
func (c *canvas) fill(r image.Rectangle, col ycc) {
	img := c.img
	r = r.Intersect(img.Rect)
	if r.Empty() {
		return
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		set(img.Y[y*img.YStride+r.Min.X:y*img.YStride+r.Max.X], col.y)
	}
	// 4:2:0: one chroma sample per 2x2 block; edge blocks take the colour.
	x0, x1 := r.Min.X/2, (r.Max.X+1)/2
	for y := r.Min.Y / 2; y < (r.Max.Y+1)/2; y++ {
		set(img.Cb[y*img.CStride+x0:y*img.CStride+x1], col.cb)
		set(img.Cr[y*img.CStride+x0:y*img.CStride+x1], col.cr)
	}
}

func set(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}
