//go:build linux

package netemu

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// TUNSETIFF and its flags, from linux/if_tun.h.
const (
	tunSetIff = 0x400454ca
	iffTun    = 0x0001
	iffNoPi   = 0x1000
)

// OpenTUN creates TUN device name (IP packets, no extra header) in the
// calling process's network namespace and returns its file. The device
// lives as long as the file is open; move it elsewhere with
// `ip link set NAME netns NS`.
func OpenTUN(name string) (*os.File, error) {
	if len(name) >= 16 {
		return nil, fmt.Errorf("tun: name %q too long", name)
	}
	// The device must be attached (TUNSETIFF) before the file joins the
	// runtime's poller: a TUN file polled before it is attached never
	// signals readiness afterwards. So: raw fd, ioctl, non-blocking, then
	// os.NewFile, which registers a non-blocking fd with the poller.
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tun: %w", err)
	}
	var req struct {
		name  [16]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], name)
	req.flags = iffTun | iffNoPi
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&req))); errno != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("tun: create %s: %w", name, errno)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("tun: %w", err)
	}
	return os.NewFile(uintptr(fd), "tun:"+name), nil
}
