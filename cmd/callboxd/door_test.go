package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/device/door"
	"github.com/callbox/callbox/device/gpio"
	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/wire"
)

func TestDoorConfig(t *testing.T) {
	load := func(file string) (Config, error) {
		path := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(path, []byte(file), 0o600)
		cfg, _, err := loadConfig([]string{"-config", path})
		return cfg, err
	}
	cfg, err := load("")
	if err != nil || cfg.Door != (DoorConfig{PulseS: 3, GapS: 5, Remote: "call"}) || cfg.doorRemote() {
		t.Fatalf("default: %+v, %v; want no door opener, pulse 3 s, gap 5 s, remote call", cfg.Door, err)
	}
	if cfg, err = load("[door]\nline = \"GPIO22\"\nactive_low = true\npulse_s = 10\ngap_s = 0"); err != nil || !cfg.doorRemote() || !cfg.Door.ActiveLow {
		t.Fatalf("a door on GPIO22: %+v, %v", cfg.Door, err)
	}
	if cfg, err = load("[door]\nline = \"sim\"\nremote = \"never\""); err != nil || cfg.doorRemote() {
		t.Fatalf("remote never: %+v, %v; want no requests taken", cfg.Door, err)
	}
	for _, c := range []struct{ file, want string }{
		{"[door]\nline = \"22\"", "door.line"},
		{"[gpio]\nbutton = \"GPIO22\"\n[door]\nline = \"GPIO22\"", `door.line: line "GPIO22" is also gpio.button`},
		{"[gpio]\nled = \"GPIO22\"\n[door]\nline = \"GPIO22\"", `door.line: line "GPIO22" is also gpio.led`},
		{"[[button]]\nline = \"GPIO5\"\ncall = \"k\"\nled = \"GPIO22\"\n[door]\nline = \"GPIO22\"", `door.line: line "GPIO22" is also button[0].led`},
		{"[door]\npulse_s = 0", "door.pulse_s: 0 out of range 1..10"},
		{"[door]\npulse_s = 11", "door.pulse_s"},
		{"[door]\ngap_s = -1", "door.gap_s"},
		{"[door]\ngap_s = 601", "door.gap_s: 601 out of range 0..600"},
		{"[door]\nremote = \"always\"", `door.remote: "always" is not "call" or "never"`},
	} {
		var ce *ConfigError
		if _, err := load(c.file); !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a ConfigError naming %q", c.file, err, c.want)
		}
	}
}

// doorDaemon is the part of a daemon the door needs: a simulated door and
// LED, no phone.
func doorDaemon(t *testing.T, dc DoorConfig) (*daemon, *gpio.SimLED) {
	t.Helper()
	led := gpio.NewSimLED()
	cfg := defaultConfig()
	cfg.Door = dc
	d := &daemon{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	d.panel = newPanel(led, func() (call.State, string) { return call.Idle, "off" }, nil)
	if p := d.setupDoor(); p != "" {
		t.Fatal(p)
	}
	return d, led
}

// Every trigger opens through openDoor: the pulse on the line, the LED's
// door flash for its length, and the refusals the peer gets, with their
// codes.
func TestOpenDoor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, led := doorDaemon(t, DoorConfig{Line: "sim", PulseS: 2, GapS: 5, Remote: "call"})
		defer led.Close()
		defer d.panel.Close()
		defer d.closeDoor()
		if err := d.remoteDoor(call.Peer{Name: "hall"}); err != nil {
			t.Fatalf("the peer's request: %v", err)
		}
		if !d.door.sim.Level() || led.Pattern() != gpio.DoorBlink || d.doorLine() != "door opening for peer hall" {
			t.Fatalf("in the pulse: line %v, LED %v, screen %q", d.door.sim.Level(), led.Pattern(), d.doorLine())
		}
		var de *call.DoorError
		if err := d.remoteDoor(call.Peer{Name: "hall"}); !errors.As(err, &de) || de.Result != wire.DoorBusy {
			t.Fatalf("during the pulse: %v, want busy", err)
		}
		time.Sleep(2500 * time.Millisecond)
		if d.door.sim.Level() || led.Pattern() != gpio.Off || d.doorLine() != "" {
			t.Fatalf("after the pulse: line %v, LED %v, screen %q", d.door.sim.Level(), led.Pattern(), d.doorLine())
		}
		if err := d.remoteDoor(call.Peer{Name: "hall"}); !errors.As(err, &de) || de.Result != wire.DoorTooSoon {
			t.Fatalf("inside the gap: %v, want too soon", err)
		}
		err := d.openDoor(context.Background(), "callbox open")
		if !errors.Is(err, door.ErrTooSoon) || doorCode(err) != http.StatusConflict {
			t.Fatalf("callbox open inside the gap: %v (%d)", err, doorCode(err))
		}
		st := d.doorStatus()
		if st.Openings != 1 || st.Refusals != 3 || st.Last.Who != "peer hall" || st.LastRefusal.Who != "callbox open" || st.SimChanges != 2 {
			t.Fatalf("status: %+v", st)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := d.openDoor(ctx, "gone"); !errors.Is(err, context.Canceled) {
			t.Errorf("a request whose asker left: %v", err)
		}
	})
}

func TestRemoteDoorRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, led := doorDaemon(t, DoorConfig{Line: "sim", PulseS: 2, GapS: 5, Remote: "never"})
		defer led.Close()
		defer d.panel.Close()
		defer d.closeDoor()
		var de *call.DoorError
		if err := d.remoteDoor(call.Peer{Name: "hall"}); !errors.As(err, &de) || de.Result != wire.DoorNotAllowed || d.door.sim.Changes() != 0 {
			t.Fatalf("remote never: %v, line changed %d times", err, d.door.sim.Changes())
		}
		if err := d.openDoor(context.Background(), "web page"); err != nil {
			t.Fatalf("this box's own users still open it: %v", err)
		}
		none, led2 := doorDaemon(t, DoorConfig{PulseS: 3, GapS: 5, Remote: "call"})
		defer led2.Close()
		defer none.panel.Close()
		if err := none.remoteDoor(call.Peer{Name: "hall"}); !errors.As(err, &de) || de.Result != wire.DoorNone {
			t.Fatalf("no door: %v", err)
		}
		if err := none.openDoor(context.Background(), "web page"); !errors.Is(err, errNoDoor) || doorCode(err) != http.StatusNotFound || none.doorStatus() != nil {
			t.Fatalf("no door: %v (%d)", err, doorCode(err))
		}
	})
}
