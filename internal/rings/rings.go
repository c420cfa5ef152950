// Package rings keeps who rang: for each ring (this box's button starting
// a call, or a call coming in) the time, the peer and a picture, in a
// directory bounded by count and bytes, the oldest going first. Saving
// never blocks the caller and a full disk costs a picture, never a call.
package rings

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callbox/callbox/internal/atomicfile"
)

// Kinds of ring.
const (
	Button   = "ring"     // this box's button started a call
	Incoming = "incoming" // a call came in
)

// Ring is one ring as listed.
type Ring struct {
	ID    string    `json:"id"` // file name stem: sortable by time
	Time  time.Time `json:"time"`
	Kind  string    `json:"kind"`
	Peer  string    `json:"peer"`            // whom the button called, or who called
	Bytes int       `json:"bytes,omitempty"` // of the picture; 0: none
}

// Config bounds a store.
type Config struct {
	Dir      string
	MaxCount int   // rings kept, 1..10000
	MaxBytes int64 // picture bytes kept in all, at least 64 KiB
	Logger   *slog.Logger
}

// Validate checks the bounds.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("rings: no directory")
	}
	if c.MaxCount < 1 || c.MaxCount > 10000 {
		return fmt.Errorf("rings: keep %d rings, want 1..10000", c.MaxCount)
	}
	if c.MaxBytes < 64<<10 {
		return fmt.Errorf("rings: keep %d bytes, want at least 65536", c.MaxBytes)
	}
	return nil
}

// Store is a directory of rings. Its methods are safe for concurrent use.
type Store struct {
	cfg  Config
	log  *slog.Logger
	mu   sync.Mutex
	work chan func() // saves in order, off the caller's path
	done chan struct{}
	errs uint64 // saves that failed
	last string // the last save error, for status
}

// queueLen bounds saves waiting for the disk; more are dropped and logged.
const queueLen = 8

// Open makes dir if needed and starts the store's writer; Close stops it.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("rings: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	work := make(chan func(), queueLen)
	s := &Store{cfg: cfg, log: log.With("component", "rings"), work: work, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for f := range work {
			f()
		}
	}()
	return s, nil
}

// Close waits for the saves under way and stops the writer.
func (s *Store) Close() {
	s.mu.Lock()
	if s.work != nil {
		close(s.work)
		s.work = nil
	}
	s.mu.Unlock()
	<-s.done
}

// Add records a ring with its picture (nil: none) without waiting for the
// disk; it returns the ring as it will be listed. The store takes jpeg.
func (s *Store) Add(kind, peer string, at time.Time, jpeg []byte) Ring {
	r := Ring{ID: at.UTC().Format("20060102T150405.000000000Z") + "-" + kind, Time: at, Kind: kind, Peer: peer, Bytes: len(jpeg)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.work == nil {
		return r
	}
	select {
	case s.work <- func() { s.save(r, jpeg) }:
	default:
		s.errs++
		s.last = "too many rings at once: one not saved"
		s.log.Warn("ring not saved: the disk is behind", "peer", peer)
	}
	return r
}

func (s *Store) save(r Ring, jpeg []byte) {
	meta, _ := json.Marshal(r)
	err := atomicfile.WriteFile(filepath.Join(s.cfg.Dir, r.ID+".json"), meta)
	if err == nil && len(jpeg) > 0 {
		err = atomicfile.WriteFile(filepath.Join(s.cfg.Dir, r.ID+".jpg"), jpeg)
	}
	if err != nil {
		s.mu.Lock()
		s.errs++
		s.last = err.Error()
		s.mu.Unlock()
		s.log.Error("ring not saved", "peer", r.Peer, "err", err)
		// A full disk: make room for the next one.
	}
	s.prune()
}

// Errors reports how many rings could not be saved and the last reason.
func (s *Store) Errors() (uint64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs, s.last
}

var idRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{9}Z-(ring|incoming)$`)

// List returns the rings kept, newest first.
func (s *Store) List() ([]Ring, error) {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("rings: %w", err)
	}
	var out []Ring
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !idRE.MatchString(id) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.cfg.Dir, e.Name()))
		if err != nil {
			continue // pruned meanwhile
		}
		var r Ring
		if json.Unmarshal(b, &r) != nil || r.ID != id {
			continue // not ours, or torn by hand: skipped, not deleted
		}
		if fi, err := os.Stat(filepath.Join(s.cfg.Dir, id+".jpg")); err == nil {
			r.Bytes = int(fi.Size())
		} else {
			r.Bytes = 0
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Ring) int { return strings.Compare(b.ID, a.ID) })
	return out, nil
}

// Picture returns the picture of ring id.
func (s *Store) Picture(id string) ([]byte, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("rings: no ring %q", id)
	}
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, id+".jpg"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("rings: ring %s has no picture", id)
	}
	return b, err
}

// prune removes the oldest rings beyond the count and the bytes.
func (s *Store) prune() {
	list, err := s.List()
	if err != nil {
		return
	}
	var bytes int64
	for i, r := range list { // newest first
		bytes += int64(r.Bytes)
		if i < s.cfg.MaxCount && (bytes <= s.cfg.MaxBytes || i == 0) {
			continue
		}
		for _, ext := range []string{".jpg", ".json"} {
			if err := os.Remove(filepath.Join(s.cfg.Dir, r.ID+ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("could not remove an old ring", "id", r.ID, "err", err)
			}
		}
	}
}
