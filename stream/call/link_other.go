//go:build !linux

package call

import "net"

// newLinkProbe returns nil: reading the link's state needs Linux's
// TCP_INFO, so elsewhere video is not gated by what the link carries.
func newLinkProbe(net.Conn) link { return nil }
