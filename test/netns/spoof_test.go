package netns

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/discovery"
	"github.com/callbox/callbox/stream/identity"
)

// TestMain doubles as the spoofer: run with CBX7_SPOOF_FP set, the test
// binary advertises that fingerprint (not its own key) over mDNS and
// answers TLS on :7420 with its own key, printing one line per attempt.
func TestMain(m *testing.M) {
	if fp := os.Getenv("CBX7_SPOOF_FP"); fp != "" {
		os.Exit(spoofer(fp, os.Getenv("CBX7_SPOOF_NAME"), os.Getenv("CBX7_SPOOF_TRUST")))
	}
	os.Exit(m.Run())
}

func spoofer(fp, name, trust string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	dir, err := os.MkdirTemp("", "cbx7-spoofer-")
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	defer os.RemoveAll(dir)
	id, _, err := identity.LoadOrCreate(dir, name)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	// It even trusts the caller: only the caller's check of the key can
	// keep the call from going through.
	store, _ := identity.OpenStore(filepath.Join(dir, "peers.json"))
	if t, err := identity.ParseFingerprint(trust); err == nil {
		store.Add(identity.Peer{Name: "caller", Fingerprint: t})
	}
	ln, err := net.Listen("tcp", ":7420")
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	n, err := discovery.New(discovery.Config{IPv4: true, IPv6: true})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	n.SetInstance(discovery.Instance{Name: name, Fingerprint: fp, Port: 7420})
	go n.Run(ctx)
	fmt.Println("READY")
	for {
		c, err := ln.Accept()
		if err != nil {
			return 0
		}
		tc := tls.Server(c, id.ServerTLS(store))
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Read(make([]byte, 1)) // the client's refusal arrives here
		}
		if err == nil {
			fmt.Println("HANDSHAKE-OK")
		} else {
			fmt.Println("HANDSHAKE-FAIL", strings.ReplaceAll(err.Error(), "\n", " "))
		}
		c.Close()
	}
}

// lines collects a process's output lines.
type lines struct {
	mu  sync.Mutex
	all []string
}

func (l *lines) has(prefix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.all {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// A box that advertises a paired box's fingerprint over mDNS, without its
// key, lures the caller to dial it but gets no call: the TLS client checks
// the key, the call fails and says why.
func TestSpoofedAdvertisementGetsNoCall(t *testing.T) {
	requireRoot(t)
	l := newLink(t, 3)
	bin := buildDaemon(t)
	hall := startIn(t, bin, l.boxes[0], "hall", "")
	door := startIn(t, bin, l.boxes[1], "door", "")
	ctx := t.Context()
	// hall knows door by key only, with no address: only discovery can
	// say where it is.
	if err := hall.Client.Do(ctx, "POST", "/v1/peers", control.Peer{Name: "door", Fingerprint: door.FP}, nil); err != nil {
		t.Fatal(err)
	}
	if err := door.Client.Do(ctx, "POST", "/v1/peers", control.Peer{Name: "hall", Fingerprint: hall.FP}, nil); err != nil {
		t.Fatal(err)
	}
	call(t, hall, door) // the real door is found and called
	if err := door.Stop(); err != nil {
		t.Fatal(err)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.boxes[2], self)
	cmd.Env = append(os.Environ(), "CBX7_SPOOF_FP="+door.FP, "CBX7_SPOOF_NAME=door", "CBX7_SPOOF_TRUST="+hall.FP)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var got lines
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			got.mu.Lock()
			got.all = append(got.all, sc.Text())
			got.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		cmd.Wait()
		if t.Failed() {
			t.Logf("spoofer said: %q", got.all)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !got.has("READY") {
		if got.has("ERROR") || time.Now().After(deadline) {
			t.Fatal("the spoofer did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Call until hall has been lured to the spoofer (bounded: 5 tries).
	for try := 0; try < 5 && !got.has("HANDSHAKE-"); try++ {
		if err := hall.Client.Do(ctx, "POST", "/v1/call", control.CallRequest{Peer: "door"}, nil); err != nil {
			t.Fatal(err)
		}
		st, err := hall.WaitState(ctx, "idle", 30*time.Second)
		for err == nil && st.Phone.LastEnd == "" {
			st, err = hall.WaitState(ctx, "idle", time.Second)
		}
		if err != nil {
			t.Fatal(err)
		}
		if st.Phone.State.String() != "idle" {
			t.Fatalf("hall is %v", st.Phone.State)
		}
	}
	if got.has("HANDSHAKE-OK") {
		t.Fatal("the spoofer completed a handshake with hall")
	}
	if !got.has("HANDSHAKE-FAIL") {
		t.Fatalf("hall never dialled the spoofed advertisement")
	}
	if !strings.Contains(hall.Log(), "wrong key for its name") {
		t.Errorf("hall did not log the wrong key")
	}
}
