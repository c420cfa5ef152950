// Command bench is `make bench`: it measures what a callbox call costs and
// how late its media arrive, with real daemons on this machine, and prints
// one table (also written to a file). It is a measurement, never pass/fail:
// goals missed are reported with the figure, not as an exit code.
//
// Cases: two daemons on loopback at 640x480 and 1280x720 (30 fps, TLS);
// the same call through network namespaces joined by an emulated link
// ("LAN", "Wi-Fi", "thin uplink", root only); the least a call can cost
// on this machine (two one-tick programs: the floor the daemon's CPU is
// read against); and a slow receiver whose
// video sink takes 50 ms per frame; two boxes waiting for a call (their
// CPU over a minute, with simulated and with file devices, and how soon
// the first frames come after an answer); and, in process, what the screen
// spends decoding and scaling a frame; and, in process, the echo stage
// in a simulated room (docs/audio.md). docs/performance.md explains the
// method and every column.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/callbox/callbox/stream/echo"
	"github.com/callbox/callbox/stream/room"
)

// options are the command line.
type options struct {
	bin      string
	out      string
	only     string
	quick    bool
	keep     bool
	series   bool
	loopback time.Duration
	profile  time.Duration
	slow     time.Duration
	idle     time.Duration // the idle case's window
	room     room.Config   // the room case's room
}

func main() {
	if mode := os.Getenv(floorEnv); mode != "" { // a child of the floor case
		if err := floorChild(mode); err != nil {
			fmt.Fprintln(os.Stderr, "bench: floor:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.bin, "bin", filepath.Join("bin", "linux-"+runtime.GOARCH, "callboxd"), "the callboxd binary")
	flag.StringVar(&o.out, "out", filepath.Join("bench-out", "bench.md"), "also write the table here")
	flag.StringVar(&o.only, "cases", "", "comma-separated case names to run (default: all): floor, loopback-480p, loopback-720p, loopback-720p-1fps, lan, wifi, thin, slow, idle, screen, room")
	flag.BoolVar(&o.quick, "quick", false, "short calls (8 s, profiles 20 s): for trying the tool, figures are rougher")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, daemon logs)")
	flag.BoolVar(&o.series, "series", false, "also write each case's figures over time (every half second) as CSV next to -out")
	flag.DurationVar(&o.idle, "idle-window", 0, "idle case: how long each idle box is measured (default 60 s, 15 s with -quick)")
	o.room = room.Default()
	flag.DurationVar(&o.room.Delay, "room-delay", o.room.Delay, "room case: the loudspeaker-to-microphone delay (5ms-200ms)")
	flag.DurationVar(&o.room.RT60, "room-rt60", o.room.RT60, "room case: the reverberation time RT60 (100ms-1s)")
	flag.Float64Var(&o.room.EchoDB, "room-echo-db", o.room.EchoDB, "room case: the direct path's level against what is played, dB (-60..6)")
	flag.Float64Var(&o.room.Drive, "room-drive", o.room.Drive, "room case: the loudspeaker's soft clip (0: linear; 0..10)")
	flag.Float64Var(&o.room.SNR, "room-snr", o.room.SNR, "room case: the talker over the background noise, dB")
	flag.Parse()
	if err := o.room.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	o.loopback, o.profile, o.slow = 20*time.Second, 60*time.Second, 20*time.Second
	if o.quick {
		o.loopback, o.profile, o.slow = 8*time.Second, 20*time.Second, 8*time.Second
	}
	if o.idle <= 0 {
		o.idle = 60 * time.Second
		if o.quick {
			o.idle = 15 * time.Second
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("daemon binary: %w (run `make build` first or pass -bin)", err)
	}
	work, err := os.MkdirTemp("", "callbox-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("keeping the work directory", work)
	} else {
		defer os.RemoveAll(work)
	}
	series := func(name string) string {
		if !o.series || o.out == "" {
			return ""
		}
		return filepath.Join(filepath.Dir(o.out), name+"-series.csv")
	}
	want := func(name string) bool {
		if o.only == "" {
			return true
		}
		for _, c := range strings.Split(o.only, ",") {
			if strings.TrimSpace(c) == name {
				return true
			}
		}
		return false
	}

	started := time.Now()
	env := describeMachine()
	fmt.Println(env)
	var results []result
	var notes []string
	var mark machineMark
	var screenSection string
	if want("floor") {
		fmt.Printf("\n== floor: the least a call costs on this machine (two one-tick programs, %v each)\n", o.loopback/2)
		sec, err := runFloor(ctx, o.loopback/2)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			notes = append(notes, "floor: failed: "+err.Error())
		} else {
			fmt.Print(sec)
			screenSection += sec
		}
	}
	add := func(r result, err error) error {
		r.load = mark.since()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			notes = append(notes, fmt.Sprintf("%s: failed: %v (%s)", r.name, err, r.load))
			fmt.Fprintf(os.Stderr, "bench: %s failed: %v\n", r.name, err)
			return nil
		}
		results = append(results, r)
		fmt.Print(formatTable([]result{r}))
		return nil
	}

	for _, c := range []struct {
		name      string
		w, h, fps int
		length    time.Duration
	}{
		{"loopback-480p", 640, 480, 30, o.loopback},
		{"loopback-720p", 1280, 720, 30, o.loopback},
		// The same call with almost no video: what audio, keepalive and
		// the devices cost, so that the cost of video frames can be told apart.
		{"loopback-720p-1fps", 1280, 720, 1, o.loopback * 3 / 4},
	} {
		if !want(c.name) {
			continue
		}
		fmt.Printf("\n== %s: two daemons on 127.0.0.1, %dx%d %d fps, TLS, %v call\n", c.name, c.w, c.h, c.fps, c.length)
		mark = markMachine()
		r, err := runPair(ctx, pairCase{
			name: c.name, bin: bin, dir: filepath.Join(work, c.name),
			width: c.w, height: c.h, fps: c.fps, length: c.length, series: series(c.name),
		})
		if err := add(r, err); err != nil {
			return err
		}
	}

	profiles := []profile{
		{name: "lan", title: "LAN", delay: time.Millisecond, rateKbit: 100_000},
		{name: "wifi", title: "Wi-Fi", delay: 20 * time.Millisecond, jitter: 10 * time.Millisecond, loss: 0.01, rateKbit: 8_000},
		{name: "thin", title: "thin uplink", delay: 40 * time.Millisecond, rateKbit: 2_000},
	}
	for _, p := range profiles {
		if !want(p.name) {
			continue
		}
		fmt.Printf("\n== %s: two daemons in network namespaces, link %s, 640x480 30 fps, %v call\n", p.name, p, o.profile)
		if os.Geteuid() != 0 {
			notes = append(notes, fmt.Sprintf("%s: skipped: network namespaces need root", p.name))
			fmt.Println("skipped: network namespaces need root")
			continue
		}
		mark = markMachine()
		r, err := runProfile(ctx, p, bin, filepath.Join(work, p.name), o.profile, series(p.name))
		if err := add(r, err); err != nil {
			return err
		}
	}

	if want("slow") {
		fmt.Printf("\n== slow: a daemon calls a receiver whose video sink takes 50 ms per frame, 640x480 30 fps, %v call\n", o.slow)
		mark = markMachine()
		r, err := runSlow(ctx, bin, filepath.Join(work, "slow"), o.slow)
		if err := add(r, err); err != nil {
			return err
		}
	}

	if want("idle") {
		var rows []idleRow
		for i, set := range idleSets {
			fmt.Printf("\n== idle: two paired daemons waiting for a call, %s, %v; then a call\n", set.name, o.idle)
			r, err := runIdle(ctx, bin, filepath.Join(work, fmt.Sprintf("idle-%d", i)), set, o.idle, 10*time.Second)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				notes = append(notes, fmt.Sprintf("idle (%s): failed: %v", set.name, err))
				continue
			}
			rows = append(rows, r...)
		}
		if len(rows) > 0 {
			sec := formatIdle(rows)
			fmt.Print(sec)
			screenSection += sec
		}
	}
	if want("screen") {
		fmt.Printf("\n== screen: JPEG decode + scale into a framebuffer, in process\n")
		rows, err := measureScreen(ctx, 120)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			notes = append(notes, fmt.Sprintf("screen: failed: %v", err))
		} else {
			screenSection = formatScreen(rows)
			fmt.Print(screenSection)
		}
	}

	if want("room") {
		fmt.Printf("\n== room: echo cancellation in a simulated room, in process\n")
		if !echo.Available() {
			notes = append(notes, "room: skipped: compiled without echo cancellation (cgo)")
		} else {
			sec := formatRoom(measureRoom(ctx, o.room), o.room)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Print(sec)
			screenSection += sec
		}
	}

	report := renderReport(env, results, notes, time.Since(started), screenSection)
	fmt.Println()
	fmt.Print(report)
	if o.out != "" {
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			return err
		}
		fmt.Println("written to", o.out)
	}
	if len(results) == 0 && screenSection == "" {
		return errors.New("no case ran")
	}
	return nil
}

// describeMachine names what the figures were measured on.
func describeMachine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	cc := ""
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control"); err == nil {
		cc = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("machine: %s, %d CPUs, Linux %s, %s, TCP congestion control %s, %s",
		model, runtime.NumCPU(), kernel, runtime.GOARCH, cc, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}
