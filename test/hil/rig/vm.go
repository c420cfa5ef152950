// Package rig is the host side of the hardware-in-the-loop rig: it boots a
// Debian kernel in QEMU with a per-scenario initramfs payload, talks to the
// agent inside (package guest), and checks what came out of the real
// drivers (LED blink timing, audio streams cut at any phase).
package rig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/test/hil/guest"
)

// VMConfig describes one boot.
type VMConfig struct {
	Arch   string // "amd64" (qemu-system-x86_64, pc) or "arm64" (qemu-system-aarch64, virt, cortex-a72)
	Kernel string // amd64: an uncompressed vmlinux (booted through qboot); arm64: an Image
	Initrd string // base archive and payload, concatenated
	Accel  string // "tcg" or "kvm" (amd64 only)
	MemMB  int    // default 512
	// Console is the file the serial console is written to (kept as the
	// scenario's log).
	Console string
	// Forward maps guest TCP ports to host ports on 127.0.0.1 (hostfwd).
	// The agent's port is always forwarded.
	Forward map[int]int
	// Ready bounds the wait for the agent to answer after QEMU started.
	Ready time.Duration
	// Display gives the guest QEMU's standard VGA (amd64; the bochs DRM
	// driver makes it /dev/fb0) with the console cursor off, so that only
	// the daemon draws on it.
	Display bool
	// QMP, if set, is the path of a QMP monitor socket (VM.Screendump).
	QMP string
	// ICount, if set, is QEMU's -icount (TCG only), e.g. "shift=0": the
	// guest's clock then follows the instructions it executes, so that
	// an emulator slower than the guest's work makes a slow guest, whose
	// sound cards, timers and programs keep pace with each other, rather
	// than a starved one, whose sound cards run on while its programs
	// fall behind.
	ICount string
}

// VM is a running guest. Its methods may be called from any goroutine.
type VM struct {
	Agent *Client       // the agent inside, through the forwarded port
	Boot  time.Duration // from starting QEMU to the agent's first answer

	cfg  VMConfig
	cmd  *exec.Cmd
	done chan struct{} // closed when QEMU has ended
	mu   sync.Mutex
	exit error
	qemu *tailWriter // QEMU's own output, for errors
}

// FreePort returns a TCP port on 127.0.0.1 nothing listens on now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// KVMUsable reports whether /dev/kvm is backed by real hardware
// virtualisation (vmx or svm in /proc/cpuinfo) and can be opened. On
// machines where /dev/kvm is a software layer, stock kernels hang under it.
func KVMUsable() bool {
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	hw := false
	for _, line := range strings.Split(string(info), "\n") {
		if strings.HasPrefix(line, "flags") {
			for _, f := range strings.Fields(line) {
				if f == "vmx" || f == "svm" {
					hw = true
				}
			}
			break
		}
	}
	if !hw {
		return false
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// qemuArgs builds the command line.
func qemuArgs(cfg VMConfig) (string, []string, error) {
	mem := cfg.MemMB
	if mem == 0 {
		mem = 512
	}
	fwd := "user,id=n0"
	for g, h := range cfg.Forward {
		fwd += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", h, g)
	}
	common := []string{"-smp", "1", "-m", strconv.Itoa(mem), "-kernel", cfg.Kernel, "-initrd", cfg.Initrd,
		"-display", "none", "-monitor", "none", "-serial", "file:" + cfg.Console, "-no-reboot",
		"-netdev", fwd}
	if cfg.QMP != "" {
		common = append(common, "-qmp", "unix:"+cfg.QMP+",server=on,wait=off")
	}
	if cfg.ICount != "" {
		if cfg.Accel == "kvm" {
			return "", nil, errors.New("rig: -icount needs TCG, not KVM")
		}
		common = append(common, "-icount", cfg.ICount)
	}
	appendArgs := "console=ttyS0 panic=-1"
	if cfg.Display {
		if cfg.Arch != "amd64" {
			return "", nil, fmt.Errorf("rig: a display is only wired for amd64, not %s", cfg.Arch)
		}
		// fbcon binds to /dev/fb0 too; with the kernel's messages on the
		// serial console and no cursor it leaves the picture alone.
		common = append(common, "-vga", "std")
		appendArgs += " vt.global_cursor_default=0"
	}
	switch cfg.Arch {
	case "amd64":
		accel, cpu := "tcg", "max"
		if cfg.Accel == "kvm" {
			accel, cpu = "kvm", "host"
		}
		// qboot and an uncompressed kernel boot in ~2.5 s under TCG;
		// virtio-net has no link-up delay (e1000 takes ~2.5 s); romfile=
		// keeps iPXE's option ROM (and its package) out.
		return "qemu-system-x86_64", append(common, "-M", "pc", "-accel", accel, "-cpu", cpu,
			"-bios", "/usr/share/qemu/qboot.rom", "-device", "virtio-net-pci,netdev=n0,romfile=",
			"-append", appendArgs), nil
	case "arm64":
		return "qemu-system-aarch64", append(common, "-M", "virt", "-accel", "tcg", "-cpu", "cortex-a72",
			"-device", "virtio-net-pci,netdev=n0,romfile=", "-append", "console=ttyAMA0 panic=-1"), nil
	}
	return "", nil, fmt.Errorf("rig: unknown arch %q", cfg.Arch)
}

// Start boots the guest and waits until its agent answers (at most
// cfg.Ready, default 90 s). The VM is stopped again if that fails.
func Start(ctx context.Context, cfg VMConfig) (*VM, error) {
	agentPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	fw := map[int]int{guest.Port: agentPort}
	for g, h := range cfg.Forward {
		fw[g] = h
	}
	cfg.Forward = fw
	bin, args, err := qemuArgs(cfg)
	if err != nil {
		return nil, err
	}
	v := &VM{cfg: cfg, done: make(chan struct{}), qemu: &tailWriter{max: 16 << 10},
		Agent: NewClient(fmt.Sprintf("http://127.0.0.1:%d", agentPort))}
	v.cmd = exec.Command(bin, args...)
	v.cmd.Stdout, v.cmd.Stderr = v.qemu, v.qemu
	began := time.Now()
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("rig: start %s: %w", bin, err)
	}
	go func() {
		err := v.cmd.Wait()
		v.mu.Lock()
		v.exit = err
		v.mu.Unlock()
		close(v.done)
	}()
	wait := cfg.Ready
	if wait == 0 {
		wait = 90 * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		var r guest.Ready
		// Short tries: until the guest's network is up, QEMU accepts the
		// forwarded connection and then never answers on it.
		cctx, ccancel := context.WithTimeout(rctx, 500*time.Millisecond)
		err := v.Agent.Get(cctx, "/v1/ready", &r)
		ccancel()
		if err == nil {
			v.Boot = time.Since(began)
			return v, nil
		}
		select {
		case <-v.done:
			return nil, fmt.Errorf("rig: qemu ended before the agent answered: %v\n%s", v.exitErr(), v.qemu.String())
		case <-rctx.Done():
			v.Kill()
			return nil, fmt.Errorf("rig: agent did not answer within %v: %v (console: %s)", wait, err, cfg.Console)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (v *VM) exitErr() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.exit
}

// Stop asks the agent to stop the daemon and power the guest off, and
// waits up to timeout for QEMU to end; then it kills QEMU. It returns how
// QEMU ended when that was not a clean exit.
func (v *VM) Stop(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	v.Agent.Post(ctx, "/v1/shutdown", nil, nil)
	cancel()
	select {
	case <-v.done:
		return v.exitErr()
	case <-time.After(timeout):
		v.Kill()
		return errors.New("rig: guest did not power off in time; killed")
	}
}

// State says whether QEMU is still running and, if it ended, how, with
// the tail of what it printed: a scenario that lost the agent reports it,
// so that a guest gone quiet can be told from a QEMU that died.
func (v *VM) State() string {
	select {
	case <-v.done:
		out := strings.TrimSpace(v.qemu.String())
		if out == "" {
			out = "(nothing)"
		}
		return fmt.Sprintf("qemu had ended (%v); its output: %s", v.exitErr(), out)
	default:
		return "qemu still running"
	}
}

// Kill ends QEMU at once and waits for it.
func (v *VM) Kill() {
	v.cmd.Process.Kill()
	<-v.done
}

// Exited is closed when QEMU has ended.
func (v *VM) Exited() <-chan struct{} { return v.done }

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
