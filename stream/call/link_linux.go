package call

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"syscall"
	"time"
	"unsafe"
)

// Offsets in struct tcp_info (linux/tcp.h) of the fields the link gate
// reads; tcpInfoLen is the length up to and including tcpi_bytes_retrans
// (Linux 4.19 and later).
const (
	tiSndMSS       = 16  // __u32, bytes
	tiMinRTT       = 148 // __u32, µs
	tiNotSent      = 144 // __u32, bytes
	tiBytesAcked   = 120 // __u64
	tiDeliveryRate = 160 // __u64, bytes per second
	tiBytesSent    = 200 // __u64, including retransmissions
	tiBytesRetrans = 208 // __u64
	tcpInfoLen     = 216
)

var errShortTCPInfo = errors.New("tcp_info: kernel too old (needs Linux 4.19)")

// tcpLink reads TCP_INFO and sets TCP_CONGESTION on the TCP socket under a
// session's connection. Only the session's writer goroutine uses it.
type tcpLink struct {
	raw syscall.RawConn
	buf [256]byte
}

// newLinkProbe returns the TCP socket under c (through TLS) as a link, or
// nil if there is none or the kernel cannot describe it.
func newLinkProbe(c net.Conn) link {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	l := &tcpLink{raw: raw}
	if _, err := l.info(); err != nil {
		return nil
	}
	return l
}

func (l *tcpLink) getsockopt(opt int, buf []byte) (int, error) {
	n := uint32(len(buf))
	var errno syscall.Errno
	err := l.raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, uintptr(opt),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func (l *tcpLink) info() (linkInfo, error) {
	n, err := l.getsockopt(syscall.TCP_INFO, l.buf[:])
	if err != nil {
		return linkInfo{}, err
	}
	if n < tcpInfoLen {
		return linkInfo{}, errShortTCPInfo
	}
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(l.buf[off:]) }
	u64 := func(off int) uint64 { return binary.NativeEndian.Uint64(l.buf[off:]) }
	sent := u64(tiBytesSent) - u64(tiBytesRetrans)
	var inFlight int
	if acked := u64(tiBytesAcked); sent > acked {
		inFlight = int(sent - acked)
	}
	return linkInfo{
		inFlight: inFlight,
		notSent:  int(u32(tiNotSent)),
		minRTT:   time.Duration(u32(tiMinRTT)) * time.Microsecond,
		rate:     float64(u64(tiDeliveryRate)),
		mss:      int(u32(tiSndMSS)),
	}, nil
}

func (l *tcpLink) congestion() string {
	var buf [16]byte
	n, err := l.getsockopt(syscall.TCP_CONGESTION, buf[:])
	if err != nil {
		return ""
	}
	name, _, _ := bytes.Cut(buf[:n], []byte{0})
	return string(name)
}

func (l *tcpLink) setCongestion(name string) error {
	var serr error
	err := l.raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CONGESTION, name)
	})
	if err != nil {
		return err
	}
	return serr
}
