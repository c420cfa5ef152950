//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/opus"
)

// The floor case: what the least a call can cost costs on this machine,
// so that the daemon's CPU per frame can be read against it. Two child
// processes (this program again, floorEnv set) each do, on one 20 ms
// tick in one goroutine, what a box's call must do at the least: code
// 20 ms of audio with Opus (the daemon's default settings) and send it as
// a UDP datagram, read the peer's datagrams and decode them, send the
// camera's frames when due (30 a second of 15 kB, about a 640x480 test
// frame) on a TCP connection and read the peer's. The sockets are made by
// the parent and read without blocking on the tick, so that nothing but
// the tick wakes a child: no goroutine hops, no poller, no TLS, no echo
// stage, no playout, no test signal to compute. A design can come near
// this, not under it.

// floorEnv marks a child; its value is "opus", "opus0" (complexity 0) or
// "plain" (no Opus).
const floorEnv = "CALLBOX_BENCH_FLOOR"

const (
	floorFPS        = 30
	floorFrame      = 15_000
	floorTick       = 20 * time.Millisecond
	floorWarmup     = 2 * time.Second
	floorFirstFd    = 3 // the UDP socket; the TCP one is next
	floorComplexity = 5
	floorSlack      = 1_000_000 // ns, as callboxd's
)

// floorRow is one variant's figures, both children.
type floorRow struct {
	what  string
	msPer []float64 // CPU ms per second, per child
}

// runFloor runs the two variants for span each and returns the section.
func runFloor(ctx context.Context, span time.Duration) (string, error) {
	var rows []floorRow
	for _, v := range []struct{ mode, what string }{
		{"opus", "one 20 ms tick: Opus both ways (low-delay, complexity 5, 32 kbit/s) as UDP, 30 fps of 15 kB frames each way on TCP"},
		{"opus0", "the same with Opus at complexity 0 (the cheapest)"},
		{"plain", "the same without Opus (80-byte datagrams)"},
	} {
		ms, err := floorPair(ctx, v.mode, span)
		if err != nil {
			return "", fmt.Errorf("floor (%s): %w", v.mode, err)
		}
		rows = append(rows, floorRow{what: v.what, msPer: ms})
	}
	var b strings.Builder
	b.WriteString("\n## The machine's floor for a call\n\n")
	b.WriteString("| program | CPU ms/s per process | ms per video frame at 30 fps |\n|---|---|---|\n")
	for _, r := range rows {
		lo, hi := min(r.msPer[0], r.msPer[1]), max(r.msPer[0], r.msPer[1])
		fmt.Fprintf(&b, "| %s | %.1f–%.1f | %.2f–%.2f |\n", r.what, lo, hi, lo/floorFPS, hi/floorFPS)
	}
	floor := min(rows[0].msPer[0], rows[0].msPer[1]) / floorFPS
	verdict := "at or under it: the goal can be met here"
	if floor > cpuGoalMs {
		verdict = fmt.Sprintf("over the goal of %.1f ms per frame already: at the daemon's Opus settings no design meets the goal on this machine", cpuGoalMs)
	}
	fmt.Fprintf(&b, "\nTwo processes, each waking only on its own 20 ms tick and reading its sockets there without blocking (no goroutine hops, no poller, no TLS, no echo stage, no playout): the least a call with Opus costs on this machine is %.2f ms per frame, %s. Read the daemon's \"sender CPU ms per frame\" against it.\n", floor, verdict)
	return b.String(), nil
}

// floorPair runs two children joined by a UDP and a TCP socket pair on
// 127.0.0.1 and returns their CPU, ms per second.
func floorPair(ctx context.Context, mode string, span time.Duration) ([]float64, error) {
	u1, u2, err := udpPair()
	if err != nil {
		return nil, err
	}
	t1, t2, err := tcpPair()
	if err != nil {
		u1.Close()
		u2.Close()
		return nil, err
	}
	files := [][]*os.File{{u1, t1}, {u2, t2}}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, span+floorWarmup+20*time.Second)
	defer cancel()
	// The children run with the daemon's timer slack (cmd/callboxd sets
	// 1 ms for all its threads): they inherit it from the thread that
	// starts them.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0); err == nil && old < floorSlack {
		unix.Prctl(unix.PR_SET_TIMERSLACK, floorSlack, 0, 0, 0)
		defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0)
	}
	var cmds []*exec.Cmd
	var outs []*bufio.Scanner
	for _, fs := range files {
		c := exec.CommandContext(cctx, self)
		c.Env = append(os.Environ(), floorEnv+"="+mode, "CALLBOX_BENCH_FLOOR_SPAN="+span.String())
		c.ExtraFiles = fs
		c.Stderr = os.Stderr
		out, err := c.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := c.Start(); err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
		outs = append(outs, bufio.NewScanner(out))
	}
	for _, fs := range files {
		for _, f := range fs {
			f.Close() // the children hold them
		}
	}
	var ms []float64
	var firstErr error
	for i, c := range cmds {
		var v float64
		if outs[i].Scan() {
			v, err = strconv.ParseFloat(strings.TrimSpace(outs[i].Text()), 64)
		} else {
			err = fmt.Errorf("child %d printed nothing", i)
		}
		if werr := c.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("child %d: %w", i, werr)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		ms = append(ms, v)
	}
	return ms, firstErr
}

func loopback() *syscall.SockaddrInet4 {
	return &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
}

// udpPair makes two UDP sockets on 127.0.0.1 connected to each other.
func udpPair() (_, _ *os.File, err error) {
	fds := []int{}
	defer func() {
		if err != nil {
			for _, fd := range fds {
				syscall.Close(fd)
			}
		}
	}()
	var addrs [2]syscall.Sockaddr
	for i := range addrs {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, nil, err
		}
		fds = append(fds, fd)
		if err := syscall.Bind(fd, loopback()); err != nil {
			return nil, nil, err
		}
		if addrs[i], err = syscall.Getsockname(fd); err != nil {
			return nil, nil, err
		}
	}
	for i, fd := range fds {
		if err := syscall.Connect(fd, addrs[1-i]); err != nil {
			return nil, nil, err
		}
	}
	return os.NewFile(uintptr(fds[0]), "udp-a"), os.NewFile(uintptr(fds[1]), "udp-b"), nil
}

// tcpPair makes a connected TCP pair on 127.0.0.1.
func tcpPair() (*os.File, *os.File, error) {
	l, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	defer syscall.Close(l)
	if err := syscall.Bind(l, loopback()); err != nil {
		return nil, nil, err
	}
	if err := syscall.Listen(l, 1); err != nil {
		return nil, nil, err
	}
	addr, err := syscall.Getsockname(l)
	if err != nil {
		return nil, nil, err
	}
	c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := syscall.Connect(c, addr); err != nil {
		syscall.Close(c)
		return nil, nil, err
	}
	a, _, err := syscall.Accept4(l, syscall.SOCK_CLOEXEC)
	if err != nil {
		syscall.Close(c)
		return nil, nil, err
	}
	return os.NewFile(uintptr(c), "tcp-a"), os.NewFile(uintptr(a), "tcp-b"), nil
}

// floorChild is a child's whole life: the tick loop, then its CPU, ms per
// second after the warm-up, on stdout.
func floorChild(mode string) error {
	span, err := time.ParseDuration(os.Getenv("CALLBOX_BENCH_FLOOR_SPAN"))
	if err != nil {
		return err
	}
	udp, tcp := floorFirstFd, floorFirstFd+1
	withOpus := mode != "plain"
	complexity := floorComplexity
	if mode == "opus0" {
		complexity = 0
	}
	f := media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: 20}
	var enc *opus.Encoder
	var dec *opus.Decoder
	if withOpus {
		if enc, err = opus.NewEncoder(opus.Config{Format: f, Complexity: complexity, Mode: opus.LowDelay}); err != nil {
			return err
		}
		defer enc.Close()
		if dec, err = opus.NewDecoder(f); err != nil {
			return err
		}
		defer dec.Close()
	}
	pcm, out := make([]int16, f.FrameLen()), make([]int16, f.FrameLen())
	for i := range pcm {
		pcm[i] = int16((i*37)%8000 - 4000) // something to code
	}
	frame := make([]byte, floorFrame)
	buf := make([]byte, 64<<10)
	pkt := make([]byte, 0, opus.MaxPacket)
	tick := time.NewTicker(floorTick)
	defer tick.Stop()
	start := time.Now()
	var c0 time.Duration
	measuring := false
	due, pending := 0, 0 // frames due since start; bytes of the current frame unsent
	sentFrames := 0
	for now := range tick.C {
		p := pkt[:80]
		if withOpus {
			if p, err = enc.Encode(pkt[:0], pcm); err != nil {
				return err
			}
		}
		syscall.Sendto(udp, p, syscall.MSG_DONTWAIT, nil)
		for {
			n, _, err := syscall.Recvfrom(udp, buf, syscall.MSG_DONTWAIT)
			if err != nil || n <= 0 {
				break
			}
			if withOpus {
				dec.Decode(out, buf[:n])
			}
		}
		for {
			n, _, err := syscall.Recvfrom(tcp, buf, syscall.MSG_DONTWAIT)
			if err != nil || n <= 0 {
				break
			}
		}
		due = int(now.Sub(start) * floorFPS / time.Second)
		for {
			if pending == 0 {
				if sentFrames >= due {
					break
				}
				pending, sentFrames = len(frame), sentFrames+1
			}
			n, err := syscall.SendmsgN(tcp, frame[len(frame)-pending:], nil, nil, syscall.MSG_DONTWAIT)
			if err != nil || n <= 0 {
				break
			}
			pending -= n
		}
		el := now.Sub(start)
		if !measuring && el >= floorWarmup {
			measuring, c0 = true, processCPU()
			start, sentFrames = now, 0
			continue
		}
		if measuring && el >= span {
			fmt.Printf("%.3f\n", float64(processCPU()-c0)/1e6/el.Seconds())
			return nil
		}
	}
	return nil
}

// processCPU is this process's user+system time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
