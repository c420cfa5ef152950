package screen

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// The fbdev ioctls and structures (linux/fb.h).
const (
	ioctlGetVScreenInfo = 0x4600 // FBIOGET_VSCREENINFO
	ioctlGetFScreenInfo = 0x4602 // FBIOGET_FSCREENINFO
	fbTypePackedPixels  = 0      // FB_TYPE_PACKED_PIXELS
	fbVisualTrueColor   = 2      // FB_VISUAL_TRUECOLOR
	fbVisualDirectColor = 4      // FB_VISUAL_DIRECTCOLOR
)

type fbBitfield struct{ Offset, Length, MSBRight uint32 }

// fbVarScreeninfo is struct fb_var_screeninfo: 40 32-bit words.
type fbVarScreeninfo struct {
	XRes, YRes, XResVirtual, YResVirtual uint32
	XOffset, YOffset                     uint32
	BitsPerPixel, Grayscale              uint32
	Red, Green, Blue, Transp             fbBitfield
	Nonstd, Activate, Height, Width      uint32
	AccelFlags, Pixclock                 uint32
	LeftMargin, RightMargin              uint32
	UpperMargin, LowerMargin             uint32
	HsyncLen, VsyncLen, Sync, Vmode      uint32
	Rotate, Colorspace                   uint32
	Reserved                             [4]uint32
}

// fbFixScreeninfo is struct fb_fix_screeninfo; "unsigned long" is uintptr,
// so the layout follows the C one on 32- and 64-bit machines alike.
type fbFixScreeninfo struct {
	ID                             [16]byte
	SmemStart                      uintptr
	SmemLen, Type, TypeAux, Visual uint32
	XPanStep, YPanStep, YWrapStep  uint16
	LineLength                     uint32
	MmioStart                      uintptr
	MmioLen, Accel                 uint32
	Capabilities                   uint16
	Reserved                       [2]uint16
}

func ioctl(fd uintptr, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// FB is an open fbdev display: its memory mapped, drawn on directly.
type FB struct {
	f    *os.File
	mem  []byte
	fb   Framebuffer
	name string
}

// OpenFB opens a framebuffer device (/dev/fb0) and maps its memory. It
// supports packed true-colour framebuffers of 16 or 32 bits per pixel (a
// Pi's RGB565 or XRGB8888, any channel order); others are ErrUnsupported.
func OpenFB(path string) (*FB, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("screen: %w", err)
	}
	fb, err := mapFB(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("screen: %s: %w", path, err)
	}
	return fb, nil
}

func mapFB(f *os.File) (*FB, error) {
	var v fbVarScreeninfo
	var x fbFixScreeninfo
	if err := ioctl(f.Fd(), ioctlGetVScreenInfo, unsafe.Pointer(&v)); err != nil {
		return nil, fmt.Errorf("FBIOGET_VSCREENINFO: %w (not a framebuffer?)", err)
	}
	if err := ioctl(f.Fd(), ioctlGetFScreenInfo, unsafe.Pointer(&x)); err != nil {
		return nil, fmt.Errorf("FBIOGET_FSCREENINFO: %w", err)
	}
	id := string(x.ID[:])
	for i := range id {
		if id[i] == 0 {
			id = id[:i]
			break
		}
	}
	if x.Type != fbTypePackedPixels || (x.Visual != fbVisualTrueColor && x.Visual != fbVisualDirectColor) {
		return nil, fmt.Errorf("%w: %s: type %d visual %d (want packed pixels, true colour)", ErrUnsupported, id, x.Type, x.Visual)
	}
	if v.Grayscale != 0 || v.Red.MSBRight != 0 || v.Green.MSBRight != 0 || v.Blue.MSBRight != 0 {
		return nil, fmt.Errorf("%w: %s: greyscale or bit-reversed channels", ErrUnsupported, id)
	}
	pf := PixelFormat{BitsPerPixel: int(v.BitsPerPixel),
		Red: Field{int(v.Red.Offset), int(v.Red.Length)}, Green: Field{int(v.Green.Offset), int(v.Green.Length)},
		Blue: Field{int(v.Blue.Offset), int(v.Blue.Length)}, Alpha: Field{int(v.Transp.Offset), int(v.Transp.Length)}}
	fb := Framebuffer{Width: int(v.XRes), Height: int(v.YRes), Stride: int(x.LineLength), Format: pf}
	if err := fb.validateShape(); err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	// The visible area starts at the panning offset within the virtual one.
	start := int(v.YOffset)*fb.Stride + int(v.XOffset)*fb.bpp()
	need := start + (fb.Height-1)*fb.Stride + fb.Width*fb.bpp()
	if int(x.SmemLen) < need {
		return nil, fmt.Errorf("%w: %s: %d bytes of video memory for %d needed", ErrUnsupported, id, x.SmemLen, need)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(x.SmemLen), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", x.SmemLen, err)
	}
	fb.Pix = mem[start:need]
	return &FB{f: f, mem: mem, fb: fb, name: id}, nil
}

// Framebuffer is the mapped visible area; valid until Close.
func (d *FB) Framebuffer() *Framebuffer { return &d.fb }

// Driver is the driver's name for the framebuffer (fix.id, "bochs-drmdrmfb").
func (d *FB) Driver() string { return d.name }

// Close unmaps the memory and closes the device. Not idempotent: the
// Screen closes it once.
func (d *FB) Close() error {
	err := syscall.Munmap(d.mem)
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}
