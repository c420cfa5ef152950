//go:build linux && cgo

package audio

import (
	"fmt"
	"log/slog"

	"github.com/gen2brain/malgo"
)

// List asks ALSA for its PCMs (those its configuration gives a hint, as
// `aplay -L` shows). A machine without a sound card has no card PCMs, which
// is not an error: the lists hold only configured PCMs such as "null", or
// are empty. It fails only if libasound2 cannot be loaded or ALSA's name
// hints cannot be read. It may be called from any goroutine; it briefly
// holds a lock malgo shares with every device's log callback.
func List() (Devices, error) {
	ctx, err := newContext(DefaultDevice, &maLog{log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return Devices{}, fmt.Errorf("audio: list devices: %w", err)
	}
	defer func() {
		ctx.Uninit()
		ctx.Free()
	}()
	var d Devices
	for _, k := range []struct {
		kind malgo.DeviceType
		dst  *[]PCM
	}{{malgo.Capture, &d.Capture}, {malgo.Playback, &d.Playback}} {
		infos, err := ctx.Devices(k.kind)
		if err != nil {
			return Devices{}, fmt.Errorf("audio: list devices: %w", err)
		}
		*k.dst = []PCM{}
		for _, in := range infos {
			name := cString(in.ID[:])
			if name == "" {
				continue
			}
			*k.dst = append(*k.dst, PCM{Name: name, Description: in.Name(), Default: in.IsDefault != 0})
		}
	}
	return d, nil
}

// cString is b up to its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
