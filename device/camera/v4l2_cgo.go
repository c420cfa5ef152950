//go:build linux && cgo

package camera

/*
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/videodev2.h>

// callbox_enum_ival runs VIDIOC_ENUM_FRAMEINTERVALS. go4vl v0.5.0 reads
// the stepwise member of the union at the wrong offset, so this does it in
// C. out gets num/den pairs: the discrete interval, or min, max, step.
static int callbox_enum_ival(int fd, __u32 index, __u32 fourcc, __u32 w, __u32 h,
		__u32 *type, __u32 out[6]) {
	struct v4l2_frmivalenum e;
	int r;
	memset(&e, 0, sizeof e);
	e.index = index;
	e.pixel_format = fourcc;
	e.width = w;
	e.height = h;
	do {
		r = ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, &e);
	} while (r == -1 && errno == EINTR);
	if (r == -1)
		return errno;
	*type = e.type;
	if (e.type == V4L2_FRMIVAL_TYPE_DISCRETE) {
		out[0] = e.discrete.numerator;
		out[1] = e.discrete.denominator;
	} else {
		out[0] = e.stepwise.min.numerator;
		out[1] = e.stepwise.min.denominator;
		out[2] = e.stepwise.max.numerator;
		out[3] = e.stepwise.max.denominator;
		out[4] = e.stepwise.step.numerator;
		out[5] = e.stepwise.step.denominator;
	}
	return 0;
}
*/
import "C"

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/vladimirvivien/go4vl/device"
	"github.com/vladimirvivien/go4vl/v4l2"
)

// v4l2Buffers is how many kernel buffers are queued. The pump drains them
// as fast as they fill, so more would only add memory, not latency.
const v4l2Buffers = 3

// openDriver opens a V4L2 capture node through go4vl.
//
// go4vl's device.Open leaks its file descriptor when the node cannot
// stream and when setting the format or rate fails. So the node's
// capabilities are checked on a descriptor of our own first, and Open is
// called without format or rate (those are set afterwards, where a failure
// closes the device). The one leak left is G_FMT failing right after
// QUERYCAP succeeded inside Open, i.e. an unplug in that instant.
func openDriver(path string) (driver, error) {
	caps, err := queryCaps(path)
	if err != nil {
		return nil, err
	}
	if !isCaptureNode(caps) {
		return nil, fmt.Errorf("not a video capture node (driver %s, card %q)", caps.Driver, caps.Card)
	}
	dev, err := device.Open(path, device.WithBufferSize(v4l2Buffers))
	if err != nil {
		return nil, err
	}
	return &go4vlDriver{path: path, dev: dev}, nil
}

// queryCaps opens path just long enough for VIDIOC_QUERYCAP.
func queryCaps(path string) (v4l2.Capability, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return v4l2.Capability{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	caps, err := v4l2.GetCapability(uintptr(fd))
	if err != nil {
		if notV4L2(err) {
			return caps, fmt.Errorf("not a V4L2 device (%w)", err)
		}
		return caps, fmt.Errorf("query capabilities: %w", err)
	}
	return caps, nil
}

// notV4L2 reports whether VIDIOC_QUERYCAP failed because the node is not a
// V4L2 device: ENOTTY from a kernel, ENOSYS under qemu-user (which does
// not translate V4L2 ioctls).
func notV4L2(err error) bool {
	return errors.Is(err, v4l2.ErrorUnsupported) || errors.Is(err, syscall.ENOSYS)
}

// isCaptureNode reports whether this node (not just its device: UVC
// cameras have a metadata node too) captures video through the
// single-planar streaming API and is not a memory-to-memory codec.
func isCaptureNode(c v4l2.Capability) bool {
	caps := c.GetCapabilities()
	return caps&v4l2.CapVideoCapture != 0 && caps&v4l2.CapStreaming != 0 &&
		caps&(v4l2.CapVideoMem2Mem|v4l2.CapVideoMem2MemMPlane) == 0
}

// enumFormats lists the capture formats of fd with their sizes and rates.
func enumFormats(fd uintptr) ([]FormatInfo, error) {
	descs, err := v4l2.GetAllFormatDescriptions(fd)
	if err != nil && len(descs) == 0 {
		if errors.Is(err, v4l2.ErrorBadArgument) {
			return []FormatInfo{}, nil // EINVAL at index 0: no formats
		}
		return nil, err
	}
	out := make([]FormatInfo, 0, len(descs))
	for _, d := range descs {
		fi := FormatInfo{FourCC: fourccString(d.PixelFormat), Description: d.Description, Sizes: []FrameSize{}}
		sizes, err := v4l2.GetFormatFrameSizes(fd, d.PixelFormat)
		if err != nil {
			sizes = nil // not enumerable: leave Sizes empty
		}
		for _, s := range sizes {
			fs := FrameSize{Width: int(s.Size.MinWidth), Height: int(s.Size.MinHeight)}
			if s.Type == v4l2.FrameSizeTypeDiscrete {
				enumIntervals(fd, d.PixelFormat, &fs)
			} else {
				fs.MaxWidth, fs.MaxHeight = int(s.Size.MaxWidth), int(s.Size.MaxHeight)
				fs.StepWidth, fs.StepHeight = max(1, int(s.Size.StepWidth)), max(1, int(s.Size.StepHeight))
			}
			fi.Sizes = append(fi.Sizes, fs)
		}
		out = append(out, fi)
	}
	return out, nil
}

// enumIntervals fills in the frame rates of one discrete size.
func enumIntervals(fd uintptr, fourcc uint32, fs *FrameSize) {
	var discrete []fract
	for i := 0; i < 64; i++ {
		var typ C.__u32
		var v [6]C.__u32
		if C.callbox_enum_ival(C.int(fd), C.__u32(i), C.__u32(fourcc), C.__u32(fs.Width), C.__u32(fs.Height), &typ, &v[0]) != 0 {
			break
		}
		if typ == C.V4L2_FRMIVAL_TYPE_DISCRETE {
			discrete = append(discrete, fract{uint32(v[0]), uint32(v[1])})
			continue
		}
		// Stepwise or continuous: the shortest interval is the highest rate.
		fs.MaxFPS = roundFPS(fract{uint32(v[0]), uint32(v[1])}.fps())
		fs.MinFPS = roundFPS(fract{uint32(v[2]), uint32(v[3])}.fps())
		break
	}
	fs.addIntervals(discrete)
}

// go4vlDriver is the driver of a real device, through go4vl v0.5.0. Its
// lifecycle works around four traps in go4vl: once the stream's context
// ends go4vl considers itself stopped and Stop skips STREAMOFF and munmap,
// so stop calls Stop before cancelling; dev.GetPixFormat returns the
// format asked for, so the chosen one is read back with v4l2.GetPixFormat
// (VIDIOC_G_FMT); HSVEnc and Quantization stay zero, because go4vl's
// PixFormat is laid out larger than C's and they would land in other C
// fields; and when go4vl's capture loop ended on its own (a device error)
// it has marked itself stopped, so the driver unmaps the buffers itself.
type go4vlDriver struct {
	path   string
	dev    *device.Device
	cancel context.CancelFunc // ends the context given to dev.Start

	frames <-chan *device.Frame
	errs   <-chan error
	last   error // last error go4vl reported that was not about one frame
	ended  bool  // go4vl's capture loop ended by itself (frames closed)

	stopped, closed bool
}

func (g *go4vlDriver) formats() ([]FormatInfo, error) { return enumFormats(g.dev.Fd()) }

func (g *go4vlDriver) setFormat(fourcc string, width, height int) error {
	// Only these fields: the Go PixFormat is larger than C's, so HSVEnc and
	// Quantization would land in other C fields.
	return g.dev.SetPixFormat(v4l2.PixFormat{
		Width:       uint32(width),
		Height:      uint32(height),
		PixelFormat: fourccCode(fourcc),
		Field:       v4l2.FieldNone,
	})
}

func (g *go4vlDriver) setInterval(iv fract) error {
	return v4l2.SetStreamParam(g.dev.Fd(), v4l2.BufTypeVideoCapture, v4l2.StreamParam{
		Capture: v4l2.CaptureParam{TimePerFrame: v4l2.Fract{Numerator: iv.num, Denominator: iv.den}},
	})
}

func (g *go4vlDriver) actual() (streamFormat, error) {
	// dev.GetPixFormat returns what was asked; G_FMT says what was chosen.
	pf, err := v4l2.GetPixFormat(g.dev.Fd())
	if err != nil {
		return streamFormat{}, err
	}
	sf := streamFormat{
		fourcc: fourccString(pf.PixelFormat),
		width:  int(pf.Width),
		height: int(pf.Height),
		stride: int(pf.BytesPerLine),
		size:   int(pf.SizeImage),
	}
	if sp, err := v4l2.GetStreamParam(g.dev.Fd(), v4l2.BufTypeVideoCapture); err == nil {
		sf.interval = fract{sp.Capture.TimePerFrame.Numerator, sp.Capture.TimePerFrame.Denominator}
	}
	return sf, nil
}

func (g *go4vlDriver) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	if err := g.dev.Start(ctx); err != nil {
		return err
	}
	g.frames = g.dev.GetFrames() // starts go4vl's capture goroutine
	g.errs = g.dev.GetError()
	return nil
}

func (g *go4vlDriver) next(ctx context.Context, visit func([]byte)) error {
	if g.ended || g.frames == nil {
		return g.endErr()
	}
	for {
		select {
		case f, ok := <-g.frames:
			if !ok {
				g.ended = true
				return g.endErr()
			}
			visit(f.Data) // copies out; Data is go4vl's pooled buffer
			f.Release()
			return nil
		case err, ok := <-g.errs:
			if !ok {
				g.errs = nil
				continue
			}
			// go4vl v0.5.0 has no sentinels for these two per-frame
			// errors; everything else it sends ends the stream.
			switch msg := err.Error(); {
			case strings.Contains(msg, "frame dropped"):
				return fmt.Errorf("%w: %w", errFrameDropped, err)
			case strings.Contains(msg, "buffer error flag"):
				return fmt.Errorf("%w: %w", errFrameBroken, err)
			}
			g.last = err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// endErr says why the capture loop ended.
func (g *go4vlDriver) endErr() error {
	if g.errs != nil {
		for err := range g.errs { // closed before frames: does not block
			g.last = err
		}
		g.errs = nil
	}
	cause := g.last
	if cause == nil {
		cause = errors.New("capture stream ended")
	}
	// ENODEV collapses into go4vl's "system error"; a vanished node says it.
	if _, err := os.Stat(g.path); errors.Is(err, os.ErrNotExist) {
		cause = fmt.Errorf("%w (%w)", syscall.ENODEV, cause)
	}
	return cause
}

func (g *go4vlDriver) stop() error {
	if g.stopped {
		return nil
	}
	g.stopped = true
	var err error
	if g.ended {
		// The loop quit on a device error and marked itself stopped, so
		// dev.Stop would do nothing. Unmap here; closing the descriptor
		// turns streaming off in the kernel.
		if bufs := g.dev.Buffers(); bufs != nil {
			err = v4l2.UnmapMemoryBuffers(g.dev)
		}
	} else {
		// Stop before cancelling: once the context ends go4vl marks
		// itself stopped and Stop skips STREAMOFF and munmap.
		err = g.dev.Stop()
	}
	if g.cancel != nil {
		g.cancel()
	}
	g.waitLoop()
	if !g.ended {
		// If the loop died by itself just before Stop looked, Stop skipped
		// the unmap: undo mappings of this device still in place.
		unmapLeftovers(g.dev.Fd(), g.dev.Buffers())
	}
	return err
}

// waitLoop waits (briefly) for go4vl's capture goroutine to exit, so that
// nothing uses the descriptor once it is closed; frames still queued are
// released.
func (g *go4vlDriver) waitLoop() {
	if g.frames == nil || g.ended {
		return
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case f, ok := <-g.frames:
			if !ok {
				return
			}
			f.Release()
		case <-t.C:
			return
		}
	}
}

func (g *go4vlDriver) close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	return g.dev.Close() // not streaming any more: just closes the descriptor
}

// unmapLeftovers unmaps those of bufs that /proc/self/maps still shows as
// mappings of the device open as fd (matched by start address and inode,
// so memory mapped there since is never touched).
func unmapLeftovers(fd uintptr, bufs [][]byte) {
	if len(bufs) == 0 {
		return
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(fd), &st); err != nil {
		return
	}
	starts := map[uint64][]byte{}
	for _, b := range bufs {
		if len(b) > 0 {
			starts[uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))] = b
		}
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	var stale [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		lo, _, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		inode, err2 := strconv.ParseUint(fields[4], 10, 64)
		if err1 != nil || err2 != nil || inode != st.Ino {
			continue
		}
		if b, ok := starts[start]; ok {
			stale = append(stale, b)
		}
	}
	f.Close()
	for _, b := range stale {
		syscall.Munmap(b)
	}
}
