//go:build !linux

package main

import (
	"context"
	"errors"
	"time"
)

// runProfile needs Linux network namespaces, TUN devices and tbf.
func runProfile(ctx context.Context, p profile, bin, dir string, length time.Duration, series string) (result, error) {
	return result{name: p.name, title: p.title}, errors.New("network profiles need Linux (network namespaces, TUN, tbf)")
}
