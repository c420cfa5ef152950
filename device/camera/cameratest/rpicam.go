package cameratest

import (
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
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "rpicam-vid"), FakeRpicamPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // a plain Go program: quick, with or without -race
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the fake rpicam-vid: %v\n%s", err, out)
	}
	return dir
}
