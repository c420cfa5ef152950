package rig

import (
	"os/exec"
	"strings"
	"testing"
)

// A scenario that loses the agent can tell a QEMU that died (how, and its
// last words) from one still running.
func TestVMState(t *testing.T) {
	v := &VM{done: make(chan struct{}), qemu: &tailWriter{max: 1024}}
	if got := v.State(); got != "qemu still running" {
		t.Errorf("running: %q", got)
	}
	cmd := exec.Command("sh", "-c", "echo 'qemu-system-x86_64: terminating on signal 15' >&2; exit 3")
	cmd.Stdout, cmd.Stderr = v.qemu, v.qemu
	v.exit = cmd.Run()
	close(v.done)
	got := v.State()
	if !strings.Contains(got, "qemu had ended (exit status 3)") || !strings.Contains(got, "terminating on signal 15") {
		t.Errorf("ended: %q", got)
	}
}
