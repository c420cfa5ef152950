package cameratest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// FakeRpicamPackage is the fake rpicam-vid's import path (see its doc).
const FakeRpicamPackage = "github.com/callbox/callbox/device/camera/cameratest/fakerpicam"

// BuildFakeRpicam builds the fake rpicam-vid into a new directory that
// is removed after the test, and returns the directory: put it first
// on PATH, or pass dir/rpicam-vid as the program. It needs the go tool.
func BuildFakeRpicam(t testing.TB) (dir string) {
	t.Helper()
	dir = t.TempDir()
	if err := BuildFakeRpicamTo(filepath.Join(dir, "rpicam-vid")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// BuildFakeRpicamTo builds the fake rpicam-vid as path, for the machine
// the tests run on: a plain Go program (no cgo: quick, with or without
// -race), and native even when the tests themselves are cross-built and
// run under qemu-user (make test-arm64), which cannot start a foreign
// child without binfmt_misc, while the host kernel runs a native one.
func BuildFakeRpicamTo(path string) error {
	cmd := exec.Command("go", "build", "-o", path, FakeRpicamPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=", "GOARCH=", "CC=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the fake rpicam-vid: %v\n%s", err, out)
	}
	return nil
}
