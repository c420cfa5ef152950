package main

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The gate opens with the first hold, stays open while any is held and
// for the linger after the last went (a hold within it keeps it open),
// then shuts: its active contexts end and waiters block again.
func TestGateLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var changes []bool
		g := newGate("camera", 3*time.Second, func(_ string, on bool, _ string) {
			mu.Lock()
			changes = append(changes, on)
			mu.Unlock()
		})
		defer g.close()
		actx, stop := g.active(t.Context())
		if actx.Err() == nil {
			t.Fatal("active context of a shut gate has not ended")
		}
		stop()
		g.set("call", true)
		release := g.hold("web viewer")
		actx, stop = g.active(t.Context())
		defer stop()
		if err := g.wait(t.Context()); err != nil || actx.Err() != nil {
			t.Fatalf("open gate: wait %v, active %v", err, actx.Err())
		}
		if got := g.describe(); got != "open (call, web viewer)" {
			t.Errorf("describe %q", got)
		}
		g.set("call", false)
		release()
		release() // a second release does nothing
		time.Sleep(2 * time.Second)
		if on, why := g.isOpen(); !on || why != "lingering" {
			t.Fatalf("2 s after the last hold: open %v (%s), want lingering", on, why)
		}
		again := g.hold("snapshot") // within the linger: no close, no re-open
		time.Sleep(10 * time.Second)
		if on, _ := g.isOpen(); !on || actx.Err() != nil {
			t.Fatal("shut while held")
		}
		again()
		time.Sleep(3*time.Second + time.Millisecond)
		synctest.Wait()
		if on, _ := g.isOpen(); on || actx.Err() == nil || g.describe() != "closed" {
			t.Fatalf("after the linger: open %v, active ctx %v", on, actx.Err())
		}
		mu.Lock()
		if len(changes) != 2 || !changes[0] || changes[1] {
			t.Errorf("changes %v, want one open and one shut", changes)
		}
		mu.Unlock()
		// Nothing runs while it is shut: a waiter just blocks.
		done := make(chan error, 1)
		go func() { done <- g.wait(t.Context()) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("wait on a shut gate returned %v", err)
		default:
		}
		g.set("call", true)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
