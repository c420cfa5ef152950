// Command soak is the chaos soak of issue 12 (`make soak`): real callboxd
// daemons go through N cycles of random faults from internal/faults,
// mixed with normal calls; after every fault the next normal call must
// connect and carry media both ways. It prints a table of calls, faults
// and failures, and every 100 cycles each daemon's goroutines, open fds,
// RSS and heap with their growth, and exits 1 if anything failed.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/callbox/callbox/internal/faults"
	"github.com/callbox/callbox/internal/testbox"
)

func main() {
	bin := flag.String("bin", "", "callboxd to run (required)")
	cycles := flag.Int("cycles", envInt("SOAK_CYCLES", 1000), "cycles to run (SOAK_CYCLES)")
	maxDur := flag.Duration("max", envDur("SOAK_MAX", 30*time.Minute), "stop after this long even if cycles remain (SOAK_MAX)")
	seed := flag.Uint64("seed", envUint("SOAK_SEED", uint64(time.Now().UnixNano())), "random seed (SOAK_SEED)")
	every := flag.Int("every", 100, "cycles between process figures")
	flag.Parse()
	if *bin == "" || *cycles < 1 || *every < 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, *bin, *cycles, *maxDur, *seed, *every)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// tally counts one kind of cycle.
type tally struct{ runs, failed int }

// sample is one daemon's process figures.
type sample struct {
	goroutines, fds int
	rssKB, heapKB   int64
	pid             int
}

func run(ctx context.Context, bin string, cycles int, maxDur time.Duration, seed uint64, every int) (bool, error) {
	fmt.Printf("soak: seed %d (SOAK_SEED=%d reproduces the sequence), up to %d cycles or %v, daemon %s\n", seed, seed, cycles, maxDur, bin)
	dir, err := os.MkdirTemp("", "callbox-soak-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	// One rig on 127.0.0.1 with proxies (every fault but the cable), and
	// one in network namespaces for the cable, when root.
	lo, err := faults.NewRig(ctx, faults.Options{Bin: bin, Dir: filepath.Join(dir, "lo"), Names: [2]string{"hall", "door"}, Proxy: true})
	if err != nil {
		return false, err
	}
	defer lo.Close()
	rigs := map[*faults.Rig]string{lo: "loopback"}
	var ns *faults.Rig
	if why := faults.CanNetns(); why == "" {
		ns, err = faults.NewRig(ctx, faults.Options{Bin: bin, Dir: filepath.Join(dir, "ns"), Names: [2]string{"attic", "gate"}, Netns: true})
		if err != nil {
			return false, err
		}
		defer ns.Close()
		rigs[ns] = "netns"
	} else {
		fmt.Printf("soak: link-down left out: %s\n", why)
	}
	var kinds []faults.Fault
	for _, f := range faults.Matrix {
		if !f.Netns || ns != nil {
			kinds = append(kinds, f)
		}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	calls := map[string]*tally{}
	faultT := map[string]*tally{}
	for _, f := range kinds {
		faultT[f.Name] = &tally{}
	}
	failures := 0
	boxes := []*testbox.Box{lo.A, lo.B}
	if ns != nil {
		boxes = append(boxes, ns.A, ns.B)
	}
	base := map[*testbox.Box]sample{}
	prev := map[*testbox.Box]sample{}
	restarts := map[*testbox.Box]int{}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	// The figures are taken even after an interrupt.
	figCtx := context.WithoutCancel(ctx)
	figures := func(cycle int) {
		fmt.Fprintf(tw, "cycle\tbox\tpid\tgoroutines\topen fds\tRSS KiB\theap KiB\tΔgoroutines/%d\tΔfds/%d\tΔRSS KiB/%d\tΔheap KiB/%d\trestarts\t\n", every, every, every, every)
		for _, b := range boxes {
			s, err := measure(figCtx, b)
			if err != nil {
				fmt.Fprintf(tw, "%d\t%s\t\t%v\t\t\t\t\t\t\t\t\t\n", cycle, b.Name, err)
				continue
			}
			d := "-\t-\t-\t-"
			if p, ok := prev[b]; ok && p.pid == s.pid && cycle > 0 {
				k := float64(every) / float64(max(cycle-lastCycle(cycle, every), 1))
				d = fmt.Sprintf("%+.0f\t%+.0f\t%+.0f\t%+.0f", k*float64(s.goroutines-p.goroutines), k*float64(s.fds-p.fds),
					k*float64(s.rssKB-p.rssKB), k*float64(s.heapKB-p.heapKB))
			} else if ok && p.pid != s.pid {
				d = "restarted\t\t\t"
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t\n", cycle, b.Name, s.pid, s.goroutines, s.fds, s.rssKB, s.heapKB, d, restarts[b])
			if _, ok := base[b]; !ok {
				base[b] = s
			}
			prev[b] = s
		}
		tw.Flush()
	}
	figures(0)
	began := time.Now()
	done := 0
	for c := 1; c <= cycles; c++ {
		if ctx.Err() != nil || time.Since(began) > maxDur {
			break
		}
		r := lo
		name := "normal call"
		var f *faults.Fault
		if rng.IntN(3) > 0 { // two cycles in three bring a fault
			f = &kinds[rng.IntN(len(kinds))]
			name = f.Name
			if f.Netns {
				r = ns
			}
		}
		if f != nil {
			rep := rng.IntN(4)
			if f.Restarts {
				rep &^= 1 // the victim is B: A's figures run the whole soak
				restarts[r.B]++
			}
			faultT[name].runs++
			if err := f.Run(ctx, r, rep); err != nil {
				if ctx.Err() != nil {
					faultT[name].runs--
					break // interrupted: not a failure of the box
				}
				faultT[name].failed++
				failures++
				report(c, name, err, r)
				recover1(ctx, r)
			}
		}
		caller, callee := r.A, r.B
		if rng.IntN(2) == 1 {
			caller, callee = r.B, r.A
		}
		key := fmt.Sprintf("%s → %s (%s)", caller.Name, callee.Name, rigs[r])
		if calls[key] == nil {
			calls[key] = &tally{}
		}
		calls[key].runs++
		if err := faults.NormalCall(ctx, caller, callee); err != nil {
			if ctx.Err() != nil {
				calls[key].runs--
				break
			}
			calls[key].failed++
			failures++
			report(c, "normal call after "+name, err, r)
			recover1(ctx, r)
		}
		done = c
		if c%every == 0 {
			figures(c)
		}
	}
	if done%every != 0 {
		figures(done)
	}
	elapsed := time.Since(began).Round(time.Second)
	fmt.Printf("\nsoak: %d cycles in %v, seed %d\n", done, elapsed, seed)
	fmt.Fprintf(tw, "what\truns\tfailed\t\n")
	for _, k := range sortedKeys(calls) {
		fmt.Fprintf(tw, "call %s\t%d\t%d\t\n", k, calls[k].runs, calls[k].failed)
	}
	for _, k := range sortedKeys(faultT) {
		fmt.Fprintf(tw, "fault %s\t%d\t%d\t\n", k, faultT[k].runs, faultT[k].failed)
	}
	fmt.Fprintf(tw, "failures\t\t%d\t\n", failures)
	tw.Flush()
	fmt.Println("\nprocess figures, first and last sample (growth per 100 cycles should be about 0):")
	for _, b := range boxes {
		f, l := base[b], prev[b]
		note := ""
		if f.pid != l.pid {
			note = " (restarted meanwhile: compare the samples above)"
		}
		fmt.Printf("  %-6s goroutines %d → %d, fds %d → %d, RSS %d → %d KiB, heap %d → %d KiB%s\n",
			b.Name, f.goroutines, l.goroutines, f.fds, l.fds, f.rssKB, l.rssKB, f.heapKB, l.heapKB, note)
	}
	if ctx.Err() != nil {
		fmt.Println("soak: interrupted")
	}
	if failures > 0 {
		fmt.Printf("soak: FAIL: %d failures\n", failures)
		return false, nil
	}
	fmt.Println("soak: PASS")
	return true, nil
}

// lastCycle is the cycle of the sample before the one at cycle.
func lastCycle(cycle, every int) int {
	if cycle%every == 0 {
		return cycle - every
	}
	return cycle - cycle%every
}

func measure(ctx context.Context, b *testbox.Box) (sample, error) {
	// Figures of an idle box, its last call's goroutines gone: wait for
	// the count to settle for a moment (bounded).
	var s sample
	for range 10 {
		st, err := b.Status(ctx)
		if err != nil {
			return s, err
		}
		n := sample{goroutines: st.Process.Goroutines, fds: st.Process.OpenFDs, heapKB: int64(st.Process.HeapBytes / 1024), pid: b.PID()}
		if n.goroutines == s.goroutines && n.fds == s.fds {
			s = n
			break
		}
		s = n
		time.Sleep(200 * time.Millisecond)
	}
	rss, err := rssKB(s.pid)
	if err != nil {
		return s, err
	}
	s.rssKB = rss
	return s, nil
}

// rssKB reads VmRSS from /proc/PID/status.
func rssKB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// report prints a failure with the tail of both daemons' logs.
func report(cycle int, what string, err error, r *faults.Rig) {
	fmt.Printf("FAIL cycle %d, %s: %v\n", cycle, what, err)
	for _, b := range r.Boxes() {
		fmt.Printf("--- last lines of %s's log:\n", b.Name)
		tail(os.Stdout, b.Log(), 25)
	}
}

func tail(w io.Writer, s string, n int) {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		fmt.Fprintln(w, "    "+l)
	}
}

// recover1 brings a rig back to idle after a failure, so that one defect
// is counted once rather than in every later cycle: both hang up, a dead
// box is restarted.
func recover1(ctx context.Context, r *faults.Rig) {
	for _, b := range r.Boxes() {
		b.Signal(syscall.SIGCONT)
		select {
		case <-b.Exited():
			b.Restart(ctx)
		default:
		}
		b.Client.Do(ctx, "POST", "/v1/hangup", nil, nil)
	}
	faults.WaitIdle(ctx, faults.IdleWithin, r.Boxes()...)
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envUint(name string, def uint64) uint64 {
	if v, err := strconv.ParseUint(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
