package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// fakeFrame is one thing the fake driver's next returns: frame bytes, or
// err (a per-frame sentinel or the end of the stream).
type fakeFrame struct {
	data []byte
	err  error
}

// fakeDriver is a driver whose frames a test sends on feed. It copies each
// frame into its own "driver memory", hands that to visit, and scribbles
// over it afterwards, as a reused kernel buffer would be.
type fakeDriver struct {
	offered []FormatInfo
	// chosen adjusts what was asked into what the driver "chose".
	chosen  func(sf streamFormat) streamFormat
	failOn  string // "formats", "setFormat", "actual", "start": that call fails
	noRate  bool   // setInterval fails
	feed    chan fakeFrame
	mem     []byte
	mu      sync.Mutex
	calls   []string
	asked   streamFormat
	stopped bool
}

func newFakeDriver(offered ...FormatInfo) *fakeDriver {
	return &fakeDriver{offered: offered, feed: make(chan fakeFrame)}
}

func (d *fakeDriver) record(call string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, call)
	if d.failOn == call {
		return errors.New(call + " failed")
	}
	return nil
}

func (d *fakeDriver) callLog() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.calls, ",")
}

func (d *fakeDriver) formats() ([]FormatInfo, error) {
	if err := d.record("formats"); err != nil {
		return nil, err
	}
	return d.offered, nil
}

func (d *fakeDriver) setFormat(fourcc string, w, h int) error {
	d.asked.fourcc, d.asked.width, d.asked.height = fourcc, w, h
	return d.record("setFormat")
}

func (d *fakeDriver) setInterval(iv fract) error {
	d.asked.interval = iv
	if d.noRate {
		d.record("setInterval")
		return errors.New("rate is fixed")
	}
	return d.record("setInterval")
}

func (d *fakeDriver) actual() (streamFormat, error) {
	if err := d.record("actual"); err != nil {
		return streamFormat{}, err
	}
	sf := d.asked
	if d.chosen != nil {
		sf = d.chosen(sf)
	}
	return sf, nil
}

func (d *fakeDriver) start() error { return d.record("start") }

func (d *fakeDriver) next(ctx context.Context, visit func([]byte)) error {
	select {
	case f := <-d.feed:
		if f.err != nil {
			return f.err
		}
		d.mem = append(d.mem[:0], f.data...)
		visit(d.mem)
		for i := range d.mem {
			d.mem[i] = 0xEE
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *fakeDriver) stop() error {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	return d.record("stop")
}

func (d *fakeDriver) close() error { return d.record("close") }

// sizes makes discrete frame sizes "WxH@fps,fps;WxH@fps".
func sizes(t testing.TB, spec string) []FrameSize {
	t.Helper()
	var out []FrameSize
	for _, s := range strings.Split(spec, ";") {
		dims, rates, _ := strings.Cut(s, "@")
		var fs FrameSize
		if _, err := fmt.Sscanf(dims, "%dx%d", &fs.Width, &fs.Height); err != nil {
			t.Fatalf("bad size %q", dims)
		}
		var iv []fract
		for _, r := range strings.Split(rates, ",") {
			if r == "" {
				continue
			}
			var num, den uint32 = 1, 0
			if _, err := fmt.Sscanf(r, "%d/%d", &num, &den); err != nil {
				if _, err := fmt.Sscanf(r, "%d", &den); err != nil {
					t.Fatalf("bad rate %q", r)
				}
				num = 1
			} else {
				num, den = den, num // "30000/1001" is a rate: interval 1001/30000
			}
			iv = append(iv, fract{num, den})
		}
		fs.addIntervals(iv)
		out = append(out, fs)
	}
	return out
}

// openFake opens a V4L2 on drv; the device path is a real file so symlink
// resolution works.
func openFake(t *testing.T, drv *fakeDriver, cfg V4L2Config) (*V4L2, error) {
	t.Helper()
	if cfg.Device == "" {
		cfg.Device = filepath.Join(t.TempDir(), "video0")
		if err := os.WriteFile(cfg.Device, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return openV4L2(cfg, func(string) (driver, error) { return drv, nil })
}

func mustOpenFake(t *testing.T, drv *fakeDriver, cfg V4L2Config) *V4L2 {
	t.Helper()
	v, err := openFake(t, drv, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

var mjpegVGA = FormatInfo{FourCC: "MJPG", Description: "Motion-JPEG"}

func init640(t testing.TB) []FormatInfo {
	f := mjpegVGA
	f.Sizes = sizes(t, "640x480@30,15")
	return []FormatInfo{f}
}

func TestV4L2MJPEGPassThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drv := newFakeDriver(init640(t)...)
		v := mustOpenFake(t, drv, V4L2Config{})
		if got, want := v.Format(), (media.VideoFormat{Width: 640, Height: 480, FPS: 30}); got != want {
			t.Fatalf("Format = %+v, want %+v", got, want)
		}
		if got := v.Describe(); got != "640x480 MJPEG 30 fps" {
			t.Errorf("Describe = %q", got)
		}
		jpg := stdJPEG(t, 32, 16)
		junk := bytes.Repeat([]byte{0, 0xFF, 0xD9, 0x55}, 100)

		start := time.Now()
		time.Sleep(time.Second)
		drv.feed <- fakeFrame{data: append(bytes.Clone(jpg), junk...)}
		f, err := v.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.JPEG, jpg) {
			t.Fatalf("frame of %d bytes, want the %d-byte JPEG without the junk", len(f.JPEG), len(jpg))
		}
		if f.Seq != 0 || !f.Time.Equal(start.Add(time.Second)) {
			t.Errorf("Seq %d Time %v, want 0 and the dequeue time", f.Seq, f.Time.Sub(start))
		}
		// The fake scribbled over its memory after the copy.
		drv.feed <- fakeFrame{data: jpg}
		f2, err := v.Read(t.Context())
		if err != nil || f2.Seq != 1 || !bytes.Equal(f2.JPEG, jpg) || !bytes.Equal(f.JPEG, jpg) {
			t.Fatalf("second frame: seq %d err %v; frames intact: %v %v", f2.Seq, err, bytes.Equal(f2.JPEG, jpg), bytes.Equal(f.JPEG, jpg))
		}
		if st := v.Stats(); st != (Stats{Captured: 2}) {
			t.Errorf("Stats = %+v", st)
		}
	})
}

func TestV4L2DropsBrokenFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drv := newFakeDriver(init640(t)...)
		v := mustOpenFake(t, drv, V4L2Config{})
		jpg := stdJPEG(t, 16, 16)
		drv.feed <- fakeFrame{data: []byte("no start of image here")}
		drv.feed <- fakeFrame{data: jpg[:len(jpg)/2]} // truncated
		drv.feed <- fakeFrame{err: errFrameBroken}
		drv.feed <- fakeFrame{err: errFrameDropped}
		drv.feed <- fakeFrame{data: jpg}
		f, err := v.Read(t.Context())
		if err != nil || !bytes.Equal(f.JPEG, jpg) || f.Seq != 0 {
			t.Fatalf("Read = seq %d, %d bytes, %v", f.Seq, len(f.JPEG), err)
		}
		if st := v.Stats(); st != (Stats{Captured: 1, Broken: 3, Skipped: 1}) {
			t.Errorf("Stats = %+v, want 1 captured, 3 broken, 1 skipped", st)
		}
	})
}

func TestV4L2LatestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drv := newFakeDriver(init640(t)...)
		v := mustOpenFake(t, drv, V4L2Config{})
		a, b := stdJPEG(t, 16, 16), stdJPEG(t, 32, 16)
		drv.feed <- fakeFrame{data: a}
		drv.feed <- fakeFrame{data: a}
		drv.feed <- fakeFrame{data: b}
		synctest.Wait() // the pump has stored b
		f, err := v.Read(t.Context())
		if err != nil || !bytes.Equal(f.JPEG, b) {
			t.Fatalf("Read got %d bytes (%v), want the newest frame", len(f.JPEG), err)
		}
		if st := v.Stats(); st.Skipped != 2 || st.Captured != 1 {
			t.Errorf("Stats = %+v, want 2 skipped", st)
		}
	})
}

func TestV4L2ReadBlocksAndCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drv := newFakeDriver(init640(t)...)
		v := mustOpenFake(t, drv, V4L2Config{StallTimeout: -1})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := v.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read with no frame = %v, want deadline exceeded", err)
		}
		errc := make(chan error, 1)
		go func() { _, err := v.Read(t.Context()); errc <- err }()
		synctest.Wait()
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Read after Close = %v, want ErrClosed", err)
		}
		if err := v.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		if got, want := drv.callLog(), "formats,setFormat,setInterval,actual,start,stop,close"; got != want {
			t.Errorf("driver calls %s, want %s", got, want)
		}
	})
}

func TestV4L2Unplug(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drv := newFakeDriver(init640(t)...)
		v := mustOpenFake(t, drv, V4L2Config{Device: ""})
		jpg := stdJPEG(t, 16, 16)
		drv.feed <- fakeFrame{data: jpg}
		if _, err := v.Read(t.Context()); err != nil {
			t.Fatal(err)
		}
		drv.feed <- fakeFrame{err: errors.New("no such device")}
		_, err := v.Read(t.Context())
		if !errors.Is(err, ErrGone) {
			t.Fatalf("Read after unplug = %v, want ErrGone", err)
		}
		if !strings.HasPrefix(err.Error(), "camera: ") || !strings.HasSuffix(err.Error(), " gone: no such device") {
			t.Errorf("error %q, want \"camera: <device> gone: no such device\"", err)
		}
		if _, err2 := v.Read(t.Context()); !errors.Is(err2, ErrGone) {
			t.Errorf("second Read = %v, want ErrGone again", err2)
		}
		v.Close()
		if !strings.HasSuffix(drv.callLog(), "start,stop,close") {
			t.Errorf("driver calls %s, want stop then close", drv.callLog())
		}
	})
}

func TestV4L2Stall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drv := newFakeDriver(init640(t)...)
		v := mustOpenFake(t, drv, V4L2Config{StallTimeout: 3 * time.Second})
		start := time.Now()
		_, err := v.Read(t.Context())
		if !errors.Is(err, ErrGone) || !strings.Contains(err.Error(), "no frame for 3s") {
			t.Fatalf("Read = %v, want gone after a stall", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("stall noticed after %v, want 3s", d)
		}
	})
}

func TestV4L2YUYV(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		yuyv := FormatInfo{FourCC: "YUYV", Description: "YUYV 4:2:2", Sizes: sizes(t, "320x240@30;640x480@30,15")}
		drv := newFakeDriver(FormatInfo{FourCC: "H264"}, yuyv)
		// The driver pads lines to 1344 bytes.
		drv.chosen = func(sf streamFormat) streamFormat { sf.stride = 1344; return sf }
		v := mustOpenFake(t, drv, V4L2Config{Quality: 90})
		if got := v.Format(); got != (media.VideoFormat{Width: 640, Height: 480, FPS: 30}) {
			t.Fatalf("Format = %+v", got)
		}
		bars := []color.RGBA{{255, 255, 255, 255}, {255, 255, 0, 255}, {0, 255, 255, 255}, {0, 255, 0, 255},
			{255, 0, 255, 255}, {255, 0, 0, 255}, {0, 0, 255, 255}, {0, 0, 0, 255}}
		raw := yuyvBars(640, 480, 1344, bars)
		drv.feed <- fakeFrame{data: raw[:len(raw)-1]} // short: broken
		drv.feed <- fakeFrame{data: raw}
		f, err := v.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		checkBars(t, f.JPEG, 640, 480, bars)
		if st := v.Stats(); st != (Stats{Captured: 1, Broken: 1}) {
			t.Errorf("Stats = %+v", st)
		}
	})
}

func TestV4L2OpenFailuresCloseTheDevice(t *testing.T) {
	for _, call := range []string{"formats", "setFormat", "actual", "start"} {
		t.Run(call, func(t *testing.T) {
			drv := newFakeDriver(init640(t)...)
			drv.failOn = call
			if _, err := openFake(t, drv, V4L2Config{}); err == nil || !strings.Contains(err.Error(), call+" failed") {
				t.Fatalf("open = %v, want the %s error", err, call)
			}
			if !strings.HasSuffix(drv.callLog(), "stop,close") {
				t.Errorf("driver calls %s, want stop,close at the end", drv.callLog())
			}
		})
	}
	t.Run("no usable format", func(t *testing.T) {
		drv := newFakeDriver(FormatInfo{FourCC: "H264"}, FormatInfo{FourCC: "GREY"})
		_, err := openFake(t, drv, V4L2Config{})
		if !errors.Is(err, ErrNoFormat) || !strings.Contains(err.Error(), "offers H264, GREY") {
			t.Fatalf("open = %v, want ErrNoFormat naming what is offered", err)
		}
		if !strings.HasSuffix(drv.callLog(), "stop,close") {
			t.Errorf("driver calls %s", drv.callLog())
		}
	})
	t.Run("driver chose an unusable format", func(t *testing.T) {
		drv := newFakeDriver(init640(t)...)
		drv.chosen = func(sf streamFormat) streamFormat { sf.fourcc = "RGB3"; return sf }
		_, err := openFake(t, drv, V4L2Config{})
		if err == nil || !strings.Contains(err.Error(), "RGB3") {
			t.Fatalf("open = %v, want an error naming RGB3", err)
		}
	})
	t.Run("missing device", func(t *testing.T) {
		_, err := openV4L2(V4L2Config{Device: "/nonexistent/video0"}, func(string) (driver, error) {
			t.Fatal("driver opened")
			return nil, nil
		})
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "/nonexistent/video0") {
			t.Fatalf("open = %v, want not-exist naming the device", err)
		}
	})
}

func TestV4L2SymlinkAndRate(t *testing.T) {
	dir := t.TempDir()
	node := filepath.Join(dir, "video3")
	os.WriteFile(node, nil, 0o600)
	link := filepath.Join(dir, "usb-cam-video-index0")
	if err := os.Symlink(node, link); err != nil {
		t.Fatal(err)
	}
	drv := newFakeDriver(init640(t)...)
	drv.noRate = true                                                                    // S_PARM refused
	drv.chosen = func(sf streamFormat) streamFormat { sf.interval = fract{}; return sf } // G_PARM says nothing
	var opened string
	v, err := openV4L2(V4L2Config{Device: link, Format: media.VideoFormat{Width: 640, Height: 480, FPS: 15}},
		func(p string) (driver, error) { opened = p; return drv, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if opened != node {
		t.Errorf("opened %s, want the resolved node %s", opened, node)
	}
	if drv.asked.interval != (fract{1, 15}) {
		t.Errorf("asked interval %v, want 1/15", drv.asked.interval)
	}
	if v.Format().FPS != 15 {
		t.Errorf("FPS %d, want the asked 15 when the driver does not say", v.Format().FPS)
	}
}

func TestV4L2ConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  V4L2Config
		want string
	}{
		{V4L2Config{}, ""},
		{V4L2Config{Device: "/dev/v4l/by-id/usb-x-video-index0", Quality: 100, Format: media.DefaultVideo}, ""},
		{V4L2Config{Device: "video0"}, "absolute"},
		{V4L2Config{Quality: 101}, "quality"},
		{V4L2Config{Quality: -1}, "quality"},
		{V4L2Config{Format: media.VideoFormat{Width: 640, Height: 480}}, "fps"},
	} {
		err := c.cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}
