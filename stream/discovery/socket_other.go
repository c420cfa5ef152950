//go:build !linux

package discovery

import "errors"

func listenUDP(v6 bool) (packetConn, error) {
	return nil, errors.New("discovery: compiled without mDNS support (Linux only)")
}
