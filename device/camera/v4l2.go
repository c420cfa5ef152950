package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// ErrGone is wrapped by the error Read returns once a camera stopped
// delivering frames for good: unplugged, a driver error, or a stall. Such a
// source is dead; open the device again (see Resilient).
var ErrGone = errors.New("gone")

// ErrNoV4L2 is wrapped by OpenV4L2 and List in a build without V4L2
// support (not linux, or CGO_ENABLED=0).
var ErrNoV4L2 = errors.New("compiled without cgo: V4L2 cameras need linux and cgo")

// DefaultStallTimeout is how long a V4L2 camera may go without a frame
// before it counts as gone, unless V4L2Config.StallTimeout says otherwise.
const DefaultStallTimeout = 5 * time.Second

// V4L2Config configures a V4L2 camera. The zero value is valid and opens
// /dev/video0 at media.DefaultVideo.
type V4L2Config struct {
	// Device is the capture node, e.g. /dev/video0, or a symlink to one
	// such as /dev/v4l/by-id/usb-...-video-index0 (resolved at open, so it
	// survives renumbering). Empty means /dev/video0.
	Device string
	// Format is the wanted size and rate; the nearest the camera offers is
	// used (see Format). Zero means media.DefaultVideo.
	Format media.VideoFormat
	// Quality is the JPEG quality 1..100 used when the camera only offers
	// raw YUV and frames are encoded here; 0 means 75.
	Quality int
	// StallTimeout is how long without a frame counts as the camera being
	// gone; 0 means DefaultStallTimeout, negative never.
	StallTimeout time.Duration
	// Logger receives open and fault messages; nil discards them.
	Logger *slog.Logger
}

// Validate reports a field outside its allowed range.
func (c V4L2Config) Validate() error {
	if c.Device != "" && !filepath.IsAbs(c.Device) {
		return fmt.Errorf("camera: v4l2: device %q is not an absolute path", c.Device)
	}
	if c.Format != (media.VideoFormat{}) {
		if err := c.Format.Validate(); err != nil {
			return fmt.Errorf("camera: v4l2: format: %w", err)
		}
	}
	if c.Quality < 0 || c.Quality > 100 {
		return fmt.Errorf("camera: v4l2: quality %d out of range 1..100 (0 for 75)", c.Quality)
	}
	return nil
}

// driver is one open V4L2 capture node. go4vl implements it (v4l2_cgo.go);
// tests use a fake. Calls come from one goroutine at a time: OpenV4L2, then
// the pump (next), then Close (stop, close).
type driver interface {
	// formats enumerates the capture formats with sizes and rates.
	formats() ([]FormatInfo, error)
	// setFormat asks for a pixel format and size (VIDIOC_S_FMT).
	setFormat(fourcc string, width, height int) error
	// setInterval asks for a frame interval (VIDIOC_S_PARM).
	setInterval(iv fract) error
	// actual reads back what the driver chose (VIDIOC_G_FMT, G_PARM);
	// interval is zero if the driver does not say.
	actual() (streamFormat, error)
	// start turns streaming on.
	start() error
	// next blocks for the next frame and calls visit with its bytes,
	// which are valid only during the call. It returns errFrameDropped or
	// errFrameBroken for a frame lost in the driver layer (the stream goes
	// on), ctx.Err(), or another error when the stream ended for good.
	next(ctx context.Context, visit func([]byte)) error
	// stop turns streaming off and releases the buffers; idempotent.
	stop() error
	// close closes the device; after stop.
	close() error
}

// streamFormat is the format a driver reports it is delivering.
type streamFormat struct {
	fourcc        string
	width, height int
	stride        int // bytes per line
	size          int // bytes per image (upper bound for compressed formats)
	interval      fract
}

// Sentinels a driver's next returns for frames lost below the camera.
var (
	errFrameDropped = errors.New("frame dropped in the driver layer")
	errFrameBroken  = errors.New("driver flagged a frame as broken")
)

// V4L2 is a camera.Source reading a V4L2 capture device. MJPEG frames are
// passed through (trimmed to their EOI); raw YUV frames are encoded to JPEG
// in Read. A goroutine copies every frame out of driver memory as soon as it
// is dequeued into a one-frame slot; the queue to Read is that slot, latest
// wins: a frame not read before the next one arrives is dropped and counted
// in Stats.Skipped. Frame.Time is when the frame was dequeued, on the wall
// clock: go4vl turns the driver's buffer timestamp (usually
// CLOCK_MONOTONIC) into a wall time as if it were one, so it is not used.
type V4L2 struct {
	name   string // the configured device path, for errors
	log    *slog.Logger
	drv    driver
	format media.VideoFormat
	desc   string        // e.g. "640x480 MJPEG 30 fps"
	raw    *rawLayout    // nil for JPEG formats
	enc    *rawEncoder   // reader-owned; nil for JPEG formats
	stall  time.Duration // <= 0: no stall detection
	cancel context.CancelFunc

	counts
	quality atomic.Int32 // SetQuality: for raw frames encoded from now on

	mu       sync.Mutex
	slot     []byte    // latest unread frame: a JPEG, or a raw image; nil if none
	slotTime time.Time // when slot was dequeued
	free     [][]byte  // spare frame buffers; at most maxFree
	gone     error     // set once the stream ended for good

	ready     chan struct{} // capacity 1: a frame or gone arrived
	done      chan struct{} // closed by Close
	pumpDone  chan struct{} // closed when the pump returns
	closeOnce sync.Once
	closeErr  error

	seq uint32 // reader-owned: Seq of the next frame Read returns
}

// maxFree bounds the spare buffers kept for reuse.
const maxFree = 2

var _ Source = (*V4L2)(nil)

// OpenV4L2 opens a V4L2 camera and starts streaming. It enumerates the
// device's formats and picks MJPEG if offered, else a raw YUV format (YUYV,
// UYVY, NV12, YU12) encoded here at cfg.Quality; then the frame size nearest
// cfg.Format (by area, then aspect ratio) and the offered rate nearest its
// FPS. Format reports what the driver actually chose. A missing device
// gives an error wrapping os.ErrNotExist; a device offering nothing usable
// one wrapping ErrNoFormat.
func OpenV4L2(cfg V4L2Config) (*V4L2, error) {
	return openV4L2(cfg, openDriver)
}

// openV4L2 is OpenV4L2 with the driver injected.
func openV4L2(cfg V4L2Config, open func(path string) (driver, error)) (*V4L2, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Device == "" {
		cfg.Device = "/dev/video0"
	}
	if cfg.Format == (media.VideoFormat{}) {
		cfg.Format = media.DefaultVideo
	}
	if cfg.Quality == 0 {
		cfg.Quality = 75
	}
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log = log.With("component", "camera", "device", cfg.Device)

	node, err := filepath.EvalSymlinks(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("camera: open %s: %w", cfg.Device, err)
	}
	drv, err := open(node)
	if err != nil {
		return nil, fmt.Errorf("camera: open %s: %w", cfg.Device, err)
	}
	v := &V4L2{
		name:     cfg.Device,
		log:      log,
		drv:      drv,
		stall:    cfg.StallTimeout,
		ready:    make(chan struct{}, 1),
		done:     make(chan struct{}),
		pumpDone: make(chan struct{}),
	}
	if err := v.setup(cfg, node); err != nil {
		// Every failure after the device opened closes it again.
		err = fmt.Errorf("camera: open %s: %w", cfg.Device, err)
		if serr := drv.stop(); serr != nil {
			log.Warn("stop after failed open", "err", serr)
		}
		if cerr := drv.close(); cerr != nil {
			log.Warn("close after failed open", "err", cerr)
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	go v.pump(ctx)
	return v, nil
}

// setup negotiates the format and starts streaming.
func (v *V4L2) setup(cfg V4L2Config, node string) error {
	offered, err := v.drv.formats()
	if err != nil {
		return fmt.Errorf("list formats: %w", err)
	}
	c, err := chooseFormat(offered, cfg.Format)
	if err != nil {
		return err
	}
	if err := v.drv.setFormat(c.fourcc, c.width, c.height); err != nil {
		return fmt.Errorf("set format %s: %w", c, err)
	}
	iv := c.interval
	if iv == (fract{}) {
		iv = fract{num: 1, den: uint32(cfg.Format.FPS)}
	}
	if err := v.drv.setInterval(iv); err != nil {
		// Not fatal: some drivers have a fixed rate. Use what it says.
		v.log.Warn("camera refused the frame rate", "fps", roundFPS(iv.fps()), "err", err)
	}
	got, err := v.drv.actual()
	if err != nil {
		return fmt.Errorf("read back format: %w", err)
	}
	fps := int(got.interval.fps() + 0.5)
	if fps <= 0 {
		fps = int(iv.fps() + 0.5)
	}
	if got.width <= 0 || got.height <= 0 {
		return fmt.Errorf("driver reports frame size %dx%d", got.width, got.height)
	}
	switch {
	case isJPEG(got.fourcc):
	default:
		l, err := newRawLayout(got.fourcc, got.width, got.height, got.stride)
		if err != nil {
			return fmt.Errorf("driver delivers %s %dx%d (asked %s): %w", got.fourcc, got.width, got.height, c, err)
		}
		v.raw = &l
		v.enc = newRawEncoder(l, cfg.Quality)
		v.quality.Store(int32(cfg.Quality))
	}
	v.format = media.VideoFormat{Width: got.width, Height: got.height, FPS: fps}
	name := got.fourcc
	if name == "MJPG" {
		name = "MJPEG"
	}
	v.desc = fmt.Sprintf("%dx%d %s %d fps", got.width, got.height, name, fps)
	if err := v.drv.start(); err != nil {
		return fmt.Errorf("start streaming %s: %w", v.desc, err)
	}
	attrs := []any{"node", node, "format", got.fourcc, "width", got.width, "height", got.height,
		"fps", roundFPS(got.interval.fps()), "bytesperline", got.stride, "sizeimage", got.size,
		"asked", c.String()}
	if v.raw != nil {
		attrs = append(attrs, "jpeg_quality", cfg.Quality)
	}
	v.log.Info("camera streaming", attrs...)
	if got.fourcc != c.fourcc || got.width != c.width || got.height != c.height {
		v.log.Warn("camera chose another format than asked", "asked", c.String(), "got", v.desc)
	}
	return nil
}

// pump moves frames from the driver into the slot until ctx ends or the
// stream dies.
func (v *V4L2) pump(ctx context.Context) {
	defer close(v.pumpDone)
	for {
		fctx, cancel := ctx, context.CancelFunc(func() {})
		if v.stall > 0 {
			fctx, cancel = context.WithTimeout(ctx, v.stall)
		}
		err := v.drv.next(fctx, v.accept)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, errFrameDropped):
			v.skipped.Add(1)
		case errors.Is(err, errFrameBroken):
			v.counts.noteBroken(v.log, err)
		case ctx.Err() != nil:
			return
		case errors.Is(err, context.DeadlineExceeded):
			v.fail(fmt.Errorf("no frame for %v", v.stall))
			return
		default:
			v.fail(err)
			return
		}
	}
}

// accept copies one frame out of driver memory into the slot, or counts it
// as broken. It runs on the pump goroutine while data is valid.
func (v *V4L2) accept(data []byte) {
	now := time.Now()
	var frame []byte
	if v.raw == nil {
		j, err := Trim(data)
		if err == nil && len(j) > MaxFrameSize {
			err = fmt.Errorf("jpeg of %d bytes over the %d byte limit", len(j), MaxFrameSize)
		}
		if err != nil {
			v.counts.noteBroken(v.log, err)
			return
		}
		frame = j
	} else {
		if len(data) < v.raw.size {
			v.counts.noteBroken(v.log, fmt.Errorf("%s frame of %d bytes, want %d", v.raw.fourcc, len(data), v.raw.size))
			return
		}
		frame = data[:v.raw.size]
	}
	v.mu.Lock()
	buf := v.take(len(frame))
	v.mu.Unlock()
	buf = append(buf, frame...) // the copy out of driver memory
	v.mu.Lock()
	if v.slot != nil {
		v.skipped.Add(1)
		v.recycle(v.slot)
	}
	v.slot, v.slotTime = buf, now
	v.mu.Unlock()
	v.signal()
}

// take returns an empty buffer with room for n bytes. Call with mu held.
func (v *V4L2) take(n int) []byte {
	for len(v.free) > 0 {
		b := v.free[len(v.free)-1]
		v.free = v.free[:len(v.free)-1]
		if cap(b) >= n {
			return b[:0]
		}
	}
	return make([]byte, 0, n)
}

// recycle keeps b for reuse if there is room. Call with mu held.
func (v *V4L2) recycle(b []byte) {
	if len(v.free) < maxFree {
		v.free = append(v.free, b)
	}
}

// signal wakes a waiting Read without blocking.
func (v *V4L2) signal() {
	select {
	case v.ready <- struct{}{}:
	default:
	}
}

// fail records that the stream ended for good.
func (v *V4L2) fail(cause error) {
	err := fmt.Errorf("camera: %s %w: %w", v.name, ErrGone, cause)
	v.mu.Lock()
	v.gone = err
	if v.slot != nil {
		v.recycle(v.slot)
		v.slot = nil
	}
	v.mu.Unlock()
	v.log.Error("camera stopped delivering frames", "err", cause)
	v.signal()
}

// Read blocks until a frame not returned before is available and returns
// it as a JPEG owned by the caller. After the camera died it returns an
// error wrapping ErrGone ("camera: /dev/video0 gone: ..."). One reader at a
// time; raw frames are encoded to JPEG on the caller's goroutine.
func (v *V4L2) Read(ctx context.Context) (media.Frame, error) {
	for {
		select {
		case <-v.done:
			return media.Frame{}, ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return media.Frame{}, err
		}
		v.mu.Lock()
		buf, t, gone := v.slot, v.slotTime, v.gone
		v.slot = nil
		v.mu.Unlock()
		if gone != nil {
			return media.Frame{}, gone
		}
		if buf != nil {
			jpg := buf // a JPEG slot buffer goes to the caller
			if v.enc != nil {
				var err error
				v.enc.options.Quality = int(v.quality.Load())
				jpg, err = v.enc.encode(buf)
				v.mu.Lock()
				v.recycle(buf)
				v.mu.Unlock()
				if err != nil {
					v.counts.noteBroken(v.log, err)
					continue
				}
			}
			f := media.Frame{Seq: v.seq, Time: t, JPEG: jpg[:len(jpg):len(jpg)]}
			v.seq++
			v.captured.Add(1)
			return f, nil
		}
		select {
		case <-v.ready:
		case <-ctx.Done():
			return media.Frame{}, ctx.Err()
		case <-v.done:
			return media.Frame{}, ErrClosed
		}
	}
}

// SetQuality sets the JPEG quality (clamped to 1..100) of raw frames
// encoded from the next Read on, and reports whether frames are encoded
// here (a raw format). The camera's own MJPEG is passed through
// untouched: then it reports false and changes nothing. q <= 0 only
// asks. Safe from any
// goroutine.
func (v *V4L2) SetQuality(q int) bool {
	if v.enc == nil {
		return false
	}
	if q > 0 {
		v.quality.Store(int32(clampQuality(q)))
	}
	return true
}

// Format returns the size and rate the driver actually chose. Safe from
// any goroutine.
func (v *V4L2) Format() media.VideoFormat { return v.format }

// Describe names the negotiated format, e.g. "640x480 MJPEG 30 fps" or
// "640x480 YUYV 25 fps" (encoded here). Safe from any goroutine.
func (v *V4L2) Describe() string { return v.desc }

// Stats returns counters; safe from any goroutine. Captured counts frames
// returned by Read, Skipped frames replaced before Read took them (or
// dropped by the driver layer), Broken frames rejected as malformed.
func (v *V4L2) Stats() Stats {
	return v.counts.stats()
}

// Close stops streaming, releases the driver's buffers and closes the
// device; a blocked Read returns ErrClosed. Safe from any goroutine;
// idempotent, and every call returns after the device is closed.
func (v *V4L2) Close() error {
	v.closeOnce.Do(func() {
		close(v.done)
		v.cancel()
		<-v.pumpDone
		// The pump is out of the driver: stop streaming before the device
		// is closed (go4vl: Stop before its context ends, see v4l2_cgo.go).
		err := v.drv.stop()
		if cerr := v.drv.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if err != nil {
			v.closeErr = fmt.Errorf("camera: close %s: %w", v.name, err)
		}
		v.mu.Lock()
		v.slot, v.free = nil, nil
		v.mu.Unlock()
	})
	return v.closeErr
}
