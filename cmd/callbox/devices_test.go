package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callbox/callbox/internal/control"
)

// With no daemon, `callbox devices` lists the devices itself, says so,
// and succeeds.
func TestDevicesWithoutDaemon(t *testing.T) {
	var out, errOut bytes.Buffer
	sock := filepath.Join(t.TempDir(), "none.sock")
	if code := run([]string{"-socket", sock, "devices"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "cannot reach the daemon") || !strings.Contains(errOut.String(), "listing the devices itself") {
		t.Errorf("stderr %q does not say why and what it did", errOut.String())
	}
	for _, want := range []string{"listed by callbox itself", "cameras (video.device):", "microphones (audio.capture):", "screens (screen.device):"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("listing lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"-socket", sock, "devices", "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("--json: exit %d", code)
	}
	var d control.Devices
	if err := json.Unmarshal(out.Bytes(), &d); err != nil || d.ListedBy != control.ListedByTool {
		t.Errorf("--json: %v, listed by %q:\n%s", err, d.ListedBy, out.String())
	}
}

// With a daemon, its listing is shown and named as its.
func TestDevicesFromDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(control.Devices{ListedBy: control.ListedByDaemon,
			Cameras: []control.Camera{{Path: "/dev/video7", Driver: "uvcvideo", Use: "/dev/video7"}}})
	})}
	go srv.Serve(l)
	defer srv.Close()
	var out, errOut bytes.Buffer
	if code := run([]string{"-socket", sock, "devices"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "listed by callboxd") || !strings.Contains(out.String(), "/dev/video7") || errOut.Len() != 0 {
		t.Errorf("stdout:\n%s\nstderr: %s", out.String(), errOut.String())
	}
}
