package process

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/testbox"
)

// A corrupt peer store does not take the box down: the last good copy is
// loaded, the box says so (status, log, LED) and takes calls from the
// peers it had; with no good copy it starts with none and says that.
// The corrupt files are kept.
func TestCorruptPeerStoreFallsBack(t *testing.T) {
	// b keeps its port across restarts, so a's stored address stays good.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().String()
	l.Close()
	a, b := start(t, "a", testbox.Options{AutoAnswer: true}), start(t, "b", testbox.Options{AutoAnswer: true, Listen: port})
	pair(t, a, b)
	store := filepath.Join(b.Dir, "state", "peers.json")
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(store, good[:len(good)/2], 0o600)
	if err := b.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.PeerStore, "restored 1 peers from the last good copy") || st.LED != "error-blink" {
		t.Fatalf("status says peer store %q, LED %q; want the recovery said and the error pattern", st.PeerStore, st.LED)
	}
	waitLog(t, b, "peer store recovered", "from_good_copy=true")
	if err := a.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, "in call", 10*time.Second)
	callCmd(t, a, "/v1/hangup", nil)
	waitState(t, b, "idle", 10*time.Second)

	// Both the store and its good copy corrupt: up, with no peers.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(store, []byte("{"), 0o600)
	os.WriteFile(store+".good", []byte("}"), 0o600)
	if err := b.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err = b.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	peers, _ := b.Peers(t.Context())
	if !strings.Contains(st.PeerStore, "no good copy") || len(peers) != 0 || st.LED != "error-blink" {
		t.Fatalf("status says %q with %d peers, LED %q; want it up with none, saying so", st.PeerStore, len(peers), st.LED)
	}
	kept, _ := filepath.Glob(store + ".corrupt-*")
	if len(kept) != 2 {
		t.Errorf("corrupt stores kept: %v, want both", kept)
	}
	// Pairing again settles it.
	pair(t, a, b)
	st, _ = b.Status(t.Context())
	if st.PeerStore != "" || st.LED == "error-blink" {
		t.Errorf("after pairing again: peer store %q, LED %q", st.PeerStore, st.LED)
	}
	if err := a.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, "in call", 10*time.Second)
}

// A state directory the daemon cannot create its key in is a setup error:
// exit 78 (systemd does not restart it in a loop), one clear message.
func TestUnusableStateDirExits78(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	os.WriteFile(notADir, nil, 0o600)
	cfg := filepath.Join(dir, "callbox.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("name = \"b\"\nstate_dir = %q\ncontrol_socket = %q\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \"\"\n[discovery]\nenabled = false\n",
		filepath.Join(notADir, "state"), filepath.Join(dir, "control.sock"))), 0o600)
	out, err := exec.Command(daemonBin, "-config", cfg).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 78 {
		t.Fatalf("exit %v, want 78; output %s", err, out)
	}
	if n := strings.Count(string(out), "identity:"); n != 1 || !strings.Contains(string(out), "state_dir") {
		t.Errorf("message %q: want state_dir named and one \"identity:\"", out)
	}
}

// A sustained flood of half-open handshakes from 49 addresses, each at the
// per-source limit, does not keep a paired peer's call out: the listener
// keeps slots for addresses paired peers are known at.
func TestDistributedFloodDoesNotStopAPairedCall(t *testing.T) {
	a, b := start(t, "a", testbox.Options{AutoAnswer: true}), start(t, "b", testbox.Options{AutoAnswer: true})
	pair(t, a, b)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for i := range 49 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+2))}}
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Hold a connection without a handshake; when the box
				// closes it, open another, until the test ends. Each
				// attempt waits for the last one: bounded by ctx.
				for ctx.Err() == nil {
					c, err := d.DialContext(ctx, "tcp", b.Addr)
					if err != nil {
						select {
						case <-ctx.Done():
						case <-time.After(50 * time.Millisecond):
						}
						continue
					}
					go func() { <-ctx.Done(); c.Close() }()
					c.Read(make([]byte, 1)) // returns when the box closes it
					c.Close()
				}
			}()
		}
	}
	// Let the flood take every general slot.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := b.Status(t.Context())
		if err == nil && st.Listener.InUse >= 8 && st.Listener.Dropped > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flood never filled the slots: %+v", st.Listener)
		}
		time.Sleep(50 * time.Millisecond)
	}
	began := time.Now()
	if err := a.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, "in call", 15*time.Second)
	t.Logf("under a 49-address flood the paired call connected in %v", time.Since(began).Round(time.Millisecond))
	st, _ := b.Status(t.Context())
	if st.Listener.Dropped == 0 {
		t.Errorf("no flood connection was dropped: %+v", st.Listener)
	}
}

// SIGHUP does not stop the box (its default action would, and systemd
// would not restart a daemon that a SIGHUP ended): it is logged and the
// box still takes calls.
func TestSIGHUPDoesNotStopTheBox(t *testing.T) {
	a, b := start(t, "a", testbox.Options{AutoAnswer: true}), start(t, "b", testbox.Options{AutoAnswer: true})
	pair(t, a, b)
	if err := b.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, b, "SIGHUP ignored")
	if err := a.Press(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, "in call", 10*time.Second)
}
