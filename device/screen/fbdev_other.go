//go:build !linux

package screen

import "errors"

// FB is an open fbdev display; only Linux has them.
type FB struct{}

// OpenFB fails: framebuffer devices are Linux's.
func OpenFB(path string) (*FB, error) {
	return nil, errors.New("screen: compiled without framebuffer support (Linux only)")
}

// Framebuffer is nil.
func (d *FB) Framebuffer() *Framebuffer { return nil }

// Driver is empty.
func (d *FB) Driver() string { return "" }

// Close does nothing.
func (d *FB) Close() error { return nil }
