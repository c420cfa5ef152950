package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/callbox/callbox/internal/atomicfile"
	"io/fs"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PeersFile is the conventional name of the paired-peer store file.
const PeersFile = "peers.json"

const maxNameLen = 64

// Peer is a paired box: the name we call it, its key fingerprint, where to
// dial it as configured (host:port, or empty), and the last address a call
// to it worked at (kept apart, so that a box that moved never loses the
// address a person gave).
type Peer struct {
	Name        string      `json:"name"`
	Fingerprint Fingerprint `json:"fingerprint"`
	Address     string      `json:"address,omitempty"`
	LastAddress string      `json:"last_address,omitempty"`
}

// Validate reports a peer the store would refuse.
func (p Peer) Validate() error {
	if err := ValidateName(p.Name); err != nil {
		return err
	}
	if p.Fingerprint.IsZero() {
		return fmt.Errorf("peer %q: fingerprint missing", p.Name)
	}
	if err := ValidateAddress(p.Address); err != nil {
		return fmt.Errorf("peer %q: %w", p.Name, err)
	}
	if err := ValidateAddress(p.LastAddress); err != nil {
		return fmt.Errorf("peer %q: last address: %w", p.Name, err)
	}
	return nil
}

// ValidateName reports a name that is not 1..64 characters of
// A-Z a-z 0-9 . _ - (safe in logs, URLs, command lines and file names).
func ValidateName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("name %q: want 1..%d characters, got %d", name, maxNameLen, len(name))
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("name %q: character %q not allowed (want A-Z a-z 0-9 . _ -)", name, r)
		}
	}
	return nil
}

// ValidateAddress reports an address that is neither empty nor host:port
// with a non-empty host and a numeric port 1..65535. The host is an IPv4
// address, an IPv6 address in brackets ("[fd7a:115c:a1e0::1]:7420", a
// zone allowed: "[fe80::1%wg0]:7420") or a host name, looked up when the
// box dials (a DNS or MagicDNS name, "localhost").
func ValidateAddress(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w%s", addr, err, addressHint(addr))
	}
	if host == "" || strings.ContainsAny(host, " \t\r\n") {
		return fmt.Errorf("address %q: want host:port with a host", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("address %q: port %q is not a number in 1..65535", addr, port)
	}
	return nil
}

// addressHint says how to write an address SplitHostPort refused, for
// the two usual slips: an IPv6 address without brackets, a missing port.
func addressHint(addr string) string {
	switch {
	case strings.Count(addr, ":") > 1 && !strings.HasPrefix(addr, "["):
		return " (write an IPv6 address in brackets, then the port: [fd7a:115c:a1e0::1]:7420)"
	case !strings.Contains(addr, ":"):
		return fmt.Sprintf(" (add the peer's call port: %s:7420)", addr)
	}
	return ""
}

// Store is the paired-peer list, kept in a JSON file. Every change is
// written to disk before it becomes visible, and then to a last good copy
// beside it (GoodSuffix) that OpenStore falls back to. Safe for concurrent
// use within one process; only one process may write the file.
type Store struct {
	path string
	rec  *Recovery // what OpenStore did about a corrupt file; nil if nothing

	mu    sync.Mutex // held across saves, so writes reach the file in order
	peers []Peer     // sorted by name
}

type storeFile struct {
	Peers []Peer `json:"peers"`
}

// GoodSuffix names the last good copy of a store file: path+GoodSuffix.
const GoodSuffix = ".good"

// Recovery says what OpenStore did about a store file it could not use.
type Recovery struct {
	Err    error  // why the file was refused
	KeptAs string // where the refused file now is (it is never deleted); empty if it could not be moved
	// FromGood is true when the last good copy was loaded; false means the
	// store starts empty (no good copy, or it was refused too).
	FromGood bool
	Peers    int // peers loaded from the good copy
}

func (r *Recovery) String() string {
	kept := "left in place (could not be moved aside)"
	if r.KeptAs != "" {
		kept = "kept as " + r.KeptAs
	}
	if r.FromGood {
		return fmt.Sprintf("peer store was corrupt (%v; %s): restored %d peers from the last good copy", r.Err, kept, r.Peers)
	}
	return fmt.Sprintf("peer store was corrupt (%v; %s) and no good copy exists: no paired peers until the boxes are paired again", r.Err, kept)
}

// OpenStore loads the store at path. A missing file is an empty store (the
// file is created on the first change). A file that does not parse or holds
// invalid or duplicate entries is moved aside (never deleted: it may be
// repaired by hand) and the last good copy is loaded instead, or, without
// one, the store starts empty; Recovered says which. Only an error reading
// the file is an error.
func OpenStore(path string) (*Store, error) {
	s := &Store{path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("identity: open peer store: %w", err)
	}
	peers, err := parseStore(data)
	if err == nil {
		s.peers = peers
		if good, gerr := os.ReadFile(path + GoodSuffix); gerr != nil || !bytes.Equal(good, data) {
			// A store from before good copies existed, or a copy that
			// missed the last save: best effort, the next save retries.
			atomicfile.WriteFile(path+GoodSuffix, data)
		}
		return s, nil
	}
	rec := &Recovery{Err: fmt.Errorf("%s: %w", path, err)}
	s.rec = rec
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405.000"))
	if os.Rename(path, aside) == nil {
		rec.KeptAs = aside
	}
	good, gerr := os.ReadFile(path + GoodSuffix)
	if gerr != nil {
		return s, nil
	}
	peers, gerr = parseStore(good)
	if gerr != nil {
		rec.Err = fmt.Errorf("%w; its good copy too: %v", rec.Err, gerr)
		return s, nil
	}
	s.peers, rec.FromGood, rec.Peers = peers, true, len(peers)
	if rec.KeptAs != "" {
		atomicfile.WriteFile(path, good) // best effort: memory has it, the next save writes it anyway
	}
	return s, nil
}

// Recovered reports what OpenStore did about a corrupt file, or nil when
// the file was fine (or missing).
func (s *Store) Recovered() *Recovery { return s.rec }

func parseStore(data []byte) ([]Peer, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	// A field we do not know would be lost on the next save; refuse instead.
	dec.DisallowUnknownFields()
	var f storeFile
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the JSON object")
	}
	byName := make(map[string]bool, len(f.Peers))
	byFP := make(map[Fingerprint]bool, len(f.Peers))
	for _, p := range f.Peers {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if byName[p.Name] {
			return nil, fmt.Errorf("name %q listed twice", p.Name)
		}
		if byFP[p.Fingerprint] {
			return nil, fmt.Errorf("fingerprint %s listed twice", p.Fingerprint)
		}
		byName[p.Name], byFP[p.Fingerprint] = true, true
	}
	sortPeers(f.Peers)
	return f.Peers, nil
}

func sortPeers(p []Peer) {
	sort.Slice(p, func(i, j int) bool { return p[i].Name < p[j].Name }) // smaller than slices.SortFunc's instantiation
}

// List returns all peers sorted by name. The slice is the caller's.
func (s *Store) List() []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.peers)
}

// ByName returns the peer called name.
func (s *Store) ByName(name string) (Peer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.indexName(name); i >= 0 {
		return s.peers[i], true
	}
	return Peer{}, false
}

// ByFingerprint returns the peer with fingerprint f.
func (s *Store) ByFingerprint(f Fingerprint) (Peer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.indexFingerprint(f); i >= 0 {
		return s.peers[i], true
	}
	return Peer{}, false
}

// Add pairs p and saves the store. A name already paired with another key
// is ErrNameTaken (a box presenting a different key under a paired name is
// refused; remove the old pairing first); a key already paired under
// another name is ErrFingerprintTaken. Adding an identical peer does
// nothing; adding a known name and key with a new address updates the
// address.
func (s *Store) Add(p Peer) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("identity: add peer: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.indexName(p.Name); i >= 0 {
		old := s.peers[i]
		switch {
		case old.Fingerprint != p.Fingerprint:
			return fmt.Errorf("identity: add peer %q: paired with %s: %w", p.Name, old.Fingerprint.Short(), ErrNameTaken)
		case old == p:
			return nil
		}
		next := slices.Clone(s.peers)
		next[i] = p
		return s.commit(next)
	}
	if i := s.indexFingerprint(p.Fingerprint); i >= 0 {
		return fmt.Errorf("identity: add peer %q: key %s is paired as %q: %w", p.Name, p.Fingerprint.Short(), s.peers[i].Name, ErrFingerprintTaken)
	}
	next := append(slices.Clone(s.peers), p)
	sortPeers(next)
	return s.commit(next)
}

// Remove unpairs the peer called name and saves the store.
func (s *Store) Remove(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.indexName(name)
	if i < 0 {
		return fmt.Errorf("identity: remove peer %q: %w", name, ErrNoPeer)
	}
	return s.commit(slices.Delete(slices.Clone(s.peers), i, i+1))
}

// SetAddress changes where the peer called name is dialled (empty: never
// dialled) and saves the store.
func (s *Store) SetAddress(name, addr string) error {
	return s.setAddr(name, addr, "address", func(p *Peer) *string { return &p.Address })
}

// SetLastAddress records where a call to the peer called name last worked
// and saves the store; the configured address is left as it is.
func (s *Store) SetLastAddress(name, addr string) error {
	return s.setAddr(name, addr, "last address", func(p *Peer) *string { return &p.LastAddress })
}

// setAddr sets the address field of the peer called name that field picks.
func (s *Store) setAddr(name, addr, what string, field func(*Peer) *string) error {
	if err := ValidateAddress(addr); err != nil {
		return fmt.Errorf("identity: set %s of %q: %w", what, name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.indexName(name)
	if i < 0 {
		return fmt.Errorf("identity: set %s of %q: %w", what, name, ErrNoPeer)
	}
	if *field(&s.peers[i]) == addr {
		return nil
	}
	next := slices.Clone(s.peers)
	*field(&next[i]) = addr
	return s.commit(next)
}

func (s *Store) indexName(name string) int {
	return slices.IndexFunc(s.peers, func(p Peer) bool { return p.Name == name })
}

func (s *Store) indexFingerprint(f Fingerprint) int {
	return slices.IndexFunc(s.peers, func(p Peer) bool { return p.Fingerprint == f })
}

// commit saves next and, only if that worked, makes it the current list, so
// memory never shows a pairing the disk does not have. s.mu must be held.
func (s *Store) commit(next []Peer) error {
	if next == nil {
		next = []Peer{} // "peers": [] rather than null
	}
	data, err := json.MarshalIndent(storeFile{Peers: next}, "", "  ")
	if err != nil {
		return fmt.Errorf("identity: save peer store: %w", err)
	}
	data = append(data, '\n')
	if err := atomicfile.WriteFile(s.path, data); err != nil {
		return fmt.Errorf("identity: save peer store: %w", err)
	}
	s.peers = next
	// The good copy second: a crash between the two leaves it one change
	// behind, never ahead of what was saved. Failing to write it loses
	// nothing now; OpenStore and the next save write it again.
	atomicfile.WriteFile(s.path+GoodSuffix, data)
	return nil
}
