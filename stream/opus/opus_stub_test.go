//go:build !cgo

package opus

import (
	"errors"
	"testing"
)

func TestStubSaysSo(t *testing.T) {
	if Available() {
		t.Fatal("available without cgo")
	}
	if _, err := NewEncoder(Config{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("NewEncoder: %v", err)
	}
}
