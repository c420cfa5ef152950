package process

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/identity"
)

// cliBin is the callbox tool, built once by the first test that needs it.
var cliBin = sync.OnceValues(func() (string, error) {
	bin, cleanup, err := testbox.BuildCLI()
	if err == nil {
		extraCleanup = append(extraCleanup, cleanup) // TestMain runs it
	}
	return bin, err
})

// cli runs `callbox ARGS` against b and fails the test if it fails.
func cli(t *testing.T, b *testbox.Box, args ...string) string {
	t.Helper()
	bin, err := cliBin()
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.CLI(t.Context(), bin, args...)
	if err != nil {
		t.Fatalf("%s: callbox %s: %v\n%s", b.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// lastAddress is where a call from b to name last worked.
func lastAddress(t *testing.T, b *testbox.Box, name string) string {
	t.Helper()
	list, err := b.Peers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		if p.Name == name {
			return p.LastAddress
		}
	}
	t.Fatalf("%s has no peer %s", b.Name, name)
	return ""
}

// waitEnded waits until b is idle again after a call attempt and returns
// why that attempt ended.
func waitEnded(t *testing.T, b *testbox.Box) string {
	t.Helper()
	st := waitState(t, b, "idle", 30*time.Second)
	for range 50 {
		if st.Phone.LastEnd != "" {
			return st.Phone.LastEnd
		}
		time.Sleep(100 * time.Millisecond)
		st = waitState(t, b, "idle", time.Second)
	}
	t.Fatalf("%s is idle and says nothing about its last call", b.Name)
	return ""
}

// Two boxes paired by hand with `callbox peers add`, one at a host name
// ("localhost", as a DNS or MagicDNS name would be) and one at a bracketed
// IPv6 address, call each other there: the address is stored as given and
// looked up at each dial. Then a peer whose address answers nothing: the
// call ends saying what happened and what to do about it.
func TestPeersAtHostNameAndIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skip("skipped: no IPv6 loopback address (::1) here:", err)
	} else {
		ln.Close()
	}
	if addrs, err := net.DefaultResolver.LookupHost(t.Context(), "localhost"); err != nil || !slices.Contains(addrs, "127.0.0.1") {
		t.Skipf("skipped: localhost does not resolve to 127.0.0.1 here (%v, %v)", addrs, err)
	}
	hall := start(t, "hall", testbox.Options{AutoAnswer: true})
	door := start(t, "door", testbox.Options{AutoAnswer: true, Listen: "[::1]:0"})
	_, hallPort, err := net.SplitHostPort(hall.Addr)
	if err != nil || !strings.HasPrefix(door.Addr, "[::1]:") {
		t.Fatalf("hall listens at %q, door at %q", hall.Addr, door.Addr)
	}
	hallAt, doorAt := "localhost:"+hallPort, door.Addr
	cli(t, hall, "peers", "add", "door", door.FP, doorAt)
	cli(t, door, "peers", "add", "hall", hall.FP, hallAt)
	if out := cli(t, door, "peers"); !strings.Contains(out, hall.FP+" "+hallAt) {
		t.Errorf("door's peer list does not show hall at %s:\n%s", hallAt, out)
	}

	for _, c := range [][2]*testbox.Box{{hall, door}, {door, hall}} {
		from, to := c[0], c[1]
		cli(t, from, "call", to.Name)
		waitState(t, from, "in call", 15*time.Second)
		waitState(t, to, "in call", 15*time.Second)
		cli(t, from, "hangup")
		waitState(t, from, "idle", 10*time.Second)
		waitState(t, to, "idle", 10*time.Second)
	}
	if got := lastAddress(t, hall, "door"); got != doorAt {
		t.Errorf("hall reached door at %q, want %q", got, doorAt)
	}
	if got := lastAddress(t, door, "hall"); got != hallAt {
		t.Errorf("door reached hall at %q, want the name as given, %q", got, hallAt)
	}

	// A paired box whose address answers nothing (its daemon is down, or
	// it is another house's router): refused here; a timeout or no route
	// reads the same way (cmd/callboxd's reach_test, test/netns).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := fmt.Sprintf("localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	id, _, err := identity.LoadOrCreate(t.TempDir(), "gone")
	if err != nil {
		t.Fatal(err)
	}
	cli(t, hall, "peers", "add", "gone", id.Fingerprint.String(), gone)
	cli(t, hall, "call", "gone")
	end := waitEnded(t, hall)
	t.Logf("hall: %s", end)
	want := "could not reach gone: " + gone + " (configured): connection refused (at "
	hint := "A box behind another router needs an overlay network (README: Calling between two houses)"
	if !strings.HasPrefix(end, want) || !strings.HasSuffix(end, hint) {
		t.Errorf("hall's last call ended %q, want %q…%q", end, want, hint)
	}
	if out := cli(t, hall, "status"); !strings.Contains(out, hint) {
		t.Errorf("callbox status does not say why the call failed:\n%s", out)
	}
	// hall is callable and can call again.
	if err := hall.Client.Do(t.Context(), "POST", "/v1/call", control.CallRequest{Peer: "door"}, nil); err != nil {
		t.Fatal(err)
	}
	waitState(t, door, "in call", 15*time.Second)
}
