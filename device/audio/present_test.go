package audio

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPresent(t *testing.T) {
	dir := t.TempDir()
	old := asoundDir
	asoundDir = dir
	t.Cleanup(func() { asoundDir = old })
	os.Mkdir(filepath.Join(dir, "card1"), 0o755)
	os.Mkdir(filepath.Join(dir, "Device"), 0o755)
	for _, ok := range []string{"default", "null", "callbox_mic", "hw:1,0", "plughw:1", "hw:CARD=Device,DEV=0",
		"sysdefault:CARD=Device", "plughw:\"Device\",0", "dmix"} {
		if err := Present(ok); err != nil {
			t.Errorf("Present(%q) = %v, want nil", ok, err)
		}
	}
	for _, gone := range []string{"hw:2,0", "plughw:CARD=USB,DEV=0", "front:CARD=USB"} {
		if err := Present(gone); err == nil || !strings.Contains(err.Error(), "is gone") {
			t.Errorf("Present(%q) = %v, want the card gone", gone, err)
		}
	}
}
