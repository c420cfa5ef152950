package audio

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
)

// Recorder writes a raw s16le recording to a file, up to a byte limit so a
// long run cannot fill the disk. Past the limit it drops everything and counts
// it. It is safe for concurrent use.
type Recorder struct {
	path string
	max  int64

	mu      sync.Mutex
	f       *os.File // nil once closed
	written int64
	dropped int64
}

// RecorderStats counts a Recorder's bytes.
type RecorderStats struct {
	Written int64 // bytes in the file
	Dropped int64 // bytes not written because of the limit
}

// NewRecorder creates (or truncates) path, readable by its owner only since it
// holds what was said, and returns a Recorder that writes at most maxBytes.
func NewRecorder(path string, maxBytes int64) (*Recorder, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("audio: recorder %s: limit %d bytes, want > 0", path, maxBytes)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audio: recorder: %w", err)
	}
	return &Recorder{path: path, max: maxBytes, f: f}, nil
}

// Write writes p, or the whole samples of it that fit under the limit; once
// anything has been dropped, later writes are dropped too, so the file is a
// clean prefix. Dropping is not an error: Write reports len(p).
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, ErrClosed
	}
	keep := len(p)
	if r.dropped > 0 {
		keep = 0
	} else if room := r.max - r.written; int64(keep) > room {
		keep = int(room &^ 1)
	}
	n, err := r.f.Write(p[:keep])
	r.written += int64(n)
	if err != nil {
		return n, fmt.Errorf("audio: recorder %s: %w", r.path, err)
	}
	r.dropped += int64(len(p) - keep)
	return len(p), nil
}

// Stats may be called from any goroutine.
func (r *Recorder) Stats() RecorderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RecorderStats{Written: r.written, Dropped: r.dropped}
}

// Close closes the file. It is idempotent.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	if err != nil {
		return fmt.Errorf("audio: recorder %s: %w", r.path, err)
	}
	return nil
}

// ReadRecording reads a raw s16le recording, such as a Recorder wrote.
func ReadRecording(path string) ([]int16, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audio: read recording: %w", err)
	}
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("audio: read recording %s: odd length %d bytes", path, len(b))
	}
	s := make([]int16, len(b)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return s, nil
}
