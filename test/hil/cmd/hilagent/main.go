// Command hilagent runs inside the hardware-in-the-loop rig's QEMU guest:
// it makes the simulated GPIO chip, starts callboxd when asked, and serves
// the rig's API on port 7000 (see package guest). Build it static:
// CGO_ENABLED=0 go build ./test/hil/cmd/hilagent.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/callbox/callbox/test/hil/guest"
)

func main() {
	path := flag.String("config", "/hil/agent.json", "agent configuration (JSON)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "hilagent")
	if err := run(*path, log); err != nil {
		fmt.Fprintln(os.Stderr, "hilagent:", err)
		os.Exit(1)
	}
}

func run(path string, log *slog.Logger) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cfg guest.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	a, err := guest.New(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return a.Serve(ctx)
}
