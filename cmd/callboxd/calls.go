package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/identity"
)

// dial opens an authenticated connection to a paired peer: first where
// discovery finds its key on the link, then at the last address a call
// worked at, then at its configured address. The address that works is
// stored as the last one (the configured one stays). Whoever answers
// anywhere must have the peer's key: an address is only a hint.
func (d *daemon) dial(ctx context.Context, peer call.Peer) (net.Conn, error) {
	want, err := identity.ParseFingerprint(peer.Fingerprint)
	if err != nil {
		return nil, err
	}
	var cands []string
	if d.disc != nil {
		lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		f, err := d.disc.Lookup(lctx, want.String())
		cancel()
		if err == nil {
			for _, a := range f.Addrs {
				cands = append(cands, a.String())
			}
		} else {
			d.log.Info("peer not found by discovery; trying its stored address", "component", "discovery", "peer", peer.Name, "err", err)
		}
	}
	last := ""
	if p, ok := d.peers.ByName(peer.Name); ok {
		last = p.LastAddress
	}
	for _, a := range []string{last, peer.Addr} {
		if a != "" && !slices.Contains(cands, a) {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("peer %s has no address and was not found on the link", peer.Name)
	}
	var errs []error
	for _, addr := range cands {
		conn, err := d.dial1(ctx, peer, addr, want)
		if err == nil {
			if addr != last {
				if err := d.peers.SetLastAddress(peer.Name, addr); err != nil {
					d.log.Warn("storing the peer's address failed", "peer", peer.Name, "err", err)
				} else {
					d.log.Info("peer address updated", "component", "discovery", "peer", peer.Name, "address", addr)
				}
			}
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// dial1 connects to one address and checks the peer's key.
func (d *daemon) dial1(ctx context.Context, peer call.Peer, addr string, want identity.Fingerprint) (net.Conn, error) {
	tc, err := dialTLS(ctx, addr, d.id.ClientTLS(want), handshakeTimeout)
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
	d.phone.Accept(tc, toCallPeer(p))
}
