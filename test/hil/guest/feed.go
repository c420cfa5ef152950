package guest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/stream/media"
)

// maxFedNumbers bounds the frame numbers a video feed remembers (over 30
// minutes at 30 fps); later frames are fed but not listed.
const maxFedNumbers = 60000

// videoFeeder writes numbered synthetic JPEGs to a v4l2loopback node at
// the camera's rate from one goroutine. The synthetic camera is kept
// between runs with the same format, so numbers go on across a stop and a
// start (the camera-unplug scenario).
type videoFeeder struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	cam    *camera.Synthetic
	spec   Video
	fed    Fed
	began  time.Time
}

func (v *videoFeeder) start(spec Video, log *slog.Logger) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cancel != nil {
		return errors.New("video feed already running")
	}
	f := media.VideoFormat{Width: spec.Width, Height: spec.Height, FPS: spec.FPS}
	if v.cam == nil || v.spec != spec {
		if v.cam != nil {
			v.cam.Close()
		}
		cam, err := camera.NewSynthetic(camera.SyntheticConfig{Format: f, Precomputed: spec.Precomputed, Name: "hil feed"})
		if err != nil {
			return err
		}
		v.cam, v.spec = cam, spec
	}
	out, err := openLoopOut(spec.Device, spec.Width, spec.Height, spec.FPS)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel, v.done = cancel, make(chan struct{})
	v.fed, v.began = Fed{}, time.Now()
	log.Info("video feed started", "device", spec.Device, "size", fmt.Sprintf("%dx%d", spec.Width, spec.Height), "fps", spec.FPS)
	go v.loop(ctx, v.cam, out, v.done)
	return nil
}

func (v *videoFeeder) loop(ctx context.Context, cam *camera.Synthetic, out *loopOut, done chan struct{}) {
	defer close(done)
	defer out.close()
	for {
		f, err := cam.Read(ctx)
		if err != nil {
			return // ctx ended
		}
		err = out.write(f.JPEG)
		v.mu.Lock()
		if err != nil {
			v.fed.Errors++
			v.fed.LastErr = err.Error()
		} else if len(v.fed.Numbers) < maxFedNumbers {
			v.fed.Numbers = append(v.fed.Numbers, f.Seq)
		}
		v.mu.Unlock()
	}
}

// stop ends the feed, closes the node and returns what was fed. Stopping a
// feed that is not running returns an empty Fed.
func (v *videoFeeder) stop() Fed {
	v.mu.Lock()
	cancel, done := v.cancel, v.done
	v.cancel = nil
	v.mu.Unlock()
	if cancel == nil {
		return Fed{}
	}
	cancel()
	<-done
	v.mu.Lock()
	defer v.mu.Unlock()
	fed := v.fed
	fed.Ms = float64(time.Since(v.began).Microseconds()) / 1000
	return fed
}

// alsaArgs are aplay's/arecord's arguments for a raw s16le stream.
func alsaArgs(a Audio) []string {
	return []string{"-q", "-D", a.Device, "-t", "raw", "-f", "S16_LE",
		"-r", strconv.Itoa(a.Rate), "-c", strconv.Itoa(a.Channels)}
}

func audioFormat(a Audio) (media.AudioFormat, error) {
	f := media.AudioFormat{Rate: a.Rate, Channels: a.Channels, FrameMs: a.FrameMs}
	return f, f.Validate()
}

// player pipes audio.TestFrame frames, numbered from 0, into aplay. ALSA
// paces the writes: the device's clock is the feed's clock.
type player struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	cmd    *exec.Cmd
	res    Played
}

func (p *player) start(a Audio, log *slog.Logger) error {
	f, err := audioFormat(a)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		return errors.New("audio player already running")
	}
	cmd := exec.Command("aplay", alsaArgs(a)...)
	stderr := newTail(4096)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("aplay: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done, p.cmd, p.res = cancel, make(chan struct{}), cmd, Played{}
	log.Info("audio player started", "device", a.Device)
	go func(done chan struct{}) {
		defer close(done)
		buf := make([]byte, 2*f.FrameLen())
		var n int
		var werr error
		for i := uint32(0); ctx.Err() == nil; i++ {
			for j, s := range audio.TestFrame(f, i) {
				binary.LittleEndian.PutUint16(buf[2*j:], uint16(s))
			}
			if _, werr = in.Write(buf); werr != nil {
				break
			}
			n++
		}
		in.Close() // aplay plays what it has and exits
		waitOrKill(cmd, 3*time.Second)
		p.mu.Lock()
		p.res.Frames = n
		if werr != nil {
			p.res.Err = fmt.Sprintf("aplay: %v: %s", werr, stderr.bytes())
		}
		p.mu.Unlock()
	}(p.done)
	return nil
}

// stop ends the playing and says how many frames were written. A player
// stuck in a write is killed after 5 s.
func (p *player) stop() Played {
	p.mu.Lock()
	cancel, done, cmd := p.cancel, p.done, p.cmd
	p.cancel = nil
	p.mu.Unlock()
	if cancel == nil {
		return Played{}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res
}

// maxRecording bounds a recording (about 5 minutes of 48 kHz stereo);
// beyond it, new audio is dropped and the recording reports an error.
const maxRecording = 64 << 20

// recorder keeps what arecord captures, in memory.
type recorder struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	data bytes.Buffer
	err  error
	errs *tail
}

func (r *recorder) start(a Audio, log *slog.Logger) error {
	if _, err := audioFormat(a); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return errors.New("audio recorder already running")
	}
	cmd := exec.Command("arecord", alsaArgs(a)...)
	r.errs = newTail(4096)
	cmd.Stderr = r.errs
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("arecord: %w", err)
	}
	r.cmd, r.done, r.err = cmd, make(chan struct{}), nil
	r.data.Reset()
	log.Info("audio recorder started", "device", a.Device)
	go func(done chan struct{}) {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := out.Read(buf)
			r.mu.Lock()
			if r.data.Len()+n > maxRecording {
				r.err = fmt.Errorf("recording over %d bytes: the rest was dropped", maxRecording)
			} else {
				r.data.Write(buf[:n])
			}
			r.mu.Unlock()
			if err != nil {
				if err != io.EOF {
					r.mu.Lock()
					r.err = err
					r.mu.Unlock()
				}
				return
			}
		}
	}(r.done)
	return nil
}

// stop interrupts arecord and returns what it recorded.
func (r *recorder) stop() ([]byte, error) {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return nil, errors.New("audio recorder not running")
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done: // the pipe closes when arecord exits
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	cmd.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, fmt.Errorf("arecord: %w: %s", r.err, r.errs.bytes())
	}
	return bytes.Clone(r.data.Bytes()), nil
}

// waitOrKill waits for cmd, killing it after d.
func waitOrKill(cmd *exec.Cmd, d time.Duration) {
	t := time.AfterFunc(d, func() { cmd.Process.Kill() })
	cmd.Wait()
	t.Stop()
}
