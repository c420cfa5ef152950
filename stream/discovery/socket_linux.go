package discovery

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Multicast group membership and per-interface sending use socket options
// from golang.org/x/sys/unix (already linked for the devices) rather than
// golang.org/x/net/ipv4 and ipv6, which would add ~130 KB to the arm64
// binary for the handful of options needed here.

var (
	group4 = netip.MustParseAddr("224.0.0.251")
	group6 = netip.MustParseAddr("ff02::fb")
)

const mdnsPort = 5353

// udpConn is one mDNS socket of one address family, bound to port 5353 on
// the wildcard address, shared with other mDNS responders (avahi) through
// SO_REUSEADDR/SO_REUSEPORT.
type udpConn struct {
	c   *net.UDPConn
	v6  bool
	wmu sync.Mutex // IP_MULTICAST_IF and the write that follows it
}

func listenUDP(v6 bool) (packetConn, error) {
	network, addr := "udp4", "0.0.0.0:5353"
	if v6 {
		network, addr = "udp6", "[::]:5353"
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			f := int(fd)
			serr = errors.Join(
				unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1))
			if v6 && serr == nil {
				serr = unix.SetsockoptInt(f, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("discovery: listen %s %s: %w", network, addr, err)
	}
	c := &udpConn{c: pc.(*net.UDPConn), v6: v6}
	err = c.control(func(fd int) error {
		if v6 {
			return errors.Join(
				unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255),
				unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255),
				unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 1),
				unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1),
				// Only the groups joined on this socket, on the interfaces
				// joined (Linux 4.20+; older kernels ignore the failure).
				ignore(unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, 0)))
		}
		return errors.Join(
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255),
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, 255),
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1),
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1),
			ignore(unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)))
	})
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("discovery: %s socket options: %w", network, err)
	}
	return c, nil
}

func ignore(error) error { return nil }

func (c *udpConn) control(f func(fd int) error) error {
	rc, err := c.c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func (c *udpConn) Join(ifi Iface) error {
	err := c.control(func(fd int) error {
		if c.v6 {
			m := &unix.IPv6Mreq{Multiaddr: group6.As16(), Interface: uint32(ifi.Index)}
			return unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, m)
		}
		m := &unix.IPMreqn{Multiaddr: group4.As4(), Ifindex: int32(ifi.Index)}
		return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, m)
	})
	if errors.Is(err, unix.EADDRINUSE) { // joined already
		return nil
	}
	return err
}

func (c *udpConn) ReadFrom(buf []byte) (int, int, netip.AddrPort, error) {
	oob := make([]byte, 128)
	n, oobn, _, src, err := c.c.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return 0, 0, src, err
	}
	ifindex := 0
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err == nil {
		for _, m := range msgs {
			switch {
			case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= 4:
				ifindex = int(int32(binary.NativeEndian.Uint32(m.Data[0:4])))
			case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= 20:
				ifindex = int(binary.NativeEndian.Uint32(m.Data[16:20]))
			}
		}
	}
	if ifindex == 0 && src.Addr().Zone() != "" {
		if ifi, err := net.InterfaceByName(src.Addr().Zone()); err == nil {
			ifindex = ifi.Index
		}
	}
	return n, ifindex, src, nil
}

func (c *udpConn) WriteTo(b []byte, ifi Iface, dst netip.AddrPort) error {
	if !dst.IsValid() {
		if c.v6 {
			dst = netip.AddrPortFrom(group6.WithZone(ifi.Name), mdnsPort)
		} else {
			dst = netip.AddrPortFrom(group4, mdnsPort)
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.v6 && dst.Addr().IsMulticast() {
		err := c.control(func(fd int) error {
			return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
		})
		if err != nil {
			return fmt.Errorf("discovery: IP_MULTICAST_IF %s: %w", ifi.Name, err)
		}
	}
	_, err := c.c.WriteToUDPAddrPort(b, dst)
	return err
}

func (c *udpConn) Close() error { return c.c.Close() }
