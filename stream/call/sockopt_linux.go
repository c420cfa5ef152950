package call

import (
	"fmt"
	"net"
	"syscall"
)

// tcpNotSentLowat is TCP_NOTSENT_LOWAT from linux/tcp.h (the syscall
// package does not name it).
const tcpNotSentLowat = 25

// TuneTCP bounds the data the kernel keeps unsent on c to notSent bytes
// (TCP_NOTSENT_LOWAT) and turns Nagle off, so that the session's own
// latest-wins and drop-oldest queues, not the socket buffer, decide what
// waits. Without it a slow link hides seconds of video in the kernel.
func TuneTCP(c net.Conn, notSent int) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("tune tcp: %T is not a TCP connection", c)
	}
	if err := tc.SetNoDelay(true); err != nil {
		return fmt.Errorf("tune tcp: nodelay: %w", err)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return fmt.Errorf("tune tcp: %w", err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, notSent)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("tune tcp: TCP_NOTSENT_LOWAT: %w", err)
	}
	return nil
}
