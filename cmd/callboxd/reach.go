package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/callbox/callbox/stream/call"
)

// Hints that end the message of a call that could not get through to its
// peer. A box in another house is behind another router: without an
// overlay network (WireGuard, Tailscale) its address cannot be reached
// from here, whatever is configured.
const (
	hintOverlay = "is it on? A box behind another router needs an overlay network (README: Calling between two houses)"
	hintName    = "check the name; a MagicDNS name resolves only where Tailscale runs (README: Calling between two houses)"
)

// explainingDialer wraps dial: when a call fails because the network did
// not get there (connection timed out, refused, no route, a host name
// that does not resolve), the error says that in words, per address, and
// ends with what to do about it. Other errors (a wrong key, a hang-up
// while dialling) pass unchanged. The daemon's Phone dials through it.
func explainingDialer(dial call.Dialer) call.Dialer {
	return func(ctx context.Context, peer call.Peer) (net.Conn, error) {
		conn, err := dial(ctx, peer)
		if err != nil {
			err = explainUnreachable(err)
		}
		return conn, err
	}
}

// unreachableError is a dial error rewritten by explainUnreachable; it
// still unwraps to the original.
type unreachableError struct {
	msg string
	err error
}

func (e *unreachableError) Error() string { return e.msg }
func (e *unreachableError) Unwrap() error { return e.err }

// explainUnreachable rewrites err, which may join the errors of several
// addresses, if any of them is a failure to reach the address at all.
func explainUnreachable(err error) error {
	var netFail, nameFail bool
	msg := render(err, &netFail, &nameFail)
	switch {
	case netFail:
		msg += " — " + hintOverlay
	case nameFail:
		msg += " — " + hintName
	default:
		return err
	}
	return &unreachableError{msg: msg, err: err}
}

// render is err's message with each failure to reach an address said
// plainly; netFail and nameFail are set when it met a network or a name
// failure.
func render(err error, netFail, nameFail *bool) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var parts []string
		for _, e := range j.Unwrap() {
			parts = append(parts, render(e, netFail, nameFail))
		}
		return strings.Join(parts, "; ")
	}
	msg := err.Error()
	if na := (*noAnswerError)(nil); errors.As(err, &na) {
		*netFail = true // said plainly already
		return msg
	}
	op, what, isName := reachFailure(err)
	if op == nil {
		return msg
	}
	if isName {
		*nameFail = true
	} else {
		*netFail = true
	}
	inner := op.Error()
	i := strings.LastIndex(msg, inner)
	if i < 0 {
		return msg
	}
	prefix := msg[:i]
	if op.Addr != nil && !isName {
		switch a := op.Addr.String(); {
		case prefix == "":
			what = a + ": " + what
		case !strings.Contains(prefix, a):
			what += " (at " + a + ")"
		}
	}
	return prefix + what + msg[i+len(inner):]
}

// reachFailure says whether err is a failure to connect at all and how to
// say it: the dial's error, the words, and whether it was the host name.
func reachFailure(err error) (op *net.OpError, what string, isName bool) {
	if !errors.As(err, &op) || op.Op != "dial" {
		return nil, "", false
	}
	var dns *net.DNSError
	if errors.As(op.Err, &dns) {
		switch {
		case dns.IsNotFound:
			return op, "host name " + dns.Name + " not found", true
		case dns.IsTimeout:
			return op, "looking up " + dns.Name + " timed out", true
		}
		return op, "cannot look up " + dns.Name + ": " + dns.Err, true
	}
	switch {
	case errors.Is(op.Err, syscall.ECONNREFUSED):
		return op, "connection refused", false
	case errors.Is(op.Err, syscall.EHOSTUNREACH):
		return op, "no route to host", false
	case errors.Is(op.Err, syscall.ENETUNREACH):
		return op, "network unreachable", false
	case op.Timeout():
		return op, "connection timed out", false
	}
	return nil, "", false
}
