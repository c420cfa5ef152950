package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSystemd listens where $NOTIFY_SOCKET points and collects messages.
func fakeSystemd(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

func recv(t *testing.T, c *net.UnixConn, within time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func TestNotifyLoopPingsOnlyWhenHealthy(t *testing.T) {
	sys, path := fakeSystemd(t)
	t.Setenv("NOTIFY_SOCKET", path)
	n, err := newNotifier(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.close()
	var sick atomic.Bool
	var state atomic.Value
	state.Store("idle")
	kick := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		notifyLoop(ctx, n, 100*time.Millisecond, func() string { return state.Load().(string) }, kick,
			func(context.Context) error {
				if sick.Load() {
					return errors.New("camera stalled")
				}
				return nil
			})
		close(done)
	}()
	defer func() { cancel(); <-done }()

	if m := recv(t, sys, 2*time.Second); m != "STATUS=idle" {
		t.Fatalf("first message %q, want STATUS=idle", m)
	}
	if m := recv(t, sys, 2*time.Second); m != "WATCHDOG=1" {
		t.Fatalf("got %q, want WATCHDOG=1", m)
	}
	state.Store("in call with hall, 30/30 fps")
	kick <- struct{}{}
	for i := 0; ; i++ {
		m := recv(t, sys, 2*time.Second)
		if m == "STATUS=in call with hall, 30/30 fps" {
			break
		}
		if m != "WATCHDOG=1" || i > 20 {
			t.Fatalf("got %q, want the new status", m)
		}
	}
	// A sick daemon stops pinging: after the in-flight ping, silence.
	sick.Store(true)
	recv(t, sys, 120*time.Millisecond)
	for range 5 {
		if m := recv(t, sys, 120*time.Millisecond); m == "WATCHDOG=1" {
			t.Fatal("pinged the watchdog while unhealthy")
		}
	}
	sick.Store(false)
	if m := recv(t, sys, 2*time.Second); m != "WATCHDOG=1" {
		t.Fatalf("got %q after recovery, want WATCHDOG=1", m)
	}
}

func TestWatchdogInterval(t *testing.T) {
	cases := []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"10000000", "", 10 * time.Second, false},
		{"10000000", "1", 0, false}, // meant for another process
		{"x", "", 0, true},
		{"-5", "", 0, true},
	}
	for _, c := range cases {
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		got, err := watchdogInterval()
		if got != c.want || (err != nil) != c.err {
			t.Errorf("USEC=%q PID=%q: %v, %v", c.usec, c.pid, got, err)
		}
	}
}

func TestNoNotifySocketIsQuiet(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := newNotifier(slog.New(slog.DiscardHandler))
	if err != nil || n.send("READY=1") != nil {
		t.Fatal("notifier without a socket should do nothing", err)
	}
}
