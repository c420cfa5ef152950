package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/devlist"
)

// devices lists the devices through the daemon, or, when no daemon
// answers (it is not running: maybe the config being written keeps it
// from starting), itself, and says so on stderr and in the listing.
func devices(ctx context.Context, c *control.Client, stderr io.Writer) (control.Devices, error) {
	var d control.Devices
	err := c.Do(ctx, "GET", "/v1/devices", nil, &d)
	if errors.Is(err, control.ErrUnreachable) {
		fmt.Fprintf(stderr, "callbox: %v: listing the devices itself\n", err)
		return devlist.List(ctx, control.ListedByTool)
	}
	if err != nil {
		return d, err
	}
	if d.ListedBy == "" { // a daemon from before ListedBy
		d.ListedBy = control.ListedByDaemon
	}
	return d, nil
}
