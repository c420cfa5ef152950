package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/wire"
)

// Fault is one kind of fault. Run makes it happen once on a rig whose
// boxes are idle, checks what the boxes promise about it, and returns
// with both boxes idle again (or an error saying what went wrong). rep
// varies who is the victim and who calls from one run to the next.
type Fault struct {
	Name  string
	Proxy bool // needs a rig with Options.Proxy
	Netns bool // needs a rig with Options.Netns
	// Restarts: the victim is killed and started again (roles: B when
	// rep is even), so its process figures start over.
	Restarts bool
	Run      func(ctx context.Context, r *Rig, rep int) error
}

// Matrix is every fault of issue 12.
var Matrix = []Fault{
	{Name: "peer-stopped", Run: peerStopped},
	{Name: "peer-killed", Restarts: true, Run: peerKilled},
	{Name: "killed-in-handshake", Restarts: true, Run: killedInHandshake},
	{Name: "connection-reset", Proxy: true, Run: connectionReset},
	{Name: "protocol-errors", Run: protocolErrors},
	{Name: "ping-burst", Run: pingBurst},
	{Name: "slow-reader", Run: slowReader},
	{Name: "link-down", Netns: true, Run: linkDown},
	{Name: "tls-alert", Run: tlsAlert},
	{Name: "simultaneous-call", Run: simultaneousCall},
	{Name: "simultaneous-hangup", Run: simultaneousHangup},
}

// roles picks victim and survivor, and whether the survivor places the
// call, from rep: each box is the victim every other run, and each role
// calls every other pair of runs.
func roles(r *Rig, rep int) (victim, survivor *testbox.Box, survivorCalls bool) {
	victim, survivor = r.B, r.A
	if rep%2 == 1 {
		victim, survivor = r.A, r.B
	}
	return victim, survivor, (rep/2)%2 == 0
}

func establishBetween(ctx context.Context, victim, survivor *testbox.Box, survivorCalls bool) error {
	if survivorCalls {
		return Establish(ctx, survivor, victim)
	}
	return Establish(ctx, victim, survivor)
}

// peerStopped freezes the victim (SIGSTOP) mid-call until the survivor
// drops the call as silent, then resumes it (SIGCONT).
func peerStopped(ctx context.Context, r *Rig, rep int) error {
	victim, survivor, survivorCalls := roles(r, rep)
	if err := establishBetween(ctx, victim, survivor, survivorCalls); err != nil {
		return err
	}
	if err := freeze(ctx, victim); err != nil {
		return err
	}
	resumed := false
	defer func() {
		if !resumed {
			victim.Signal(syscall.SIGCONT)
		}
	}()
	st, err := WaitState(ctx, survivor, "idle", SilentWithin)
	if err != nil {
		return fmt.Errorf("%s stopped: %w", victim.Name, err)
	}
	if !strings.Contains(st.Phone.LastEnd, "silent") {
		return fmt.Errorf("%s stopped: %s ended the call with %q, want the peer silent", victim.Name, survivor.Name, st.Phone.LastEnd)
	}
	resumed = true
	if err := victim.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	return WaitIdle(ctx, SilentWithin, victim)
}

// peerKilled kills the victim (SIGKILL) mid-call and restarts it.
func peerKilled(ctx context.Context, r *Rig, rep int) error {
	victim, survivor, survivorCalls := roles(r, rep)
	if err := establishBetween(ctx, victim, survivor, survivorCalls); err != nil {
		return err
	}
	victim.Kill()
	if err := WaitIdle(ctx, SilentWithin, survivor); err != nil {
		return fmt.Errorf("%s killed: %w", victim.Name, err)
	}
	if err := victim.Restart(ctx); err != nil {
		return err
	}
	return WaitIdle(ctx, IdleWithin, victim)
}

// killedInHandshake has the survivor call a frozen victim, so that the
// TLS handshake hangs on the victim's side, then kills and restarts it;
// then a fake peer sends the victim half a ClientHello and resets.
func killedInHandshake(ctx context.Context, r *Rig, rep int) error {
	victim, survivor, _ := roles(r, rep)
	if err := freeze(ctx, victim); err != nil {
		return err
	}
	killed := false
	defer func() {
		if !killed {
			victim.Signal(syscall.SIGCONT)
		}
	}()
	if err := survivor.Client.Do(ctx, "POST", "/v1/call", control.CallRequest{Peer: victim.Name}, nil); err != nil {
		return err
	}
	// The kernel completes the TCP handshake for the frozen victim; the
	// survivor's ClientHello then waits in the victim's queue.
	port := portOf(victim.Addr)
	if err := WaitFor(ctx, IdleWithin, "TCP connection to the frozen "+victim.Name, func() (bool, error) {
		return established(port)
	}); err != nil {
		return err
	}
	if st, err := status(ctx, survivor); err != nil || st.Phone.State.String() != "calling" {
		return fmt.Errorf("%s during the handshake: state %q (%v), want calling", survivor.Name, st.Phone.State, err)
	}
	killed = true
	victim.Kill()
	if err := WaitIdle(ctx, IdleWithin, survivor); err != nil {
		return err
	}
	if err := victim.Restart(ctx); err != nil {
		return err
	}
	f, err := r.FakePeer(ctx)
	if err != nil {
		return err
	}
	half, err := f.HalfClientHello(victim)
	if err != nil {
		return err
	}
	for range 3 {
		c, err := net.Dial("tcp", victim.Addr)
		if err != nil {
			return err
		}
		c.Write(half)
		reset(c)
	}
	return WaitIdle(ctx, IdleWithin, victim, survivor)
}

// freeze stops b with SIGSTOP and waits until every thread of it is
// stopped: the signal is delivered to each thread on its own time.
func freeze(ctx context.Context, b *testbox.Box) error {
	if err := b.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	pid := b.PID()
	return WaitFor(ctx, IdleWithin, b.Name+" stopped", func() (bool, error) {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			return false, fmt.Errorf("no threads of pid %d: %v", pid, err)
		}
		for _, t := range tasks {
			data, err := os.ReadFile(t)
			if err != nil {
				return false, err
			}
			// pid (comm) state ...: comm may hold spaces, so after the last ')'.
			i := strings.LastIndexByte(string(data), ')')
			if i < 0 || i+2 >= len(data) || data[i+2] != 'T' {
				return false, nil
			}
		}
		return true, nil
	})
}

// portOf is the port of host:port, 0 if none.
func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// established says whether this namespace has an established TCP
// connection to local port port (either end of it).
func established(port int) (bool, error) {
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, err
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[3] == "01" && (strings.HasSuffix(f[1], want) || strings.HasSuffix(f[2], want)) {
			return true, nil
		}
	}
	return false, nil
}

// connectionReset resets the call's TCP connection on both sides, in the
// proxy between the boxes.
func connectionReset(ctx context.Context, r *Rig, rep int) error {
	victim, survivor, survivorCalls := roles(r, rep)
	if err := establishBetween(ctx, victim, survivor, survivorCalls); err != nil {
		return err
	}
	// The connection of the call before may still be closing (a side
	// waits up to 500 ms for the other to close after a hangup).
	if err := WaitFor(ctx, IdleWithin, "only the call's connection left in the proxies", func() (bool, error) {
		n := 0
		for _, p := range r.Proxies {
			n += p.Active()
		}
		return n == 1, fmt.Errorf("%d connections", n)
	}); err != nil {
		return err
	}
	for _, p := range r.Proxies {
		p.ResetAll()
	}
	return WaitIdle(ctx, IdleWithin, survivor, victim)
}

// fakeCall has the fake peer call box and waits until box answered.
func fakeCall(ctx context.Context, r *Rig, box *testbox.Box) (*Conn, error) {
	f, err := r.FakePeer(ctx)
	if err != nil {
		return nil, err
	}
	c, err := f.Dial(ctx, box)
	if err != nil {
		return nil, err
	}
	if err := c.Start(f.Name, true); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.WaitType(ctx, wire.TypeAnswer, ConnectWithin); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := WaitState(ctx, box, "in call", ConnectWithin); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// expectProtocolHangup waits for the box's Hangup with reason protocol
// error and for the box to be idle.
func expectProtocolHangup(ctx context.Context, c *Conn, box *testbox.Box, what string) error {
	if err := c.WaitType(ctx, wire.TypeHangup, IdleWithin); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if h := c.Hangup(); h.Reason != wire.ReasonProtocol {
		return fmt.Errorf("%s: %s hung up with %v (%q), want protocol error", what, box.Name, h.Reason, h.Text)
	}
	if err := WaitIdle(ctx, IdleWithin, box); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// protocolErrors has a paired fake peer break the protocol in a call:
// an unknown message type, an oversized message and a video chunk out of
// place end the call with a protocol-error Hangup; a video frame that is
// not a JPEG and audio of the wrong size are dropped, counted, and the
// call goes on.
func protocolErrors(ctx context.Context, r *Rig, rep int) error {
	box, _, _ := roles(r, rep)
	fatal := []struct {
		what string
		msg  []byte
	}{
		{"unknown type", RawMessage(wire.Type(99), 0)},
		{"oversized audio", RawMessage(wire.TypeAudio, wire.MaxAudio+2)},
		{"video chunk out of place", mustAppend(wire.Video{Frame: 7, Size: 4000, Offset: 1000, Data: make([]byte, 1000)})},
	}
	for _, bad := range fatal {
		c, err := fakeCall(ctx, r, box)
		if err != nil {
			return fmt.Errorf("%s: %w", bad.what, err)
		}
		err = c.SendRaw(bad.msg)
		if err == nil {
			err = expectProtocolHangup(ctx, c, box, bad.what)
		}
		c.Close()
		if err != nil {
			return err
		}
	}
	dropped := []struct {
		what  string
		body  wire.Body
		count func(control.Status) uint64
	}{
		{"video frame not a JPEG", wire.Video{Frame: 1, Size: 3000, Offset: 0, Data: make([]byte, 3000)},
			func(st control.Status) uint64 { return st.Phone.Call.In.VideoBad }},
		{"audio of the wrong size", wire.Audio{PCM: make([]byte, 100)},
			func(st control.Status) uint64 { return st.Phone.Call.In.AudioBad }},
	}
	for _, bad := range dropped {
		c, err := fakeCall(ctx, r, box)
		if err != nil {
			return fmt.Errorf("%s: %w", bad.what, err)
		}
		err = c.Send(bad.body)
		if err == nil {
			err = WaitFor(ctx, IdleWithin, box.Name+" counts the "+bad.what, func() (bool, error) {
				st, err := status(ctx, box)
				if err != nil {
					return false, err
				}
				if st.Phone.State.String() != "in call" || st.Phone.Call == nil {
					return false, fmt.Errorf("the call ended: %q", st.Phone.LastEnd)
				}
				return bad.count(st) > 0, nil
			})
		}
		if err == nil {
			err = c.HangupGracefully()
		}
		if err == nil {
			err = WaitIdle(ctx, IdleWithin, box)
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", bad.what, err)
		}
	}
	return nil
}

func mustAppend(b wire.Body) []byte {
	out, err := wire.Append(nil, wire.Message{Time: time.Now().UnixNano(), Body: b})
	if err != nil {
		panic(err)
	}
	return out
}

// pingBurst has a paired fake peer send 10,000 Pings at once in a call:
// the box answers the newest and the call goes on.
func pingBurst(ctx context.Context, r *Rig, rep int) error {
	box, _, _ := roles(r, rep)
	c, err := fakeCall(ctx, r, box)
	if err != nil {
		return err
	}
	defer c.Close()
	last, err := c.SendPings(10000, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("sending the pings: %w", err)
	}
	if err := WaitFor(ctx, IdleWithin, box.Name+" answers the last of 10,000 pings", func() (bool, error) {
		if err := c.ReadErr(); err != nil {
			return false, fmt.Errorf("connection ended: %w (hangup %+v)", err, c.Hangup())
		}
		return c.LastPong().Ping == last, nil
	}); err != nil {
		return err
	}
	st, err := status(ctx, box)
	if err != nil {
		return err
	}
	if st.Phone.State.String() != "in call" {
		return fmt.Errorf("after the ping burst %s is %q (%q), want in call", box.Name, st.Phone.State, st.Phone.LastEnd)
	}
	if err := c.HangupGracefully(); err != nil {
		return err
	}
	return WaitIdle(ctx, IdleWithin, box)
}

// slowReader has box call the fake peer, which answers and then never
// reads again while it keeps pinging: box must give up on the call.
func slowReader(ctx context.Context, r *Rig, rep int) error {
	box, _, _ := roles(r, rep)
	f, err := r.FakePeer(ctx)
	if err != nil {
		return err
	}
	if err := box.Client.Do(ctx, "POST", "/v1/call", control.CallRequest{Peer: f.Name}, nil); err != nil {
		return err
	}
	c, err := f.Incoming(ctx, ConnectWithin)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.ReadUntil(wire.TypeCall, ConnectWithin); err != nil {
		return err
	}
	if err := c.Send(c.Hello(f.Name)); err != nil {
		return err
	}
	if err := c.Send(wire.Answer{}); err != nil {
		return err
	}
	if _, err := WaitState(ctx, box, "in call", ConnectWithin); err != nil {
		return err
	}
	// From here on nothing is read; a Ping goes out every 200 ms, so the
	// box hears from its peer all along.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if c.Send(wire.Ping{}) != nil {
					return
				}
			}
		}
	}()
	defer func() { close(stop); c.Close(); wg.Wait() }()
	st, err := WaitState(ctx, box, "idle", 30*time.Second)
	if err != nil {
		return fmt.Errorf("a peer that does not read: %w", err)
	}
	r.note("slow-reader: %s ended the call: %s", box.Name, st.Phone.LastEnd)
	return nil
}

// linkDown pulls the cable (the victim's veth down) mid-call until both
// boxes dropped the call as silent, then plugs it back.
func linkDown(ctx context.Context, r *Rig, rep int) error {
	if r.Net == nil {
		return errors.New("link-down needs a rig in network namespaces")
	}
	victim, survivor, survivorCalls := roles(r, rep)
	if err := establishBetween(ctx, victim, survivor, survivorCalls); err != nil {
		return err
	}
	i := 1
	if victim == r.A {
		i = 0
	}
	if err := r.Net.SetLink(i, false); err != nil {
		return err
	}
	err := WaitIdle(ctx, SilentWithin, survivor, victim)
	if uerr := r.Net.SetLink(i, true); uerr != nil && err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	// The network itself must work again before the boxes are judged: a
	// carrier on both ends and packets through both ways (once in the
	// soak, ARP still failed for 3 s after the carrier came back).
	return WaitFor(ctx, IdleWithin, "the link back up", func() (bool, error) {
		a, err := r.Net.LinkUp(0)
		if err != nil {
			return false, err
		}
		b, err := r.Net.LinkUp(1)
		return a && b && r.Net.Reaches(0) && r.Net.Reaches(1), err
	})
}

// tlsAlert breaks the TLS session of a call from the fake peer's side: a
// plaintext fatal alert record written on the raw TCP between two records,
// then (in a second call) a genuine close_notify without a Hangup.
func tlsAlert(ctx context.Context, r *Rig, rep int) error {
	box, _, _ := roles(r, rep)
	c, err := fakeCall(ctx, r, box)
	if err != nil {
		return err
	}
	release := c.HoldWrites()
	// content type alert (21), TLS 1.2 record version, length 2: fatal (2),
	// unexpected_message (10).
	_, err = c.Raw.Write([]byte{21, 3, 3, 0, 2, 2, 10})
	release()
	if err == nil {
		err = WaitIdle(ctx, IdleWithin, box)
	}
	c.Close()
	if err != nil {
		return fmt.Errorf("plaintext alert: %w", err)
	}
	c, err = fakeCall(ctx, r, box)
	if err != nil {
		return err
	}
	err = c.TLS.CloseWrite() // close_notify; the fake goes on reading
	if err == nil {
		err = WaitIdle(ctx, IdleWithin, box)
	}
	c.Close()
	if err != nil {
		return fmt.Errorf("close_notify: %w", err)
	}
	return nil
}

// simultaneousCall has both boxes call each other at the same instant:
// the crossed calls must end in one call between them. The second call
// is placed 0 to 12 ms after the first, a step further each run (and the
// boxes take turns to go first), so that the runs sweep the moments where
// one box's call meets the other's still being dialled.
func simultaneousCall(ctx context.Context, r *Rig, rep int) error {
	errs := make([]error, 2)
	var wg sync.WaitGroup
	start := make(chan struct{})
	lag := time.Duration((rep/2)%5) * 3 * time.Millisecond
	for i, b := range r.Boxes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if i != rep%2 {
				time.Sleep(lag)
			}
			errs[i] = b.Client.Do(ctx, "POST", "/v1/call", control.CallRequest{Peer: r.Other(b).Name}, nil)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		// The other's call may be answered before this one is placed.
		if err != nil && !strings.Contains(err.Error(), "already in a call") {
			return fmt.Errorf("%s calls: %w", r.Boxes()[i].Name, err)
		}
	}
	for _, b := range r.Boxes() {
		if _, err := WaitState(ctx, b, "in call", ConnectWithin); err != nil {
			return fmt.Errorf("crossed calls: %w", err)
		}
	}
	if err := r.A.Client.Do(ctx, "POST", "/v1/hangup", nil, nil); err != nil {
		return err
	}
	return WaitIdle(ctx, IdleWithin, r.A, r.B)
}

// simultaneousHangup has both boxes hang up the same call at the same
// instant.
func simultaneousHangup(ctx context.Context, r *Rig, rep int) error {
	victim, survivor, survivorCalls := roles(r, rep)
	if err := establishBetween(ctx, victim, survivor, survivorCalls); err != nil {
		return err
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, b := range r.Boxes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = b.Client.Do(ctx, "POST", "/v1/hangup", nil, nil)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		// The other's hangup may arrive first.
		if err != nil && !strings.Contains(err.Error(), "no call to hang up") {
			return fmt.Errorf("%s hangs up: %w", r.Boxes()[i].Name, err)
		}
	}
	return WaitIdle(ctx, IdleWithin, r.A, r.B)
}
