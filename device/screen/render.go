package screen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/jpeg"

	"github.com/callbox/callbox/internal/bitfont"
)

// ErrBadFrame marks a frame that is not a JPEG this renderer can show
// (corrupt, truncated, CMYK); the screen skips it and counts it.
var ErrBadFrame = errors.New("screen: bad frame")

// Letterbox is the largest rectangle with the aspect of a w x h picture
// that fits a sw x sh screen, centred: bars above and below, or left and
// right, are what is left.
func Letterbox(w, h, sw, sh int) image.Rectangle {
	if w <= 0 || h <= 0 || sw <= 0 || sh <= 0 {
		return image.Rectangle{}
	}
	dw, dh := sw, sh
	if w*sh > sw*h { // wider than the screen
		dh = max((sw*h+w/2)/w, 1)
	} else {
		dw = max((sh*w+h/2)/h, 1)
	}
	x, y := (sw-dw)/2, (sh-dh)/2
	return image.Rect(x, y, x+dw, y+dh)
}

// SelfViewRect places the self-view of a w x h picture on a sw x sh screen:
// a quarter of the screen's width, its aspect kept, in the bottom-right
// corner with a margin of 1/64 of the width.
func SelfViewRect(w, h, sw, sh int) image.Rectangle {
	if w <= 0 || h <= 0 {
		return image.Rectangle{}
	}
	m := sw / 64
	dw := max(sw/4, 16)
	dh := max((dw*h+w/2)/w, 1)
	if dh > sh/2 { // a tall picture: bound by height instead
		dh = max(sh/2, 1)
		dw = max((dh*w+h/2)/h, 1)
	}
	return image.Rect(sw-m-dw, sh-m-dh, sw-m, sh-m)
}

// Renderer draws on one framebuffer. It is not safe for concurrent use:
// the Screen's goroutine owns it. It keeps what it last drew so that a new
// frame of the same geometry rewrites only the rows it covers.
type Renderer struct {
	fb   *Framebuffer
	pk   packer
	bpp  int
	self bool // draw the self-view over the peer's video

	video    bool            // the last full draw was video (else idle)
	peerRect image.Rectangle // where the last peer frame went
	selfRect image.Rectangle // where the self-view goes; empty until a self frame came
	selfPix  []byte          // the self-view, scaled, in the framebuffer's format
	drawn    image.Rectangle // self-view area last drawn on screen

	base, out, zero []byte // one screen row each, in the framebuffer's format
	sm              scaleMap
}

// NewRenderer returns a renderer for fb, which it validates; selfView
// turns the corner picture on.
func NewRenderer(fb *Framebuffer, selfView bool) (*Renderer, error) {
	if err := fb.Validate(); err != nil {
		return nil, err
	}
	n := fb.Width * fb.bpp()
	return &Renderer{fb: fb, pk: newPacker(fb.Format), bpp: fb.bpp(), self: selfView,
		base: make([]byte, n), out: make([]byte, n), zero: make([]byte, n)}, nil
}

// Framebuffer is what the renderer draws on.
func (r *Renderer) Framebuffer() *Framebuffer { return r.fb }

// PeerRect is where the last peer frame was drawn (empty on the idle screen).
func (r *Renderer) PeerRect() image.Rectangle {
	if !r.video {
		return image.Rectangle{}
	}
	return r.peerRect
}

// SelfRect is where the self-view is drawn (empty when there is none).
func (r *Renderer) SelfRect() image.Rectangle {
	if !r.video || !r.self {
		return image.Rectangle{}
	}
	return r.selfRect
}

// decode reads a JPEG into its planes. Only YCbCr and grey JPEGs are
// shown; anything else is ErrBadFrame.
func decode(b []byte) (image.Image, error) {
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	switch img.(type) {
	case *image.YCbCr, *image.Gray:
		return img, nil
	}
	return nil, fmt.Errorf("%w: %T JPEG (want YCbCr or grey)", ErrBadFrame, img)
}

// Peer decodes a JPEG and shows it letterboxed, with the self-view over it
// if enabled. A frame that does not decode leaves the screen as it was and
// returns an error wrapping ErrBadFrame.
func (r *Renderer) Peer(jpg []byte) error {
	img, err := decode(jpg)
	if err != nil {
		return err
	}
	r.PeerImage(img)
	return nil
}

// PeerImage shows a decoded picture as Peer does; img must be an
// *image.YCbCr or *image.Gray.
func (r *Renderer) PeerImage(img image.Image) {
	fb := r.fb
	b := img.Bounds()
	rect := Letterbox(b.Dx(), b.Dy(), fb.Width, fb.Height)
	full := !r.video || rect != r.peerRect
	if full {
		copy(r.base, r.zero) // the bars beside the picture
	}
	r.video, r.peerRect = true, rect
	r.sm.set(img, rect)
	self := r.selfShown()
	lastSy := -1
	for y := 0; y < fb.Height; y++ {
		inPeer := y >= rect.Min.Y && y < rect.Max.Y
		inSelf := y >= self.Min.Y && y < self.Max.Y
		if !inPeer && !inSelf && !full && !r.drawnRow(y) {
			continue // a bar that is already black
		}
		row := r.zero
		if inPeer {
			if sy := r.sm.rowOf[y-rect.Min.Y]; sy != lastSy {
				r.sm.convert(r.base[rect.Min.X*r.bpp:rect.Max.X*r.bpp], sy, r.pk, r.bpp)
				lastSy = sy
			}
			row = r.base
		}
		if inSelf {
			copy(r.out, row)
			sw := self.Dx() * r.bpp
			copy(r.out[self.Min.X*r.bpp:], r.selfPix[(y-self.Min.Y)*sw:][:sw])
			row = r.out
		}
		copy(fb.row(y), row)
	}
	r.drawn = self
}

// drawnRow says whether row y holds part of a self-view drawn earlier
// that may have moved.
func (r *Renderer) drawnRow(y int) bool { return y >= r.drawn.Min.Y && y < r.drawn.Max.Y }

// selfShown is the self-view's area when it is to be drawn now.
func (r *Renderer) selfShown() image.Rectangle {
	if !r.self || r.selfPix == nil {
		return image.Rectangle{}
	}
	return r.selfRect
}

// Self decodes our own camera's JPEG into the self-view. It is drawn now
// if the peer's video is showing, and over every peer frame from then on.
func (r *Renderer) Self(jpg []byte) error {
	if !r.self {
		return nil
	}
	img, err := decode(jpg)
	if err != nil {
		return err
	}
	r.SelfImage(img)
	return nil
}

// SelfImage is Self for a decoded picture (*image.YCbCr or *image.Gray).
func (r *Renderer) SelfImage(img image.Image) {
	if !r.self {
		return
	}
	b := img.Bounds()
	rect := SelfViewRect(b.Dx(), b.Dy(), r.fb.Width, r.fb.Height)
	n := rect.Dx() * rect.Dy() * r.bpp
	if cap(r.selfPix) < n {
		r.selfPix = make([]byte, n)
	}
	r.selfPix = r.selfPix[:n]
	moved := rect != r.selfRect
	r.selfRect = rect
	var sm scaleMap
	sm.set(img, image.Rect(0, 0, rect.Dx(), rect.Dy()))
	sw := rect.Dx() * r.bpp
	for y := range rect.Dy() {
		sm.convert(r.selfPix[y*sw:(y+1)*sw], sm.rowOf[y], r.pk, r.bpp)
	}
	if !r.video {
		return
	}
	if moved && !r.drawn.Empty() {
		r.video = false // the old corner may show: redraw everything with the next peer frame
		return
	}
	for y := rect.Min.Y; y < rect.Max.Y; y++ {
		copy(r.fb.row(y)[rect.Min.X*r.bpp:], r.selfPix[(y-rect.Min.Y)*sw:][:sw])
	}
	r.drawn = rect
}

// Idle clears the screen and writes lines of text centred on it in the
// built-in font, white on black; no lines leave it black.
func (r *Renderer) Idle(lines []string) {
	fb := r.fb
	r.video, r.drawn = false, image.Rectangle{}
	cells := 0
	for _, l := range lines {
		cells = max(cells, len([]rune(l)))
	}
	// Font cells of s x s pixels: each glyph is 5+1 cells wide, each line
	// 7+3 cells tall; as large as fits, and at most 1/16 of the height.
	s := 0
	if cells > 0 {
		s = min(fb.Width/(cells*(bitfont.W+1)+1), fb.Height/(len(lines)*(bitfont.H+3)+1), fb.Height/16/bitfont.H)
		s = max(s, 1)
	}
	white := r.pk.pack(255, 255, 255)
	lineH := (bitfont.H + 3) * s
	top := (fb.Height - len(lines)*lineH + 3*s) / 2
	for y := 0; y < fb.Height; y++ {
		row := r.zero
		if k := (y - top) / max(lineH, 1); s > 0 && y >= top && k < len(lines) {
			gy := (y - top - k*lineH) / s // row of the glyph
			if gy < bitfont.H {
				copy(r.out, r.zero)
				text := []rune(lines[k])
				w := len(text)*(bitfont.W+1)*s - s
				x := (fb.Width - w) / 2
				for _, c := range text {
					bits := bitfont.Glyph(c)[gy]
					for gx := range bitfont.W {
						if bits&(1<<(bitfont.W-1-gx)) != 0 {
							for px := x + gx*s; px < x+(gx+1)*s; px++ {
								r.put(r.out, px, white)
							}
						}
					}
					x += (bitfont.W + 1) * s
				}
				row = r.out
			}
		}
		copy(fb.row(y), row)
	}
}

func (r *Renderer) put(row []byte, x int, v uint32) {
	if x < 0 || x >= r.fb.Width {
		return
	}
	if r.bpp == 4 {
		binary.NativeEndian.PutUint32(row[x*4:], v)
	} else {
		binary.NativeEndian.PutUint16(row[x*2:], uint16(v))
	}
}

// scaleMap maps the pixels of a destination rectangle to the nearest
// source pixels of a decoded picture (nearest neighbour: a video frame
// scaled up 2-3x stays sharp enough and costs one conversion per pixel).
type scaleMap struct {
	y, cb, cr  []byte // planes; cb and cr nil for grey
	rowOf      []int  // per destination row: source row
	yRow, cRow []int  // per source row used: offsets into the planes (indexed by source row)
	yCol, cCol []int  // per destination column: offsets within a row
}

func (m *scaleMap) set(img image.Image, dst image.Rectangle) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := dst.Dx(), dst.Dy()
	m.rowOf = resize(m.rowOf, dh)
	m.yCol, m.cCol = resize(m.yCol, dw), resize(m.cCol, dw)
	m.yRow, m.cRow = resize(m.yRow, h), resize(m.cRow, h)
	for y := range dh {
		m.rowOf[y] = (2*y + 1) * h / (2 * dh) // sample at the centre
	}
	switch p := img.(type) {
	case *image.YCbCr:
		m.y, m.cb, m.cr = p.Y, p.Cb, p.Cr
		x0, y0 := b.Min.X, b.Min.Y
		for sy := range h {
			m.yRow[sy], m.cRow[sy] = p.YOffset(x0, y0+sy), p.COffset(x0, y0+sy)
		}
		for x := range dw {
			sx := x0 + (2*x+1)*w/(2*dw)
			m.yCol[x], m.cCol[x] = p.YOffset(sx, y0)-p.YOffset(x0, y0), p.COffset(sx, y0)-p.COffset(x0, y0)
		}
	case *image.Gray:
		m.y, m.cb, m.cr = p.Pix, nil, nil
		for sy := range h {
			m.yRow[sy] = p.PixOffset(b.Min.X, b.Min.Y+sy)
		}
		for x := range dw {
			m.yCol[x] = (2*x + 1) * w / (2 * dw)
		}
	}
}

func resize(s []int, n int) []int {
	if cap(s) < n {
		return make([]int, n)
	}
	return s[:n]
}

// convert writes source row sy, scaled, into dst in the packer's format.
// Scaling up repeats source columns; those are converted once.
func (m *scaleMap) convert(dst []byte, sy int, pk packer, bpp int) {
	yr := m.y[m.yRow[sy]:]
	prev, v := -1, uint32(0)
	if m.cb == nil {
		for x, o := range m.yCol {
			if o != prev {
				l := yr[o]
				v, prev = pk.pack(l, l, l), o
			}
			store(dst, x, bpp, v)
		}
		return
	}
	cbr, crr := m.cb[m.cRow[sy]:], m.cr[m.cRow[sy]:]
	for x, o := range m.yCol {
		if o != prev {
			co := m.cCol[x]
			r, g, b := yccToRGB(yr[o], cbr[co], crr[co])
			v, prev = pk.pack(r, g, b), o
		}
		store(dst, x, bpp, v)
	}
}

func store(dst []byte, x, bpp int, v uint32) {
	if bpp == 4 {
		binary.NativeEndian.PutUint32(dst[x*4:], v)
	} else {
		binary.NativeEndian.PutUint16(dst[x*2:], uint16(v))
	}
}

// yccToRGB converts full-range BT.601 YCbCr (JFIF) to RGB in 16.16 fixed
// point: R = Y + 1.402 Cr', G = Y - 0.344136 Cb' - 0.714136 Cr',
// B = Y + 1.772 Cb', where Cb' and Cr' are centred on zero.
func yccToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y)<<16 + 1<<15
	cb1, cr1 := int32(cb)-128, int32(cr)-128
	return clamp((yy + 91881*cr1) >> 16), clamp((yy - 22554*cb1 - 46802*cr1) >> 16), clamp((yy + 116130*cb1) >> 16)
}

func clamp(v int32) uint8 {
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}
