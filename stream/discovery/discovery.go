// Package discovery finds callboxes on the local link by their key: each
// box advertises itself with DNS-SD over multicast DNS (_callbox._tcp, its
// key fingerprint and name in TXT, its call port in SRV), and looks its
// paired peer up by fingerprint. What it finds is a hint where to dial; the
// TLS handshake decides who is there.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// ErrNotFound: no box with that fingerprint answered in time.
var ErrNotFound = errors.New("discovery: not found on the link")

// Config configures a Node. The zero value is not usable: at least one of
// IPv4 and IPv6 must be set.
type Config struct {
	// Interfaces to use, by name. Empty: every interface that is up,
	// multicast-capable and not loopback, re-checked as they come and go.
	Interfaces []string
	IPv4, IPv6 bool
	Logger     *slog.Logger

	// For tests: the sockets and the interface list. Nil: real ones.
	listen     func(v6 bool) (packetConn, error)
	interfaces func() ([]Iface, error)
	now        func() time.Time
}

// Iface is a network interface as discovery uses it.
type Iface struct {
	Index    int
	Name     string
	Addrs    []netip.Addr // its unicast addresses
	Loopback bool         // used only when named in Config.Interfaces
}

// packetConn is one mDNS socket of one address family. ReadFrom reports
// the index of the interface a packet came in on (0 if unknown). WriteTo
// with an invalid dst sends to the mDNS group on ifi.
type packetConn interface {
	ReadFrom(buf []byte) (n, ifindex int, src netip.AddrPort, err error)
	WriteTo(b []byte, ifi Iface, dst netip.AddrPort) error
	Join(ifi Iface) error
	Close() error
}

// Limits. A flood of queries gets at most one multicast answer per second
// per interface and family (RFC 6762 §6); a flood of answers can hold at
// most maxCache instances.
const (
	answerInterval = time.Second
	queryInterval  = 200 * time.Millisecond
	rescanInterval = 5 * time.Second
	maxCache       = 64
	maxPacket      = 9000
)

// Node is one box's mDNS responder and querier. Run owns the sockets;
// the other methods are safe for concurrent use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	conns []packetConn // opened by Run
	kick  chan struct{}

	mu         sync.Mutex
	self       Instance          // zero Fingerprint: not advertising
	ifs        map[int]Iface     // interfaces joined, by index
	cache      map[string]*entry // by compact fingerprint
	lastAnswer map[answerKey]time.Time
	lastQuery  time.Time
	lastRescan time.Time
	changed    chan struct{} // closed and replaced when the cache changes
	malformed  uint64
}

type entry struct {
	found   Found
	seen    time.Time
	expires time.Time
}

type answerKey struct {
	ifindex int
	v6      bool
}

// Stats are the node's counters.
type Stats struct {
	Interfaces []string // joined
	Known      int      // instances in the cache
	Malformed  uint64   // packets that did not parse
}

// New checks cfg and makes a node; Run starts it.
func New(cfg Config) (*Node, error) {
	if !cfg.IPv4 && !cfg.IPv6 {
		return nil, errors.New("discovery: neither ipv4 nor ipv6 enabled")
	}
	for _, name := range cfg.Interfaces {
		if name == "" || len(name) > 15 {
			return nil, fmt.Errorf("discovery: interface name %q: want 1..15 characters", name)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.listen == nil {
		cfg.listen = listenUDP
	}
	if cfg.interfaces == nil {
		cfg.interfaces = systemInterfaces
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	return &Node{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "discovery"),
		kick:       make(chan struct{}, 1),
		ifs:        map[int]Iface{},
		cache:      map[string]*entry{},
		lastAnswer: map[answerKey]time.Time{},
		changed:    make(chan struct{}),
	}, nil
}

// SetInstance sets what this box advertises (a zero Fingerprint: nothing)
// and announces a change at once.
func (n *Node) SetInstance(in Instance) {
	n.mu.Lock()
	same := n.self == in
	n.self = in
	n.mu.Unlock()
	if !same {
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
}

// Run opens the sockets, answers queries for our instance and learns
// others' until ctx ends, then says goodbye and closes. It fails only if
// no socket can be opened.
func (n *Node) Run(ctx context.Context) error {
	var errs []error
	for _, v6 := range []bool{false, true} {
		if v6 && !n.cfg.IPv6 || !v6 && !n.cfg.IPv4 {
			continue
		}
		c, err := n.cfg.listen(v6)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.conns = append(n.conns, c)
	}
	if len(n.conns) == 0 {
		return errors.Join(errs...)
	}
	for _, err := range errs {
		n.log.Warn("one address family unusable", "err", err)
	}
	var wg sync.WaitGroup
	for _, c := range n.conns {
		wg.Go(func() { n.readLoop(c) })
	}
	n.rescan()
	n.announce(recordTTL)
	announced := 1
	next := time.NewTimer(time.Second) // RFC 6762 §8.3: announce twice, a second apart
	rescan := time.NewTicker(rescanInterval)
	defer rescan.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-n.kick:
			n.announce(recordTTL)
		case <-next.C:
			if announced < 2 {
				announced++
				n.announce(recordTTL)
			}
		case <-rescan.C:
			if n.rescan() {
				n.announce(recordTTL)
			}
		}
	}
	next.Stop()
	n.announce(0) // goodbye
	for _, c := range n.conns {
		c.Close()
	}
	wg.Wait()
	return nil
}

// rescanIfOld rescans if the last scan is more than a second old, so an
// answer carries the addresses the interface has now; it reports whether
// anything changed (then it has announced the change as well).
func (n *Node) rescanIfOld() bool {
	n.mu.Lock()
	old := n.cfg.now().Sub(n.lastRescan) > time.Second
	n.mu.Unlock()
	if !old || !n.rescan() {
		return false
	}
	n.announce(recordTTL)
	return true
}

// rescan joins the group on interfaces that appeared and reports whether
// the interfaces or their addresses changed.
func (n *Node) rescan() bool {
	list, err := n.cfg.interfaces()
	if err != nil {
		n.log.Warn("listing interfaces failed", "err", err)
		return false
	}
	now := map[int]Iface{}
	for _, ifi := range list {
		if len(n.cfg.Interfaces) > 0 && !slices.Contains(n.cfg.Interfaces, ifi.Name) ||
			len(n.cfg.Interfaces) == 0 && ifi.Loopback {
			continue
		}
		now[ifi.Index] = ifi
	}
	n.mu.Lock()
	old := n.ifs
	n.mu.Unlock()
	changed := len(now) != len(old)
	for idx, ifi := range now {
		o, ok := old[idx]
		if ok && o.Name == ifi.Name && slices.Equal(o.Addrs, ifi.Addrs) {
			continue
		}
		changed = true
		if ok && o.Name == ifi.Name {
			continue // joined already; only the addresses changed
		}
		for _, c := range n.conns {
			if err := c.Join(ifi); err != nil {
				n.log.Debug("joining the mDNS group failed", "interface", ifi.Name, "err", err)
			}
		}
		n.log.Info("mDNS on interface", "interface", ifi.Name, "addrs", fmt.Sprint(ifi.Addrs))
	}
	n.mu.Lock()
	n.ifs = now
	n.lastRescan = n.cfg.now()
	n.mu.Unlock()
	return changed
}

func (n *Node) interfacesNow() []Iface {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Iface, 0, len(n.ifs))
	for _, ifi := range n.ifs {
		out = append(out, ifi)
	}
	sortSmall(out, func(a, b Iface) bool { return a.Index < b.Index })
	return out
}

// announce multicasts our records on every interface (ttl 0: goodbye).
func (n *Node) announce(ttl uint32) {
	n.mu.Lock()
	self := n.self
	n.mu.Unlock()
	if self.Fingerprint == "" {
		return
	}
	for _, ifi := range n.interfacesNow() {
		for _, c := range n.conns {
			n.respond(c, ifi, self, ttl, netip.AddrPort{}, 0, nil)
		}
	}
}

// respond sends our records for ifi's addresses of c's family (and the
// other family's too: a dual-stack peer can use either).
func (n *Node) respond(c packetConn, ifi Iface, self Instance, ttl uint32, dst netip.AddrPort, id uint16, q *dnsmessage.Question) {
	msg, err := buildResponse(self, ifi.Addrs, ttl, id, q)
	if err != nil {
		n.log.Warn("building an mDNS response failed", "err", err)
		return
	}
	if err := c.WriteTo(msg, ifi, dst); err != nil {
		n.log.Debug("sending an mDNS response failed", "interface", ifi.Name, "err", err)
	}
}

// Query multicasts a query for all callboxes on every interface, at most
// once per queryInterval.
func (n *Node) Query() {
	n.mu.Lock()
	if time.Since(n.lastQuery) < queryInterval {
		n.mu.Unlock()
		return
	}
	n.lastQuery = time.Now()
	n.mu.Unlock()
	msg, err := buildQuery()
	if err != nil {
		return
	}
	for _, ifi := range n.interfacesNow() {
		for _, c := range n.conns {
			if err := c.WriteTo(msg, ifi, netip.AddrPort{}); err != nil {
				n.log.Debug("sending an mDNS query failed", "interface", ifi.Name, "err", err)
			}
		}
	}
}

func (n *Node) readLoop(c packetConn) {
	buf := make([]byte, maxPacket)
	for {
		sz, ifindex, src, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Debug("mDNS read failed", "err", err)
			continue
		}
		n.handle(c, buf[:sz], ifindex, src)
	}
}

// handle processes one packet. Anything it cannot parse is counted and
// dropped.
func (n *Node) handle(c packetConn, pkt []byte, ifindex int, src netip.AddrPort) {
	n.mu.Lock()
	ifi, ok := n.ifs[ifindex]
	self := n.self
	n.mu.Unlock()
	if !ok {
		return // not an interface we serve
	}
	isResp, q, recs, err := parseMessage(pkt, self)
	if err != nil {
		if !errors.Is(err, errNotMDNS) {
			n.mu.Lock()
			n.malformed++
			count := n.malformed
			n.mu.Unlock()
			if count&(count-1) == 0 { // log the 1st, 2nd, 4th, 8th...
				n.log.Debug("malformed mDNS packet dropped", "from", src.String(), "count", count, "err", err)
			}
		}
		return
	}
	if !isResp {
		if !q.asks {
			return
		}
		legacy := src.Port() != mdnsPort
		key := answerKey{ifindex, isV6(src)}
		n.mu.Lock()
		last, now := n.lastAnswer[key], n.cfg.now()
		limited := now.Sub(last) < answerInterval
		if !limited {
			n.lastAnswer[key] = now
		}
		n.mu.Unlock()
		if limited {
			return
		}
		if n.rescanIfOld() {
			n.mu.Lock()
			ifi = n.ifs[ifindex]
			n.mu.Unlock()
		}
		if legacy {
			n.respond(c, ifi, self, 10, src, q.id, q.question) // RFC 6762 §6.7: short TTL
		} else {
			n.respond(c, ifi, self, recordTTL, netip.AddrPort{}, 0, nil)
		}
		return
	}
	n.learn(assemble(recs, src, ifi.Name), self)
}

func isV6(a netip.AddrPort) bool { return a.Addr().Is6() && !a.Addr().Is4In6() }

// learn puts sightings into the cache.
func (n *Node) learn(ss []sighting, self Instance) {
	if len(ss) == 0 {
		return
	}
	own := compactFP(self.Fingerprint)
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range ss {
		fp := s.found.FP
		if fp == own {
			continue
		}
		if s.ttl == 0 {
			delete(n.cache, fp)
			continue
		}
		e, ok := n.cache[fp]
		if !ok {
			n.expireLocked(now)
			if len(n.cache) >= maxCache {
				continue // full of live entries: newcomers wait for a slot
			}
			e = &entry{}
			n.cache[fp] = e
		}
		addrs := s.found.Addrs
		if e.found.Instance == s.found.Instance && now.Before(e.expires) {
			// The same instance seen on another interface or family: keep
			// what we knew as well.
			for _, a := range e.found.Addrs {
				addrs = appendAddr(addrs, a.Addr(), int(a.Port()), a.Addr().Zone())
			}
		}
		e.found = s.found
		e.found.Addrs = addrs
		e.seen = now
		e.expires = now.Add(time.Duration(s.ttl) * time.Second)
	}
	close(n.changed)
	n.changed = make(chan struct{})
}

func (n *Node) expireLocked(now time.Time) {
	for fp, e := range n.cache {
		if !now.Before(e.expires) {
			delete(n.cache, fp)
		}
	}
}

// Seen returns the instances seen since t that are still alive, sorted by
// fingerprint, and a channel closed at the next change.
func (n *Node) Seen(since time.Time) ([]Found, <-chan struct{}) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.expireLocked(now)
	var out []Found
	for _, e := range n.cache {
		if !e.seen.Before(since) {
			f := e.found
			f.Addrs = slices.Clone(f.Addrs)
			f.Seen = e.seen
			out = append(out, f)
		}
	}
	sortSmall(out, func(a, b Found) bool { return a.FP < b.FP })
	return out, n.changed
}

// Lookup asks the link for the box whose key has fingerprint fp (any form
// identity.ParseFingerprint reads) and returns where it answered, asking
// again every second until ctx ends. If no fresh answer comes, a cached
// one still alive is returned; else ErrNotFound.
func (n *Node) Lookup(ctx context.Context, fp string) (Found, error) {
	want := compactFP(fp)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n.Query()
	for {
		list, changed := n.Seen(start)
		for _, f := range list {
			if f.FP == want {
				return f, nil
			}
		}
		select {
		case <-ctx.Done():
			list, _ := n.Seen(time.Time{})
			for _, f := range list {
				if f.FP == want {
					return f, nil
				}
			}
			return Found{}, ErrNotFound
		case <-changed:
		case <-tick.C:
			n.Query()
		}
	}
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	var names []string
	for _, ifi := range n.ifs {
		names = append(names, ifi.Name)
	}
	sortSmall(names, func(a, b string) bool { return a < b })
	return Stats{Interfaces: names, Known: len(n.cache), Malformed: n.malformed}
}

// systemInterfaces lists the interfaces that are up and can multicast, and
// loopback (used only when named in Config.Interfaces).
func systemInterfaces() ([]Iface, error) {
	list, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []Iface
	for _, ifi := range list {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 && ifi.Flags&net.FlagLoopback == 0 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		x := Iface{Index: ifi.Index, Name: ifi.Name, Loopback: ifi.Flags&net.FlagLoopback != 0}
		for _, a := range addrs {
			if pn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(pn.IP); ok {
					x.Addrs = append(x.Addrs, ip.Unmap())
				}
			}
		}
		sortSmall(x.Addrs, func(a, b netip.Addr) bool { return a.Less(b) })
		out = append(out, x)
	}
	return out, nil
}

// sortSmall sorts the short lists here (a few interfaces, addresses or
// boxes), stably. An insertion sort: the slices package's generic sorts
// cost kilobytes of binary per element type, and the arm64 binary has a
// size budget (12 MiB).
func sortSmall[T any](s []T, less func(a, b T) bool) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
