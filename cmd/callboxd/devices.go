package main

import (
	"context"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/devlist"
)

// listDevices enumerates what this machine has (internal/devlist: the
// same listing `callbox devices` makes when no daemon answers).
func listDevices() (control.Devices, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return devlist.List(ctx, control.ListedByDaemon)
}
