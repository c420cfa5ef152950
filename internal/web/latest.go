package web

import (
	"context"
	"sync"
)

// Latest holds the newest JPEG of one stream and wakes whoever waits for
// the next. It queues nothing: a newer frame replaces the one held (latest
// wins), so a slow reader skips frames and never makes anything grow. The
// zero value is ready; Put and Get may be called from any goroutine.
type Latest struct {
	mu      sync.Mutex
	jpeg    []byte
	version uint64
	changed chan struct{} // closed by the next Put; made only when someone asks
}

// Put makes jpeg the newest frame; nil clears it (no frame to show). The
// caller must not modify jpeg afterwards. Put never blocks.
func (l *Latest) Put(jpeg []byte) {
	l.mu.Lock()
	l.jpeg = jpeg
	l.version++
	ch := l.changed
	l.changed = nil
	l.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// Get returns the newest frame (nil if none), its version (0 before the
// first Put, then growing by one per Put) and a channel closed by the next
// Put. It never blocks.
func (l *Latest) Get() (jpeg []byte, version uint64, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.jpeg, l.version, l.changed
}

// AnyFrame as WaitFrame's since takes the frame there is, if any.
const AnyFrame = ^uint64(0)

// WaitFrame waits until ctx ends for a frame from get (Latest.Get or a
// Backend's Latest) whose version is not since, and returns it; nil if
// ctx ended first.
func WaitFrame(ctx context.Context, get func() ([]byte, uint64, <-chan struct{}), since uint64) []byte {
	for {
		jpeg, v, changed := get()
		if len(jpeg) > 0 && v != since {
			return jpeg
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}
