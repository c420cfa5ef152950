package main

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/callbox/callbox/stream/identity"
)

// friendAddrs is where paired peers were seen recently: the addresses a
// paired key connected from or answered at, and the ones discovery found
// them at. The call listener keeps part of its handshake slots for them
// (see callListener). Safe for concurrent use.
type friendAddrs struct {
	peers *identity.Store // configured and last-worked addresses count too

	mu   sync.Mutex
	seen map[netip.Addr]time.Time
}

// Bounds of the recently-seen set: a paired box that moved keeps its old
// address listed for a while, and a box with many peers keeps the newest.
const (
	friendFor  = 7 * 24 * time.Hour
	maxFriends = 64
)

func newFriendAddrs(peers *identity.Store) *friendAddrs {
	return &friendAddrs{peers: peers, seen: map[netip.Addr]time.Time{}}
}

func friendKey(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }

// saw records that a paired peer was at addr ("host:port" or a bare IP).
func (f *friendAddrs) saw(addr string) {
	ip, ok := hostIP(addr)
	if !ok {
		return
	}
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[friendKey(ip)] = now
	if len(f.seen) <= maxFriends {
		return
	}
	var oldest netip.Addr
	var at time.Time
	for a, t := range f.seen {
		if at.IsZero() || t.Before(at) {
			oldest, at = a, t
		}
	}
	delete(f.seen, oldest)
}

// is reports whether ip is where a paired peer was seen recently or is
// configured.
func (f *friendAddrs) is(ip netip.Addr) bool {
	ip = friendKey(ip)
	f.mu.Lock()
	t, ok := f.seen[ip]
	f.mu.Unlock()
	if ok && time.Since(t) < friendFor {
		return true
	}
	for _, p := range f.peers.List() {
		for _, a := range []string{p.Address, p.LastAddress} {
			if pip, ok := hostIP(a); ok && friendKey(pip) == ip {
				return true
			}
		}
	}
	return false
}

// hostIP is the IP address in "host:port" or a bare IP; host names are not
// looked up (a name's address counts once a call to it has worked).
func hostIP(addr string) (netip.Addr, bool) {
	if addr == "" {
		return netip.Addr{}, false
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	return ip, err == nil
}
