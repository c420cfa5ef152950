package main

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/identity"
)

// seenKind is how a paired peer was seen.
type seenKind int

const (
	seenDiscovery seenKind = iota // discovery heard its key
	seenOurCall                   // a call of ours reached it
	seenTheirCall                 // it called us
	numSeenKinds
)

var seenBy = [numSeenKinds]string{control.SeenByDiscovery, control.SeenByOurCall, control.SeenByTheirCall}

type sighting struct {
	at   time.Time
	addr string
}

// sightings is when and where each paired peer was last seen, by each
// kind, for status. In memory only: writing the peer store on every
// sighting would wear an SD card for a figure people read now and then.
// Safe for concurrent use.
type sightings struct {
	mu sync.Mutex
	by map[identity.Fingerprint]*[numSeenKinds]sighting
}

func newSightings() *sightings {
	return &sightings{by: map[identity.Fingerprint]*[numSeenKinds]sighting{}}
}

// saw records that the peer with key fp was seen at addr at time at; an
// older sighting than the one kept changes nothing. Callers record paired
// keys only, so the map stays as small as the peer list.
func (s *sightings) saw(fp identity.Fingerprint, kind seenKind, addr string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.by[fp]
	if k == nil {
		k = new([numSeenKinds]sighting)
		s.by[fp] = k
	}
	if at.After(k[kind].at) {
		k[kind] = sighting{at: at, addr: addr}
	}
}

func (s *sightings) of(fp identity.Fingerprint) [numSeenKinds]sighting {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.by[fp]; k != nil {
		return *k
	}
	return [numSeenKinds]sighting{}
}

// peersSeen is every paired peer with its sightings as of now.
func (d *daemon) peersSeen(now time.Time) []control.PeerSeen {
	out := []control.PeerSeen{}
	for _, p := range d.peers.List() {
		ps := control.PeerSeen{Name: p.Name, Fingerprint: p.Fingerprint.String()}
		k := d.sightings.of(p.Fingerprint)
		var each [numSeenKinds]*control.Sighting
		for i, s := range k {
			if s.at.IsZero() {
				continue
			}
			each[i] = &control.Sighting{By: seenBy[i], At: s.at, AgoS: now.Sub(s.at).Seconds(), Address: s.addr}
			if ps.Last == nil || s.at.After(ps.Last.At) {
				ps.Last = each[i]
			}
		}
		ps.Discovery, ps.OurCall, ps.TheirCall = each[seenDiscovery], each[seenOurCall], each[seenTheirCall]
		ps.Summary = control.SeenSummary(ps.Last)
		out = append(out, ps)
	}
	return out
}

// watchDiscovery records every paired peer discovery hears, as it hears
// it, until ctx ends: discovery's cache forgets a box when its records
// expire (2 minutes), status remembers when it was last heard.
func (d *daemon) watchDiscovery(ctx context.Context) {
	for {
		list, changed := d.disc.Seen(time.Time{})
		for _, f := range list {
			fp, err := identity.ParseFingerprint(f.FP)
			if err != nil {
				continue
			}
			if _, ok := d.peers.ByFingerprint(fp); !ok {
				continue
			}
			addr := ""
			if len(f.Addrs) > 0 {
				addr = f.Addrs[0].String()
			}
			d.sightings.saw(fp, seenDiscovery, addr, f.Seen)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// hostOnly is the host of "host:port" (the port of a connection that
// called us says nothing to people), or addr as it is.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
