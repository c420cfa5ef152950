package camera_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/device/camera/cameratest"
	"github.com/callbox/callbox/stream/media"
)

var vga = media.VideoFormat{Width: 640, Height: 480, FPS: 30}

// described is a fake that names its format like V4L2 does.
type described struct{ *cameratest.Fake }

func (described) Describe() string { return "640x480 MJPEG 30 fps" }

// opener is a scripted open function that records when it was called.
type opener struct {
	mu    sync.Mutex
	times []time.Time
	fail  bool               // while set, opens fail
	fakes []*cameratest.Fake // sources handed out, in order
	wrap  func(camera.Source) camera.Source
}

func (o *opener) open(ctx context.Context) (camera.Source, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.times = append(o.times, time.Now())
	if o.fail {
		return nil, errors.New("camera: open /dev/video0: no such file or directory")
	}
	f := cameratest.New(vga)
	o.fakes = append(o.fakes, f)
	if o.wrap != nil {
		return o.wrap(f), nil
	}
	return f, nil
}

func (o *opener) setFail(b bool) {
	o.mu.Lock()
	o.fail = b
	o.mu.Unlock()
}

func (o *opener) attempts() []time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]time.Time(nil), o.times...)
}

func (o *opener) fake(i int) *cameratest.Fake {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fakes[i]
}

// states collects OnChange calls.
type states struct {
	mu  sync.Mutex
	all []string
}

func (s *states) add(st string) {
	s.mu.Lock()
	s.all = append(s.all, st)
	s.mu.Unlock()
}

func (s *states) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.all...)
}

// nominal is the backoff schedule without jitter: 0.5 s doubling to 10 s.
func nominal(i int) time.Duration {
	d := 500 * time.Millisecond << i
	if i > 5 || d > 10*time.Second {
		return 10 * time.Second
	}
	return d
}

func TestResilientBackoffAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &opener{wrap: func(s camera.Source) camera.Source { return described{s.(*cameratest.Fake)} }}
		var st states
		r := camera.NewResilient(o.open, camera.ResilientConfig{OnChange: st.add})
		defer r.Close()
		synctest.Wait()
		if got := r.State(); got != "ok 640x480 MJPEG 30 fps" {
			t.Fatalf("State = %q", got)
		}

		o.fake(0).Frames <- media.Frame{Seq: 41, JPEG: []byte{1}}
		f, err := r.Read(t.Context())
		if err != nil || f.Seq != 0 || f.JPEG[0] != 1 {
			t.Fatalf("Read = %+v, %v; want the frame renumbered to 0", f, err)
		}

		// Unplug: the source fails and opening fails for a minute.
		o.setFail(true)
		failed := time.Now()
		o.fake(0).Errs <- errors.New("camera: /dev/video0 gone: no such device")
		synctest.Wait()
		if !o.fake(0).Closed() {
			t.Error("failed source not closed")
		}
		if s := r.State(); !strings.HasPrefix(s, "down: camera: /dev/video0 gone: no such device; retrying in ") {
			t.Errorf("State = %q", s)
		}
		got := make(chan media.Frame, 1)
		go func() {
			f, err := r.Read(t.Context())
			if err != nil {
				t.Errorf("Read while down: %v", err)
			}
			got <- f
		}()

		time.Sleep(60 * time.Second)
		synctest.Wait()
		select {
		case f := <-got:
			t.Fatalf("Read returned %+v while the camera was down", f)
		default:
		}
		retries := o.attempts()[1:]
		// With ±20% jitter on 0.5,1,2,4,8,10,10... s, 60 s hold 8 to 10 tries.
		if n := len(retries); n < 8 || n > 10 {
			t.Errorf("%d retries in 60 s, want 8..10", n)
		}
		prev := failed
		for i, at := range retries {
			gap, want := at.Sub(prev), nominal(i)
			if gap < want*8/10 || gap > want*12/10 {
				t.Errorf("retry %d after %v, want %v ±20%%", i, gap, want)
			}
			prev = at
		}

		// The camera comes back: the next retry opens it, frames flow.
		o.setFail(false)
		time.Sleep(12 * time.Second)
		synctest.Wait()
		if s := r.State(); s != "ok 640x480 MJPEG 30 fps" {
			t.Fatalf("State after recovery = %q", s)
		}
		o.fake(1).Frames <- media.Frame{Seq: 0, JPEG: []byte{2}}
		if f := <-got; f.Seq != 1 || f.JPEG[0] != 2 {
			t.Errorf("frame after recovery %+v, want Seq 1", f)
		}

		all := st.list()
		if len(all) < 3 || all[0] != "ok 640x480 MJPEG 30 fps" || !strings.HasPrefix(all[1], "down: ") || all[len(all)-1] != "ok 640x480 MJPEG 30 fps" {
			t.Errorf("OnChange saw %q", all)
		}
		stats := r.Stats()
		if stats.Opens != 2 || stats.Failures != uint64(1+len(retries)) || stats.Captured != 2 {
			t.Errorf("Stats = %+v", stats)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if !o.fake(1).Closed() {
			t.Error("Close left the source open")
		}
	})
}

func TestResilientHealthyResetsBackoff(t *testing.T) {
	for _, c := range []struct {
		ran  time.Duration
		want time.Duration // nominal wait after the third attempt's source fails
	}{
		{61 * time.Second, 500 * time.Millisecond}, // healthy: start over
		{time.Second, 2 * time.Second},             // flapping: keep doubling
	} {
		synctest.Test(t, func(t *testing.T) {
			o := &opener{fail: true}
			r := camera.NewResilient(o.open, camera.ResilientConfig{})
			defer r.Close()
			// Two failed opens (0.5 s, 1 s), then the third succeeds.
			synctest.Wait()
			time.Sleep(600 * time.Millisecond)
			synctest.Wait()
			o.setFail(false)
			time.Sleep(1300 * time.Millisecond)
			synctest.Wait()
			if n := len(o.attempts()); n != 3 || !strings.HasPrefix(r.State(), "ok") {
				t.Fatalf("%d attempts, state %q; want the third to succeed", n, r.State())
			}
			time.Sleep(c.ran)
			failed := time.Now()
			o.fake(0).Errs <- errors.New("broken pipe")
			time.Sleep(c.want * 12 / 10)
			synctest.Wait()
			at := o.attempts()
			if len(at) != 4 {
				t.Fatalf("%d attempts, want 4", len(at))
			}
			if gap := at[3].Sub(failed); gap < c.want*8/10 {
				t.Errorf("after running %v the retry came after %v, want %v ±20%%", c.ran, gap, c.want)
			}
		})
	}
}

func TestResilientCloseDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &opener{fail: true}
		r := camera.NewResilient(o.open, camera.ResilientConfig{MinBackoff: time.Minute, MaxBackoff: time.Hour})
		synctest.Wait()
		if s := r.State(); !strings.HasPrefix(s, "down: camera: open /dev/video0: no such file or directory; retrying in ") {
			t.Errorf("State = %q", s)
		}
		errc := make(chan error, 1)
		go func() { _, err := r.Read(t.Context()); errc <- err }()
		synctest.Wait()
		start := time.Now()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Close took %v of backoff", d)
		}
		if err := <-errc; !errors.Is(err, camera.ErrClosed) {
			t.Errorf("blocked Read = %v, want ErrClosed", err)
		}
		time.Sleep(time.Hour)
		if n := len(o.attempts()); n != 1 {
			t.Errorf("%d opens, want none after Close", n)
		}
		if err := r.Close(); err != nil {
			t.Error("second Close:", err)
		}
		if _, err := r.Read(t.Context()); !errors.Is(err, camera.ErrClosed) {
			t.Errorf("Read after Close = %v", err)
		}
	})
}

func TestResilientLatestWinsAndFormat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &opener{fail: true}
		want := media.VideoFormat{Width: 320, Height: 240, FPS: 15}
		r := camera.NewResilient(o.open, camera.ResilientConfig{Format: want})
		defer r.Close()
		synctest.Wait()
		if got := r.Format(); got != want {
			t.Errorf("Format before any open = %+v, want the configured %+v", got, want)
		}
		o.setFail(false)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := r.Format(); got != vga {
			t.Errorf("Format = %+v, want the source's", got)
		}
		fk := o.fake(0)
		fk.Frames <- media.Frame{JPEG: []byte{1}}
		fk.Frames <- media.Frame{JPEG: []byte{2}}
		fk.Frames <- media.Frame{JPEG: []byte{3}}
		synctest.Wait()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		f, err := r.Read(ctx)
		if err != nil || f.JPEG[0] != 3 {
			t.Fatalf("Read = %v, %v; want the newest frame", f.JPEG, err)
		}
		if _, err := r.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("second Read = %v, want to wait for a new frame", err)
		}
		if st := r.Stats(); st.Captured != 1 || st.Skipped != 2 || st.Opens != 1 || st.Failures != 1 {
			t.Errorf("Stats = %+v", st)
		}
	})
}

// Reopen replaces a working source at once: no failure, no backoff.
func TestResilientReopen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &opener{}
		r := camera.NewResilient(o.open, camera.ResilientConfig{})
		defer r.Close()
		synctest.Wait()
		if n := len(o.attempts()); n != 1 {
			t.Fatalf("%d opens at start", n)
		}
		r.Reopen()
		synctest.Wait()
		if n := len(o.attempts()); n != 2 {
			t.Fatalf("%d opens after Reopen, want 2", n)
		}
		if !o.fake(0).Closed() || o.fake(1).Closed() {
			t.Errorf("first source closed %v, second %v; want the first closed, the second open", o.fake(0).Closed(), o.fake(1).Closed())
		}
		st := r.Stats()
		if st.Failures != 0 || st.Opens != 2 || !strings.HasPrefix(r.State(), "ok") {
			t.Errorf("after Reopen: %+v, state %q; want 2 opens, no failure, ok", st, r.State())
		}
	})
}

// A camera standing by is checked once at start and closed; it is opened
// when it becomes active and delivers, closed again when it is not, and
// while closed its probe is asked now and then: a camera that went away
// is down (and opened on the backoff schedule), one that came back
// stands by again.
func TestResilientStandby(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &opener{}
		var probeErr error
		var mu sync.Mutex
		probes := 0
		var seen states
		r := camera.NewResilient(o.open, camera.ResilientConfig{Standby: true, OnChange: seen.add,
			Probe: func() error {
				mu.Lock()
				defer mu.Unlock()
				probes++
				return probeErr
			}})
		defer r.Close()
		synctest.Wait()
		if n := len(o.attempts()); n != 1 || !o.fake(0).Closed() {
			t.Fatalf("%d opens at start, first closed %v: want one check, closed", n, n > 0 && o.fake(0).Closed())
		}
		if st := r.State(); st != camera.StandbyState {
			t.Fatalf("state %q after the check, want standby", st)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		mu.Lock()
		p := probes
		mu.Unlock()
		if n := len(o.attempts()); n != 1 || p < 10 || p > 13 {
			t.Errorf("a minute standing by: %d opens, %d probes; want no open, a probe every 5 s", n, p)
		}

		// Active: opened, frames flow.
		r.SetActive(true)
		synctest.Wait()
		if n := len(o.attempts()); n != 2 || o.fake(1).Closed() {
			t.Fatalf("%d opens after SetActive(true), want the camera open", n)
		}
		got := make(chan media.Frame)
		go func() {
			f, err := r.Read(t.Context())
			if err == nil {
				got <- f
			}
		}()
		o.fake(1).Frames <- media.Frame{JPEG: []byte{1}}
		if f := <-got; len(f.JPEG) != 1 {
			t.Errorf("frame %v", f)
		}
		if !strings.HasPrefix(r.State(), "ok") {
			t.Errorf("state %q while active", r.State())
		}

		// Inactive: closed, no failure counted.
		r.SetActive(false)
		synctest.Wait()
		if !o.fake(1).Closed() || r.State() != camera.StandbyState || r.Stats().Failures != 0 {
			t.Fatalf("after SetActive(false): closed %v, state %q, %+v", o.fake(1).Closed(), r.State(), r.Stats())
		}

		// Unplugged while standing by: the probe says so, down, and the
		// open attempts on the backoff schedule fail.
		mu.Lock()
		probeErr = errors.New("stat /dev/video0: no such file or directory")
		mu.Unlock()
		o.setFail(true)
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if st := r.State(); !strings.HasPrefix(st, "down: ") || !strings.Contains(st, "retrying") {
			t.Fatalf("state %q after the probe failed, want down", st)
		}
		if !slicesHasPrefix(seen.list(), "down: stat /dev/video0") {
			t.Errorf("states %q: the probe's error never shown", seen.list())
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if n := len(o.attempts()); n < 4 {
			t.Errorf("%d opens while down, want retries", n)
		}
		// Back: the next open works, it is closed at once and stands by.
		mu.Lock()
		probeErr = nil
		mu.Unlock()
		o.setFail(false)
		time.Sleep(11 * time.Second)
		synctest.Wait()
		n := len(o.attempts())
		if st := r.State(); st != camera.StandbyState || !o.fake(2).Closed() {
			t.Fatalf("state %q after the camera came back, want standby (closed)", st)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if m := len(o.attempts()); m != n {
			t.Errorf("%d opens in a minute standing by after the recovery", m-n)
		}
		var downs int
		for _, s := range seen.list() {
			if strings.HasPrefix(s, "down") {
				downs++
			}
		}
		if downs == 0 {
			t.Errorf("states %q: never down", seen.list())
		}
	})
}

// slicesHasPrefix says whether one of list starts with prefix.
func slicesHasPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
