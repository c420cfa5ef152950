// Package faults runs the fault matrix of issue 12 (internal/faults)
// against real callboxd daemons on 127.0.0.1 and in network namespaces:
// each fault ten times in a row, then a normal call both ways that must
// connect and carry video and audio.
package faults
