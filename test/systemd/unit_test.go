package systemd

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const unit = "../../systemd/callbox.service"

// systemd-analyze rates the unit's sandbox at 2.0 or better ("OK").
func TestUnitSecurityRating(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is missing: apt-get install systemd")
	}
	out, _ := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for callbox.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no rating in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure %.1f", score)
	if score > 2.0 {
		t.Errorf("exposure %.1f, want ≤ 2.0:\n%s", score, out)
	}
}

// The settings the daemon relies on are there, and none that would break
// group-based device access.
func TestUnitSettings(t *testing.T) {
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{
		"Type=notify", "NotifyAccess=main", "WatchdogSec=", "Restart=on-failure",
		"RestartPreventExitStatus=78", "User=callbox", "SupplementaryGroups=video audio gpio",
		"StateDirectory=callbox", "ConfigurationDirectory=callbox", "RuntimeDirectory=callbox",
		"DevicePolicy=closed", "DeviceAllow=char-video4linux rw", "DeviceAllow=char-alsa rw",
		"DeviceAllow=char-gpiochip rw", "ExecStart=/usr/bin/callboxd -config /etc/callbox/callbox.toml",
	} {
		if !strings.Contains(text, "\n"+want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	// Exactly these device classes: the camera's (V4L2 nodes, and for a
	// camera module libcamera's media controllers and DMA heaps), sound,
	// GPIO and the framebuffer.
	var allowed []string
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "DeviceAllow="); ok {
			allowed = append(allowed, v)
		}
	}
	want := []string{"char-video4linux rw", "char-media rw", "char-dma_heap rw", "char-alsa rw", "char-gpiochip rw", "char-fb rw"}
	if strings.Join(allowed, "; ") != strings.Join(want, "; ") {
		t.Errorf("DeviceAllow %q, want %q", allowed, want)
	}
	for _, bad := range []string{"PrivateUsers=yes", "PrivateDevices=yes", "DynamicUser=yes"} {
		if strings.Contains(text, "\n"+bad) {
			t.Errorf("unit has %q, which takes the devices away", bad)
		}
	}
}
