package process

import (
	"net"
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
