// Package testbox starts real callboxd processes on 127.0.0.1 with
// simulated devices and drives them through the control API. The process
// tests and `make demo` share it.
package testbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callbox/callbox/internal/control"
)

// Box is one running daemon.
type Box struct {
	Name   string
	Dir    string // state dir, config, socket and recordings live here
	Socket string
	Addr   string // the call port it listens on
	FP     string // its fingerprint
	Client *control.Client

	bin  string
	env  []string
	wrap []string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer // stderr, for failure messages
	tee  io.Writer
	exit error
}

// Options shape a box's config.
type Options struct {
	AutoAnswer  bool
	Extra       string    // more TOML appended to the config (top-level keys first)
	Log         io.Writer // also copy the daemon's log here (nil: keep it only in memory)
	RecordVideo bool
	RecordAudio bool
	Env         []string // extra environment, e.g. NOTIFY_SOCKET=...
	// Listen is the call port's address; default "127.0.0.1:0".
	Listen string
	// Wrap is a command that runs the daemon, e.g. {"ip", "netns", "exec",
	// "ns1"}; it must exec the daemon so that signals reach it.
	Wrap []string
}

// T is what StartT needs of a test (testing.TB has it all).
type T interface {
	Helper()
	Context() context.Context
	TempDir() string
	Fatal(args ...any)
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
}

// StartT is Start for a test: the box lives in a directory of the test's,
// a failure to start fails the test, and the box is stopped when the test
// ends, its log printed if the test failed.
func StartT(t T, bin, name string, o Options) *Box {
	t.Helper()
	b, err := Start(t.Context(), bin, name, filepath.Join(t.TempDir(), name), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", b.Name, b.Log())
		}
	})
	return b
}

// Start runs callboxd (the binary at bin) as box name in dir, waits until
// its control socket answers, and reads its address and fingerprint.
func Start(ctx context.Context, bin, name, dir string, o Options) (*Box, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b := &Box{Name: name, Dir: dir, Socket: filepath.Join(dir, "control.sock"), bin: bin, tee: o.Log, env: o.Env, wrap: o.Wrap}
	listen := o.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	cfg := fmt.Sprintf(`name = %q
state_dir = %q
listen = %q
control_socket = %q
auto_answer = %v
%s
`, name, filepath.Join(dir, "state"), listen, b.Socket, o.AutoAnswer, o.Extra)
	if !strings.Contains(o.Extra, "[web]") {
		// Every box would take the default page port: no page unless asked.
		cfg += "[web]\nlisten = \"\"\n"
	}
	if !strings.Contains(o.Extra, "[discovery]") {
		// mDNS on the host's interfaces would reach the real network.
		cfg += "[discovery]\nenabled = false\n"
	}
	if o.RecordVideo || o.RecordAudio {
		cfg += "[record]\n"
		if o.RecordVideo {
			cfg += fmt.Sprintf("video = %q\n", b.VideoRecording())
		}
		if o.RecordAudio {
			cfg += fmt.Sprintf("audio = %q\n", b.AudioRecording())
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "callbox.toml"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	b.Client = control.NewClient(b.Socket)
	return b, b.start(ctx)
}

// InRoom is Options.Extra for a box in a simulated room (device/audio.Room,
// the default acoustics) whose talker talks as talk says: "always",
// "never", "even" or "odd".
func InRoom(talk string) string {
	return fmt.Sprintf("[audio]\ncapture = \"room\"\nplayback = \"room\"\n[audio.room]\ntalk = %q\n", talk)
}

// VideoRecording is where the box records the peer's frames (MJPEG).
func (b *Box) VideoRecording() string { return filepath.Join(b.Dir, "peer-video.mjpeg") }

// AudioRecording is where the box records what its speaker played (s16le).
func (b *Box) AudioRecording() string { return filepath.Join(b.Dir, "played-audio.raw") }

func (b *Box) start(ctx context.Context) error {
	args := append(append([]string(nil), b.wrap...), b.bin, "-config", filepath.Join(b.Dir, "callbox.toml"))
	b.cmd = exec.Command(args[0], args[1:]...)
	b.cmd.Env = append(os.Environ(), b.env...)
	var w io.Writer = &lockedWriter{mu: &b.mu, w: &b.log}
	if b.tee != nil {
		w = io.MultiWriter(w, b.tee)
	}
	b.cmd.Stderr = w
	b.cmd.Stdout = w
	if err := b.cmd.Start(); err != nil {
		return err
	}
	b.done = make(chan struct{})
	go func() {
		err := b.cmd.Wait()
		b.mu.Lock()
		b.exit = err
		b.mu.Unlock()
		close(b.done)
	}()
	// Generous: a race-built daemon pre-encoding its test images on a
	// 2-core machine that runs other test packages too took over 20 s.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var id control.ID
		err := b.Client.Do(ctx, "GET", "/v1/id", nil, &id)
		if err == nil {
			b.Addr, b.FP = id.Listen, id.Fingerprint
			return nil
		}
		select {
		case <-b.done:
			return fmt.Errorf("%s exited at start: %v\n%s", b.Name, b.ExitErr(), b.Log())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Kill()
			return fmt.Errorf("%s: control socket never answered: %v\n%s", b.Name, err, b.Log())
		}
	}
}

// Restart starts the same box again after it stopped.
func (b *Box) Restart(ctx context.Context) error { return b.start(ctx) }

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Log returns what the daemon wrote to stderr so far.
func (b *Box) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// ExitErr is how the process ended (nil while running or after exit 0).
func (b *Box) ExitErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.exit
}

// Exited is closed when the process has ended.
func (b *Box) Exited() <-chan struct{} { return b.done }

// Stop sends SIGTERM and waits up to 10 s, then kills.
func (b *Box) Stop() error {
	if b.cmd == nil || b.cmd.Process == nil {
		return nil
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
		return b.ExitErr()
	case <-time.After(10 * time.Second):
		b.Kill()
		return errors.New(b.Name + " did not stop within 10s of SIGTERM")
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (b *Box) Kill() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Kill()
		<-b.done
	}
}

// PID is the daemon's process id (0 before it started). A box started
// through Options.Wrap must exec the daemon, so this is the daemon's.
func (b *Box) PID() int {
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Signal sends sig to the daemon, e.g. SIGSTOP and SIGCONT to freeze and
// resume it. It fails once the process has ended.
func (b *Box) Signal(sig os.Signal) error {
	if b.cmd == nil || b.cmd.Process == nil {
		return errors.New(b.Name + " was never started")
	}
	select {
	case <-b.done:
		return errors.New(b.Name + " has exited")
	default:
	}
	return b.cmd.Process.Signal(sig)
}

// Pair makes each box know the other.
func Pair(ctx context.Context, a, b *Box) error {
	if err := a.Client.Do(ctx, "POST", "/v1/peers", control.Peer{Name: b.Name, Fingerprint: b.FP, Address: b.Addr}, nil); err != nil {
		return fmt.Errorf("pair %s with %s: %w", a.Name, b.Name, err)
	}
	if err := b.Client.Do(ctx, "POST", "/v1/peers", control.Peer{Name: a.Name, Fingerprint: a.FP, Address: a.Addr}, nil); err != nil {
		return fmt.Errorf("pair %s with %s: %w", b.Name, a.Name, err)
	}
	return nil
}

// Status fetches the box's status.
func (b *Box) Status(ctx context.Context) (control.Status, error) {
	var st control.Status
	err := b.Client.Do(ctx, "GET", "/v1/status", nil, &st)
	return st, err
}

// WaitState polls until the box reaches state (e.g. "in call") or timeout.
func (b *Box) WaitState(ctx context.Context, state string, timeout time.Duration) (control.Status, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := b.Status(ctx)
		if err == nil && st.Phone.State.String() == state {
			return st, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return st, fmt.Errorf("%s: never reached %q: %w", b.Name, state, err)
			}
			return st, fmt.Errorf("%s: state %q after %v, want %q (last end %q)", b.Name, st.Phone.State, timeout, state, st.Phone.LastEnd)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// LongPress holds the box's simulated button: it opens the pairing window.
func (b *Box) LongPress(ctx context.Context) error {
	return b.Client.Do(ctx, "POST", "/v1/press", control.PressRequest{Long: true}, nil)
}

// Peers lists the box's paired peers.
func (b *Box) Peers(ctx context.Context) ([]control.Peer, error) {
	var list []control.Peer
	err := b.Client.Do(ctx, "GET", "/v1/peers", nil, &list)
	return list, err
}

// WaitPairing polls until the box's pairing state is state (e.g.
// "paired") for window n or later, or timeout.
func (b *Box) WaitPairing(ctx context.Context, state string, timeout time.Duration) (control.Pairing, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := b.Status(ctx)
		if err == nil && st.Pairing.State == state {
			return st.Pairing, nil
		}
		if time.Now().After(deadline) {
			return st.Pairing, fmt.Errorf("%s: pairing state %q (%s) after %v, want %q: %v", b.Name, st.Pairing.State, st.Pairing.Error, timeout, state, err)
		}
		select {
		case <-ctx.Done():
			return st.Pairing, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Press presses the box's simulated button.
func (b *Box) Press(ctx context.Context) error {
	return b.Client.Do(ctx, "POST", "/v1/press", control.PressRequest{}, nil)
}

// BuildDaemon builds callboxd into a new temporary directory, with the
// race detector when race is set (the daemons then run under it too). It
// returns the binary's path and a function that removes the directory.
func BuildDaemon(race bool) (bin string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "callbox-bin-")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "callboxd")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/callbox/callbox/cmd/callboxd")...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building callboxd: %w", err)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// BuildCLI builds the callbox control tool into a new temporary
// directory. It returns the binary's path and a function that removes the
// directory.
func BuildCLI() (bin string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "callbox-cli-")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "callbox")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/callbox/callbox/cmd/callbox")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building callbox: %w", err)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// CLI runs the callbox tool at bin against the box's control socket with
// args and returns what it printed (stdout and stderr) and its error.
func (b *Box) CLI(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"-socket", b.Socket}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
