//go:build linux

package guest

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// V4L2 ioctl numbers and constants (linux/videodev2.h). The sizes are the
// same on amd64 and arm64: struct v4l2_format is 208 bytes (its union is
// 8-byte aligned because it holds pointers), struct v4l2_streamparm 204.
const (
	vidiocSFmt     = 0xc0d05605 // _IOWR('V', 5, struct v4l2_format)
	vidiocSParm    = 0xc0cc5616 // _IOWR('V', 22, struct v4l2_streamparm)
	bufTypeOutput  = 2          // V4L2_BUF_TYPE_VIDEO_OUTPUT
	fieldNone      = 1          // V4L2_FIELD_NONE
	colorspaceSRGB = 8          // V4L2_COLORSPACE_SRGB
	fourccMJPG     = 'M' | 'J'<<8 | 'P'<<16 | 'G'<<24
)

// loopOut is the writing side of a v4l2loopback device: each write() is
// one frame the capture side delivers.
type loopOut struct {
	f *os.File
}

// openLoopOut opens node for output and announces MJPEG frames of the
// given size and rate, so the capture side offers exactly that.
func openLoopOut(node string, width, height, fps int) (*loopOut, error) {
	f, err := os.OpenFile(node, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("v4l2 output: %w", err)
	}
	var fmtBuf [208]byte
	le := binary.LittleEndian
	le.PutUint32(fmtBuf[0:], bufTypeOutput)
	pix := fmtBuf[8:]
	le.PutUint32(pix[0:], uint32(width))
	le.PutUint32(pix[4:], uint32(height))
	le.PutUint32(pix[8:], fourccMJPG)
	le.PutUint32(pix[12:], fieldNone)
	le.PutUint32(pix[16:], 0)                      // bytesperline: none for compressed
	le.PutUint32(pix[20:], uint32(width*height*2)) // sizeimage: room for any frame we write
	le.PutUint32(pix[24:], colorspaceSRGB)
	if err := ioctl(f, vidiocSFmt, unsafe.Pointer(&fmtBuf[0])); err != nil {
		f.Close()
		return nil, fmt.Errorf("v4l2 output %s: VIDIOC_S_FMT MJPG %dx%d: %w", node, width, height, err)
	}
	var parm [204]byte
	le.PutUint32(parm[0:], bufTypeOutput)
	out := parm[4:]                     // struct v4l2_outputparm
	le.PutUint32(out[8:], 1)            // timeperframe.numerator
	le.PutUint32(out[12:], uint32(fps)) // timeperframe.denominator
	if err := ioctl(f, vidiocSParm, unsafe.Pointer(&parm[0])); err != nil {
		f.Close()
		return nil, fmt.Errorf("v4l2 output %s: VIDIOC_S_PARM 1/%d: %w", node, fps, err)
	}
	return &loopOut{f: f}, nil
}

// write hands one JPEG to the device.
func (o *loopOut) write(jpeg []byte) error {
	n, err := o.f.Write(jpeg)
	if err == nil && n != len(jpeg) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(jpeg))
	}
	return err
}

func (o *loopOut) close() error { return o.f.Close() }

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := sc.Control(func(fd uintptr) {
		for {
			_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
			if errno != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
