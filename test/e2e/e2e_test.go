package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
)

// enabled says whether the real-client tests run: they need Chromium,
// ffmpeg, node and playwright-core, which `make e2e` installs.
var enabled = os.Getenv("CALLBOX_E2E") == "1"

var daemonBin string

func TestMain(m *testing.M) {
	if !enabled {
		os.Exit(m.Run()) // each test skips and says how to run it
	}
	dir, err := os.MkdirTemp("", "callbox-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daemonBin = filepath.Join(dir, "callboxd")
	cmd := exec.Command("go", "build", "-o", daemonBin, "github.com/callbox/callbox/cmd/callboxd")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building callboxd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const token = "e2e-token-0123456789abcdef"

// TestWebWithRealClients puts two daemons in a call, box A serving its page
// on all addresses with a token and box B on loopback only, then: ffmpeg
// reads A's stream, requests from a non-loopback address are refused
// without the token, and Chromium sees both videos and hangs up and calls
// with the page's buttons.
func TestWebWithRealClients(t *testing.T) {
	if !enabled {
		t.Skip("real-client tests: run `make e2e` (it installs chromium, ffmpeg, node and playwright-core and sets CALLBOX_E2E=1)")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	for _, tool := range []string{chromium, "ffmpeg", "node"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: `make e2e` installs it (%v)", tool, err)
		}
	}
	if _, err := os.Stat("node_modules/playwright-core/package.json"); err != nil {
		t.Fatalf("playwright-core is missing: run `npm ci` in test/e2e (`make e2e` does): %v", err)
	}

	portA, portB := freePort(t), freePort(t)
	a := start(t, "door", fmt.Sprintf("[web]\nlisten = \"0.0.0.0:%d\"\ntoken = %q\n", portA, token))
	b := start(t, "hall", fmt.Sprintf("[web]\nlisten = \"127.0.0.1:%d\"\n", portB))
	if err := testbox.Pair(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.Do(t.Context(), "POST", "/v1/call", control.CallRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	waitState(t, a, "in call")
	firstCall := waitState(t, b, "in call").Phone.Since
	pageA := fmt.Sprintf("http://127.0.0.1:%d", portA)

	t.Run("ffmpeg", func(t *testing.T) {
		w, h := peerSize(t, pageA)
		// 30 frames as the daemon sent them: each a whole JPEG that
		// decodes, numbered by the peer's camera in increasing order.
		out := ffmpeg(t, "-i", pageA+"/peer.mjpg", "-frames:v", "30", "-c:v", "copy", "-f", "image2pipe", "pipe:1")
		var last uint32
		for n := 1; n <= 30; n++ {
			f, err := camera.Trim(out)
			if err != nil {
				t.Fatalf("frame %d of ffmpeg's output: %v", n, err)
			}
			out = out[len(f):]
			img, err := jpeg.Decode(bytes.NewReader(f))
			if err != nil {
				t.Fatalf("frame %d: %v", n, err)
			}
			if img.Bounds().Dx() != w || img.Bounds().Dy() != h {
				t.Fatalf("frame %d is %v, want %dx%d", n, img.Bounds(), w, h)
			}
			num, ok := camera.FrameNumber(f)
			if !ok || (n > 1 && num <= last) {
				t.Fatalf("frame %d: number %d (ok %v) after %d", n, num, ok, last)
			}
			last = num
		}
		if len(out) != 0 {
			t.Fatalf("%d bytes after 30 frames", len(out))
		}
		// ffmpeg decodes them itself too, stopping at the first error.
		raw := ffmpeg(t, "-xerror", "-i", pageA+"/self.mjpg", "-frames:v", "30", "-pix_fmt", "gray", "-f", "rawvideo", "pipe:1")
		if len(raw) != 30*w*h {
			t.Fatalf("ffmpeg decoded %d bytes, want 30 frames of %dx%d", len(raw), w, h)
		}
	})

	t.Run("lan-needs-token", func(t *testing.T) {
		ip := lanAddress(t)
		t.Logf("non-loopback address: %s", ip)
		lanA := fmt.Sprintf("http://%s", net.JoinHostPort(ip, fmt.Sprint(portA)))
		for _, path := range []string{"/", "/app.js", "/api/status", "/metrics", "/peer.mjpg", "/self.mjpg", "/snapshot/peer.jpg"} {
			resp := do(t, "GET", lanA+path, "")
			if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("GET %s from %s without token: %s, want 401 with a Basic challenge", path, ip, resp.Status)
			}
		}
		if resp := do(t, "GET", lanA+"/api/status", "Bearer wrong-token-0123456789"); resp.StatusCode != 401 {
			t.Errorf("wrong token: %s, want 401", resp.Status)
		}
		if resp := do(t, "POST", lanA+"/api/hangup", ""); resp.StatusCode != 401 {
			t.Errorf("POST /api/hangup without token: %s, want 401", resp.Status)
		}
		if st, err := a.Status(t.Context()); err != nil || st.Phone.State.String() != "in call" {
			t.Fatalf("after a refused hang-up: %v %v", st.Phone.State, err)
		}
		resp := do(t, "GET", lanA+"/api/status", "Bearer "+token)
		var st control.Status
		if resp.StatusCode != 200 || json.Unmarshal(resp.body, &st) != nil || st.Name != "door" {
			t.Fatalf("with the token: %s %s", resp.Status, resp.body)
		}
		// A player that takes only a URL passes the token in it.
		ffmpeg(t, "-xerror", "-i", lanA+"/peer.mjpg?token="+token, "-frames:v", "5", "-f", "null", "-")
		// The server counted the refusals as coming from that address.
		metrics := do(t, "GET", pageA+"/metrics", "")
		if !strings.Contains(string(metrics.body), "callbox_web_unauthorized_total 9\n") {
			t.Errorf("metrics do not count 9 refused requests:\n%s", grep(metrics.body, "callbox_web_"))
		}
		// Box B listens on loopback only: the LAN address does not answer.
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, fmt.Sprint(portB)), 2*time.Second); err == nil {
			c.Close()
			t.Errorf("box B's page answers on %s, want loopback only", ip)
		}
	})

	t.Run("browser", func(t *testing.T) {
		out, err := filepath.Abs("out")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "browser.mjs", pageA+"/", out)
		cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		err = cmd.Run()
		t.Logf("node browser.mjs:\n%s", log.String())
		if err != nil {
			t.Fatalf("browser test failed: %v (screenshots in %s)", err, out)
		}
		// The page's buttons reached the other box too: it is in a
		// second call, not the first one.
		st := waitState(t, b, "in call")
		if !st.Phone.Since.After(firstCall) {
			t.Fatalf("box B is still in the first call (since %v): the page's hang-up and call did not reach it", firstCall)
		}
		for _, f := range []string{"in-call.png", "in-call-again.png"} {
			if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
				t.Errorf("screenshot %s: %v", f, err)
			}
		}
	})
}

func start(t *testing.T, name, extra string) *testbox.Box {
	t.Helper()
	return testbox.StartT(t, daemonBin, name, testbox.Options{AutoAnswer: true, Extra: extra})
}

func waitState(t *testing.T, b *testbox.Box, state string) control.Status {
	t.Helper()
	st, err := b.WaitState(t.Context(), state, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// freePort asks the kernel for a port that is free now. Another process
// could take it before the daemon binds it; on a test machine it does not.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type response struct {
	*http.Response
	body []byte
}

func do(t *testing.T, method, url, auth string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return response{resp, body}
}

// peerSize reads the peer's frame size from a snapshot, waiting for the
// first frame of the call (503 until then).
func peerSize(t *testing.T, page string) (int, int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	resp := do(t, "GET", page+"/snapshot/peer.jpg", "")
	for resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling for the peer's first frame
		resp = do(t, "GET", page+"/snapshot/peer.jpg", "")
	}
	if resp.StatusCode != 200 {
		t.Fatalf("snapshot: %s %s", resp.Status, resp.body)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(resp.body))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Width, cfg.Height
}

func ffmpeg(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-nostdin", "-loglevel", "error"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func grep(text []byte, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, prefix) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// lanAddress returns an address of this machine that is not loopback:
// a request to it comes from it too, so the server sees a non-loopback
// remote address. Without one (a machine with only lo), and as root, the
// test adds a veth pair with a documentation address for its run.
func lanAddress(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	const name, addr = "cbxe2e0", "198.51.100.7"
	for _, args := range [][]string{
		{"link", "add", name, "type", "veth", "peer", "name", name + "p"},
		{"addr", "add", addr + "/32", "dev", name},
		{"link", "set", name + "p", "up"},
		{"link", "set", name, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			exec.Command("ip", "link", "del", name).Run()
			t.Fatalf("no non-loopback address here, and making one failed (needs root and iproute2): ip %s: %v: %s",
				strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	return addr
}
