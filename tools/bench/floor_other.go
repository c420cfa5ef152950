//go:build !linux

package main

import (
	"context"
	"errors"
	"time"
)

// runFloor needs Linux (the children read sockets with raw system calls).
func runFloor(context.Context, time.Duration) (string, error) {
	return "", errors.New("the floor case needs Linux")
}

func floorChild(string) error { return errors.New("the floor case needs Linux") }

const floorEnv = "CALLBOX_BENCH_FLOOR"
