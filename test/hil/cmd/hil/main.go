// Command hil runs the hardware-in-the-loop scenarios: each boots a stock
// Debian kernel in QEMU with real drivers (gpio-sim, v4l2loopback, vivid,
// snd-aloop), runs the real callboxd inside, calls a second callboxd on
// this machine, and reports PASS, FAIL or SKIPPED with figures measured in
// the run. `make hil` runs it through test/hil/run, which installs the
// host packages first. Run from the repository root.
package main

import (
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/callbox/callbox/test/hil/rig"
)

func main() {
	os.Exit(run())
}

// env is what every scenario shares.
type env struct {
	out     string            // artefacts: console logs, host logs, summary
	work    string            // per-run scratch
	kernels map[string]kernel // by arch
	daemons map[string]string // callboxd by arch
	agents  map[string]string // hilagent by arch
	hostBin string            // callboxd for the host peer
	accel   string
	keep    bool
}

// kernel is what prepare.sh made for one arch.
type kernel struct {
	dir, image, base, release string
}

func run() int {
	var (
		only    = flag.String("scenarios", "all", "comma-separated scenarios to run (see -list)")
		list    = flag.Bool("list", false, "list the scenarios and exit")
		out     = flag.String("out", "test/hil/out", "where console logs, host logs and the summary go")
		amd64   = flag.String("bin-amd64", "bin/linux-amd64/callboxd", "callboxd for the amd64 guest")
		arm64   = flag.String("bin-arm64", "bin/linux-arm64/callboxd", "callboxd for the arm64 guest")
		hostBin = flag.String("host-bin", "", "callboxd for the host peer (default: -bin-"+runtime.GOARCH+")")
		accel   = flag.String("accel", "auto", "amd64 guests: tcg, kvm, or auto (kvm only with vmx/svm in /proc/cpuinfo)")
		timeout = flag.Duration("timeout", 5*time.Minute, "bound of each scenario, boot included")
		keep    = flag.Bool("keep", false, "keep the scratch directory (initrds, recordings)")
		repeat  = flag.Int("repeat", 1, "run the scenarios this many times and print a tally per scenario (artefacts of run N in <out>/run-N/)")
	)
	flag.Parse()
	all := scenarios()
	if *list {
		for _, s := range all {
			fmt.Printf("%-19s %-5s %s\n", s.name, s.arch, s.what)
		}
		return 0
	}
	var chosen []scenario
	if *only == "all" {
		chosen = all
	} else {
		for _, n := range strings.Split(*only, ",") {
			i := slices.IndexFunc(all, func(s scenario) bool { return s.name == strings.TrimSpace(n) })
			if i < 0 {
				fmt.Fprintf(os.Stderr, "hil: no scenario %q (try -list)\n", n)
				return 2
			}
			chosen = append(chosen, all[i])
		}
	}
	if *repeat < 1 {
		fmt.Fprintf(os.Stderr, "hil: -repeat %d: want 1 or more\n", *repeat)
		return 2
	}
	began := time.Now()
	e := &env{out: *out, kernels: map[string]kernel{}, daemons: map[string]string{"amd64": *amd64, "arm64": *arm64},
		agents: map[string]string{}, keep: *keep}
	e.hostBin = *hostBin
	if e.hostBin == "" {
		e.hostBin = e.daemons[runtime.GOARCH]
	}
	switch *accel {
	case "auto":
		e.accel = "tcg"
		if rig.KVMUsable() {
			e.accel = "kvm"
		}
	case "tcg", "kvm":
		e.accel = *accel
	default:
		fmt.Fprintf(os.Stderr, "hil: -accel %q: want tcg, kvm or auto\n", *accel)
		return 2
	}
	if err := os.MkdirAll(e.out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "hil:", err)
		return 1
	}
	var err error
	if e.work, err = os.MkdirTemp("", "callbox-hil-"); err != nil {
		fmt.Fprintln(os.Stderr, "hil:", err)
		return 1
	}
	if !e.keep {
		defer os.RemoveAll(e.work)
	}
	fmt.Printf("hil: accel %s, scratch %s, artefacts %s\n", e.accel, e.work, e.out)

	// Kernels, base images and agents for the arches the scenarios need,
	// once for all the runs.
	prepared := map[string]error{}
	for _, s := range chosen {
		if _, done := prepared[s.arch]; done {
			continue
		}
		t := time.Now()
		err := e.prepare(s.arch)
		prepared[s.arch] = err
		if err != nil {
			fmt.Printf("hil: preparing %s failed: %v\n", s.arch, err)
			continue
		}
		fmt.Printf("hil: %s ready in %.1fs: kernel %s\n", s.arch, time.Since(t).Seconds(), e.kernels[s.arch].release)
	}
	if *repeat == 1 {
		return e.summary(e.runAll(chosen, prepared, *timeout), time.Since(began))
	}
	// Repeated: run N's artefacts go to <out>/run-N/ (those of an earlier
	// repeat are removed first), the tally to <out>/tally.txt.
	base := e.out
	old, _ := filepath.Glob(filepath.Join(base, "run-*"))
	for _, d := range old {
		os.RemoveAll(d)
	}
	var tally rig.Tally
	for n := 1; n <= *repeat; n++ {
		e.out = filepath.Join(base, fmt.Sprintf("run-%d", n))
		if err := os.MkdirAll(e.out, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "hil:", err)
			return 1
		}
		fmt.Printf("\n##### run %d of %d\n", n, *repeat)
		t := time.Now()
		results := e.runAll(chosen, prepared, *timeout)
		e.summary(results, time.Since(t))
		for _, r := range results {
			tally.Add(n, r.name, r.status, r.figures, r.why)
		}
	}
	return writeTally(&tally, base, e.accel, time.Since(began))
}

// runAll runs the chosen scenarios once, in order.
func (e *env) runAll(chosen []scenario, prepared map[string]error, timeout time.Duration) []result {
	var results []result
	for _, s := range chosen {
		fmt.Printf("\n=== %s (%s): %s\n", s.name, s.arch, s.what)
		var r result
		var sk skip
		if err := prepared[s.arch]; errors.As(err, &sk) {
			r = result{name: s.name, status: "SKIPPED", why: "skipped: " + sk.reason}
		} else if err != nil {
			r = result{name: s.name, status: "FAIL", why: "preparing " + s.arch + ": " + err.Error()}
		} else {
			r = e.runScenario(s, timeout)
		}
		results = append(results, r)
		fmt.Printf("--- %s %s (%.1fs)\n", r.status, r.name, r.took.Seconds())
		for _, f := range r.figures {
			fmt.Printf("    %s\n", f)
		}
		if r.why != "" {
			fmt.Printf("    %s\n", r.why)
		}
	}
	return results
}

// writeTally prints the tally of repeated runs and writes it to
// <out>/tally.txt; it returns the exit code: 1 if any run failed.
func writeTally(t *rig.Tally, out, accel string, took time.Duration) int {
	var b strings.Builder
	fmt.Fprintf(&b, "hardware-in-the-loop tally of %d runs, %s, accel %s, %.0fs in all\n", t.Runs, time.Now().UTC().Format(time.RFC3339), accel, took.Seconds())
	for _, s := range t.Scenarios() {
		fmt.Fprintf(&b, "%s\n", s)
		for _, f := range s.Figures() {
			fmt.Fprintf(&b, "        %s\n", f)
		}
		for _, f := range s.Failures {
			fmt.Fprintf(&b, "    FAIL %s\n", f)
		}
	}
	fmt.Fprintf(&b, "artefacts of run N: %s\n", filepath.Join(out, "run-N"))
	fmt.Printf("\n%s", b.String())
	os.WriteFile(filepath.Join(out, "tally.txt"), []byte(b.String()), 0o644)
	if t.Failed() {
		return 1
	}
	return 0
}

// prepare runs prepare.sh for arch and builds the agent for it.
func (e *env) prepare(arch string) error {
	if _, err := os.Stat(e.daemons[arch]); err != nil {
		return fmt.Errorf("callboxd for %s: %w (make build / make arm64 first)", arch, err)
	}
	if err := checkELF(e.daemons[arch], arch); err != nil {
		return err
	}
	qemu := map[string]string{"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}[arch]
	if _, err := exec.LookPath(qemu); err != nil {
		return skip{qemu + " is not installed (apt-get install qemu-system-x86 qemu-system-arm; test/hil/run does)"}
	}
	if _, err := os.Stat("test/hil/prepare.sh"); err != nil {
		return fmt.Errorf("%w: run from the repository root", err)
	}
	cmd := exec.Command("bash", "test/hil/prepare.sh", arch)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return skip{"the kernel and packages for " + arch + " cannot be had here (see prepare.sh's message above)"}
	}
	if err != nil {
		return fmt.Errorf("prepare.sh %s: %w", arch, err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	dir := lines[len(lines)-1]
	k := kernel{dir: dir, image: filepath.Join(dir, "kernel"), base: filepath.Join(dir, "base.cpio")}
	if info, err := os.ReadFile(filepath.Join(dir, "info")); err == nil {
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "kernel_release="); ok {
				k.release = v
			}
		}
	}
	e.kernels[arch] = k
	agent := filepath.Join(e.work, "hilagent-"+arch)
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", agent, "./test/hil/cmd/hilagent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building hilagent for %s: %w", arch, err)
	}
	e.agents[arch] = agent
	return nil
}

// checkELF makes sure bin is a binary for arch.
func checkELF(bin, arch string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("%s: %w", bin, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		return fmt.Errorf("%s is a %v binary, not %s", bin, f.Machine, arch)
	}
	return nil
}

// result is one scenario's outcome.
type result struct {
	name    string
	status  string // PASS, FAIL, SKIPPED
	why     string
	figures []string
	took    time.Duration
}

// skip marks a scenario that cannot run here for a reason outside the
// project.
type skip struct{ reason string }

func (s skip) Error() string { return s.reason }

func (e *env) runScenario(s scenario, timeout time.Duration) result {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ses := newSession(e, s)
	var vmState string
	err := func() (err error) {
		defer func() {
			if err != nil && ses.vm != nil {
				vmState = ses.vm.State() // before close stops it
			}
			if cerr := ses.close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		return s.run(ctx, ses)
	}()
	r := result{name: s.name, status: "PASS", figures: ses.figures, took: time.Since(began)}
	var sk skip
	switch {
	case errors.As(err, &sk):
		r.status, r.why = "SKIPPED", "skipped: "+sk.reason
	case err != nil:
		r.status, r.why = "FAIL", err.Error()
		if ctx.Err() != nil {
			r.why += fmt.Sprintf(" (scenario bound %v reached)", timeout)
		}
		if vmState != "" {
			r.why += "\n    " + vmState
		}
		r.why += fmt.Sprintf("\n    console: %s\n    host peer log: %s", ses.consolePath(), ses.hostLogPath())
	}
	return r
}

func (e *env) summary(results []result, took time.Duration) int {
	var b strings.Builder
	fmt.Fprintf(&b, "hardware-in-the-loop run, %s, accel %s, %.0fs in all\n", time.Now().UTC().Format(time.RFC3339), e.accel, took.Seconds())
	for arch, k := range e.kernels {
		fmt.Fprintf(&b, "  %s kernel %s\n", arch, k.release)
	}
	code := 0
	for _, r := range results {
		fmt.Fprintf(&b, "%-7s %-19s %5.1fs\n", r.status, r.name, r.took.Seconds())
		for _, f := range r.figures {
			fmt.Fprintf(&b, "        %s\n", f)
		}
		if r.why != "" {
			fmt.Fprintf(&b, "        %s\n", strings.ReplaceAll(r.why, "\n", "\n    "))
		}
		if r.status == "FAIL" {
			code = 1
		}
	}
	fmt.Printf("\n%s", b.String())
	os.WriteFile(filepath.Join(e.out, "summary.txt"), []byte(b.String()), 0o644)
	return code
}
