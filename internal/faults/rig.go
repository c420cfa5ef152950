// Package faults is the fault matrix of issue 12: ways a call between two
// real callboxd daemons can go wrong (a peer stopped, killed, reset, lying
// on the wire, not reading, cut off), each made to happen on purpose, and
// the check that follows every one of them: a normal call, both ways, still
// connects and carries video and audio. test/faults runs every fault ten
// times in a row under `make test`; tools/soak runs them at random for
// hours. Only 127.0.0.1 and network namespaces made here are touched.
package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
)

// Bounds of the waits, generous for race-enabled daemons on a busy
// 2-core machine; each is a ceiling on a condition, not a sleep.
const (
	// ConnectWithin bounds placing a call until both boxes are in it.
	ConnectWithin = 20 * time.Second
	// MediaWithin bounds the wait for every media counter to rise.
	MediaWithin = 15 * time.Second
	// IdleWithin bounds a box's return to idle after a hangup or a fault
	// that it notices at once (a reset, a protocol error).
	IdleWithin = 10 * time.Second
	// SilentWithin bounds noticing a peer that went silent: the peer
	// timeout (2 s) plus slack.
	SilentWithin = 8 * time.Second
)

// boxExtra keeps the daemons cheap: a precomputed test pattern at 10 fps
// (no JPEG encoding), so that many pairs fit on two cores under -race.
const boxExtra = "[video]\nprecomputed = 10\nfps = 10\n"

// Options shape a rig.
type Options struct {
	Bin   string    // callboxd
	Dir   string    // everything of the rig lives under it
	Names [2]string // default "a", "b"
	Log   io.Writer // copy of both daemons' logs (nil: kept in memory only)
	// Proxy puts a TCP proxy in front of each box: the other box (and
	// nothing else) reaches it through the proxy, which can reset every
	// connection it carries.
	Proxy bool
	// Netns runs the two boxes in two network namespaces joined by a
	// veth pair, made here (root only).
	Netns bool
	// Note, if set, gets a line about what a fault saw (figures, reasons).
	Note func(format string, args ...any)
}

// Rig is two paired daemons with auto-answer, and what a fault needs
// around them: their proxies, a fake peer, their namespaces.
type Rig struct {
	A, B    *testbox.Box
	Proxies map[*testbox.Box]*Proxy // in front of each box, with Options.Proxy
	Net     *Netns                  // with Options.Netns

	opts   Options
	reach  map[*testbox.Box]string // where the other box dials it
	fakeMu sync.Mutex
	fake   *Fake
}

// NewRig starts the two daemons and pairs them. Close stops everything.
func NewRig(ctx context.Context, o Options) (r *Rig, err error) {
	if o.Names[0] == "" {
		o.Names = [2]string{"a", "b"}
	}
	r = &Rig{opts: o, reach: map[*testbox.Box]string{}, Proxies: map[*testbox.Box]*Proxy{}}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	var listen [2]string
	var wrap [2][]string
	if o.Netns {
		if r.Net, err = NewNetns(); err != nil {
			return nil, err
		}
		for i := range 2 {
			listen[i] = net.JoinHostPort(r.Net.IP[i], "7420")
			wrap[i] = []string{"ip", "netns", "exec", r.Net.NS[i]}
		}
	} else {
		for i := range 2 {
			p, err := FreePort()
			if err != nil {
				return nil, err
			}
			// A fixed port: a box restarted after a kill is where it was.
			listen[i] = fmt.Sprintf("127.0.0.1:%d", p)
		}
	}
	boxes := [2]*testbox.Box{}
	for i := range 2 {
		b, err := testbox.Start(ctx, o.Bin, o.Names[i], filepath.Join(o.Dir, o.Names[i]), testbox.Options{
			AutoAnswer: true, Extra: boxExtra, Log: o.Log, Listen: listen[i], Wrap: wrap[i],
		})
		if err != nil {
			return nil, err
		}
		boxes[i] = b
		if i == 0 {
			r.A = b
		} else {
			r.B = b
		}
		r.reach[b] = listen[i]
		if o.Proxy {
			p, err := NewProxy(listen[i])
			if err != nil {
				return nil, err
			}
			r.Proxies[b] = p
			r.reach[b] = p.Addr()
		}
	}
	for i := range 2 {
		me, other := boxes[i], boxes[1-i]
		if err := me.Client.Do(ctx, "POST", "/v1/peers", control.Peer{Name: other.Name, Fingerprint: other.FP, Address: r.reach[other]}, nil); err != nil {
			return nil, fmt.Errorf("pair %s with %s: %w", me.Name, other.Name, err)
		}
	}
	return r, nil
}

// Close stops the daemons (resuming a stopped one first), the proxies,
// the fake peer, and deletes the namespaces.
func (r *Rig) Close() {
	for _, b := range r.Boxes() {
		b.Signal(syscall.SIGCONT) // a stopped box would not see SIGTERM
		b.Stop()
	}
	for _, p := range r.Proxies {
		p.Close()
	}
	r.fakeMu.Lock()
	if r.fake != nil {
		r.fake.Close()
	}
	r.fakeMu.Unlock()
	if r.Net != nil {
		r.Net.Delete()
	}
}

func (r *Rig) note(format string, args ...any) {
	if r.opts.Note != nil {
		r.opts.Note(format, args...)
	}
}

// Boxes is A and B (those started).
func (r *Rig) Boxes() []*testbox.Box {
	var out []*testbox.Box
	for _, b := range []*testbox.Box{r.A, r.B} {
		if b != nil {
			out = append(out, b)
		}
	}
	return out
}

// Other is the box that is not b.
func (r *Rig) Other(b *testbox.Box) *testbox.Box {
	if b == r.A {
		return r.B
	}
	return r.A
}

// Logs is both daemons' logs, for a failure report.
func (r *Rig) Logs() string {
	var sb strings.Builder
	for _, b := range r.Boxes() {
		fmt.Fprintf(&sb, "--- %s log:\n%s\n", b.Name, b.Log())
	}
	return sb.String()
}

// FakePeer is the rig's fake peer, made and paired with both boxes on
// first use.
func (r *Rig) FakePeer(ctx context.Context) (*Fake, error) {
	r.fakeMu.Lock()
	defer r.fakeMu.Unlock()
	if r.fake != nil {
		return r.fake, nil
	}
	f, err := NewFake(filepath.Join(r.opts.Dir, "fake"), "fake")
	if err != nil {
		return nil, err
	}
	for _, b := range r.Boxes() {
		if err := f.Register(ctx, b); err != nil {
			f.Close()
			return nil, err
		}
	}
	r.fake = f
	return f, nil
}

// FreePort finds a TCP port on 127.0.0.1 below the kernel's ephemeral
// range, so that no outgoing connection takes it while a box that owns it
// is down for a restart.
func FreePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 200 {
		p := 20000 + rand.IntN(12000)
		if portsTaken[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		portsTaken[p] = true
		return p, nil
	}
	return 0, errors.New("no free port found in 20000..32000")
}

var (
	portMu     sync.Mutex
	portsTaken = map[int]bool{}
)

// status fetches a box's status with a short bound of its own.
func status(ctx context.Context, b *testbox.Box) (control.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return b.Status(ctx)
}

// WaitFor polls cond every 20 ms until it holds, it fails, ctx ends or
// within passes; what names the condition in the error.
func WaitFor(ctx context.Context, within time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(within)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("%s: not within %v: %w", what, within, last)
			}
			return fmt.Errorf("%s: not within %v", what, within)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitState waits until b is in state ("idle", "calling", "in call").
func WaitState(ctx context.Context, b *testbox.Box, state string, within time.Duration) (control.Status, error) {
	var st control.Status
	err := WaitFor(ctx, within, b.Name+" "+state, func() (bool, error) {
		var err error
		st, err = status(ctx, b)
		if err != nil {
			return false, err
		}
		if st.Phone.State.String() == state {
			return true, nil
		}
		return false, fmt.Errorf("state %q, last end %q", st.Phone.State, st.Phone.LastEnd)
	})
	return st, err
}

// WaitIdle waits until every box given is idle.
func WaitIdle(ctx context.Context, within time.Duration, boxes ...*testbox.Box) error {
	for _, b := range boxes {
		if _, err := WaitState(ctx, b, "idle", within); err != nil {
			return err
		}
	}
	return nil
}

// Establish has caller call callee and waits until both are in the call
// and audio has arrived on both sides: the call is really up.
func Establish(ctx context.Context, caller, callee *testbox.Box) error {
	if err := caller.Client.Do(ctx, "POST", "/v1/call", control.CallRequest{Peer: callee.Name}, nil); err != nil {
		return fmt.Errorf("%s calls %s: %w", caller.Name, callee.Name, err)
	}
	for _, b := range []*testbox.Box{caller, callee} {
		if _, err := WaitState(ctx, b, "in call", ConnectWithin); err != nil {
			return fmt.Errorf("%s calls %s: %w", caller.Name, callee.Name, err)
		}
	}
	for _, b := range []*testbox.Box{caller, callee} {
		err := WaitFor(ctx, MediaWithin, b.Name+" receives audio", func() (bool, error) {
			st, err := status(ctx, b)
			if err != nil {
				return false, err
			}
			if st.Phone.Call == nil {
				return false, fmt.Errorf("no call: state %q, last end %q", st.Phone.State, st.Phone.LastEnd)
			}
			return st.Phone.Call.In.AudioFrames > 0, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// NormalCall is the check after every fault: caller calls callee, both
// reach "in call", every media counter of both (video and audio, in and
// out) rises, caller hangs up, both are idle again.
func NormalCall(ctx context.Context, caller, callee *testbox.Box) error {
	if err := caller.Client.Do(ctx, "POST", "/v1/call", control.CallRequest{Peer: callee.Name}, nil); err != nil {
		return fmt.Errorf("normal call %s → %s: %w", caller.Name, callee.Name, err)
	}
	boxes := []*testbox.Box{caller, callee}
	first := map[*testbox.Box]counters{}
	for _, b := range boxes {
		st, err := WaitState(ctx, b, "in call", ConnectWithin)
		if err != nil {
			return fmt.Errorf("normal call %s → %s: %w", caller.Name, callee.Name, err)
		}
		first[b] = countersOf(st)
	}
	for _, b := range boxes {
		var now counters
		err := WaitFor(ctx, MediaWithin, fmt.Sprintf("normal call %s → %s: %s's media counters rise", caller.Name, callee.Name, b.Name), func() (bool, error) {
			st, err := status(ctx, b)
			if err != nil {
				return false, err
			}
			if st.Phone.State.String() != "in call" {
				return false, fmt.Errorf("call ended: state %q, last end %q", st.Phone.State, st.Phone.LastEnd)
			}
			now = countersOf(st)
			return now.above(first[b]), fmt.Errorf("counters %+v, at first %+v", now, first[b])
		})
		if err != nil {
			return err
		}
	}
	if err := caller.Client.Do(ctx, "POST", "/v1/hangup", nil, nil); err != nil {
		return fmt.Errorf("normal call %s → %s: hang up: %w", caller.Name, callee.Name, err)
	}
	if err := WaitIdle(ctx, IdleWithin, caller, callee); err != nil {
		return fmt.Errorf("normal call %s → %s: after hangup: %w", caller.Name, callee.Name, err)
	}
	return nil
}

// BothWays is NormalCall from A to B, then from B to A.
func (r *Rig) BothWays(ctx context.Context) error {
	if err := NormalCall(ctx, r.A, r.B); err != nil {
		return err
	}
	return NormalCall(ctx, r.B, r.A)
}

// counters are a box's media counters in a call.
type counters struct{ VideoIn, AudioIn, VideoOut, AudioOut uint64 }

func countersOf(st control.Status) counters {
	c := st.Phone.Call
	if c == nil {
		return counters{}
	}
	return counters{c.In.VideoFrames, c.In.AudioFrames, c.Out.VideoFrames, c.Out.AudioFrames}
}

// above says every counter of c is past the same one of o.
func (c counters) above(o counters) bool {
	return c.VideoIn > o.VideoIn && c.AudioIn > o.AudioIn && c.VideoOut > o.VideoOut && c.AudioOut > o.AudioOut
}
