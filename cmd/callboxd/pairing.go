package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/discovery"
	"github.com/callbox/callbox/stream/identity"
	"github.com/callbox/callbox/stream/pairing"
)

// pairTimeout bounds one pairing exchange (without a user's confirmation,
// which may take the rest of the window).
const pairTimeout = 10 * time.Second

// pairer runs button pairing: a window opened by a long press (or
// `callbox pair`), in which this box advertises pairing mode, looks for
// exactly one other box doing the same, and runs the exchange with it
// over TLS (ALPN callbox-pair/1). The window closes after one exchange,
// successful or not, or when its time is up. Safe for concurrent use.
type pairer struct {
	d *daemon

	mu      sync.Mutex
	st      control.Pairing
	open    bool
	busy    bool // an exchange is under way: others are refused
	cancel  context.CancelFunc
	confirm chan struct{} // closed by the user's confirmation
	stopped bool          // close was called: no window opens again

	// work counts the window's goroutines (the browser and the timer);
	// close waits for them, so none outlives the daemon's run.
	work sync.WaitGroup
}

// close ends an open window and waits for the window's goroutines. After
// it, start does nothing and nothing more is stored.
func (p *pairer) close() {
	p.mu.Lock()
	p.stopped = true
	if p.cancel != nil {
		p.cancel()
	}
	p.mu.Unlock()
	p.work.Wait()
}

// isOpen reports whether the window is open and no exchange is under way:
// the TLS server accepts an unknown key only then.
func (p *pairer) isOpen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open && !p.busy
}

func (p *pairer) status() control.Pairing {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// start opens the window (again, if it is open: the time starts anew). It
// returns at once; ctx is the daemon's.
func (p *pairer) start(ctx context.Context) control.Pairing {
	d := p.d
	window := time.Duration(d.cfg.Pairing.WindowS) * time.Second
	p.mu.Lock()
	if p.busy || p.stopped {
		st := p.st
		p.mu.Unlock()
		return st
	}
	if p.cancel != nil {
		p.cancel()
	}
	wctx, cancel := context.WithTimeout(ctx, window)
	p.cancel = cancel
	p.open = true
	p.confirm = make(chan struct{})
	p.st = control.Pairing{State: control.PairWaiting, Window: p.st.Window + 1, Until: time.Now().Add(window)}
	st := p.st
	p.work.Add(2) // under the lock: close cannot be waiting yet
	p.mu.Unlock()
	d.log.Info("pairing window open", "component", "pairing", "seconds", int(window.Seconds()))
	d.advertise()
	d.refreshLED(d.phone.Status().State)
	d.kickStatus()
	go func() { defer p.work.Done(); p.look(wctx, st.Window) }()
	go func() {
		defer p.work.Done()
		<-wctx.Done()
		if errors.Is(wctx.Err(), context.DeadlineExceeded) {
			p.finish(st.Window, pairing.Peer{}, "", fmt.Errorf("no other box in pairing mode answered within %v", window))
		}
	}()
	return st
}

// stop cancels an open window.
func (p *pairer) stop() {
	p.mu.Lock()
	w := p.st.Window
	open := p.open
	p.mu.Unlock()
	if open {
		p.finish(w, pairing.Peer{}, "", errors.New("cancelled"))
	}
}

// userConfirm confirms the code shown; only in state confirm.
func (p *pairer) userConfirm() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st.State != control.PairConfirm {
		return errors.New("no pairing is waiting for confirmation")
	}
	select {
	case <-p.confirm:
	default:
		close(p.confirm)
	}
	return nil
}

// finish closes window w (if it is still the current one) with the result,
// and shows it on the LED for 2 s.
func (p *pairer) finish(w int, peer pairing.Peer, addr string, err error) {
	d := p.d
	p.mu.Lock()
	if p.st.Window != w || !p.open {
		p.mu.Unlock()
		return
	}
	p.open = false
	if p.cancel != nil {
		p.cancel()
		p.cancel = nil
	}
	if err != nil {
		p.st = control.Pairing{State: control.PairFailed, Window: w, Error: err.Error(),
			Peer: p.st.Peer, Fingerprint: p.st.Fingerprint, Code: p.st.Code}
	} else {
		p.st = control.Pairing{State: control.PairPaired, Window: w, Peer: peer.Name,
			Fingerprint: peer.Fingerprint.String(), Code: peer.Code}
	}
	p.mu.Unlock()
	if err != nil {
		d.log.Warn("pairing failed", "component", "pairing", "err", err)
		d.panel.flash(gpio.ErrorBlink)
	} else {
		d.log.Info("paired", "component", "pairing", "peer", peer.Name, "fingerprint", peer.Fingerprint.String(), "address", addr)
		d.panel.flash(gpio.On)
	}
	d.advertise()
	d.kickStatus()
}

// look browses for the other box while window w is open. Of two boxes in
// pairing mode, the one with the smaller fingerprint dials: both look,
// only one connects. More than one other box in pairing mode at once ends
// the window: it cannot know which the user meant.
func (p *pairer) look(ctx context.Context, w int) {
	d := p.d
	if d.disc == nil {
		d.log.Warn("pairing window open but discovery is off: this box can only be dialled", "component", "pairing")
		return
	}
	since := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	d.disc.Query()
	for {
		list, changed := d.disc.Seen(since)
		var cands []discovery.Found
		for _, f := range list {
			if f.Pairing {
				cands = append(cands, f)
			}
		}
		if len(cands) > 1 {
			var names []string
			for _, c := range cands {
				names = append(names, c.Name)
			}
			p.finish(w, pairing.Peer{}, "", fmt.Errorf("more than one other box in pairing mode (%s): try again with only two", strings.Join(names, ", ")))
			return
		}
		if len(cands) == 1 {
			c := cands[0]
			fp, err := identity.ParseFingerprint(c.FP)
			if err == nil && string(d.id.Fingerprint[:]) < string(fp[:]) {
				p.initiate(ctx, w, c, fp)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
			d.disc.Query()
		}
	}
}

// initiate dials the other box's addresses in turn and runs the exchange
// with the first that completes the handshake with the advertised key.
func (p *pairer) initiate(ctx context.Context, w int, c discovery.Found, fp identity.Fingerprint) {
	d := p.d
	if !p.begin() {
		return
	}
	var errs []error
	for _, ap := range c.Addrs {
		addr := ap.String()
		tc, err := p.dialPair(ctx, addr, fp)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		peer, err := p.exchange(ctx, tc, true, fp)
		if err == nil {
			addr = netip.AddrPortFrom(ap.Addr(), ap.Port()).String()
			err = d.storePaired(peer, addr)
		}
		p.end()
		p.finish(w, peer, addr, err)
		return
	}
	p.end()
	p.finish(w, pairing.Peer{}, "", fmt.Errorf("could not reach %s: %w", c.Name, errors.Join(errs...)))
}

func (p *pairer) dialPair(ctx context.Context, addr string, fp identity.Fingerprint) (*tls.Conn, error) {
	tc, err := dialTLS(ctx, addr, p.d.id.PairClientTLS(fp), handshakeTimeout)
	if errors.Is(err, identity.ErrKeyMismatch) {
		p.d.log.Warn("refused pairing: the box at that address has another key than it advertised", "component", "pairing", "addr", addr, "err", err)
	}
	return tc, err
}

// begin marks an exchange under way; false if one already is or the
// window closed.
func (p *pairer) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.open || p.busy {
		return false
	}
	p.busy = true
	return true
}

func (p *pairer) end() {
	p.mu.Lock()
	p.busy = false
	p.mu.Unlock()
}

// accept runs the exchange on a pairing connection the call listener
// accepted (the TLS server let it in only while the window was open).
func (p *pairer) accept(ctx context.Context, tc *tls.Conn) {
	d := p.d
	remote := tc.RemoteAddr().String()
	fp, err := identity.PeerFingerprint(tc.ConnectionState())
	p.mu.Lock()
	w := p.st.Window
	p.mu.Unlock()
	if err != nil || !p.begin() {
		d.log.Warn("pairing connection refused: no window open or another exchange under way", "component", "pairing", "remote", remote)
		tc.Close()
		return
	}
	p.mu.Lock()
	wctx := ctx
	if p.cancel != nil {
		// The exchange ends with the window.
		var cancel context.CancelFunc
		wctx, cancel = context.WithCancel(ctx)
		prev := p.cancel
		p.cancel = func() { cancel(); prev() }
	}
	p.mu.Unlock()
	peer, err := p.exchange(wctx, tc, false, fp)
	addr := ""
	if err == nil {
		if ap, perr := netip.ParseAddrPort(remote); perr == nil && peer.Port != 0 {
			addr = netip.AddrPortFrom(ap.Addr(), peer.Port).String()
		}
		err = d.storePaired(peer, addr)
	}
	p.end()
	p.finish(w, peer, addr, err)
}

// exchange runs the pairing exchange: our name and call port, the peer's,
// and the checks of decide.
func (p *pairer) exchange(ctx context.Context, tc *tls.Conn, initiator bool, fp identity.Fingerprint) (pairing.Peer, error) {
	d := p.d
	timeout := pairTimeout
	if d.cfg.Pairing.Confirm {
		if dl, ok := ctx.Deadline(); ok {
			timeout = max(time.Until(dl), pairTimeout)
		}
	}
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port := uint16(0)
	if d.ln != nil {
		if ap, err := netip.ParseAddrPort(d.ln.Addr().String()); err == nil {
			port = ap.Port()
		}
	}
	return pairing.Exchange(ectx, tc, initiator, d.id.Fingerprint, fp, pairing.Hello{Name: d.cfg.Name, Port: port}, func(peer pairing.Peer) error {
		return p.decide(ectx, peer)
	})
}

// decide accepts a peer unless pairing it would replace or shadow a
// pairing we have; with pairing.confirm it waits for the user.
func (p *pairer) decide(ctx context.Context, peer pairing.Peer) error {
	d := p.d
	if peer.Fingerprint == d.id.Fingerprint {
		return errors.New("that is this box's own key")
	}
	if old, ok := d.peers.ByName(peer.Name); ok && old.Fingerprint != peer.Fingerprint {
		d.log.Warn("refused pairing: name is paired with another key", "component", "pairing",
			"peer", peer.Name, "paired", old.Fingerprint.String(), "offered", peer.Fingerprint.String())
		return fmt.Errorf("name %s is already paired with another key (remove it first)", peer.Name)
	}
	if old, ok := d.peers.ByFingerprint(peer.Fingerprint); ok && old.Name != peer.Name {
		d.log.Warn("refused pairing: key is paired under another name", "component", "pairing",
			"peer", peer.Name, "paired_as", old.Name, "fingerprint", peer.Fingerprint.String())
		return fmt.Errorf("key already paired as %s (remove it first)", old.Name)
	}
	code := peer.Code
	p.mu.Lock()
	p.st.Peer, p.st.Fingerprint, p.st.Code = peer.Name, peer.Fingerprint.String(), code
	need := d.cfg.Pairing.Confirm
	if need {
		p.st.State = control.PairConfirm
	}
	confirm := p.confirm
	p.mu.Unlock()
	d.kickStatus()
	d.log.Info("pairing with", "component", "pairing", "peer", peer.Name, "fingerprint", peer.Fingerprint.String(), "code", code)
	if !need {
		return nil
	}
	select {
	case <-confirm:
		return nil
	case <-ctx.Done():
		return errors.New("the code was not confirmed in time")
	}
}

// storePaired adds the peer to the paired list.
func (d *daemon) storePaired(peer pairing.Peer, addr string) error {
	if err := identity.ValidateAddress(addr); err != nil {
		addr = ""
	}
	// Where the pairing reached it is learnt, not configured.
	err := d.peers.Add(identity.Peer{Name: peer.Name, Fingerprint: peer.Fingerprint, LastAddress: addr})
	if errors.Is(err, identity.ErrNameTaken) {
		d.log.Warn("refused pairing: name is paired with another key", "component", "pairing", "peer", peer.Name)
	}
	if err == nil {
		d.panel.setStore("") // paired again: a store recovery is settled
	}
	return err
}

// advertise tells discovery what this box is now.
func (d *daemon) advertise() {
	if d.disc == nil || d.ln == nil {
		return
	}
	port := 0
	if ap, err := netip.ParseAddrPort(d.ln.Addr().String()); err == nil {
		port = int(ap.Port())
	} else if _, ps, err := net.SplitHostPort(d.ln.Addr().String()); err == nil {
		port, _ = strconv.Atoi(ps)
	}
	d.disc.SetInstance(discovery.Instance{Name: d.cfg.Name, Fingerprint: d.id.Fingerprint.String(),
		Port: port, Pairing: d.pair.isOpen() || d.pair.status().State == control.PairConfirm})
}
