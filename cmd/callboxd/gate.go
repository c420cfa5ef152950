package main

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// mediaLinger is how long a device stays open after the last reason for
// it went away: a call placed again at once, or a page reloaded, does not
// close and re-open it.
const mediaLinger = 3 * time.Second

// probeEvery is how often a device standing by is checked for presence.
const probeEvery = 5 * time.Second

// gate says when a group of devices (the camera; the microphone and the
// speaker) must be open: while anything holds it, and for linger after
// the last hold is released. Nothing runs while it is shut: no timer, no
// goroutine beyond the device loops blocked on it. Safe for concurrent
// use; set, hold and release never block.
type gate struct {
	name     string
	linger   time.Duration
	onChange func(name string, on bool, why string) // called with the gate's lock held: must not call back into it

	mu     sync.Mutex
	holds  map[string]int
	on     bool
	ctx    context.Context // ends when the gate shuts
	cancel context.CancelFunc
	opened chan struct{} // closed when the gate opens; a new one once it shuts
	timer  *time.Timer   // the linger, while it runs
	closed bool
}

func newGate(name string, linger time.Duration, onChange func(name string, on bool, why string)) *gate {
	g := &gate{name: name, linger: linger, onChange: onChange, holds: map[string]int{}, opened: make(chan struct{})}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.cancel()
	return g
}

// set holds the gate for why while on is true (a level, such as "call").
func (g *gate) set(why string, on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if on {
		g.holds[why] = 1
	} else {
		delete(g.holds, why)
	}
	g.update()
}

// hold holds the gate for why until release is called (once; later
// calls do nothing). Holds of one why add up.
func (g *gate) hold(why string) (release func()) {
	g.mu.Lock()
	g.holds[why]++
	g.update()
	g.mu.Unlock()
	return sync.OnceFunc(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.holds[why]--; g.holds[why] <= 0 {
			delete(g.holds, why)
		}
		g.update()
	})
}

// update opens the gate or starts its linger; g.mu held.
func (g *gate) update() {
	if g.closed {
		return
	}
	if len(g.holds) > 0 {
		if g.timer != nil {
			g.timer.Stop()
			g.timer = nil
		}
		if !g.on {
			g.on = true
			g.ctx, g.cancel = context.WithCancel(context.Background())
			close(g.opened)
			if g.onChange != nil {
				g.onChange(g.name, true, g.reasons())
			}
		}
		return
	}
	if g.on && g.timer == nil {
		var t *time.Timer
		t = time.AfterFunc(g.linger, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.timer != t || len(g.holds) > 0 || !g.on {
				return
			}
			g.timer = nil
			g.shut()
		})
		g.timer = t
	}
}

// shut shuts the gate; g.mu held.
func (g *gate) shut() {
	if !g.on {
		return
	}
	g.on = false
	g.cancel()
	g.opened = make(chan struct{})
	if g.onChange != nil {
		g.onChange(g.name, false, "")
	}
}

// close shuts the gate for good (the daemon stops): its linger timer
// is stopped and nothing opens it again.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.shut()
	g.closed = true
}

// state says whether the gate is open and, if not, gives a channel
// closed when it opens.
func (g *gate) state() (on bool, opened <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.on, g.opened
}

// wait blocks until the gate is open or ctx ends (its error).
func (g *gate) wait(ctx context.Context) error {
	for {
		on, opened := g.state()
		if on {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-opened:
		}
	}
}

// active returns a context derived from ctx that ends when the gate
// shuts: already ended if it is shut now. Call stop when done with it.
func (g *gate) active(ctx context.Context) (actx context.Context, stop func()) {
	g.mu.Lock()
	gctx := g.ctx
	g.mu.Unlock()
	c, cancel := context.WithCancel(ctx)
	if gctx.Err() != nil {
		cancel() // at once: AfterFunc would do it on a goroutine of its own
		return c, cancel
	}
	unhook := context.AfterFunc(gctx, cancel)
	return c, func() { unhook(); cancel() }
}

// isOpen says whether the gate is open, and why: the holds, or
// "lingering" after the last went.
func (g *gate) isOpen() (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.on {
		return false, ""
	}
	return true, g.reasons()
}

// reasons names the holds, or "lingering" after the last went; g.mu held.
func (g *gate) reasons() string {
	if len(g.holds) == 0 {
		return "lingering"
	}
	return strings.Join(slices.Sorted(maps.Keys(g.holds)), ", ")
}

// describe is the gate for status: "closed" or "open (call, web viewer)".
func (g *gate) describe() string {
	on, why := g.isOpen()
	if !on {
		return "closed"
	}
	return "open (" + why + ")"
}
