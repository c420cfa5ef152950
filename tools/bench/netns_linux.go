//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The emulated link. Each box runs in its own network namespace with a TUN
// device as its only interface. The kernel's tbf qdisc on each TUN device
// shapes what the box sends (rate, and a queue of at most tbfQueue, like a
// modem's buffer); this program reads the shaped packets, applies the
// one-way delay, jitter and loss, and writes them into the other box's TUN
// device. sch_netem would do the last part in the kernel, but this machine
// kind's kernel is built without it (CONFIG_NET_SCH_NETEM is not set), so
// the same model runs here in user space; a veth pair cannot be used because
// nothing could delay what crosses it.

// tbfQueue is how much the rate limiter may queue, as time at its rate:
// a moderately bloated home router or modem.
const tbfQueue = 200 * time.Millisecond

// netnsPrefix names this program's namespaces; the pid makes them unique
// per run and lets a later run remove what a killed one left behind.
const netnsPrefix = "cbbench-"

// link is two namespaces joined by the emulator.
type link struct {
	p      profile
	ns     [2]string
	ifname [2]string
	addr   [2]string
	tun    [2]*os.File

	cancel context.CancelFunc
	wg     sync.WaitGroup
	undo   []func() // cleanup, last first

	sent, lost, overflow [2]atomic.Uint64 // per direction: 0 is a→b
	readErr              [2]atomic.Pointer[error]
}

// newLink builds the namespaces, devices and qdiscs of profile p and starts
// forwarding. close undoes it all, also after a partial failure.
func newLink(ctx context.Context, p profile) (l *link, err error) {
	removeStale()
	pid := os.Getpid()
	l = &link{p: p}
	defer func() {
		if err != nil {
			l.close()
			l = nil
		}
	}()
	for i, side := range []string{"a", "b"} {
		l.ns[i] = fmt.Sprintf("%s%d-%s", netnsPrefix, pid, side)
		l.ifname[i] = fmt.Sprintf("cbb%d%s", pid, side)
		l.addr[i] = fmt.Sprintf("10.250.0.%d", i+1)
	}
	for i := range 2 {
		ns := l.ns[i]
		if err := ipCmd("ip", "netns", "add", ns); err != nil {
			return nil, err
		}
		l.undo = append(l.undo, func() { ipCmd("ip", "netns", "del", ns) })
		f, err := openTun(l.ifname[i])
		if err != nil {
			return nil, err
		}
		l.tun[i] = f
		l.undo = append(l.undo, func() { f.Close() }) // a closed TUN device disappears
		peer := l.addr[1-i]
		rateBytes := p.rateKbit * 1000 / 8
		burst := max(rateBytes/100, 4096) // 10 ms at the rate, at least a few packets
		for _, args := range [][]string{
			{"ip", "link", "set", l.ifname[i], "netns", ns},
			{"ip", "-n", ns, "link", "set", "lo", "up"},
			{"ip", "-n", ns, "addr", "add", l.addr[i], "peer", peer, "dev", l.ifname[i]},
			{"ip", "-n", ns, "link", "set", l.ifname[i], "up"},
			{"tc", "-n", ns, "qdisc", "add", "dev", l.ifname[i], "root", "tbf",
				"rate", fmt.Sprintf("%dkbit", p.rateKbit), "burst", strconv.Itoa(burst),
				"latency", fmt.Sprintf("%dms", tbfQueue.Milliseconds())},
		} {
			if err := ipCmd(args...); err != nil {
				return nil, err
			}
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	for d := range 2 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.forward(fctx, d)
		}()
	}
	return l, nil
}

// close stops forwarding and removes the devices and namespaces. The
// daemons in them must have stopped.
func (l *link) close() {
	if l.cancel != nil {
		l.cancel()
	}
	for _, f := range l.tun {
		if f != nil {
			f.Close() // unblocks the readers
		}
	}
	l.wg.Wait()
	for i := len(l.undo) - 1; i >= 0; i-- {
		l.undo[i]()
	}
	l.undo = nil
}

// wrapper writes a script that runs the daemon in side i's namespace,
// listening on its address, and returns its path (testbox runs it).
func (l *link) wrapper(dir, bin string, i int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "callboxd-in-"+l.ns[i]+".sh")
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s -listen %s:7420 \"$@\"\n", l.ns[i], bin, l.addr[i])
	return path, os.WriteFile(path, []byte(script), 0o755)
}

// packet is one IP packet on its way, due at the far end at due.
type packet struct {
	data []byte
	due  time.Time
}

// linkQueue bounds the packets in flight inside the emulator per direction;
// beyond it packets are dropped (counted). At 100 Mbit/s and 1 ms this is
// far more than a link holds, so it never decides anything.
const linkQueue = 8192

// forward carries packets from side d to the other side.
func (l *link) forward(ctx context.Context, d int) {
	from, to := l.tun[d], l.tun[1-d]
	q := make(chan packet, linkQueue)
	rng := rand.New(rand.NewPCG(uint64(d)+1, 0x63616c6c626f78)) // the same losses every run
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(q)
		var last time.Time
		for {
			buf := make([]byte, 2048)
			n, err := from.Read(buf)
			if err != nil {
				if ctx.Err() == nil {
					l.readErr[d].Store(&err)
				}
				return
			}
			l.sent[d].Add(1)
			if l.p.loss > 0 && rng.Float64() < l.p.loss {
				l.lost[d].Add(1)
				continue
			}
			delay := l.p.delay
			if l.p.jitter > 0 {
				delay += time.Duration((rng.Float64()*2 - 1) * float64(l.p.jitter))
			}
			// Packets keep their order, as on Wi-Fi where a late frame
			// holds up those behind it (netem would reorder them).
			due := time.Now().Add(max(delay, 0))
			if due.Before(last) {
				due = last
			}
			last = due
			select {
			case q <- packet{data: buf[:n], due: due}:
			default:
				l.overflow[d].Add(1)
			}
		}
	}()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for p := range q {
		if w := time.Until(p.due); w > 0 {
			t.Reset(w)
			select {
			case <-t.C:
			case <-ctx.Done():
				for range q { // let the reader finish
				}
				wg.Wait()
				return
			}
		}
		to.Write(p.data) // a dropped write is a lost packet, as on a wire
	}
	wg.Wait()
}

// stats describes what the emulator did, per direction.
func (l *link) stats() string {
	var b strings.Builder
	for d, name := range []string{"hall→door", "door→hall"} {
		sent, lost, over := l.sent[d].Load(), l.lost[d].Load(), l.overflow[d].Load()
		if d > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %d packets, %d lost", name, sent, lost)
		if over > 0 {
			fmt.Fprintf(&b, ", %d dropped by the emulator's queue", over)
		}
		if e := l.readErr[d].Load(); e != nil {
			fmt.Fprintf(&b, ", stopped: %v", *e)
		}
	}
	return b.String()
}

// runProfile runs the call of a network profile.
func runProfile(ctx context.Context, p profile, bin, dir string, length time.Duration, series string) (result, error) {
	res := result{name: p.name, title: p.title}
	l, err := newLink(ctx, p)
	if err != nil {
		return res, fmt.Errorf("network: %w", err)
	}
	defer l.close()
	wa, err := l.wrapper(dir, bin, 0)
	if err != nil {
		return res, err
	}
	wb, err := l.wrapper(dir, bin, 1)
	if err != nil {
		return res, err
	}
	res, err = runPair(ctx, pairCase{name: p.name, title: p.title, binA: wa, binB: wb, dir: dir,
		width: 640, height: 480, length: length, series: series})
	res.linkNote = l.stats()
	if err != nil {
		err = fmt.Errorf("%w (link: %s)", err, res.linkNote)
	}
	return res, err
}

// TUNSETIFF and its flags, from linux/if_tun.h.
const (
	tunSetIff = 0x400454ca
	iffTun    = 0x0001
	iffNoPi   = 0x1000
)

// openTun creates TUN device name (IP packets, no extra header) and returns
// its file. The device lives as long as the file is open.
func openTun(name string) (*os.File, error) {
	if len(name) >= 16 {
		return nil, fmt.Errorf("tun: name %q too long", name)
	}
	// The device must be attached (TUNSETIFF) before the file joins the
	// runtime's poller: a TUN file polled before it is attached never
	// signals readiness afterwards. So: raw fd, ioctl, non-blocking, then
	// os.NewFile, which registers a non-blocking fd with the poller.
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tun: %w", err)
	}
	var req struct {
		name  [16]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], name)
	req.flags = iffTun | iffNoPi
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&req))); errno != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("tun: create %s: %w", name, errno)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("tun: %w", err)
	}
	return os.NewFile(uintptr(fd), "tun:"+name), nil
}

// ipCmd runs ip or tc and returns its complaint as the error.
func ipCmd(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeStale deletes namespaces of earlier runs whose process is gone
// (killed before its deferred cleanup ran).
func removeStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			ipCmd("ip", "netns", "del", name)
		}
	}
}
