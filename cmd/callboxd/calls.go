package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/identity"
)

// dial opens an authenticated connection to a paired peer. It dials at
// once where the last call to it worked and its configured address, and
// wherever discovery hears its key while that runs, all in one race
// (dialRace): the first whose handshake shows the peer's key wins. The
// address that won is stored as the last one (the configured one stays).
// Whoever answers anywhere must have the peer's key: an address is only a
// hint.
func (d *daemon) dial(ctx context.Context, peer call.Peer) (net.Conn, error) {
	want, err := identity.ParseFingerprint(peer.Fingerprint)
	if err != nil {
		return nil, err
	}
	last := ""
	if p, ok := d.peers.ByName(peer.Name); ok {
		last = p.LastAddress
	}
	r := &dialRace{
		peer:  peer.Name,
		known: []candidate{{last, srcLast}, {peer.Addr, srcConfigured}},
		attempt: func(ctx context.Context, addr string) (net.Conn, error) {
			return d.dial1(ctx, peer, addr, want)
		},
		log: d.log,
	}
	if d.finder != nil {
		r.find = func(ctx context.Context, found func(string)) {
			d.finder.Find(ctx, want.String(), func(a netip.AddrPort) { found(a.String()) })
		}
	}
	conn, won, err := r.run(ctx)
	if err != nil {
		return nil, err
	}
	d.sightings.saw(want, seenOurCall, won.addr, time.Now())
	if won.addr != last {
		if err := d.peers.SetLastAddress(peer.Name, won.addr); err != nil {
			d.log.Warn("storing the peer's address failed", "peer", peer.Name, "err", err)
		} else {
			d.log.Info("peer address updated", "component", "discovery", "peer", peer.Name, "address", won.addr, "source", won.source)
		}
	}
	return conn, nil
}

// finder is what a call's dial asks discovery: stream/discovery.Node, or
// a fake in tests.
type finder interface {
	Find(ctx context.Context, fp string, found func(netip.AddrPort))
}

// dial1 connects to one address and checks the peer's key.
func (d *daemon) dial1(ctx context.Context, peer call.Peer, addr string, want identity.Fingerprint) (net.Conn, error) {
	tc, err := dialTLS(ctx, addr, d.id.ClientTLS(want), dialBudget)
	if errors.Is(err, identity.ErrKeyMismatch) {
		d.log.Warn("refused peer: wrong key for its name", "component", "identity", "peer", peer.Name, "addr", addr, "err", err)
	}
	if err != nil {
		return nil, err
	}
	d.friends.saw(tc.RemoteAddr().String())
	return tc, nil
}

func (d *daemon) handshake(ctx context.Context, raw net.Conn) {
	remote := raw.RemoteAddr().String()
	if err := call.TuneTCP(raw, notSentLowat); err != nil {
		d.log.Warn("socket tuning failed", "err", err)
	}
	tc := tls.Server(raw, d.id.ServerTLSWithPairing(d.peers, d.pair.isOpen))
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		var ue *identity.UnpairedError
		switch {
		case errors.As(err, &ue):
			d.log.Warn("refused unpaired peer", "component", "identity", "remote", remote, "fingerprint", ue.Fingerprint.String())
		case errors.Is(err, identity.ErrNotPairing):
			d.log.Warn("refused pairing attempt: pairing window closed", "component", "pairing", "remote", remote)
		case errors.Is(err, identity.ErrProtocolVersion):
			d.log.Warn("refused peer speaking another protocol version", "component", "identity", "remote", remote, "err", err)
		default:
			d.log.Info("handshake failed", "component", "identity", "remote", remote, "err", err)
		}
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == identity.PairALPN {
		cancel()
		d.pair.accept(ctx, tc)
		return
	}
	fp, err := identity.PeerFingerprint(tc.ConnectionState())
	if err != nil {
		tc.Close()
		return
	}
	p, ok := d.peers.ByFingerprint(fp)
	if !ok { // removed between handshake and now
		d.log.Warn("refused unpaired peer", "component", "identity", "remote", remote, "fingerprint", fp.String())
		tc.Close()
		return
	}
	d.friends.saw(remote)
	d.sightings.saw(fp, seenTheirCall, hostOnly(remote), time.Now())
	d.phone.Accept(tc, toCallPeer(p))
}
