// Package e2e checks the daemon's web page and MJPEG streams with real
// clients: headless Chromium driven by playwright-core (browser.mjs) and
// ffmpeg, against two real callboxd daemons in a call on this machine.
// `make e2e` installs the clients and runs it (CALLBOX_E2E=1); plain
// `go test ./...` skips it.
package e2e
