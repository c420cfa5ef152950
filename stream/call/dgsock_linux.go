package call

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/callbox/callbox/stream/wire"
)

// rawSock is the phone's UDP socket taken out of Go's network poller, so
// that a datagram that arrives while a speaker pumps the socket wakes
// nothing: with the poller, each one would wake a thread waiting in
// epoll, only for it to find nobody to run. The reader goroutine waits
// for the socket in ppoll(2) on a thread of its own, together with an
// eventfd that ends the wait when the port closes; writes never block
// (a full send buffer drops the datagram, as a lost one would be).
type rawSock struct {
	fd   int // the socket, non-blocking
	kick int // eventfd: wakes the reader's ppoll
	v6   bool

	buf    []byte // one more than the largest datagram: a longer one shows
	oob    []byte
	stamps bool // the kernel stamps what arrives (SO_TIMESTAMPNS); false once one came without

	mu     sync.RWMutex // writes (shared) against close
	closed bool

	// zone is the last IPv6 zone looked up (a link-local peer): its name
	// and interface index, so that a call with such a peer does not ask
	// the kernel for the interface list on every packet.
	zone atomic.Pointer[zoneIndex]
}

type zoneIndex struct {
	name  string
	index int
}

// zoneByName and zoneByIndex look a zone up, through r.zone.
func (r *rawSock) zoneByName(name string) (int, bool) {
	if z := r.zone.Load(); z != nil && z.name == name {
		return z.index, true
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, false
	}
	r.zone.Store(&zoneIndex{name: ifi.Name, index: ifi.Index})
	return ifi.Index, true
}

func (r *rawSock) zoneByIndex(index int) (string, bool) {
	if z := r.zone.Load(); z != nil && z.index == index {
		return z.name, true
	}
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return "", false
	}
	r.zone.Store(&zoneIndex{name: ifi.Name, index: ifi.Index})
	return ifi.Name, true
}

// maxPumpBatch bounds one drain: a flood on the call port cannot hold a
// speaker's period for long (each datagram is at most a failed open).
const maxPumpBatch = 128

// newRawSock takes pc's socket out of Go's poller: it keeps a duplicate
// of the descriptor and closes pc. Only a *net.UDPConn can be taken; for
// anything else, or if it fails, it returns nil and leaves pc as it was.
func newRawSock(pc net.PacketConn) *rawSock {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	if err := rc.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e == 0 {
			fd = int(r)
		}
	}); err != nil || fd < 0 {
		return nil
	}
	kick, _, e := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if e != 0 {
		syscall.Close(fd)
		return nil
	}
	r := &rawSock{fd: fd, kick: int(kick), buf: make([]byte, wire.MaxDatagram+1), oob: make([]byte, syscall.CmsgSpace(16))}
	if sa, err := syscall.Getsockname(fd); err == nil {
		_, r.v6 = sa.(*syscall.SockaddrInet6)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		r.close()
		return nil
	}
	r.stamps = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1) == nil
	uc.Close() // leaves the poller; the duplicate keeps the socket open
	return r
}

// wait blocks until a datagram waits on the socket or wake was called.
func (r *rawSock) wait() error {
	fds := [2]struct {
		fd             int32
		events, revent int16
	}{{fd: int32(r.fd), events: 0x1}, {fd: int32(r.kick), events: 0x1}} // POLLIN
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 2, 0, 0, 0, 0)
		switch e {
		case 0:
			if fds[1].revent != 0 {
				var b [8]byte
				syscall.Read(r.kick, b[:]) // reset; the caller looks at why it was woken
			}
			return nil
		case syscall.EINTR:
			continue
		default:
			return e
		}
	}
}

// wake ends a wait.
func (r *rawSock) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	syscall.Write(r.kick, one[:])
}

// drain hands each datagram waiting on the socket to handle, at most
// maxPumpBatch of them, and returns when none is left. An error means the
// socket could not be read.
func (r *rawSock) drain(handle func(pkt []byte, from netip.AddrPort, at time.Time)) error {
	for range maxPumpBatch {
		n, oobn, _, sa, err := syscall.Recvmsg(r.fd, r.buf, r.oob, syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN:
			return nil
		case err == syscall.EINTR:
			continue
		case err == syscall.ECONNREFUSED || err == syscall.EHOSTUNREACH || err == syscall.ENETUNREACH:
			continue // an ICMP error for something we sent: not the socket's end
		case err != nil:
			return err
		}
		at := time.Now()
		if r.stamps {
			if t, ok := kernelStamp(r.oob[:oobn]); ok {
				at = t
			} else {
				r.stamps = false // taken, but not given (qemu-user): stop asking
			}
		}
		handle(r.buf[:n], r.sockaddrPort(sa), at)
	}
	return nil
}

// write sends b to to without waiting.
func (r *rawSock) write(b []byte, to netip.AddrPort) error {
	var sa syscall.Sockaddr
	ip := to.Addr()
	switch {
	case r.v6:
		a := &syscall.SockaddrInet6{Port: int(to.Port()), Addr: ip.As16()}
		if z := ip.Zone(); z != "" {
			if i, ok := r.zoneByName(z); ok {
				a.ZoneId = uint32(i)
			}
		}
		sa = a
	case ip.Unmap().Is4():
		sa = &syscall.SockaddrInet4{Port: int(to.Port()), Addr: ip.Unmap().As4()}
	default:
		return &net.AddrError{Err: "an IPv6 address on an IPv4 socket", Addr: to.String()}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return net.ErrClosed
	}
	for {
		err := syscall.Sendto(r.fd, b, syscall.MSG_DONTWAIT, sa)
		if err != syscall.EINTR {
			return err
		}
	}
}

// close releases the socket; writes after it fail with net.ErrClosed.
// The reader must have stopped waiting.
func (r *rawSock) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		syscall.Close(r.fd)
		syscall.Close(r.kick)
	}
}

// kernelStamp finds SCM_TIMESTAMPNS in a datagram's control messages.
func kernelStamp(oob []byte) (time.Time, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level != syscall.SOL_SOCKET || m.Header.Type != syscall.SCM_TIMESTAMPNS {
			continue
		}
		switch len(m.Data) { // struct timespec: two longs
		case 16:
			return time.Unix(int64(binary.NativeEndian.Uint64(m.Data)), int64(binary.NativeEndian.Uint64(m.Data[8:]))), true
		case 8:
			return time.Unix(int64(int32(binary.NativeEndian.Uint32(m.Data))), int64(int32(binary.NativeEndian.Uint32(m.Data[4:])))), true
		}
	}
	return time.Time{}, false
}

// sockaddrPort is sa as an address and port (not valid for another family).
func (r *rawSock) sockaddrPort(sa syscall.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *syscall.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr)
		if a.ZoneId != 0 {
			if name, ok := r.zoneByIndex(int(a.ZoneId)); ok {
				ip = ip.WithZone(name)
			}
		}
		return netip.AddrPortFrom(ip, uint16(a.Port))
	}
	return netip.AddrPort{}
}
