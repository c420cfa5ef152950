package netns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
)

// link is a throwaway LAN: a bridge in a namespace of its own and one
// namespace per box, each joined to the bridge by a veth pair. Every name
// carries the test's pid, so parallel runs do not collide, and everything
// is deleted at the end, on failure too.
type link struct {
	t      *testing.T
	prefix string
	bridge string   // the bridge's namespace
	boxes  []string // the boxes' namespaces
}

func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to make network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: the ip command (iproute2) is missing")
	}
}

func newLink(t *testing.T, n int) *link {
	t.Helper()
	l := &link{t: t, prefix: fmt.Sprintf("cbx7-%d", os.Getpid())}
	l.bridge = l.prefix + "-br"
	t.Cleanup(l.delete)
	ip(t, "netns", "add", l.bridge)
	l.sh(l.bridge, "ip link set lo up",
		"ip link add br0 type bridge",
		"ip link set br0 type bridge mcast_snooping 0",
		"ip link set br0 up")
	for i := range n {
		ns := fmt.Sprintf("%s-%d", l.prefix, i)
		ip(t, "netns", "add", ns)
		l.boxes = append(l.boxes, ns)
		// Created directly in the two namespaces: no name in the host's.
		ip(t, "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", fmt.Sprintf("p%d", i), "netns", l.bridge)
		l.sh(l.bridge, fmt.Sprintf("ip link set p%d master br0", i), fmt.Sprintf("ip link set p%d up", i))
		l.sh(ns, "sysctl -qw net.ipv6.conf.all.accept_dad=0",
			"sysctl -qw net.ipv6.conf.eth0.accept_dad=0",
			"ip link set lo up",
			fmt.Sprintf("ip addr add 10.77.0.%d/24 dev eth0", i+1),
			"ip link set eth0 up")
	}
	return l
}

// sh runs commands in namespace ns.
func (l *link) sh(ns string, cmds ...string) {
	l.t.Helper()
	for _, c := range cmds {
		ip(l.t, append([]string{"netns", "exec", ns}, strings.Fields(c)...)...)
	}
}

func (l *link) delete() {
	for _, ns := range append(l.boxes, l.bridge) {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			l.t.Errorf("deleting namespace %s: %v %s", ns, err, out)
		}
	}
}

func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "callboxd")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/callbox/callbox/cmd/callboxd")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building callboxd: %v\n%s", err, out)
	}
	return bin
}

func startIn(t *testing.T, bin, ns, name string, extra string) *testbox.Box {
	t.Helper()
	return testbox.StartT(t, bin, name, testbox.Options{
		AutoAnswer: true,
		Listen:     ":7420",
		Wrap:       []string{"ip", "netns", "exec", ns},
		Extra:      "[video]\nprecomputed = 10\nfps = 10\n[discovery]\nenabled = true\n[pairing]\nwindow_s = 60\n" + extra,
	})
}

func peers(t *testing.T, b *testbox.Box) []control.Peer {
	t.Helper()
	list, err := b.Peers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// peerAddr is where a call from b to name last worked.
func peerAddr(t *testing.T, b *testbox.Box, name string) string {
	t.Helper()
	for _, p := range peers(t, b) {
		if p.Name == name {
			return p.LastAddress
		}
	}
	t.Fatalf("%s has no peer %s", b.Name, name)
	return ""
}

// call places a call from a to b, checks both are in it, and hangs up.
func call(t *testing.T, a, b *testbox.Box) {
	t.Helper()
	ctx := t.Context()
	began := time.Now()
	if err := a.Client.Do(ctx, "POST", "/v1/call", control.CallRequest{Peer: b.Name}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WaitState(ctx, "in call", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s → %s: in call after %v (figure, not a check); %s stores %s", a.Name, b.Name,
		time.Since(began).Round(time.Millisecond), a.Name, peerAddr(t, a, b.Name))
	if _, err := b.WaitState(ctx, "in call", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Do(ctx, "POST", "/v1/hangup", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*testbox.Box{a, b} {
		if _, err := x.WaitState(ctx, "idle", 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// Two boxes on a bridge pair by long presses, call each other, and find
// each other again by key after one changes its address; a third box in
// pairing mode at another time is not paired by either.
func TestPairAndCallAcrossNamespaces(t *testing.T) {
	requireRoot(t)
	l := newLink(t, 3)
	bin := buildDaemon(t)
	hall := startIn(t, bin, l.boxes[0], "hall", "")
	door := startIn(t, bin, l.boxes[1], "door", "")
	gate := startIn(t, bin, l.boxes[2], "gate", "")
	ctx := t.Context()

	began := time.Now()
	for _, b := range []*testbox.Box{hall, door} {
		if err := b.LongPress(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var codes []string
	for _, b := range []*testbox.Box{hall, door} {
		p, err := b.WaitPairing(ctx, control.PairPaired, 45*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, p.Code)
	}
	t.Logf("paired in %v (figure, not a check)", time.Since(began).Round(time.Millisecond))
	if codes[0] != codes[1] || len(codes[0]) != 6 {
		t.Errorf("confirmation codes %q and %q, want the same 6 digits", codes[0], codes[1])
	}
	if hp, dp := peers(t, hall), peers(t, door); len(hp) != 1 || hp[0].Name != "door" || hp[0].Fingerprint != door.FP ||
		len(dp) != 1 || dp[0].Name != "hall" || dp[0].Fingerprint != hall.FP {
		t.Fatalf("after pairing: hall knows %+v, door knows %+v", hp, dp)
	}
	if st, _ := hall.Status(ctx); st.Pairing.State != control.PairPaired || st.LED == "pair-blink" {
		t.Errorf("hall after pairing: %+v, LED %s", st.Pairing, st.LED)
	}
	if len(peers(t, gate)) != 0 {
		t.Error("gate, never in pairing mode, paired with someone")
	}

	call(t, hall, door)

	// door moves to another address: hall's first call after it finds
	// door by its key, while the old address no longer answers. Discovery
	// names door at its new IPv4 address and at its IPv6 link-local one
	// (also door, by its key); hall dials both as they arrive, and keeps
	// whichever answered first while it works.
	l.sh(l.boxes[1], "ip addr del 10.77.0.2/24 dev eth0", "ip addr add 10.77.0.20/24 dev eth0")
	call(t, hall, door)
	if got := peerAddr(t, hall, "door"); got != "10.77.0.20:7420" && !linkLocal(got) {
		t.Errorf("hall stored door's address %q, want the new one 10.77.0.20:7420 or its IPv6 link-local one", got)
	}

	// Without IPv4 at all, door is still found: at its IPv6 link-local
	// address, with the interface as zone.
	l.sh(l.boxes[1], "ip addr del 10.77.0.20/24 dev eth0")
	call(t, hall, door)
	if got := peerAddr(t, hall, "door"); !linkLocal(got) {
		t.Errorf("hall stored door's address %q, want an IPv6 link-local one with zone eth0", got)
	}

	// gate opens its window alone: nobody pairs with it, and it gives up.
	if err := gate.LongPress(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := gate.WaitPairing(ctx, control.PairWaiting, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := gate.Client.Do(ctx, "POST", "/v1/pair", control.PairRequest{Cancel: true}, nil); err != nil {
		t.Fatal(err)
	}
	if p, err := gate.WaitPairing(ctx, control.PairFailed, 5*time.Second); err != nil || p.Error != "cancelled" {
		t.Errorf("gate's window: %+v, %v", p, err)
	}
	if len(peers(t, gate)) != 0 || len(peers(t, hall)) != 1 || len(peers(t, door)) != 1 {
		t.Error("a lone box in pairing mode got paired")
	}
}

// linkLocal says addr is an IPv6 link-local address on eth0, port 7420.
func linkLocal(addr string) bool {
	return strings.HasPrefix(addr, "[fe80::") && strings.HasSuffix(addr, "%eth0]:7420")
}
