// Package screen shows the call on a Linux framebuffer display (/dev/fbN,
// which DRM/KMS drivers provide through their fbdev emulation): the peer's
// video full-screen with its aspect kept (letterboxed), a small self-view
// in a corner, and an idle screen (blank, or the call state in a built-in
// font) when no call is up. The renderer decodes JPEG frames straight from
// their YCbCr planes into the framebuffer's pixel format in one pass.
package screen

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Field is where one colour channel sits in a pixel value: its lowest bit
// and its width in bits (the kernel's fb_bitfield).
type Field struct {
	Offset int
	Length int
}

// PixelFormat is a packed true-colour pixel layout: the size of a pixel
// and where red, green, blue and (optionally) alpha sit in its value, read
// as one native-endian word of BitsPerPixel bits.
type PixelFormat struct {
	BitsPerPixel int // 16 or 32
	Red          Field
	Green        Field
	Blue         Field
	Alpha        Field // Length 0: none (XRGB); otherwise written opaque
}

// The two layouts a Pi's framebuffer comes in.
var (
	XRGB8888 = PixelFormat{BitsPerPixel: 32, Red: Field{16, 8}, Green: Field{8, 8}, Blue: Field{0, 8}}
	RGB565   = PixelFormat{BitsPerPixel: 16, Red: Field{11, 5}, Green: Field{5, 6}, Blue: Field{0, 5}}
)

// ErrUnsupported marks a display this package cannot draw on (a palette,
// 24-bit or planar framebuffer); callers log it and run without a screen.
var ErrUnsupported = errors.New("screen: unsupported framebuffer format")

// Validate reports a layout the renderer cannot pack.
func (f PixelFormat) Validate() error {
	if f.BitsPerPixel != 16 && f.BitsPerPixel != 32 {
		return fmt.Errorf("%w: %d bits per pixel (want 16 or 32)", ErrUnsupported, f.BitsPerPixel)
	}
	var used uint64
	for _, c := range []struct {
		name string
		f    Field
		opt  bool
	}{{"red", f.Red, false}, {"green", f.Green, false}, {"blue", f.Blue, false}, {"alpha", f.Alpha, true}} {
		if c.opt && c.f.Length == 0 {
			continue
		}
		if c.f.Length < 1 || c.f.Length > 8 || c.f.Offset < 0 || c.f.Offset+c.f.Length > f.BitsPerPixel {
			return fmt.Errorf("%w: %s field offset %d length %d in a %d-bit pixel", ErrUnsupported, c.name, c.f.Offset, c.f.Length, f.BitsPerPixel)
		}
		m := (uint64(1)<<c.f.Length - 1) << c.f.Offset
		if used&m != 0 {
			return fmt.Errorf("%w: %s field overlaps another", ErrUnsupported, c.name)
		}
		used |= m
	}
	return nil
}

// String names the common layouts and spells out the others.
func (f PixelFormat) String() string {
	switch f {
	case XRGB8888:
		return "XRGB8888"
	case RGB565:
		return "RGB565"
	}
	return fmt.Sprintf("%dbpp r%d/%d g%d/%d b%d/%d a%d/%d", f.BitsPerPixel, f.Red.Offset, f.Red.Length,
		f.Green.Offset, f.Green.Length, f.Blue.Offset, f.Blue.Length, f.Alpha.Offset, f.Alpha.Length)
}

// Framebuffer is pixel memory in a display's layout: a mapped /dev/fbN or,
// in tests, a plain slice.
type Framebuffer struct {
	Width, Height int // visible pixels
	Stride        int // bytes from the start of one row to the next (line_length)
	Format        PixelFormat
	Pix           []byte // the visible area: row y starts at y*Stride
}

// NewFramebuffer allocates an in-memory framebuffer; stride 0 means rows
// packed without padding.
func NewFramebuffer(w, h, stride int, f PixelFormat) (*Framebuffer, error) {
	if stride == 0 {
		stride = w * f.BitsPerPixel / 8
	}
	fb := &Framebuffer{Width: w, Height: h, Stride: stride, Format: f}
	if err := fb.validateShape(); err != nil {
		return nil, err
	}
	fb.Pix = make([]byte, (h-1)*stride+w*f.BitsPerPixel/8)
	return fb, nil
}

func (fb *Framebuffer) validateShape() error {
	if err := fb.Format.Validate(); err != nil {
		return err
	}
	switch {
	case fb.Width < 16 || fb.Width > 8192 || fb.Height < 16 || fb.Height > 8192:
		return fmt.Errorf("%w: %dx%d pixels (want 16..8192 each way)", ErrUnsupported, fb.Width, fb.Height)
	case fb.Stride < fb.Width*fb.Format.BitsPerPixel/8:
		return fmt.Errorf("%w: line length %d bytes is shorter than %d pixels", ErrUnsupported, fb.Stride, fb.Width)
	}
	return nil
}

// Validate reports a framebuffer whose memory does not hold its rows.
func (fb *Framebuffer) Validate() error {
	if err := fb.validateShape(); err != nil {
		return err
	}
	if need := (fb.Height-1)*fb.Stride + fb.Width*fb.bpp(); len(fb.Pix) < need {
		return fmt.Errorf("%w: %d bytes of memory for %d needed", ErrUnsupported, len(fb.Pix), need)
	}
	return nil
}

func (fb *Framebuffer) bpp() int { return fb.Format.BitsPerPixel / 8 }

// row returns the visible bytes of row y.
func (fb *Framebuffer) row(y int) []byte {
	o := y * fb.Stride
	return fb.Pix[o : o+fb.Width*fb.bpp()]
}

// RGB reads the pixel at (x, y) back as 8-bit red, green and blue (low
// bits of narrow channels filled from the high ones), for tests and rigs.
func (fb *Framebuffer) RGB(x, y int) (r, g, b uint8) {
	o := y*fb.Stride + x*fb.bpp()
	var v uint32
	if fb.bpp() == 4 {
		v = binary.NativeEndian.Uint32(fb.Pix[o:])
	} else {
		v = uint32(binary.NativeEndian.Uint16(fb.Pix[o:]))
	}
	return widen(v, fb.Format.Red), widen(v, fb.Format.Green), widen(v, fb.Format.Blue)
}

func widen(v uint32, f Field) uint8 {
	c := (v >> f.Offset) & (1<<f.Length - 1)
	c <<= 8 - f.Length
	for s := f.Length; s < 8; s += f.Length {
		c |= c >> s
	}
	return uint8(c)
}

// packer turns 8-bit red, green and blue into a pixel value.
type packer struct {
	rs, gs, bs uint8 // right shifts to each channel's width
	ro, gO, bo uint8 // left shifts to its place
	alpha      uint32
}

func newPacker(f PixelFormat) packer {
	p := packer{
		rs: uint8(8 - f.Red.Length), gs: uint8(8 - f.Green.Length), bs: uint8(8 - f.Blue.Length),
		ro: uint8(f.Red.Offset), gO: uint8(f.Green.Offset), bo: uint8(f.Blue.Offset),
	}
	if f.Alpha.Length > 0 {
		p.alpha = (1<<f.Alpha.Length - 1) << f.Alpha.Offset
	}
	return p
}

func (p packer) pack(r, g, b uint8) uint32 {
	return uint32(r>>p.rs)<<p.ro | uint32(g>>p.gs)<<p.gO | uint32(b>>p.bs)<<p.bo | p.alpha
}
