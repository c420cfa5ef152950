package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// listenerConfig sets the call listener's limits. Zero values mean the
// defaults.
type listenerConfig struct {
	// Slots is how many connections may be in their handshake at once;
	// beyond that they are closed at once, so that a flood cannot hold the
	// daemon's memory. Default 16.
	Slots int
	// Reserved of the slots are kept for sources a paired peer connected
	// from or is known at (friend), so that a flood from many addresses
	// cannot keep a paired call out. Default 8.
	Reserved int
	// PerSource is how many slots one source (an IPv4 address, an IPv6
	// /64) may hold, so one host cannot take every slot. Default 4.
	PerSource int
	// Friend reports whether a source address belongs to a paired peer;
	// nil: none does.
	Friend func(netip.Addr) bool
	Logger *slog.Logger
}

func (c *listenerConfig) setDefaults() {
	if c.Slots <= 0 {
		c.Slots = 16
	}
	if c.Reserved <= 0 || c.Reserved >= c.Slots {
		c.Reserved = c.Slots / 2
	}
	if c.PerSource <= 0 {
		c.PerSource = 4
	}
	if c.Friend == nil {
		c.Friend = func(netip.Addr) bool { return false }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// listenerStats are the call listener's figures.
type listenerStats struct {
	Accepted uint64 // connections given a slot
	Dropped  uint64 // closed before their handshake for lack of a slot
	InUse    int    // slots held now
	Friends  int    // of them, reserved ones
}

// callListener accepts connections on the call port and runs serve for
// each in a goroutine of its own, within its slot limits. Run owns the
// accept loop; Check says whether it still accepts.
type callListener struct {
	cfg   listenerConfig
	ln    net.Listener
	serve func(ctx context.Context, conn net.Conn)

	mu         sync.Mutex
	per        map[string]int // slots held per source
	general    int            // slots held outside the reserve
	friends    int            // reserved slots held
	st         listenerStats
	dropLogged time.Time
	running    bool
	// A run of Accept failures (out of file descriptors, say): when it
	// began, the last one and its error; zero once Accept works again.
	failSince, failLast, failLogged time.Time
	failErr                         error
	failCount                       int
}

func newCallListener(ln net.Listener, cfg listenerConfig, serve func(ctx context.Context, conn net.Conn)) *callListener {
	cfg.setDefaults()
	return &callListener{cfg: cfg, ln: ln, serve: serve, per: map[string]int{}}
}

// Addr is where the listener listens.
func (l *callListener) Addr() net.Addr { return l.ln.Addr() }

// sourceKey groups connections by where they come from: an IPv4 address
// or an IPv6 /64 (one host usually has a whole /64).
func sourceKey(a net.Addr) (string, netip.Addr) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String(), netip.Addr{}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String(), ip
	}
	return ip.String(), ip
}

// take gives conn's source a slot, or says why not. A friend takes a
// general slot while there is one, then a reserved one.
func (l *callListener) take(src string, ip netip.Addr) (release func(), why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per[src] >= l.cfg.PerSource {
		return nil, "too many handshakes from one source"
	}
	reserved := false
	switch {
	case l.general < l.cfg.Slots-l.cfg.Reserved:
		l.general++
	case l.friends < l.cfg.Reserved && l.cfg.Friend(ip):
		l.friends++
		reserved = true
	default:
		return nil, "too many handshakes under way"
	}
	l.per[src]++
	l.st.Accepted++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if reserved {
			l.friends--
		} else {
			l.general--
		}
		if l.per[src]--; l.per[src] <= 0 {
			delete(l.per, src)
		}
	}, ""
}

// Run accepts until ctx ends (the caller closes the listener then), and
// waits for the connections it started serving.
func (l *callListener) Run(ctx context.Context) {
	l.mu.Lock()
	l.running = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
	}()
	var wg sync.WaitGroup
	defer wg.Wait() // serve ends with ctx
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.acceptFailed(err)
			select {
			case <-time.After(100 * time.Millisecond): // e.g. out of file descriptors
			case <-ctx.Done():
				return
			}
			continue
		}
		l.mu.Lock()
		l.failSince, l.failLast, l.failErr, l.failCount = time.Time{}, time.Time{}, nil, 0
		l.mu.Unlock()
		src, ip := sourceKey(conn.RemoteAddr())
		release, why := l.take(src, ip)
		if release == nil {
			l.dropped(conn, why)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release()
			l.serve(ctx, conn)
		}()
	}
}

// dropped closes a connection refused before its handshake, logging at
// most one line a second about it (a flood must not flood the journal).
func (l *callListener) dropped(conn net.Conn, why string) {
	conn.Close()
	l.mu.Lock()
	l.st.Dropped++
	n := l.st.Dropped
	logNow := time.Since(l.dropLogged) >= time.Second
	if logNow {
		l.dropLogged = time.Now()
	}
	l.mu.Unlock()
	if logNow {
		l.cfg.Logger.Warn("connection dropped before its handshake", "reason", why, "remote", conn.RemoteAddr().String(), "dropped_so_far", n)
	}
}

// acceptFailed records a failed Accept, logging the first of a run and
// then at most one line every 10 s (a loop retrying every 100 ms must not
// flood the journal).
func (l *callListener) acceptFailed(err error) {
	now := time.Now()
	l.mu.Lock()
	if l.failSince.IsZero() {
		l.failSince = now
	}
	l.failLast, l.failErr = now, err
	l.failCount++
	n := l.failCount
	logNow := now.Sub(l.failLogged) >= 10*time.Second
	if logNow {
		l.failLogged = now
	}
	l.mu.Unlock()
	if logNow {
		l.cfg.Logger.Error("accept failed", "err", err, "failures_in_a_row", n)
	}
}

// acceptFailingFor is how long Accept may keep failing (out of file
// descriptors, say) before the listener counts as not accepting.
const acceptFailingFor = 10 * time.Second

// Check reports why the listener does not accept calls, or nil: its loop
// is not running, or Accept has kept failing for acceptFailingFor and
// still fails (a failure older than a second with none since means the
// loop is waiting for a caller again).
func (l *callListener) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case !l.running:
		return errors.New("call listener: accept loop not running")
	case !l.failLast.IsZero() && time.Since(l.failLast) < time.Second && l.failLast.Sub(l.failSince) >= acceptFailingFor:
		return fmt.Errorf("call listener: accept keeps failing since %s: %v", l.failSince.Format(time.TimeOnly), l.failErr)
	}
	return nil
}

// Stats returns the listener's figures.
func (l *callListener) Stats() listenerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	st.InUse, st.Friends = l.general+l.friends, l.friends
	return st
}

// listenDatagrams opens the UDP socket for the calls' audio datagrams on
// the call port (the same address and port as the TCP listener) and
// gives it to the phone. Without it the box still works: hellos do not
// offer datagrams and the audio goes on the stream.
func (d *daemon) listenDatagrams(ctx context.Context, lc net.ListenConfig, at net.Addr) {
	pc, err := lc.ListenPacket(ctx, "udp", at.String())
	if err != nil {
		d.log.Warn("audio datagrams off: cannot listen on the call port's UDP; audio goes on the call's TCP stream", "err", err)
		return
	}
	d.phone.ServeDatagrams(pc)
	d.log.Info("audio datagrams on", "udp", pc.LocalAddr().String())
}
