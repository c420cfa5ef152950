//go:build linux && cgo

package process

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/callbox/callbox/internal/testbox"
)

// threadSlacks reads the timer slack of every thread of process pid.
func threadSlacks(t *testing.T, pid int) map[string]int64 {
	t.Helper()
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*"))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	out := map[string]int64{}
	for _, task := range tasks {
		tid := filepath.Base(task)
		b, err := os.ReadFile(filepath.Join("/proc", tid, "timerslack_ns"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out[tid] = v
	}
	return out
}

// Every thread of the daemon, the Go runtime's own included, runs with a
// timer slack of 1 ms, so that wake-ups due close together become one: a
// larger slack it inherits (systemd's TimerSlackNSec=) is kept, and
// CALLBOX_TIMER_SLACK_NS sets it outright. The box still calls and is
// called in each.
func TestTimerSlack(t *testing.T) {
	cases := []struct {
		name   string
		parent int64 // the slack the daemon inherits; 0: the test's own
		env    []string
		want   int64
	}{
		{name: "raised to 1 ms", want: 1_000_000},
		{name: "a larger one kept", parent: 5_000_000, want: 5_000_000},
		{name: "set by the environment", env: []string{"CALLBOX_TIMER_SLACK_NS=50000"}, want: 50_000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b *testbox.Box
			if c.parent != 0 {
				// The daemon is forked from this goroutine's thread and
				// inherits its slack.
				runtime.LockOSThread()
				old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(c.parent), 0, 0, 0); err != nil {
					t.Fatal(err)
				}
				b = start(t, "hall", testbox.Options{AutoAnswer: true, Env: c.env})
				unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
				runtime.UnlockOSThread()
			} else {
				b = start(t, "hall", testbox.Options{AutoAnswer: true, Env: c.env})
			}
			peer := start(t, "door", testbox.Options{AutoAnswer: true, Env: c.env})
			pair(t, b, peer)
			callAndCheck := func(from, to *testbox.Box) {
				t.Helper()
				if err := from.Press(t.Context()); err != nil {
					t.Fatal(err)
				}
				waitState(t, from, "in call", 10*time.Second)
				waitState(t, to, "in call", 10*time.Second)
				for tid, v := range threadSlacks(t, b.PID()) {
					if v != c.want {
						t.Errorf("thread %s of %s in a call: slack %d ns, want %d", tid, b.Name, v, c.want)
					}
				}
				if err := from.Press(t.Context()); err != nil {
					t.Fatal(err)
				}
				waitState(t, from, "idle", 5*time.Second)
				waitState(t, to, "idle", 5*time.Second)
			}
			callAndCheck(b, peer)
			callAndCheck(peer, b)
		})
	}
}
