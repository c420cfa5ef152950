package call

import (
	"net"
	"syscall"
	"testing"
)

func TestTuneTCPBoundsUnsentData(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := TuneTCP(c, 16384); err != nil {
		t.Fatal(err)
	}
	raw, _ := c.(*net.TCPConn).SyscallConn()
	var lowat, nodelay int
	raw.Control(func(fd uintptr) {
		lowat, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat)
		nodelay, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
	})
	if lowat != 16384 || nodelay != 1 {
		t.Errorf("TCP_NOTSENT_LOWAT = %d, TCP_NODELAY = %d; want 16384, 1", lowat, nodelay)
	}
	if err := TuneTCP(&net.UnixConn{}, 1); err == nil {
		t.Error("TuneTCP accepted a unix connection")
	}
}
