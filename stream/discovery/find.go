package discovery

import (
	"context"
	"net/netip"
	"time"
)

// Find reports, one by one as they become known, the addresses at which
// the box whose key has fingerprint fp (any form identity.ParseFingerprint
// reads) answered: at once those of a sighting still alive in the cache,
// then those of every fresh answer, asking the link at once and again
// every second. Each address is reported once. found runs on Find's
// goroutine; Find returns when ctx ends.
//
// Unlike Lookup, which waits for the first fresh answer, Find lets a
// caller dial every address as soon as it is heard of, alongside the
// addresses it knows already.
func (n *Node) Find(ctx context.Context, fp string, found func(netip.AddrPort)) {
	want := compactFP(fp)
	told := map[netip.AddrPort]bool{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n.Query()
	for {
		list, changed := n.Seen(time.Time{})
		for _, f := range list {
			if f.FP != want {
				continue
			}
			for _, a := range f.Addrs {
				if !told[a] && ctx.Err() == nil {
					told[a] = true
					found(a)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
			n.Query()
		}
	}
}
