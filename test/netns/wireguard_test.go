package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/netemu"
	"github.com/callbox/callbox/internal/testbox"
)

// The two houses of the WireGuard test. Each is a network namespace whose
// way out is an underlay device (the internet between the houses: 50 ms
// each way) and whose box is reached through a WireGuard interface over
// it. Names carry the test's pid; everything is removed at the end, on
// failure too, and a later run removes namespaces a killed run left.
const (
	wgPrefix    = "cbwg-"
	wgPort      = "51820"
	underlayNet = "10.251.0." // .1 and .2: the houses' "public" addresses
	tunnel4Net  = "10.252.0." // .1 and .2 on the WireGuard interfaces
	tunnel6Net  = "fd63:6278:7767::"
	wanDelay    = 50 * time.Millisecond // one way, each way
)

// house is one side of the WireGuard test.
type house struct {
	ns       string
	underlay string // the underlay TUN device
	wg       string // the WireGuard interface
	n        int    // 1 or 2: the last byte of its addresses
	key, pub string // WireGuard private key file, public key

	proc *exec.Cmd // wireguard-go, nil with the kernel module
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer // wireguard-go's output
}

func (h *house) underIP() string { return underlayNet + strconv.Itoa(h.n) }
func (h *house) tunnel4() string { return tunnel4Net + strconv.Itoa(h.n) }
func (h *house) tunnel6() string { return tunnel6Net + strconv.Itoa(h.n) }

// Write collects wireguard-go's output, shown if the test fails.
func (h *house) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.Write(p)
}

func (h *house) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

// run runs a command in the house's namespace and returns its output.
func (h *house) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", h.ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", h.ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// requireWireGuard skips the test unless it can build the houses: root,
// ip, wg and a TUN device, and WireGuard in the kernel or wireguard-go.
// It reports whether wireguard-go is there.
func requireWireGuard(t *testing.T) bool {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("wg"); err != nil {
		t.Skip("skipped: wg is missing (Debian: apt-get install wireguard-tools; make test installs it)")
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("skipped: no TUN device (/dev/net/tun): %v", err)
	}
	f.Close()
	_, err = exec.LookPath("wireguard-go")
	return err == nil
}

// removeStaleHouses deletes the namespaces of earlier runs whose process
// is gone (killed before its cleanup ran: its wireguard-go died with it),
// and first ends what still runs in them (their daemons), by pid.
func removeStaleHouses() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, wgPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue
		}
		if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, f := range strings.Fields(string(pids)) {
				if p, err := strconv.Atoi(f); err == nil && p > 1 {
					syscall.Kill(p, syscall.SIGKILL)
				}
			}
		}
		exec.Command("ip", "netns", "delete", name).Run()
	}
}

// newHouses builds the two houses and the WireGuard tunnel between them.
// It returns "kernel" or "wireguard-go": what carries the tunnel.
func newHouses(t *testing.T) ([2]*house, string) {
	t.Helper()
	haveGo := requireWireGuard(t)
	removeStaleHouses()
	pid := os.Getpid()
	var hs [2]*house
	for i, side := range []string{"a", "b"} {
		hs[i] = &house{
			ns:       fmt.Sprintf("%s%d-%s", wgPrefix, pid, side),
			underlay: fmt.Sprintf("cbu%d%s", pid, side),
			wg:       fmt.Sprintf("cbw%d%s", pid, side),
			n:        i + 1,
		}
	}
	// Cleanups run last first: the daemons (started later) stop before
	// wireguard-go, which stops before the link and the namespaces go.
	for _, h := range hs {
		ns := h.ns
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil &&
				!strings.Contains(string(out), "No such file") {
				t.Errorf("deleting namespace %s: %v %s", ns, err, out)
			}
		})
		ip(t, "netns", "add", ns)
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}

	// The underlay: a TUN device in each house, joined by the emulator
	// (a veth pair cannot delay: this kernel has no sch_netem).
	var tuns [2]*os.File
	for i, h := range hs {
		f, err := netemu.OpenTUN(h.underlay)
		if err != nil {
			for _, g := range tuns[:i] {
				g.Close()
			}
			t.Fatal(err)
		}
		tuns[i] = f
	}
	emu := netemu.Start(t.Context(), tuns[0], tuns[1], netemu.Shape{Delay: wanDelay}, netemu.Shape{Delay: wanDelay})
	t.Cleanup(emu.Close)
	for i, h := range hs {
		ip(t, "link", "set", h.underlay, "netns", h.ns)
		ip(t, "-n", h.ns, "addr", "add", h.underIP(), "peer", hs[1-i].underIP(), "dev", h.underlay)
		ip(t, "-n", h.ns, "link", "set", h.underlay, "up")
	}

	// WireGuard: the kernel's if it has it, else wireguard-go over TUN.
	kind := "kernel"
	if err := exec.Command("ip", "-n", hs[0].ns, "link", "add", hs[0].wg, "type", "wireguard").Run(); err == nil {
		ip(t, "-n", hs[1].ns, "link", "add", hs[1].wg, "type", "wireguard")
	} else {
		if !haveGo {
			t.Skip("skipped: this kernel has no WireGuard and wireguard-go is missing (Debian: apt-get install wireguard-go; make test installs it)")
		}
		kind = "wireguard-go"
		for _, h := range hs {
			h.startWireGuardGo(t)
		}
	}

	dir := t.TempDir()
	for _, h := range hs {
		priv := strings.TrimSpace(runOut(t, nil, "wg", "genkey"))
		h.pub = strings.TrimSpace(runOut(t, strings.NewReader(priv+"\n"), "wg", "pubkey"))
		h.key = filepath.Join(dir, h.wg+".key")
		if err := os.WriteFile(h.key, []byte(priv+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range hs {
		o := hs[1-i]
		h.run(t, "wg", "set", h.wg, "private-key", h.key, "listen-port", wgPort,
			"peer", o.pub, "endpoint", o.underIP()+":"+wgPort,
			"allowed-ips", o.tunnel4()+"/32,"+o.tunnel6()+"/128")
		ip(t, "-n", h.ns, "addr", "add", h.tunnel4()+"/24", "dev", h.wg)
		ip(t, "-n", h.ns, "addr", "add", h.tunnel6()+"/64", "dev", h.wg, "nodad")
		ip(t, "-n", h.ns, "link", "set", h.wg, "up")
	}
	return hs, kind
}

// runOut runs a command here with stdin and returns its output.
func runOut(t *testing.T, stdin *strings.Reader, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// startWireGuardGo runs wireguard-go in the foreground in the house's
// namespace and waits until its interface and its control socket are
// there. It is stopped when the test ends, and dies with the test process
// if that is killed.
func (h *house) startWireGuardGo(t *testing.T) {
	t.Helper()
	h.proc = exec.Command("ip", "netns", "exec", h.ns, "wireguard-go", "-f", h.wg)
	h.proc.Stdout, h.proc.Stderr = h, h
	h.proc.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := h.proc.Start(); err != nil {
		t.Fatal(err)
	}
	h.done = make(chan struct{})
	go func() {
		h.proc.Wait()
		close(h.done)
	}()
	sock := filepath.Join("/var/run/wireguard", h.wg+".sock")
	t.Cleanup(func() {
		h.proc.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			h.proc.Process.Kill()
			<-h.done
		}
		os.Remove(sock) // left behind only if it had to be killed
		if t.Failed() {
			t.Logf("wireguard-go in %s said:\n%s", h.ns, h.output())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, serr := os.Stat(sock)
		lerr := exec.Command("ip", "-n", h.ns, "link", "show", h.wg).Run()
		if serr == nil && lerr == nil {
			return
		}
		select {
		case <-h.done:
			t.Fatalf("wireguard-go in %s exited: %v\n%s", h.ns, h.proc.ProcessState, h.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("wireguard-go in %s: no interface or control socket after 30 s (%v, %v)\n%s", h.ns, serr, lerr, h.output())
		}
	}
}

// callOver places a call from a to b through the tunnel, waits until
// video and audio have arrived both ways, logs what it measured (figures,
// not checks: the time from placing the call to the caller being in it,
// the round trip, the latency of what the caller received) and hangs up
// from b with the callbox tool.
func callOver(t *testing.T, a, b *testbox.Box, cli string) {
	t.Helper()
	ctx := t.Context()
	began := time.Now()
	if err := a.Client.Do(ctx, "POST", "/v1/call", control.CallRequest{Peer: b.Name}, nil); err != nil {
		t.Fatal(err)
	}
	st, err := a.WaitState(ctx, "in call", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	setup := st.Phone.Since.Sub(began)
	var rtt float64
	var audio, video, audio1, video1 [2]float64 // p50, p99 ms: the call so far, its last second
	if _, err := b.WaitState(ctx, "in call", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// 5 s of video at 30 fps and of audio each way, through the tunnel.
	const wantVideo, wantAudio = 150, 200
	for _, x := range []*testbox.Box{a, b} {
		var in control.Status
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if in, err = x.Status(ctx); err != nil {
				t.Fatal(err)
			}
			c := in.Phone.Call
			if c == nil {
				t.Fatalf("%s left the call: %s", x.Name, in.Phone.LastEnd)
			}
			if c.In.VideoFrames >= wantVideo && c.In.AudioFrames >= wantAudio {
				if x == a {
					rtt = c.RTT
					audio = [2]float64{c.In.AudioLatAll.P50, c.In.AudioLatAll.P99}
					video = [2]float64{c.In.VideoLatAll.P50, c.In.VideoLatAll.P99}
					audio1 = [2]float64{c.In.AudioLatency.P50, c.In.AudioLatency.P99}
					video1 = [2]float64{c.In.VideoLatency.P50, c.In.VideoLatency.P99}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s received %d video and %d audio frames in 90 s, want %d and %d",
					x.Name, c.In.VideoFrames, c.In.AudioFrames, wantVideo, wantAudio)
			}
		}
	}
	if out, err := b.CLI(ctx, cli, "hangup"); err != nil {
		t.Fatalf("callbox hangup: %v\n%s", err, out)
	}
	for _, x := range []*testbox.Box{a, b} {
		if _, err := x.WaitState(ctx, "idle", 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s → %s: in call %v after the call was placed; RTT %.0f ms; %s received audio p50/p99 %.0f/%.0f ms, video %.0f/%.0f ms; "+
		"in the last second audio %.0f/%.0f ms, video %.0f/%.0f ms (figures, not checks)",
		a.Name, b.Name, setup.Round(time.Millisecond), rtt, a.Name, audio[0], audio[1], video[0], video[1],
		audio1[0], audio1[1], video1[0], video1[1])
}

// Two houses joined only by WireGuard over a link with 50 ms of delay
// each way: the boxes listen on their tunnel addresses, discovery is off,
// each is paired with the other by `callbox peers add` (fingerprint and
// tunnel address: IPv4 one way, IPv6 the other). A call carries video and
// audio both ways and is hung up; a second call, the other way, works
// too. Then one house drops the other from its WireGuard peers, as if
// there were no tunnel: the call fails and says what is missing.
func TestCallThroughWireGuard(t *testing.T) {
	hs, kind := newHouses(t)
	t.Logf("WireGuard: %s; underlay %v each way", kind, wanDelay)
	bin := buildDaemon(t)
	cli, cleanup, err := testbox.BuildCLI()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)

	start := func(h *house, name, listen string) *testbox.Box {
		return testbox.StartT(t, bin, name, testbox.Options{
			AutoAnswer: true,
			Listen:     listen,
			Wrap:       []string{"ip", "netns", "exec", h.ns},
			// Discovery stays off (testbox's default): multicast does not
			// cross a WireGuard tunnel.
			Extra: "[video]\nprecomputed = 30\n",
		})
	}
	hall := start(hs[0], "hall", hs[0].tunnel4()+":7420")
	door := start(hs[1], "door", "["+hs[1].tunnel6()+"]:7420")
	ctx := t.Context()
	hallAt, doorAt := hall.Addr, door.Addr
	if hallAt != hs[0].tunnel4()+":7420" || doorAt != "["+hs[1].tunnel6()+"]:7420" {
		t.Fatalf("hall listens at %s, door at %s: not their tunnel addresses", hallAt, doorAt)
	}
	for _, p := range []struct {
		b              *testbox.Box
		name, fp, addr string
	}{{hall, "door", door.FP, doorAt}, {door, "hall", hall.FP, hallAt}} {
		if out, err := p.b.CLI(ctx, cli, "peers", "add", p.name, p.fp, p.addr); err != nil {
			t.Fatalf("%s: callbox peers add: %v\n%s", p.b.Name, err, out)
		}
	}

	callOver(t, hall, door, cli)
	callOver(t, door, hall, cli)
	for _, c := range []struct {
		b          *testbox.Box
		peer, want string
	}{{hall, "door", doorAt}, {door, "hall", hallAt}} {
		if got := peerAddr(t, c.b, c.peer); got != c.want {
			t.Errorf("%s reached %s at %q, want its tunnel address %s", c.b.Name, c.peer, got, c.want)
		}
	}

	// No tunnel, as between two houses behind their routers: door drops
	// hall's packets, hall's call times out and says why.
	hs[1].run(t, "wg", "set", hs[1].wg, "peer", hs[0].pub, "remove")
	if err := hall.Client.Do(ctx, "POST", "/v1/call", control.CallRequest{Peer: "door"}, nil); err != nil {
		t.Fatal(err)
	}
	st, err := hall.WaitState(ctx, "idle", 60*time.Second)
	for i := 0; err == nil && st.Phone.LastEnd == "" && i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		st, err = hall.WaitState(ctx, "idle", time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The dial race names the address and how it knew it ("(last)"),
	// then that nothing answered (the connect timed out, or the dial's
	// budget ran out first), then the hint.
	le := st.Phone.LastEnd
	if !strings.HasPrefix(le, "could not reach door: "+doorAt+" (") ||
		!strings.Contains(le, "): connection timed out") && !strings.Contains(le, "): no answer within") ||
		!strings.HasSuffix(le, " — is it on? A box behind another router needs an overlay network (README: Calling between two houses)") {
		t.Errorf("hall's call without a tunnel ended\n%q, want the address, no answer, and the overlay hint", le)
	}
	if s, err := door.Status(ctx); err != nil || s.Phone.State.String() != "idle" {
		t.Errorf("door without a tunnel: %v, %v", s.Phone.State, err)
	}
}
