// Package process runs real callboxd binaries on 127.0.0.1 with simulated
// devices and checks what a user of two boxes would see.
package process
