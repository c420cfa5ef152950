package discovery

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// The mDNS subset spoken here (RFC 6762, 6763): one service type, one
// instance per box, a host name per box made from its key, and PTR, SRV,
// TXT, A and AAAA records. No probing: the instance and host names carry
// the key's fingerprint, so two boxes cannot claim the same names by
// accident (one that does on purpose gains nothing: see docs/security.md).
const (
	// ServiceType is the DNS-SD service type of a callbox.
	ServiceType = "_callbox._tcp"
	domain      = "local."
	serviceName = ServiceType + "." + domain

	// TTL of the records we send: RFC 6762 §10 recommends 120 s for
	// records with host names (SRV, A, AAAA) and 75 min for others; one
	// value keeps it simple and a moved box is re-learnt within 2 minutes
	// at worst (a lookup always asks afresh anyway).
	recordTTL = 120

	classIN        = dnsmessage.ClassINET
	cacheFlushBit  = 1 << 15 // in the class of a response record: unique record
	unicastRespBit = 1 << 15 // in the class of a question: QU

	maxTTL = 4500 // longer TTLs are clamped: a stale entry cannot stay for days

	// TXT keys.
	txtVersion = "v=1"
	txtFP      = "fp="
	txtName    = "name="
	txtPair    = "pair=1"
)

// Instance is what a box advertises about itself.
type Instance struct {
	Name        string // the box's name (1..64 of A-Za-z0-9._-)
	Fingerprint string // its key fingerprint, in any form identity.ParseFingerprint reads
	Port        int    // its call port
	Pairing     bool   // in its pairing window
}

// labels returns the DNS names of an instance: its instance name
// (<box name>-<first 8 fingerprint chars>._callbox._tcp.local.) and its host
// name (cbx-<first 16 fingerprint chars>.local.).
func (in Instance) labels() (instance, host string) {
	fp := compactFP(in.Fingerprint)
	short := fp
	if len(short) > 16 {
		short = short[:16]
	}
	// Dots separate labels: keep the box name one label, and within the
	// 63 bytes a label may have.
	name := strings.ReplaceAll(in.Name, ".", "_")
	name = name[:min(len(name), 54)]
	label := name + "-" + short[:min(8, len(short))]
	return label + "." + serviceName, "cbx-" + short + "." + domain
}

// compactFP is the fingerprint without dashes or spaces, lower case: the
// form carried in TXT.
func compactFP(s string) string {
	return strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(s))
}

// Found is an instance seen on the network. Everything in it is what some
// host on the link claimed: the fingerprint is a hint for whom to dial,
// never proof; the TLS handshake checks the key.
type Found struct {
	Instance string           // its DNS-SD instance name
	Name     string           // the box's name from TXT
	FP       string           // fingerprint from TXT, compact form
	Pairing  bool             // advertises its pairing window
	Port     int              // from SRV
	Addrs    []netip.AddrPort // A/AAAA (zone set for link-local) and the packet's source
	Seen     time.Time        // when it last answered (set by Node.Seen and Lookup)
}

// buildQuery returns an mDNS query for the service type's PTR records.
func buildQuery() ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 64), dnsmessage.Header{})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	name, err := dnsmessage.NewName(serviceName)
	if err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.TypePTR, Class: classIN}); err != nil {
		return nil, err
	}
	return b.Finish()
}

// buildResponse returns an mDNS response with all of in's records: PTR,
// SRV, TXT, and A/AAAA for addrs (the addresses of the interface the
// response goes out on). ttl 0 is a goodbye. id and question are echoed
// for a legacy unicast (one-shot) querier, else zero and nil.
func buildResponse(in Instance, addrs []netip.Addr, ttl uint32, id uint16, question *dnsmessage.Question) ([]byte, error) {
	instName, hostName := in.labels()
	inst, err := dnsmessage.NewName(instName)
	if err != nil {
		return nil, fmt.Errorf("instance name: %w", err)
	}
	host, err := dnsmessage.NewName(hostName)
	if err != nil {
		return nil, fmt.Errorf("host name: %w", err)
	}
	svc := dnsmessage.MustNewName(serviceName)
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: id, Response: true, Authoritative: true})
	b.EnableCompression()
	if question != nil {
		if err := b.StartQuestions(); err != nil {
			return nil, err
		}
		if err := b.Question(*question); err != nil {
			return nil, err
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	unique := classIN | cacheFlushBit
	if question != nil {
		unique = classIN // legacy unicast: no cache-flush bit (RFC 6762 §6.7)
	}
	hdr := func(n dnsmessage.Name, c dnsmessage.Class) dnsmessage.ResourceHeader {
		return dnsmessage.ResourceHeader{Name: n, Class: c, TTL: ttl}
	}
	if err := b.PTRResource(hdr(svc, classIN), dnsmessage.PTRResource{PTR: inst}); err != nil {
		return nil, err
	}
	if err := b.SRVResource(hdr(inst, unique), dnsmessage.SRVResource{Port: uint16(in.Port), Target: host}); err != nil {
		return nil, err
	}
	txt := []string{txtVersion, txtFP + compactFP(in.Fingerprint), txtName + in.Name}
	if in.Pairing {
		txt = append(txt, txtPair)
	}
	if err := b.TXTResource(hdr(inst, unique), dnsmessage.TXTResource{TXT: txt}); err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if a.Is4() {
			err = b.AResource(hdr(host, unique), dnsmessage.AResource{A: a.As4()})
		} else {
			err = b.AAAAResource(hdr(host, unique), dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// query is what parseMessage found in a query: does it ask for us, and how
// must the answer go.
type query struct {
	id       uint16
	asks     bool                 // asks for one of our names
	question *dnsmessage.Question // the first question that asks for us
	unicast  bool                 // QU bit set on a question that asks for us
}

// record is a resource record from a response, reduced to what we use.
type record struct {
	name   string // lower case, with the final dot
	typ    dnsmessage.Type
	ttl    uint32
	target string // PTR: the instance; SRV: the host
	port   uint16
	txt    []string
	addr   netip.Addr
}

// errNotMDNS is returned for messages that are valid DNS but not for us:
// a non-zero opcode or rcode (RFC 6762 §18.3, §18.11).
var errNotMDNS = errors.New("not an mDNS message")

// parseMessage decodes msg. For a query it reports whether it asks for the
// names of in (in may be zero: then nothing is ours); for a response it
// returns its records (answers and additionals). Malformed messages are an
// error; nothing in msg is trusted beyond its syntax.
func parseMessage(msg []byte, in Instance) (isResponse bool, q query, recs []record, err error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return false, q, nil, err
	}
	if h.OpCode != 0 || h.RCode != 0 {
		return false, q, nil, errNotMDNS
	}
	var instName, hostName string
	if in.Fingerprint != "" {
		instName, hostName = in.labels()
		instName, hostName = strings.ToLower(instName), strings.ToLower(hostName)
	}
	if !h.Response {
		q.id = h.ID
		for {
			qq, err := p.Question()
			if errors.Is(err, dnsmessage.ErrSectionDone) {
				break
			}
			if err != nil {
				return false, q, nil, err
			}
			if instName == "" {
				continue
			}
			name := strings.ToLower(qq.Name.String())
			t := qq.Type
			ours := false
			switch name {
			case serviceName:
				ours = t == dnsmessage.TypePTR || t == dnsmessage.TypeALL
			case instName:
				ours = t == dnsmessage.TypeSRV || t == dnsmessage.TypeTXT || t == dnsmessage.TypeALL
			case hostName:
				ours = t == dnsmessage.TypeA || t == dnsmessage.TypeAAAA || t == dnsmessage.TypeALL
			}
			if ours && !q.asks {
				q.asks = true
				q.unicast = qq.Class&unicastRespBit != 0
				qc := qq
				qc.Class &^= unicastRespBit
				q.question = &qc
			}
		}
		return false, q, nil, nil
	}
	if err := p.SkipAllQuestions(); err != nil {
		return true, q, nil, err
	}
	for section := 0; section < 3; section++ {
		for {
			var rh dnsmessage.ResourceHeader
			switch section {
			case 0:
				rh, err = p.AnswerHeader()
			case 1:
				rh, err = p.AuthorityHeader()
			default:
				rh, err = p.AdditionalHeader()
			}
			if errors.Is(err, dnsmessage.ErrSectionDone) {
				break
			}
			if err != nil {
				return true, q, recs, err
			}
			r := record{name: strings.ToLower(rh.Name.String()), typ: rh.Type, ttl: rh.TTL}
			switch {
			case section == 1:
				err = p.SkipAuthority()
			case rh.Type == dnsmessage.TypePTR:
				var b dnsmessage.PTRResource
				b, err = p.PTRResource()
				r.target = strings.ToLower(b.PTR.String())
			case rh.Type == dnsmessage.TypeSRV:
				var b dnsmessage.SRVResource
				b, err = p.SRVResource()
				r.target, r.port = strings.ToLower(b.Target.String()), b.Port
			case rh.Type == dnsmessage.TypeTXT:
				var b dnsmessage.TXTResource
				b, err = p.TXTResource()
				r.txt = b.TXT
			case rh.Type == dnsmessage.TypeA:
				var b dnsmessage.AResource
				b, err = p.AResource()
				r.addr = netip.AddrFrom4(b.A)
			case rh.Type == dnsmessage.TypeAAAA:
				var b dnsmessage.AAAAResource
				b, err = p.AAAAResource()
				r.addr = netip.AddrFrom16(b.AAAA)
			default:
				if section == 0 {
					err = p.SkipAnswer()
				} else {
					err = p.SkipAdditional()
				}
				r.typ = 0
			}
			if err != nil {
				return true, q, recs, err
			}
			if r.typ != 0 && section != 1 {
				if r.ttl > maxTTL {
					r.ttl = maxTTL
				}
				recs = append(recs, r)
			}
			if len(recs) > maxRecords {
				return true, q, recs, fmt.Errorf("more than %d records", maxRecords)
			}
		}
	}
	return true, q, recs, nil
}

// maxRecords bounds what one response may make us hold.
const maxRecords = 64

// sighting is one instance assembled from a response's records.
type sighting struct {
	found Found
	ttl   uint32 // of its SRV/TXT: 0 is a goodbye
}

// assemble turns a response's records into the callbox instances they
// describe. src is the packet's source; zone is the receiving interface's
// name, given to link-local addresses. Instances without SRV and a TXT
// with a valid-looking fingerprint are left out.
func assemble(recs []record, src netip.AddrPort, zone string) []sighting {
	var out []sighting
	for _, srv := range recs {
		if srv.typ != dnsmessage.TypeSRV || !strings.HasSuffix(srv.name, "."+serviceName) {
			continue
		}
		var txt *record
		for i := range recs {
			if recs[i].typ == dnsmessage.TypeTXT && recs[i].name == srv.name {
				txt = &recs[i]
				break
			}
		}
		if txt == nil {
			continue
		}
		f := Found{Instance: srv.name, Port: int(srv.port)}
		version := false
		for _, kv := range txt.txt {
			switch {
			case kv == txtVersion:
				version = true
			case strings.HasPrefix(kv, txtFP):
				f.FP = strings.TrimPrefix(kv, txtFP)
			case strings.HasPrefix(kv, txtName):
				f.Name = strings.TrimPrefix(kv, txtName)
			case kv == txtPair:
				f.Pairing = true
			}
		}
		if !version || !plausibleFP(f.FP) || f.Port == 0 {
			continue
		}
		ttl := min(srv.ttl, txt.ttl)
		// The packet's source first (the box sent from it, so it is
		// current), then its A and AAAA records.
		if src.IsValid() && !src.Addr().IsUnspecified() {
			f.Addrs = appendAddr(f.Addrs, src.Addr(), f.Port, zone)
		}
		for _, a := range recs {
			if (a.typ == dnsmessage.TypeA || a.typ == dnsmessage.TypeAAAA) && a.name == srv.target && a.ttl > 0 {
				f.Addrs = appendAddr(f.Addrs, a.addr, f.Port, zone)
			}
		}
		// IPv4 first, then global IPv6, then link-local: the order to
		// dial in, and the kind of address worth storing.
		sortSmall(f.Addrs, func(a, b netip.AddrPort) bool { return addrRank(a.Addr()) < addrRank(b.Addr()) })
		out = append(out, sighting{found: f, ttl: ttl})
	}
	return out
}

func addrRank(a netip.Addr) int {
	switch {
	case a.Is4():
		return 0
	case a.IsLinkLocalUnicast():
		return 2
	}
	return 1
}

func appendAddr(list []netip.AddrPort, a netip.Addr, port int, zone string) []netip.AddrPort {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() && zone != "lo" {
		return list
	}
	if a.Is6() && a.IsLinkLocalUnicast() {
		a = a.WithZone(zone)
	} else {
		a = a.WithZone("")
	}
	ap := netip.AddrPortFrom(a, uint16(port))
	for _, x := range list {
		if x == ap {
			return list
		}
	}
	if len(list) >= 8 {
		return list
	}
	return append(list, ap)
}

// plausibleFP: 52 base32 characters. Whether a key stands behind it is for
// TLS to find out.
func plausibleFP(s string) bool {
	if len(s) != 52 {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || '2' <= r && r <= '7') {
			return false
		}
	}
	return true
}
