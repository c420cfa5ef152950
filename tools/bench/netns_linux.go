//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/callbox/callbox/internal/netemu"
)

// The emulated link. Each box runs in its own network namespace with a TUN
// device as its only interface. The kernel's tbf qdisc on each TUN device
// shapes what the box sends (rate, and a queue of at most tbfQueue, like a
// modem's buffer); internal/netemu reads the shaped packets, applies the
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
	emu    *netemu.Link

	undo []func() // cleanup, last first
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
		f, err := netemu.OpenTUN(l.ifname[i])
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
	shape := netemu.Shape{Delay: p.delay, Jitter: p.jitter, Loss: p.loss}
	l.emu = netemu.Start(ctx, l.tun[0], l.tun[1], shape, shape)
	return l, nil
}

// close stops forwarding and removes the devices and namespaces. The
// daemons in them must have stopped.
func (l *link) close() {
	if l.emu != nil {
		l.emu.Close() // closes the TUN devices too
	}
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

// stats describes what the emulator did, per direction.
func (l *link) stats() string {
	var b strings.Builder
	for d, name := range []string{"hall→door", "door→hall"} {
		c := l.emu.Counts(d)
		if d > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %d packets, %d lost", name, c.Sent, c.Lost)
		if c.Overflow > 0 {
			fmt.Fprintf(&b, ", %d dropped by the emulator's queue", c.Overflow)
		}
		if c.Err != nil {
			fmt.Fprintf(&b, ", stopped: %v", c.Err)
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
