//go:build !(linux && cgo)

package audio

import "testing"

func TestALSANeedsCgo(t *testing.T) {
	if _, err := OpenCapture(ALSAConfig{}); err == nil || err.Error() != `audio: open capture "default": compiled without cgo: ALSA audio needs a cgo build` {
		t.Fatalf("OpenCapture: %v", err)
	}
	if _, err := OpenPlayback(ALSAConfig{Device: "hw:1,0"}); err == nil || err.Error() != `audio: open playback "hw:1,0": compiled without cgo: ALSA audio needs a cgo build` {
		t.Fatalf("OpenPlayback: %v", err)
	}
	if _, err := List(); err == nil || err.Error() != "audio: list devices: compiled without cgo: ALSA audio needs a cgo build" {
		t.Fatalf("List: %v", err)
	}
}
