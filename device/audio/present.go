package audio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// asoundDir is where the kernel lists sound cards; tests replace it.
var asoundDir = "/proc/asound"

// Present is a cheap check that the sound card behind an ALSA PCM name is
// still there, for a device kept closed while nobody needs it: for names
// that pick a card of the kernel's (hw:1,0, plughw:CARD=Device,DEV=0,
// sysdefault:CARD=x …) whether the card is listed in /proc/asound; for
// other names (default, a plugin of the user's) it cannot tell without
// opening the device and says nil. It opens nothing.
func Present(pcm string) error {
	card, ok := cardOf(pcm)
	if !ok {
		return nil
	}
	p := filepath.Join(asoundDir, card)
	if _, err := strconv.Atoi(card); err == nil {
		p = filepath.Join(asoundDir, "card"+card)
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("audio: %s: sound card %s is gone", pcm, card)
		}
		return fmt.Errorf("audio: %s: %w", pcm, err)
	}
	return nil
}

// cardOf returns the card an ALSA PCM name picks ("1" or "Device"), if it
// names one.
func cardOf(pcm string) (string, bool) {
	_, args, ok := strings.Cut(pcm, ":")
	if !ok || args == "" {
		return "", false
	}
	first, _, _ := strings.Cut(args, ",")
	if v, ok := strings.CutPrefix(first, "CARD="); ok {
		first = v
	} else if strings.Contains(first, "=") {
		return "", false // DEV=0 first, or another plugin's argument
	}
	first = strings.Trim(first, `"'`)
	if first == "" || strings.ContainsAny(first, "/ ") {
		return "", false
	}
	return first, true
}
