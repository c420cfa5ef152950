package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// notifier speaks systemd's notify protocol (sd_notify(3)): one datagram
// per message to $NOTIFY_SOCKET. Without the variable it does nothing.
type notifier struct {
	conn *net.UnixConn
	log  *slog.Logger
}

func newNotifier(log *slog.Logger) (*notifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return &notifier{log: log}, nil
	}
	// Go maps a leading '@' to the abstract namespace, as systemd means it.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("sd_notify: %s: %w", path, err)
	}
	return &notifier{conn: conn, log: log}, nil
}

// send sends one message such as "READY=1" or "STATUS=idle".
func (n *notifier) send(msg string) error {
	if n.conn == nil {
		return nil
	}
	n.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := n.conn.Write([]byte(msg))
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

func (n *notifier) close() {
	if n.conn != nil {
		n.conn.Close()
	}
}

// watchdogInterval reads $WATCHDOG_USEC (and $WATCHDOG_PID, which must be
// us if set). Zero means no watchdog.
func watchdogInterval() (time.Duration, error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("sd_notify: WATCHDOG_USEC=%q is not a positive number", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}

// health reports why the daemon is not really alive, or nil.
type health func(ctx context.Context) error

// notifyLoop keeps systemd told: STATUS= when the human state changes, and
// WATCHDOG=1 every half interval, but only while check passes. A daemon
// whose call loop or devices hang stops pinging and systemd restarts it.
func notifyLoop(ctx context.Context, n *notifier, wd time.Duration, status func() string, kick <-chan struct{}, check health) {
	period := 5 * time.Second // STATUS refresh while nothing else happens (figures change)
	if wd > 0 && wd/2 < period {
		period = wd / 2
	}
	t := time.NewTicker(period)
	defer t.Stop()
	var last string
	var sick error
	for {
		if s := status(); s != last {
			if err := n.send("STATUS=" + s); err != nil {
				n.log.Warn("telling systemd the status failed", "err", err)
			}
			last = s
		}
		select {
		case <-ctx.Done():
			return
		case <-kick:
			continue
		case <-t.C:
		}
		if wd == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, period/2)
		err := check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			if sick != nil {
				n.log.Info("healthy again", "component", "watchdog")
			}
			sick = nil
			n.send("WATCHDOG=1")
		case sick == nil || sick.Error() != err.Error():
			sick = err
			n.log.Error("not pinging the watchdog", "component", "watchdog", "err", err)
		}
	}
}

// humanStatus is the one-line state systemctl status shows.
func (d *daemon) humanStatus() string {
	st := d.phone.Status()
	var b strings.Builder
	switch {
	case st.Peer == nil:
		b.WriteString(st.State.String())
	case st.State.String() == "in call" && st.Call != nil:
		fmt.Fprintf(&b, "in call with %s, %.0f/%.0f fps", st.Peer.Name, st.Call.Out.VideoFPS, st.Call.In.VideoFPS)
		if !d.panel.device(devCamera).is(devUp) {
			b.WriteString(", audio-only")
		}
	case st.State.String() == "ringing":
		fmt.Fprintf(&b, "ringing: %s calling", st.Peer.Name)
	default:
		fmt.Fprintf(&b, "%s %s", st.State, st.Peer.Name)
	}
	d.panel.statusLine(&b)
	return b.String()
}

// stallAfter is how long a device that says it is fine may go without
// delivering before the daemon counts as hung.
const stallAfter = 3 * time.Second

// healthy checks that the box can take a call and that the parts that
// must keep moving do: the call listener accepts, the call loop answers
// and its bookkeeping of waiting connections is within its bounds, and
// each device either delivers or is known to be down (a device being
// re-opened is alive; a hung one is not) or stands by (closed while
// nobody needs it).
func (d *daemon) healthy(ctx context.Context) error {
	if err := d.calls.Check(); err != nil {
		return err
	}
	if err := d.phone.Check(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("call loop does not answer: %w", err)
		}
		return err
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	// A device that is not running (down, or closed while nobody needs
	// it) starts its clock afresh: it is judged from when it runs again.
	if f := d.fills.Load(); f != d.seenFills || d.fillsAt.IsZero() || !d.panel.device(devSpeaker).running() {
		d.seenFills, d.fillsAt = f, now
	} else if now.Sub(d.fillsAt) > stallAfter {
		return fmt.Errorf("speaker clock stalled for %v", now.Sub(d.fillsAt).Round(time.Second))
	}
	frameGap := stallAfter + 3*time.Second/time.Duration(d.cfg.Video.FPS)
	if f := d.frames.Load(); f != d.seenFrames || d.framesAt.IsZero() || !d.panel.device(devCamera).running() {
		d.seenFrames, d.framesAt = f, now
	} else if now.Sub(d.framesAt) > frameGap {
		return fmt.Errorf("camera delivered nothing for %v", now.Sub(d.framesAt).Round(time.Second))
	}
	return nil
}
