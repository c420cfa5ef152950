package process

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testbox"
)

// The daemon tells a (fake) systemd it is ready only once it serves, keeps
// STATUS= human and current, pings the watchdog, and says when it stops.
func TestSystemdNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	sys, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	env := []string{"NOTIFY_SOCKET=" + path, "WATCHDOG_USEC=1000000"}
	a := start(t, "hall", testbox.Options{AutoAnswer: true, Env: env})
	b := start(t, "door", testbox.Options{AutoAnswer: true})
	pair(t, a, b)

	var got []string
	wait := func(pred func(string) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		buf := make([]byte, 4096)
		for time.Now().Before(deadline) {
			sys.SetReadDeadline(deadline)
			n, err := sys.Read(buf)
			if err != nil {
				break
			}
			m := string(buf[:n])
			got = append(got, m)
			if pred(m) {
				return
			}
		}
		t.Fatalf("no %s from the daemon; got %q", what, got)
	}
	wait(func(m string) bool { return strings.Contains(m, "READY=1") && strings.Contains(m, "STATUS=idle") }, "READY=1 with STATUS=idle")
	wait(func(m string) bool { return m == "WATCHDOG=1" }, "watchdog ping")
	wait(func(m string) bool { return m == "WATCHDOG=1" }, "second watchdog ping")
	a.Press(t.Context())
	wait(func(m string) bool {
		return strings.HasPrefix(m, "STATUS=in call with door, ") && strings.HasSuffix(m, " fps")
	}, "in-call status")
	a.Stop()
	wait(func(m string) bool { return m == "STOPPING=1" }, "STOPPING=1")
}

// The watchdog is pinged only while the box can take a call: a daemon
// whose call port cannot accept (here: out of file descriptors, its limit
// lowered under it to what it holds) stops pinging, so systemd restarts
// it; given descriptors again, it pings again.
func TestWatchdogStopsWhileTheCallPortCannotAccept(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	path := filepath.Join(t.TempDir(), "notify.sock")
	sys, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	a := start(t, "hall", testbox.Options{Env: []string{"NOTIFY_SOCKET=" + path, "WATCHDOG_USEC=1000000"}})
	// pings counts the WATCHDOG=1 messages that arrive within d.
	pings := func(d time.Duration) int {
		n := 0
		buf := make([]byte, 4096)
		end := time.Now().Add(d)
		for {
			sys.SetReadDeadline(end)
			m, err := sys.Read(buf)
			if err != nil {
				return n
			}
			if string(buf[:m]) == "WATCHDOG=1" {
				n++
			}
		}
	}
	if n := pings(3 * time.Second); n < 2 {
		t.Fatalf("%d watchdog pings in 3 s from a healthy daemon", n)
	}
	st, err := a.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// OpenFDs counted the status request's own connection, closed by now:
	// one less leaves room for nothing more.
	limit := fmt.Sprint(st.Process.OpenFDs - 1)
	pid := fmt.Sprint(a.PID())
	if out, err := exec.Command("prlimit", "--pid", pid, "--nofile="+limit+":4096").CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v %s", err, out)
	}
	// Callers wait in the listen backlog; every accept fails.
	for range 2 {
		c, err := net.Dial("tcp", a.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// Accept may fail for 10 s before the box counts as deaf, then the
	// pings stop.
	quiet := 0
	deadline := time.Now().Add(30 * time.Second)
	for quiet < 3 && time.Now().Before(deadline) {
		if pings(time.Second) == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	if quiet < 3 {
		t.Fatal("the daemon kept pinging the watchdog while its call port could not accept")
	}
	waitLog(t, a, "not pinging the watchdog", "call listener: accept keeps failing", "too many open files")
	if out, err := exec.Command("prlimit", "--pid", pid, "--nofile=4096:4096").CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v %s", err, out)
	}
	if n := pings(3 * time.Second); n < 2 {
		t.Fatalf("%d watchdog pings in 3 s after the descriptors came back", n)
	}
	waitLog(t, a, "healthy again")
}
