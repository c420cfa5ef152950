// Command callboxd is the callbox daemon: it wires the camera, microphone,
// speaker, button and LED to calls with the paired box.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/callbox/callbox/internal/control"
)

// version and commit are stamped by the build (-ldflags "-X main.version=...").
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, showVersion, err := loadConfig(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the flag package printed the usage
	}
	if showVersion {
		fmt.Printf("callboxd %s (commit %s)\n", version, commit)
		return 0
	}
	var ce *ConfigError
	if err != nil {
		fmt.Fprintln(os.Stderr, "callboxd:", err)
		if errors.As(err, &ce) {
			return 78 // EX_CONFIG
		}
		return 1
	}
	if cfg.listDevices {
		d, err := listDevices()
		if err != nil {
			fmt.Fprintln(os.Stderr, "callboxd:", err)
			return 1
		}
		control.PrintDevices(os.Stdout, d)
		return 0
	}
	level, _ := parseLevel(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP's default action ends the process, and systemd counts that as
	// a clean exit and does not restart it: a stray `kill -HUP` would stop
	// the box for good. There is nothing to reload; say so instead.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if now, before := timerSlack(); now >= 0 {
		log.Debug("timer slack", "slack", now, "inherited", before)
	}
	d, err := newDaemon(cfg, log)
	if err == nil {
		d.hup = hup
		err = d.run(ctx)
	}
	if err != nil {
		log.Error("callboxd failed", "err", err)
		if errors.As(err, &ce) {
			return 78
		}
		return 1
	}
	return 0
}
