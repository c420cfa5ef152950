//go:build !(linux && cgo)

package camera

import (
	"errors"
	"testing"
)

func TestNoV4L2Stubs(t *testing.T) {
	if _, err := List(); !errors.Is(err, ErrNoV4L2) {
		t.Errorf("List = %v, want ErrNoV4L2", err)
	}
	_, err := OpenV4L2(V4L2Config{Device: "/dev/null"})
	if !errors.Is(err, ErrNoV4L2) {
		t.Errorf("OpenV4L2 = %v, want ErrNoV4L2", err)
	}
	t.Log(err)
}
