//go:build !linux

package netemu

import (
	"errors"
	"os"
)

// OpenTUN needs Linux.
func OpenTUN(name string) (*os.File, error) {
	return nil, errors.New("tun: needs Linux")
}
