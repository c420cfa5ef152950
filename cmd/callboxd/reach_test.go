package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/identity"
)

// closedPort is a port on 127.0.0.1 that nothing listens on (it just did).
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// dialErr is what dial reports for one address: the address, then why.
func dialErr(t *testing.T, addr string) error {
	t.Helper()
	_, err := dialTLS(t.Context(), addr, nil, time.Second)
	if err == nil {
		t.Fatalf("dialling %s worked", addr)
	}
	return fmt.Errorf("%s: %w", addr, err)
}

func TestUnreachableSaysWhyAndWhatToDo(t *testing.T) {
	port := closedPort(t)
	at := fmt.Sprintf("127.0.0.1:%d", port)
	err := explainUnreachable(errors.Join(dialErr(t, at)))
	want := at + ": connection refused — " + hintOverlay
	if err.Error() != want {
		t.Errorf("refused:\n got %q\nwant %q", err, want)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the rewritten error lost its cause: %v", err)
	}

	// The dial race's budget ran out on an address that never answered
	// (a tunnel that is down): said so, with the hint.
	err = explainUnreachable(errors.Join(fmt.Errorf("10.9.0.2:7420 (last): %w", &noAnswerError{budget: 3 * time.Second, err: context.DeadlineExceeded})))
	if want := "10.9.0.2:7420 (last): no answer within 3s — " + hintOverlay; err.Error() != want {
		t.Errorf("no answer:\n got %q\nwant %q", err, want)
	}

	// A host name: said as configured, with the address it resolved to.
	err = explainUnreachable(errors.Join(dialErr(t, fmt.Sprintf("localhost:%d", port))))
	if !strings.HasPrefix(err.Error(), fmt.Sprintf("localhost:%d: connection refused (at ", port)) ||
		!strings.HasSuffix(err.Error(), hintOverlay) {
		t.Errorf("refused at a host name: %q", err)
	}

	// A connection attempt that ran out of time (here a deadline already
	// past, so that nothing is sent).
	nd := net.Dialer{Deadline: time.Now().Add(-time.Second)}
	_, derr := nd.Dial("tcp", at)
	if derr == nil {
		t.Fatal("a dial past its deadline worked")
	}
	err = explainUnreachable(fmt.Errorf("%s: %w", at, derr))
	if want := at + ": connection timed out — " + hintOverlay; err.Error() != want {
		t.Errorf("timeout:\n got %q\nwant %q", err, want)
	}

	// The same, as the README's example: a public address with no overlay.
	pub := &net.TCPAddr{IP: net.ParseIP("203.0.113.5"), Port: 7450}
	for cause, words := range map[error]string{
		os.ErrDeadlineExceeded:                              "connection timed out",
		os.NewSyscallError("connect", syscall.EHOSTUNREACH): "no route to host",
		os.NewSyscallError("connect", syscall.ENETUNREACH):  "network unreachable",
	} {
		op := &net.OpError{Op: "dial", Net: "tcp", Addr: pub, Err: cause}
		err := explainUnreachable(errors.Join(fmt.Errorf("203.0.113.5:7450: %w", op)))
		if want := "203.0.113.5:7450: " + words + " — " + hintOverlay; err.Error() != want {
			t.Errorf("%v:\n got %q\nwant %q", cause, err, want)
		}
	}

	// A name that does not resolve.
	dns := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "door.tail1234.ts.net", IsNotFound: true}}
	err = explainUnreachable(fmt.Errorf("door.tail1234.ts.net:7420: %w", dns))
	if want := "door.tail1234.ts.net:7420: host name door.tail1234.ts.net not found — " + hintName; err.Error() != want {
		t.Errorf("name:\n got %q\nwant %q", err, want)
	}

	// Several addresses: each said, one hint at the end.
	key := fmt.Errorf("127.0.0.1:9: tls: %w", identity.ErrKeyMismatch)
	err = explainUnreachable(errors.Join(key, dialErr(t, at)))
	if want := key.Error() + "; " + at + ": connection refused — " + hintOverlay; err.Error() != want {
		t.Errorf("two addresses:\n got %q\nwant %q", err, want)
	}
	if !errors.Is(err, identity.ErrKeyMismatch) {
		t.Error("the key mismatch is no longer found in the error")
	}
}

// Errors that are not about reaching the address pass unchanged.
func TestOtherDialErrorsUnchanged(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, cerr := dialTLS(ctx, "127.0.0.1:9", nil, time.Second)
	for _, err := range []error{
		errors.New("peer door has no address and was not found on the link"),
		errors.Join(fmt.Errorf("127.0.0.1:9: tls: %w", identity.ErrKeyMismatch)),
		fmt.Errorf("127.0.0.1:9: %w", cerr), // hung up while dialling
	} {
		if got := explainUnreachable(err); got != err {
			t.Errorf("%q became %q", err, got)
		}
	}
}

func TestExplainingDialer(t *testing.T) {
	port := closedPort(t)
	d := explainingDialer(func(ctx context.Context, p call.Peer) (net.Conn, error) {
		_, err := dialTLS(ctx, p.Addr, nil, time.Second)
		return nil, errors.Join(fmt.Errorf("%s: %w", p.Addr, err))
	})
	_, err := d(t.Context(), call.Peer{Name: "door", Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	if err == nil || !strings.Contains(err.Error(), "connection refused — is it on?") {
		t.Errorf("got %v", err)
	}
	c1, c2 := net.Pipe()
	defer c2.Close()
	ok := explainingDialer(func(context.Context, call.Peer) (net.Conn, error) { return c1, nil })
	if conn, err := ok(t.Context(), call.Peer{}); conn != c1 || err != nil {
		t.Errorf("a working dial came back as %v, %v", conn, err)
	}
	c1.Close()
}

// The hints send the reader to a README section: it must be there.
func TestHintsNameAREADMESection(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{hintOverlay, hintName} {
		_, sec, ok := strings.Cut(h, "(README: ")
		sec = strings.TrimSuffix(sec, ")")
		if !ok || !strings.Contains(string(readme), "\n## "+sec+"\n") {
			t.Errorf("hint %q: README has no section %q", h, sec)
		}
	}
}
