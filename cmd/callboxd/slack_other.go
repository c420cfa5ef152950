//go:build !linux || !cgo

package main

import "time"

// timerSlack is not set without cgo: the slack is set by a constructor
// that runs before the Go runtime's threads (slack_cgo.go). A box built
// without cgo runs with what it inherited (systemd's TimerSlackNSec=).
func timerSlack() (now, before time.Duration) { return -1, -1 }
