package discovery

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

const (
	fpA = "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh-iiii-jjjj-kkkk-llll-mmma"
	fpB = "bbbb-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh-iiii-jjjj-kkkk-llll-mmma"
)

func TestResponseRoundTrip(t *testing.T) {
	in := Instance{Name: "hall.1", Fingerprint: fpA, Port: 7420, Pairing: true}
	addrs := []netip.Addr{netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("fe80::1"), netip.MustParseAddr("2001:db8::1")}
	msg, err := buildResponse(in, addrs, recordTTL, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	isResp, _, recs, err := parseMessage(msg, Instance{})
	if err != nil || !isResp {
		t.Fatalf("parse: %v, response %v", err, isResp)
	}
	ss := assemble(recs, netip.MustParseAddrPort("10.77.0.1:5353"), "eth0")
	if len(ss) != 1 {
		t.Fatalf("%d sightings, want 1", len(ss))
	}
	f := ss[0].found
	if f.FP != compactFP(fpA) || f.Name != "hall.1" || !f.Pairing || f.Port != 7420 || ss[0].ttl != recordTTL {
		t.Errorf("found %+v ttl %d", f, ss[0].ttl)
	}
	want := []string{"10.77.0.1:7420", "[2001:db8::1]:7420", "[fe80::1%eth0]:7420"}
	var got []string
	for _, a := range f.Addrs {
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("addrs %v, want %v", got, want)
	}
	if !strings.HasPrefix(f.Instance, "hall_1-aaaabbbb.") {
		t.Errorf("instance %q", f.Instance)
	}

	// A goodbye has TTL 0.
	msg, _ = buildResponse(in, addrs, 0, 0, nil)
	_, _, recs, _ = parseMessage(msg, Instance{})
	if ss := assemble(recs, netip.AddrPort{}, "eth0"); len(ss) != 1 || ss[0].ttl != 0 {
		t.Errorf("goodbye: %+v", ss)
	}
}

func TestQueryAsksForUs(t *testing.T) {
	self := Instance{Name: "hall", Fingerprint: fpA, Port: 7420}
	q, err := buildQuery()
	if err != nil {
		t.Fatal(err)
	}
	isResp, qq, _, err := parseMessage(q, self)
	if err != nil || isResp || !qq.asks {
		t.Fatalf("our own query: resp %v asks %v err %v", isResp, qq.asks, err)
	}
	other := question(t, "_http._tcp.local.", dnsmessage.TypePTR)
	if _, qq, _, _ := parseMessage(other, self); qq.asks {
		t.Error("a query for another service counted as ours")
	}
	_, host := self.labels()
	if _, qq, _, _ := parseMessage(question(t, strings.ToUpper(host), dnsmessage.TypeAAAA), self); !qq.asks {
		t.Error("a query for our host name (upper case) not ours")
	}
}

func question(t *testing.T, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7})
	b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: classIN | unicastRespBit}); err != nil {
		t.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// Records that do not make a callbox instance are ignored, not trusted.
func TestAssembleRejects(t *testing.T) {
	good := Instance{Name: "hall", Fingerprint: fpA, Port: 7420}
	cases := map[string]Instance{
		"short fp":   {Name: "x", Fingerprint: "abcd", Port: 1},
		"bad chars":  {Name: "x", Fingerprint: strings.Repeat("1", 52), Port: 1},
		"port 0":     {Name: "x", Fingerprint: fpA, Port: 0},
		"good first": good,
	}
	for name, in := range cases {
		msg, err := buildResponse(in, nil, 120, 0, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, _, recs, err := parseMessage(msg, Instance{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := len(assemble(recs, netip.AddrPort{}, ""))
		if want := map[bool]int{true: 1, false: 0}[in == good]; got != want {
			t.Errorf("%s: %d sightings, want %d", name, got, want)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	in := Instance{Name: "hall", Fingerprint: fpA, Port: 7420, Pairing: true}
	resp, _ := buildResponse(in, []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fe80::2")}, 120, 0, nil)
	q, _ := buildQuery()
	f.Add(resp)
	f.Add(q)
	f.Add([]byte{})
	f.Add(resp[:len(resp)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, recs, _ := parseMessage(b, in)
		if len(recs) > maxRecords+1 {
			t.Fatalf("%d records kept", len(recs))
		}
		for _, s := range assemble(recs, netip.MustParseAddrPort("10.0.0.9:5353"), "eth0") {
			if !plausibleFP(s.found.FP) || len(s.found.Addrs) > 8 {
				t.Fatalf("implausible sighting %+v", s.found)
			}
		}
	})
}

// hub is a fake link: every packet written reaches every conn (the sender
// too, as multicast loopback does), from the sender's address.
type hub struct {
	mu    sync.Mutex
	conns []*fakeConn
	sent  atomic.Int64
}

type pkt struct {
	b   []byte
	src netip.AddrPort
}

type fakeConn struct {
	h      *hub
	addr   netip.Addr
	in     chan pkt
	closed chan struct{}
	once   sync.Once
}

func (h *hub) conn(addr string) *fakeConn {
	c := &fakeConn{h: h, addr: netip.MustParseAddr(addr), in: make(chan pkt, 256), closed: make(chan struct{})}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	return c
}

// inject delivers a packet from src to every conn.
func (h *hub) inject(b []byte, src netip.AddrPort) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		select {
		case c.in <- pkt{append([]byte(nil), b...), src}:
		default:
		}
	}
}

func (c *fakeConn) ReadFrom(buf []byte) (int, int, netip.AddrPort, error) {
	select {
	case p := <-c.in:
		return copy(buf, p.b), 1, p.src, nil
	case <-c.closed:
		return 0, 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (c *fakeConn) WriteTo(b []byte, _ Iface, dst netip.AddrPort) error {
	c.h.sent.Add(1)
	c.h.inject(b, netip.AddrPortFrom(c.addr, mdnsPort))
	return nil
}

func (c *fakeConn) Join(Iface) error { return nil }
func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func startNode(t *testing.T, h *hub, addr string, in Instance) *Node {
	t.Helper()
	a := netip.MustParseAddr(addr)
	n, err := New(Config{IPv4: true,
		listen:     func(bool) (packetConn, error) { return h.conn(addr), nil },
		interfaces: func() ([]Iface, error) { return []Iface{{Index: 1, Name: "eth0", Addrs: []netip.Addr{a}}}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	n.SetInstance(in)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Its sockets are open once it has joined an interface.
	for len(n.Stats().Interfaces) == 0 {
		select {
		case <-done:
			t.Fatal("node stopped at start")
		case <-time.After(time.Millisecond):
		}
	}
	return n
}

func TestLookupOnALink(t *testing.T) {
	h := &hub{}
	a := startNode(t, h, "10.0.0.1", Instance{Name: "a", Fingerprint: fpA, Port: 7001})
	b := startNode(t, h, "10.0.0.2", Instance{Name: "b", Fingerprint: fpB, Port: 7002})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f, err := a.Lookup(ctx, fpB)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "b" || f.Port != 7002 || len(f.Addrs) == 0 || f.Addrs[0].String() != "10.0.0.2:7002" {
		t.Errorf("found %+v", f)
	}
	// It never lists itself.
	if _, err := a.Lookup(shortCtx(t), fpA); !errors.Is(err, ErrNotFound) {
		t.Errorf("lookup of own fingerprint: %v", err)
	}
	// The pairing flag is announced when it changes.
	since := time.Now()
	b.SetInstance(Instance{Name: "b", Fingerprint: fpB, Port: 7002, Pairing: true})
	for {
		list, changed := a.Seen(since)
		if len(list) == 1 && list[0].Pairing {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("pairing flag never seen")
		}
	}
}

func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// Garbage on the link is counted and dropped; the node keeps answering.
func TestGarbageIgnored(t *testing.T) {
	h := &hub{}
	a := startNode(t, h, "10.0.0.1", Instance{Name: "a", Fingerprint: fpA, Port: 7001})
	src := netip.MustParseAddrPort("10.0.0.66:5353")
	good, _ := buildResponse(Instance{Name: "x", Fingerprint: fpB, Port: 9}, nil, 120, 0, nil)
	for i := range 100 { // within the fake link's queue: none is lost
		b := make([]byte, i%40)
		for j := range b {
			b[j] = byte(i * j)
		}
		h.inject(b, src)
		h.inject(good[:i%len(good)], src)
	}
	h.inject(good, src) // a well-formed one after the garbage
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		list, changed := a.Seen(time.Time{})
		if len(list) == 1 && list[0].FP == compactFP(fpB) {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the good packet after the garbage was not learnt: %+v, stats %+v", list, a.Stats())
		}
	}
	if a.Stats().Malformed == 0 {
		t.Error("no malformed packets counted")
	}
}

// A flood of queries gets one answer per answerInterval, not one each.
func TestAnswerRateLimited(t *testing.T) {
	h := &hub{}
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	n, err := New(Config{IPv4: true,
		listen:     func(bool) (packetConn, error) { return h.conn("10.0.0.1"), nil },
		interfaces: func() ([]Iface, error) { return []Iface{{Index: 1, Name: "eth0"}}, nil },
		now:        func() time.Time { return time.Unix(0, clock.Load()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	c := h.conn("10.0.0.1")
	n.conns = []packetConn{c}
	n.rescan()
	n.SetInstance(Instance{Name: "a", Fingerprint: fpA, Port: 1})
	q, _ := buildQuery()
	src := netip.MustParseAddrPort("10.0.0.9:5353")
	for range 100 {
		n.handle(c, q, 1, src)
	}
	if got := h.sent.Load(); got != 1 {
		t.Errorf("%d answers to 100 queries at one instant, want 1", got)
	}
	clock.Add(int64(answerInterval))
	n.handle(c, q, 1, src)
	if got := h.sent.Load(); got != 2 {
		t.Errorf("%d answers after the interval, want 2", got)
	}
	// Packets from an interface we do not serve are dropped.
	clock.Add(int64(answerInterval))
	n.handle(c, q, 99, src)
	if got := h.sent.Load(); got != 2 {
		t.Errorf("answered a query from an unknown interface")
	}
}

func TestConfigChecked(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("neither family accepted")
	}
	if _, err := New(Config{IPv4: true, Interfaces: []string{"a-very-long-interface-name"}}); err == nil {
		t.Error("bad interface name accepted")
	}
}

// Find reports a box's addresses as they become known, each once, and
// a cached sighting at once; it returns when its context ends.
func TestFindReportsAddressesAsTheyArrive(t *testing.T) {
	h := &hub{}
	a := startNode(t, h, "10.0.0.1", Instance{Name: "a", Fingerprint: fpA, Port: 7001})
	startNode(t, h, "10.0.0.2", Instance{Name: "b", Fingerprint: fpB, Port: 7002})
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan netip.AddrPort, 16)
	done := make(chan struct{})
	go func() { a.Find(ctx, fpB, func(ap netip.AddrPort) { got <- ap }); close(done) }()
	select {
	case ap := <-got:
		if ap.String() != "10.0.0.2:7002" {
			t.Errorf("found %v, want 10.0.0.2:7002", ap)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Find reported nothing")
	}
	// The answer is in the cache now, with when it was seen.
	list, _ := a.Seen(time.Time{})
	if len(list) != 1 || list[0].Seen.IsZero() {
		t.Errorf("Seen: %+v, want b with its time", list)
	}
	// More answers to the queries Find sends every second carry the same
	// address: it is not reported again.
	h.inject(mustResponse(t, Instance{Name: "b", Fingerprint: fpB, Port: 7002}), netip.MustParseAddrPort("10.0.0.2:5353"))
	select {
	case ap := <-got:
		t.Errorf("%v reported twice", ap)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	<-done

	// A second Find reports the cached sighting without waiting for the
	// link: the hub goes quiet first.
	h.mu.Lock()
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	defer func() { h.mu.Lock(); h.conns = conns; h.mu.Unlock() }()
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	var again []netip.AddrPort
	a.Find(ctx2, fpB, func(ap netip.AddrPort) { again = append(again, ap); cancel2() })
	if len(again) != 1 || again[0].String() != "10.0.0.2:7002" {
		t.Errorf("from the cache: %v", again)
	}
}

func mustResponse(t *testing.T, in Instance) []byte {
	t.Helper()
	b, err := buildResponse(in, nil, recordTTL, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
