// Package netemu emulates a network link in user space: packets read from
// one TUN device are delayed, jittered or lost as a Shape says and written
// into another. It stands in for the kernel's sch_netem, which this
// machine kind's kernel lacks (CONFIG_NET_SCH_NETEM is not set, and no
// other qdisc here can delay: only tbf, htb and fifo are built). A veth
// pair offers no place to hold packets back, so each side of an emulated
// link is a TUN device in its namespace and this package carries what
// crosses between them. `make bench` (tools/bench) and the WireGuard test
// (test/netns) use it.
package netemu

import (
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Shape is what one direction of a link does to the packets that cross it.
type Shape struct {
	Delay  time.Duration // one way
	Jitter time.Duration // uniform ± around Delay; packets keep their order
	Loss   float64       // probability per packet
}

// Counts is what one direction did so far.
type Counts struct {
	Sent     uint64 // packets read from the sending side
	Lost     uint64 // dropped by the Shape's loss
	Overflow uint64 // dropped because QueueLimit packets were in flight
	Err      error  // why reading stopped before Close, if it did
}

// QueueLimit bounds the packets in flight inside the emulator per
// direction; beyond it packets are dropped (Counts.Overflow). At
// 100 Mbit/s and 1 ms of delay this is far more than the link holds, so
// it never decides anything in a sensible set-up.
const QueueLimit = 8192

// Link carries packets both ways between two packet devices (TUN files
// opened without packet information: one IP packet per read and write).
type Link struct {
	ends   [2]io.ReadWriteCloser
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	sent, lost, overflow [2]atomic.Uint64 // direction 0 is ends[0] → ends[1]
	readErr              [2]atomic.Pointer[error]
}

// Start forwards packets from a to b shaped by ab and from b to a shaped
// by ba until ctx ends or Close. The Link owns a and b from now on: Close
// closes them.
func Start(ctx context.Context, a, b io.ReadWriteCloser, ab, ba Shape) *Link {
	ctx, cancel := context.WithCancel(ctx)
	l := &Link{ends: [2]io.ReadWriteCloser{a, b}, cancel: cancel}
	for d, s := range []Shape{ab, ba} {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.forward(ctx, d, s)
		}()
	}
	// A read blocks until a packet comes: closing the ends is what ends it.
	go func() {
		<-ctx.Done()
		l.closeEnds()
	}()
	return l
}

// Close stops forwarding, closes both ends (a closed TUN device
// disappears) and waits for the goroutines. Safe to call more than once.
func (l *Link) Close() {
	l.cancel()
	l.closeEnds()
	l.wg.Wait()
}

func (l *Link) closeEnds() {
	l.once.Do(func() {
		for _, e := range l.ends {
			e.Close()
		}
	})
}

// Counts reports direction d: 0 is a → b, 1 is b → a.
func (l *Link) Counts(d int) Counts {
	c := Counts{Sent: l.sent[d].Load(), Lost: l.lost[d].Load(), Overflow: l.overflow[d].Load()}
	if e := l.readErr[d].Load(); e != nil {
		c.Err = *e
	}
	return c
}

// packet is one IP packet on its way, due at the far end at due.
type packet struct {
	data []byte
	due  time.Time
}

// forward carries packets of direction d. A reader takes them off the
// sending side at once (so the sender's own queue, a qdisc say, sees the
// link drain at its pace) and stamps each with the time it is due; the
// writer hands them to the other side at that time.
func (l *Link) forward(ctx context.Context, d int, s Shape) {
	from, to := l.ends[d], l.ends[1-d]
	q := make(chan packet, QueueLimit)
	rng := rand.New(rand.NewPCG(uint64(d)+1, 0x63616c6c626f78)) // the same losses every run
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(q)
		var last time.Time
		buf := make([]byte, 65536)
		for {
			n, err := from.Read(buf)
			if err != nil {
				if ctx.Err() == nil {
					l.readErr[d].Store(&err)
				}
				return
			}
			l.sent[d].Add(1)
			if s.Loss > 0 && rng.Float64() < s.Loss {
				l.lost[d].Add(1)
				continue
			}
			delay := s.Delay
			if s.Jitter > 0 {
				delay += time.Duration((rng.Float64()*2 - 1) * float64(s.Jitter))
			}
			// Packets keep their order, as on Wi-Fi where a late frame
			// holds up those behind it (netem would reorder them).
			due := time.Now().Add(max(delay, 0))
			if due.Before(last) {
				due = last
			}
			last = due
			select {
			case q <- packet{data: append([]byte(nil), buf[:n]...), due: due}:
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
