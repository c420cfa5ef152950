// Package systemd checks the shipped unit with systemd's own tools: its
// sandbox rating and the settings a notify daemon with a watchdog needs.
package systemd
