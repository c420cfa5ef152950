//go:build !linux

package call

import (
	"fmt"
	"net"
)

// TuneTCP turns Nagle off. Bounding unsent kernel data needs Linux's
// TCP_NOTSENT_LOWAT; elsewhere the socket buffer is left as it is.
func TuneTCP(c net.Conn, notSent int) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("tune tcp: %T is not a TCP connection", c)
	}
	return tc.SetNoDelay(true)
}
