package camera

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/callbox/callbox/stream/media"
)

// LibcameraDevice is the video.device value of a camera read through
// libcamera: a Raspberry Pi camera module on the CSI connector, whose
// V4L2 nodes deliver raw sensor data that only libcamera's pipeline turns
// into pictures. "libcamera:N" picks camera N of `rpicam-vid
// --list-cameras`, "libcamera:NAME" the one whose model (imx708) or
// libcamera id is NAME.
const LibcameraDevice = "libcamera"

// LibcameraPrograms are the programs tried, in order, when
// LibcameraConfig.Program is empty: rpicam-vid, and the name it had
// before Raspberry Pi OS bookworm.
var LibcameraPrograms = []string{"rpicam-vid", "libcamera-vid"}

// Defaults of LibcameraConfig.
const (
	DefaultLibcameraStart = 10 * time.Second       // first frame after starting the program
	DefaultLibcameraStop  = 2 * time.Second        // SIGTERM to SIGKILL
	libcameraListTimeout  = 10 * time.Second       // --list-cameras
	stderrKeep            = 8                      // last stderr lines kept for errors
	stderrLineMax         = 512                    // longer stderr lines are cut
	libcameraNameChars    = "._-/@,:+"             // besides letters and digits, in a camera name
	libcameraNameMax      = 255                    // bytes of a camera name
	libcameraWhat         = "libcamera camera"     // for errors
	libcameraStartWhat    = "starting the program" // for errors
)

// ParseLibcamera says whether a video.device value names a libcamera
// camera and which: "" for the first one, else the index or name after
// "libcamera:".
func ParseLibcamera(device string) (cam string, ok bool) {
	if device == LibcameraDevice {
		return "", true
	}
	cam, ok = strings.CutPrefix(device, LibcameraDevice+":")
	return cam, ok
}

// LibcameraConfig configures a camera module read through rpicam-vid.
// The zero value is valid: the first camera at media.DefaultVideo.
type LibcameraConfig struct {
	// Camera is "" (the first camera), an index of `rpicam-vid
	// --list-cameras`, or a camera's model (imx708) or libcamera id.
	Camera string
	// Program is the program to run (a path, or a name looked up on
	// PATH); "" tries LibcameraPrograms in order.
	Program string
	// Format is the size and rate asked for; zero means
	// media.DefaultVideo. rpicam-vid scales to any size.
	Format media.VideoFormat
	// Quality is the MJPEG quality (rpicam-vid --quality) 1..100; 0
	// means 75.
	Quality int
	// StallTimeout is how long without a frame counts as the camera
	// being gone; 0 means DefaultStallTimeout, negative never.
	StallTimeout time.Duration
	// StartTimeout bounds the wait for the first frame after the program
	// started (it sets up the sensor and its control loops first); 0
	// means DefaultLibcameraStart or StallTimeout if that is longer.
	StartTimeout time.Duration
	// StopTimeout is how long the program has to end after SIGTERM
	// before it is killed; 0 means DefaultLibcameraStop.
	StopTimeout time.Duration
	// Logger receives start, stop and fault messages, and the program's
	// stderr at debug level; nil discards them.
	Logger *slog.Logger
}

// Validate reports a field outside its allowed range.
func (c LibcameraConfig) Validate() error {
	if c.Camera != "" {
		if len(c.Camera) > libcameraNameMax {
			return fmt.Errorf("camera: libcamera: camera name of %d bytes, at most %d", len(c.Camera), libcameraNameMax)
		}
		for _, r := range c.Camera {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(libcameraNameChars, r)) {
				return fmt.Errorf("camera: libcamera: camera %q: only letters, digits and %q", c.Camera, libcameraNameChars)
			}
		}
	}
	if c.Format != (media.VideoFormat{}) {
		if err := c.Format.Validate(); err != nil {
			return fmt.Errorf("camera: libcamera: format: %w", err)
		}
	}
	if c.Quality < 0 || c.Quality > 100 {
		return fmt.Errorf("camera: libcamera: quality %d out of range 1..100 (0 for 75)", c.Quality)
	}
	if c.StartTimeout < 0 || c.StopTimeout < 0 {
		return fmt.Errorf("camera: libcamera: negative start or stop timeout")
	}
	return nil
}

// FindLibcameraProgram returns the path of program, or with "" of the
// first of LibcameraPrograms found on PATH. The error wraps
// exec.ErrNotFound when there is none.
func FindLibcameraProgram(program string) (string, error) {
	names := LibcameraPrograms
	if program != "" {
		names = []string{program}
	}
	var first error
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err == nil {
			return p, nil
		}
		if first == nil {
			first = err
		}
	}
	if program == "" {
		return "", fmt.Errorf("camera: libcamera: neither %s found on PATH (install rpicam-apps): %w",
			strings.Join(names, " nor "), exec.ErrNotFound)
	}
	return "", fmt.Errorf("camera: libcamera: %w", first)
}

// LibcameraInfo is one camera `rpicam-vid --list-cameras` reports.
type LibcameraInfo struct {
	Index  int    `json:"index"`            // what --camera and "libcamera:N" take
	Model  string `json:"model"`            // the sensor, e.g. imx708
	Sensor string `json:"sensor,omitempty"` // its array size and format, e.g. "4608x2592 10-bit RGGB"
	ID     string `json:"id"`               // libcamera's id, e.g. /base/soc/i2c0mux/i2c@1/imx708@1a
}

// cameraLine matches a camera line of --list-cameras:
// "0 : imx708 [4608x2592 10-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx708@1a)".
var cameraLine = regexp.MustCompile(`^\s*(\d+)\s*:\s*(\S+)\s*(?:\[([^\]]*)\])?\s*\(([^()]*)\)\s*$`)

// parseCameraList reads the output of --list-cameras.
func parseCameraList(out []byte) []LibcameraInfo {
	list := []LibcameraInfo{}
	for line := range strings.Lines(string(out)) {
		m := cameraLine.FindStringSubmatch(strings.TrimRight(line, "\r\n"))
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		list = append(list, LibcameraInfo{Index: n, Model: m[2], Sensor: strings.TrimSpace(m[3]), ID: m[4]})
	}
	return list
}

// ListLibcamera runs `program --list-cameras` (program as for
// FindLibcameraProgram) and returns the cameras it reports; none is an
// empty list. libcamera lists only cameras no other program holds: one
// that callboxd streams from is left out while it does.
func ListLibcamera(ctx context.Context, program string) ([]LibcameraInfo, error) {
	path, err := FindLibcameraProgram(program)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, libcameraListTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--list-cameras")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{b: &stderr, max: 4 << 10}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("camera: libcamera: %s --list-cameras: %w%s", path, err, lastLine(stderr.String()))
	}
	return parseCameraList(out), nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// lastLine is ": " and the last non-empty line of s, or "".
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return ": " + l
	}
	return ""
}

// cameraIndex turns LibcameraConfig.Camera into an index for --camera.
func cameraIndex(ctx context.Context, program, cam string) (int, error) {
	if cam == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(cam); err == nil && n >= 0 {
		return n, nil
	}
	list, err := ListLibcamera(ctx, program)
	if err != nil {
		return 0, err
	}
	idx := -1
	var names []string
	for _, c := range list {
		names = append(names, fmt.Sprintf("%d %s", c.Index, c.Model))
		if strings.EqualFold(c.Model, cam) || c.ID == cam {
			if idx >= 0 {
				return 0, fmt.Errorf("camera: libcamera: more than one camera is %q: use its index (libcamera:N)", cam)
			}
			idx = c.Index
		}
	}
	if idx < 0 {
		have := "none"
		if len(names) > 0 {
			have = strings.Join(names, ", ")
		}
		return 0, fmt.Errorf("camera: libcamera: no camera %q (cameras: %s): %w", cam, have, os.ErrNotExist)
	}
	return idx, nil
}

// Libcamera is a camera.Source reading the MJPEG that rpicam-vid (or
// libcamera-vid) writes to its standard output. The program runs in a
// process group of its own and dies with the daemon (PR_SET_PDEATHSIG);
// Close ends it with SIGTERM, then SIGKILL after StopTimeout, and waits
// for it. Frames go through the same checks as every other camera's:
// the splitter's marker walk (device/camera.Trim) and the receiver's
// media.CheckJPEG; what fails is dropped and counted as broken, and bytes
// between frames are skipped. A goroutine reads the pipe into a
// one-frame slot, latest wins, like V4L2. When the program exits, or
// sends no frame for StallTimeout, Read returns an error wrapping
// ErrGone that names the exit and the program's last stderr line: open
// it again (see Resilient).
type Libcamera struct {
	name   string // "libcamera camera 0 (rpicam-vid)", for errors and State
	log    *slog.Logger
	cmd    *exec.Cmd
	out    *os.File // the read end of the program's stdout
	errOut *os.File // the read end of its stderr
	sp     *splitter
	format media.VideoFormat
	desc   string
	stall  time.Duration
	stop   time.Duration

	counts

	mu       sync.Mutex
	slot     []byte
	slotTime time.Time
	gone     error
	stderr   []string // the last stderrKeep lines

	ready     chan struct{} // capacity 1: a frame or gone arrived
	done      chan struct{} // closed by Close
	exited    chan struct{} // closed once the program was waited for
	exitErr   error         // cmd.Wait's; read after exited
	pumpDone  chan struct{}
	errDone   chan struct{} // the stderr reader returned
	closing   atomic.Bool
	closeOnce sync.Once

	seq uint32 // reader-owned
}

var _ Source = (*Libcamera)(nil)

// OpenLibcamera starts the program for the configured camera and waits
// for its first frame (at most StartTimeout), so that a camera that is
// not there fails here, with the program's own words. ctx bounds the
// start only (and ends it early: the daemon stops); Close ends the
// stream. A program that is not installed gives an error wrapping
// exec.ErrNotFound.
func OpenLibcamera(ctx context.Context, cfg LibcameraConfig) (*Libcamera, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
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
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = max(DefaultLibcameraStart, cfg.StallTimeout)
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = DefaultLibcameraStop
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	path, err := FindLibcameraProgram(cfg.Program)
	if err != nil {
		return nil, err
	}
	idx, err := cameraIndex(ctx, path, cfg.Camera)
	if err != nil {
		return nil, err
	}
	prog := path[strings.LastIndexByte(path, '/')+1:]
	log = log.With("component", "camera", "device", LibcameraDevice+":"+strconv.Itoa(idx), "program", prog)
	f := cfg.Format
	args := []string{
		"--camera", strconv.Itoa(idx),
		"--timeout", "0", // run until stopped
		"--nopreview",
		"--codec", "mjpeg",
		"--width", strconv.Itoa(f.Width), "--height", strconv.Itoa(f.Height),
		"--framerate", strconv.Itoa(f.FPS),
		"--quality", strconv.Itoa(cfg.Quality),
		"--flush", // each frame leaves the program's stdio buffer at once
		"--output", "-",
	}
	c := &Libcamera{
		name:     fmt.Sprintf("%s %d (%s)", libcameraWhat, idx, prog),
		log:      log,
		stall:    cfg.StallTimeout,
		stop:     cfg.StopTimeout,
		ready:    make(chan struct{}, 1),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		pumpDone: make(chan struct{}),
		errDone:  make(chan struct{}),
	}
	if err := c.start(path, args); err != nil {
		return nil, fmt.Errorf("camera: %s: %s: %w", c.name, libcameraStartWhat, err)
	}
	log.Info("camera program started", "pid", c.cmd.Process.Pid, "args", strings.Join(args, " "))
	go c.pump(cfg.StartTimeout)

	// The first frame, the program's failure, or ctx.
	select {
	case <-c.ready:
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
	c.mu.Lock()
	first, gone := c.slot, c.gone
	c.mu.Unlock()
	if gone != nil {
		c.Close()
		return nil, gone
	}
	w, h, _ := Size(first) // CheckJPEG passed: it has a size
	c.format = media.VideoFormat{Width: w, Height: h, FPS: f.FPS}
	c.desc = fmt.Sprintf("%dx%d MJPEG %d fps (%s, camera %d)", w, h, f.FPS, prog, idx)
	if w != f.Width || h != f.Height {
		log.Warn("camera delivers another size than asked", "asked", fmt.Sprintf("%dx%d", f.Width, f.Height), "got", fmt.Sprintf("%dx%d", w, h))
	}
	log.Info("camera streaming", "width", w, "height", h, "fps", f.FPS, "quality", cfg.Quality)
	return c, nil
}

// start starts the program with its stdout and stderr on pipes.
func (c *Libcamera) start(path string, args []string) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = nil // /dev/null
	cmd.Env = childEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = outW, errW
	// Its own process group: a signal for it reaches anything it starts
	// (libcamera may run its IPA in a child), and a terminal's ^C for
	// the daemon does not reach it behind the daemon's back. It dies
	// with the daemon even when the daemon is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	outW.Close() // the child has its copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return err
	}
	c.cmd, c.out, c.errOut = cmd, outR, errR
	c.sp = newSplitter(outR, MaxFrameSize)
	c.sp.live = true
	go c.readStderr(errR)
	go func() {
		c.exitErr = cmd.Wait()
		close(c.exited)
	}()
	return nil
}

// serviceVars are what systemd hands the daemon alone: its notify
// socket and watchdog, sockets it passed. A child must not see them.
var serviceVars = []string{"NOTIFY_SOCKET=", "WATCHDOG_PID=", "WATCHDOG_USEC=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES="}

// childEnv is env without serviceVars.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
next:
	for _, kv := range env {
		for _, p := range serviceVars {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// readStderr logs the program's stderr at debug level and keeps its last
// lines for the error when it fails.
func (c *Libcamera) readStderr(r *os.File) {
	defer close(c.errDone)
	br := bufio.NewReaderSize(r, stderrLineMax)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			s := strings.TrimRight(string(line), "\r\n")
			if err == bufio.ErrBufferFull { // a long line: keep its start, skip the rest
				for err == bufio.ErrBufferFull {
					_, err = br.ReadSlice('\n')
				}
				s += "..."
			}
			if s = strings.TrimSpace(s); s != "" {
				c.log.Debug("camera program says", "line", s)
				c.mu.Lock()
				if len(c.stderr) == stderrKeep {
					c.stderr = append(c.stderr[:0], c.stderr[1:]...)
				}
				c.stderr = append(c.stderr, s)
				c.mu.Unlock()
			}
		}
		if err != nil {
			return
		}
	}
}

// pump moves frames from the pipe into the slot until the program exits,
// stalls, or Close.
func (c *Libcamera) pump(start time.Duration) {
	defer close(c.pumpDone)
	wait, first := start, true
	for {
		if wait > 0 {
			c.out.SetReadDeadline(time.Now().Add(wait))
		}
		b, err := c.sp.next()
		if c.closing.Load() {
			return
		}
		switch {
		case err == nil:
			if cerr := media.CheckJPEG(b); cerr != nil {
				c.counts.noteBroken(c.log, cerr)
				continue
			}
			c.accept(b)
			wait, first = c.stall, false
		case errors.Is(err, errBroken):
			c.counts.noteBroken(c.log, err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			what := "no frame for %v"
			if first {
				what = "no first frame within %v"
			}
			c.fail(fmt.Errorf(what, wait), true)
			return
		case err == io.EOF:
			c.fail(nil, false)
			return
		default:
			c.fail(fmt.Errorf("reading its output: %w", err), true)
			return
		}
	}
}

// accept copies a checked frame into the slot.
func (c *Libcamera) accept(b []byte) {
	frame := bytes.Clone(b)
	c.mu.Lock()
	if c.slot != nil {
		c.skipped.Add(1)
	}
	c.slot, c.slotTime = frame, time.Now()
	c.mu.Unlock()
	c.signal()
}

func (c *Libcamera) signal() {
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// fail records that the stream ended for good: cause, or with nil the
// program's exit (its output ended). kill says the program still runs
// and is ended first; else it is given the stop timeout to exit by
// itself (its output ended: it is on its way out), then ended.
func (c *Libcamera) fail(cause error, kill bool) {
	if !kill {
		t := time.NewTimer(c.stop)
		select {
		case <-c.exited:
		case <-t.C:
		}
		t.Stop()
	}
	c.terminate()
	c.drainStderr() // its last words are in
	c.mu.Lock()
	lines := append([]string(nil), c.stderr...)
	c.mu.Unlock()
	if cause == nil {
		cause = fmt.Errorf("the program exited (%v)", exitText(c.exitErr))
	}
	last := ""
	if len(lines) > 0 {
		last = ": " + lines[len(lines)-1]
	}
	err := fmt.Errorf("camera: %s %w: %w%s", c.name, ErrGone, cause, last)
	c.mu.Lock()
	c.gone = err
	c.slot = nil
	c.mu.Unlock()
	if c.closing.Load() {
		c.signal()
		return
	}
	c.log.Error("camera stopped delivering frames", "err", cause, "exit", exitText(c.exitErr),
		"broken", c.broken.Load(), "skipped_bytes", c.sp.junk)
	for _, l := range lines {
		c.log.Error("camera program's last words", "line", l)
	}
	c.signal()
}

// drainStderr waits for the stderr reader once the program was reaped:
// what it wrote is in the pipe. A grandchild that kept the pipe open
// does not hold it up for longer than a second.
func (c *Libcamera) drainStderr() {
	t := time.AfterFunc(time.Second, func() { c.errOut.SetReadDeadline(time.Now()) })
	<-c.errDone
	t.Stop()
}

// exitText says how the program ended: "exit status 1", "signal:
// killed".
func exitText(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &ee):
		return ee.String()
	}
	return err.Error()
}

// terminate ends the program: SIGTERM to its process group, SIGKILL
// after the stop timeout, and waits until it was reaped. Safe to call
// more than once and from several goroutines.
func (c *Libcamera) terminate() {
	select {
	case <-c.exited:
		return
	default:
	}
	pgid := c.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		c.log.Warn("cannot signal the camera program", "err", err)
	}
	t := time.NewTimer(c.stop)
	defer t.Stop()
	select {
	case <-c.exited:
		return
	case <-t.C:
	}
	c.log.Warn("camera program ignored SIGTERM: killing it", "after", c.stop)
	syscall.Kill(-pgid, syscall.SIGKILL)
	<-c.exited
}

// Read blocks until a frame not returned before is available. After the
// program ended or stalled it returns an error wrapping ErrGone.
func (c *Libcamera) Read(ctx context.Context) (media.Frame, error) {
	for {
		select {
		case <-c.done:
			return media.Frame{}, ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return media.Frame{}, err
		}
		c.mu.Lock()
		buf, t, gone := c.slot, c.slotTime, c.gone
		c.slot = nil
		c.mu.Unlock()
		if buf != nil {
			f := media.Frame{Seq: c.seq, Time: t, JPEG: buf}
			c.seq++
			c.captured.Add(1)
			return f, nil
		}
		if gone != nil {
			return media.Frame{}, gone
		}
		select {
		case <-c.ready:
		case <-ctx.Done():
			return media.Frame{}, ctx.Err()
		case <-c.done:
			return media.Frame{}, ErrClosed
		}
	}
}

// Format returns the size of the program's frames and the rate asked
// for. Safe from any goroutine.
func (c *Libcamera) Format() media.VideoFormat { return c.format }

// Describe names the stream, e.g. "640x480 MJPEG 30 fps (rpicam-vid,
// camera 0)".
func (c *Libcamera) Describe() string { return c.desc }

// Stats returns counters; safe from any goroutine. Broken counts frames
// dropped by the checks.
func (c *Libcamera) Stats() Stats {
	return c.counts.stats()
}

// PID is the program's process id (its process group's too).
func (c *Libcamera) PID() int { return c.cmd.Process.Pid }

// Close ends the program (SIGTERM, then SIGKILL after StopTimeout) and
// waits for it and for the goroutines reading it; a blocked Read returns
// ErrClosed. Idempotent; safe from any goroutine.
func (c *Libcamera) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		close(c.done)
		c.terminate()
		// Its output ended with it; a grandchild that kept the pipe
		// open is no reason to wait.
		c.out.SetReadDeadline(time.Now())
		<-c.pumpDone
		c.drainStderr()
		c.out.Close()
		c.errOut.Close()
		c.log.Info("camera program stopped", "exit", exitText(c.exitErr))
		c.mu.Lock()
		c.slot = nil
		c.mu.Unlock()
	})
	return nil
}
