//go:build !linux

package call

import (
	"net"
	"net/netip"
	"time"
)

// rawSock: taking the socket out of Go's poller, and reading it on a
// speaker's tick, needs Linux; elsewhere the port's reader goroutine
// reads the net.PacketConn as datagrams arrive.
type rawSock struct{}

func newRawSock(net.PacketConn) *rawSock { return nil }

func (*rawSock) wait() error                                         { return net.ErrClosed }
func (*rawSock) wake()                                               {}
func (*rawSock) drain(func([]byte, netip.AddrPort, time.Time)) error { return net.ErrClosed }
func (*rawSock) write([]byte, netip.AddrPort) error                  { return net.ErrClosed }
func (*rawSock) close()                                              {}
