package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/callbox/callbox/internal/backoff"
	"github.com/callbox/callbox/stream/call"
)

// dialTLS is the one way this box opens a connection to another: a TCP
// connection to addr (at most dialTimeout), tuned for calls, then the TLS
// handshake with cfg, all within budget. A connection the far end closes
// or resets before the handshake completes — its listener had no slot for
// it, say under a flood — is tried again after a short pause while the
// budget lasts. Anything else (no route, refused, a wrong key) returns at
// once: retrying would not change it.
func dialTLS(ctx context.Context, addr string, cfg *tls.Config, budget time.Duration) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	pause := backoff.New(backoff.Policy{First: 100 * time.Millisecond, Max: 800 * time.Millisecond})
	for {
		tc, err := dialTLS1(ctx, addr, cfg)
		if err == nil || !droppedEarly(err) {
			return tc, err
		}
		if backoff.Wait(ctx, pause.Next()) != nil {
			return nil, fmt.Errorf("%w (the peer kept closing the connection before the handshake: busy or flooded)", err)
		}
	}
}

func dialTLS1(ctx context.Context, addr string, cfg *tls.Config) (*tls.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var nd net.Dialer
	raw, err := nd.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Best effort: a call works without it, only with more delay.
	call.TuneTCP(raw, notSentLowat)
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tc, nil
}

// droppedEarly reports an error that means the far end closed the
// connection before the handshake was done.
func droppedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
