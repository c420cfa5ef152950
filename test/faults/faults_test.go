package faults

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/faults"
	"github.com/callbox/callbox/internal/testbox"
)

var daemonBin string

func TestMain(m *testing.M) {
	// CALLBOX_FAULTS_BIN runs the matrix against a daemon built
	// elsewhere, e.g. an older commit's, to see which faults it fails.
	if bin := os.Getenv("CALLBOX_FAULTS_BIN"); bin != "" {
		daemonBin = bin
		os.Exit(m.Run())
	}
	bin, cleanup, err := testbox.BuildDaemon(raceEnabled)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daemonBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// reps is how many times in a row each fault happens before the normal
// calls; CALLBOX_FAULT_REPS changes it for a hand run.
func reps(t *testing.T) int {
	if s := os.Getenv("CALLBOX_FAULT_REPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CALLBOX_FAULT_REPS=%q: want a positive number", s)
		}
		return n
	}
	return 10
}

// parallel is how many faults run at once, each on its own pair of
// daemons: the faults wait on the peer timeout more than they compute.
const parallel = 6

// TestFaultMatrix runs every fault of the matrix, each on a rig of its
// own, several at once: the fault reps times in a row, then a normal call
// from A to B and one from B to A.
func TestFaultMatrix(t *testing.T) {
	n := reps(t)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, f := range faults.Matrix {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// Subtests run from several goroutines at once (t.Run allows
			// it); t.Parallel would cap them at GOMAXPROCS.
			t.Run(f.Name, func(t *testing.T) { runFault(t, f, n) })
		}()
	}
	wg.Wait()
}

func runFault(t *testing.T, f faults.Fault, n int) {
	if f.Netns {
		if why := faults.CanNetns(); why != "" {
			t.Skip("skipped: " + why)
		}
	}
	began := time.Now()
	r, err := faults.NewRig(t.Context(), faults.Options{
		Bin: daemonBin, Dir: t.TempDir(), Proxy: f.Proxy, Netns: f.Netns, Note: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range n {
		if err := f.Run(t.Context(), r, i); err != nil {
			t.Fatalf("%s, run %d of %d: %v\n%s", f.Name, i+1, n, err, r.Logs())
		}
	}
	if err := r.BothWays(t.Context()); err != nil {
		t.Fatalf("after %d × %s: %v\n%s", n, f.Name, err, r.Logs())
	}
	t.Logf("%d × %s, then a call each way: %v", n, f.Name, time.Since(began).Round(100*time.Millisecond))
}
