package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callbox/callbox/internal/control"
)

// Agent serves the rig's API inside the guest. One Agent per guest; its
// handlers may run concurrently (net/http), each device helper has its own
// lock.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	ctl   *control.Client
	chip  *simChip // nil without GPIOSim
	ready Ready

	mu      sync.Mutex
	daemon  *exec.Cmd
	dDone   chan struct{} // closed when the current daemon process ended
	starts  int
	exitMsg string
	dlog    *tail

	video  videoFeeder
	play   player
	record recorder
	room   roomRunner
}

// New sets up what cfg asks for (the gpio-sim chip) and returns an agent
// ready to Serve. log may be nil.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Daemon) == 0 {
		return nil, errors.New("agent: config names no daemon")
	}
	a := &Agent{cfg: cfg, log: log, ctl: control.NewClient(cfg.Socket), dlog: newTail(256 << 10)}
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	a.ready = Ready{Kernel: strings.TrimSpace(string(rel)), Machine: runtime.GOARCH}
	if cfg.GPIOSim != nil {
		c, err := makeSimChip(*cfg.GPIOSim)
		if err != nil {
			return nil, err
		}
		a.chip = c
		a.ready.Chip, a.ready.SimPath = c.chip, c.dir
		log.Info("gpio-sim chip live", "chip", c.chip, "label", cfg.GPIOSim.Label, "lines", cfg.GPIOSim.Lines, "sysfs", c.dir)
	}
	return a, nil
}

// Serve answers the API until ctx ends or POST /v1/shutdown, then stops
// the feeders and the daemon (SIGTERM, then SIGKILL after 10 s). It blocks.
func (a *Agent) Serve(ctx context.Context) error {
	addr := a.cfg.Listen
	if addr == "" {
		addr = fmt.Sprintf(":%d", Port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{Handler: a.mux(cancel), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("agent listening", "addr", ln.Addr().String())
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shut, cancelShut := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShut()
	srv.Shutdown(shut)
	a.video.stop()
	a.play.stop()
	a.record.stop()
	a.room.stop()
	a.stopDaemon()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (a *Agent) mux(shutdown func()) *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /v1/ready", func(w http.ResponseWriter, r *http.Request) { reply(w, a.ready, nil) })
	m.HandleFunc("POST /v1/shutdown", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, nil)
		shutdown()
	})
	m.HandleFunc("POST /v1/daemon/start", func(w http.ResponseWriter, r *http.Request) {
		err := a.startDaemon()
		reply(w, a.daemonInfo(), err)
	})
	m.HandleFunc("GET /v1/daemon", func(w http.ResponseWriter, r *http.Request) { reply(w, a.daemonInfo(), nil) })
	m.HandleFunc("GET /v1/daemon/log", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(a.dlog.bytes())
	})
	// /v1/control/X is the daemon's own /v1/X on its unix socket.
	m.HandleFunc("/v1/control/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		var in any
		if len(bytes.TrimSpace(body)) > 0 {
			in = json.RawMessage(body)
		}
		var out []byte
		path := "/v1/" + strings.TrimPrefix(r.URL.Path, "/v1/control/")
		if err := a.ctl.Do(r.Context(), r.Method, path, in, &out); err != nil {
			fail(w, http.StatusBadGateway, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
	m.HandleFunc("POST /v1/gpio/press", func(w http.ResponseWriter, r *http.Request) {
		var p Press
		if !decode(w, r, &p) {
			return
		}
		reply(w, struct{}{}, a.press(r.Context(), p))
	})
	m.HandleFunc("POST /v1/gpio/pull", func(w http.ResponseWriter, r *http.Request) {
		var p Pull
		if !decode(w, r, &p) {
			return
		}
		var err error
		if a.chip == nil {
			err = errors.New("no gpio-sim chip configured")
		} else {
			err = a.chip.pull(p.Line, p.Up)
		}
		reply(w, struct{}{}, err)
	})
	m.HandleFunc("POST /v1/gpio/sample", func(w http.ResponseWriter, r *http.Request) {
		var s Sample
		if !decode(w, r, &s) {
			return
		}
		res, err := a.sample(r.Context(), s)
		reply(w, res, err)
	})
	m.HandleFunc("POST /v1/video/start", func(w http.ResponseWriter, r *http.Request) {
		var v Video
		if !decode(w, r, &v) {
			return
		}
		reply(w, struct{}{}, a.video.start(v, a.log))
	})
	m.HandleFunc("POST /v1/video/stop", func(w http.ResponseWriter, r *http.Request) {
		reply(w, a.video.stop(), nil)
	})
	m.HandleFunc("POST /v1/audio/play/start", func(w http.ResponseWriter, r *http.Request) {
		var au Audio
		if !decode(w, r, &au) {
			return
		}
		reply(w, struct{}{}, a.play.start(au, a.log))
	})
	m.HandleFunc("POST /v1/audio/play/stop", func(w http.ResponseWriter, r *http.Request) {
		reply(w, a.play.stop(), nil)
	})
	m.HandleFunc("POST /v1/audio/record/start", func(w http.ResponseWriter, r *http.Request) {
		var au Audio
		if !decode(w, r, &au) {
			return
		}
		reply(w, struct{}{}, a.record.start(au, a.log))
	})
	m.HandleFunc("POST /v1/audio/record/stop", func(w http.ResponseWriter, r *http.Request) {
		data, err := a.record.stop()
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(data)
	})
	m.HandleFunc("POST /v1/audio/room/start", func(w http.ResponseWriter, r *http.Request) {
		var rm Room
		if !decode(w, r, &rm) {
			return
		}
		reply(w, struct{}{}, a.room.start(rm, a.log))
	})
	m.HandleFunc("POST /v1/audio/room/mark", func(w http.ResponseWriter, r *http.Request) {
		var mk RoomMark
		if !decode(w, r, &mk) {
			return
		}
		sp, err := a.room.mark(mk)
		reply(w, sp, err)
	})
	m.HandleFunc("POST /v1/audio/room/stop", func(w http.ResponseWriter, r *http.Request) {
		reply(w, a.room.stop(), nil)
	})
	m.HandleFunc("POST /v1/exec", func(w http.ResponseWriter, r *http.Request) {
		var e Exec
		if !decode(w, r, &e) {
			return
		}
		reply(w, run(r.Context(), e), nil)
	})
	return m
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		fail(w, http.StatusBadRequest, err)
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(Error{Error: err.Error()})
}

// startDaemon starts callboxd unless it is running. Its output goes to the
// console (the rig's log) and to a tail kept for GET /v1/daemon/log.
func (a *Agent) startDaemon() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.daemon != nil {
		select {
		case <-a.dDone:
		default:
			return nil // running
		}
	}
	cmd := exec.Command(a.cfg.Daemon[0], a.cfg.Daemon[1:]...)
	cmd.Env = append(os.Environ(), a.cfg.Env...)
	out := io.MultiWriter(os.Stderr, a.dlog)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("agent: start daemon: %w", err)
	}
	done := make(chan struct{})
	a.daemon, a.dDone, a.exitMsg = cmd, done, ""
	a.starts++
	a.log.Info("daemon started", "pid", cmd.Process.Pid, "argv", strings.Join(a.cfg.Daemon, " "))
	go func() {
		err := cmd.Wait()
		msg := "exit 0"
		if err != nil {
			msg = err.Error()
		}
		a.log.Info("daemon ended", "pid", cmd.Process.Pid, "how", msg)
		a.mu.Lock()
		a.exitMsg = msg
		a.mu.Unlock()
		close(done)
	}()
	return nil
}

func (a *Agent) daemonInfo() Daemon {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := Daemon{Starts: a.starts, Exit: a.exitMsg}
	if a.daemon != nil {
		d.PID = a.daemon.Process.Pid
		select {
		case <-a.dDone:
		default:
			d.Running = true
		}
	}
	return d
}

// stopDaemon sends SIGTERM and waits up to 10 s, then kills.
func (a *Agent) stopDaemon() {
	a.mu.Lock()
	cmd, done := a.daemon, a.dDone
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// press pulls the line down (the button closes to ground), holds, and lets
// the pull-up take it back.
func (a *Agent) press(ctx context.Context, p Press) error {
	if a.chip == nil {
		return errors.New("no gpio-sim chip configured")
	}
	if p.HoldMs <= 0 || p.HoldMs > 10000 {
		return fmt.Errorf("hold_ms %d out of range 1..10000", p.HoldMs)
	}
	if err := a.chip.pull(p.Line, false); err != nil {
		return err
	}
	t := time.NewTimer(time.Duration(p.HoldMs) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return a.chip.pull(p.Line, true)
}

// sample reads a line's value at a fixed interval and keeps the changes.
func (a *Agent) sample(ctx context.Context, s Sample) (Samples, error) {
	var res Samples
	if a.chip == nil {
		return res, errors.New("no gpio-sim chip configured")
	}
	if s.Ms <= 0 || s.Ms > 60000 || s.EveryMs <= 0 || s.EveryMs > s.Ms {
		return res, fmt.Errorf("sample %d ms every %d ms: want 0 < every_ms <= ms <= 60000", s.Ms, s.EveryMs)
	}
	f, err := a.chip.valueFile(s.Line)
	if err != nil {
		return res, err
	}
	defer f.Close()
	tick := time.NewTicker(time.Duration(s.EveryMs) * time.Millisecond)
	defer tick.Stop()
	begin := time.Now()
	end := begin.Add(time.Duration(s.Ms) * time.Millisecond)
	last := false
	var prev time.Duration
	for {
		v, err := readValue(f)
		if err != nil {
			return res, fmt.Errorf("gpio-sim: read %s: %w", s.Line, err)
		}
		at := time.Since(begin)
		if gap := at - prev; res.Reads > 0 && gap > 10*time.Duration(s.EveryMs)*time.Millisecond && len(res.Stalls) < 100 {
			res.Stalls = append(res.Stalls, Stall{AtMs: float64(at.Microseconds()) / 1000, Ms: float64(gap.Microseconds()) / 1000})
		}
		prev = at
		switch {
		case res.Reads == 0:
			res.Start = v
		case v != last:
			res.Changes = append(res.Changes, Change{AtMs: float64(at.Microseconds()) / 1000, Value: v})
		}
		last = v
		res.Reads++
		if !time.Now().Before(end) {
			res.Ms = float64(time.Since(begin).Microseconds()) / 1000
			return res, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

// run runs a command to completion.
func run(ctx context.Context, e Exec) ExecResult {
	if len(e.Argv) == 0 {
		return ExecResult{Output: "empty argv", Code: -1}
	}
	d := time.Duration(e.TimeoutMs) * time.Millisecond
	if d <= 0 {
		d = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.Argv[0], e.Argv[1:]...).CombinedOutput()
	res := ExecResult{Output: string(out)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.Code = ee.ExitCode()
	default:
		res.Code = -1
		res.Output += err.Error()
	}
	return res
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf)
}
