package camera

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"sync"
	"sync/atomic"

	"github.com/callbox/callbox/stream/media"
)

// MaxPrecomputed bounds SyntheticConfig.Precomputed: the images are held in
// memory for the life of the source (300 at 640x480 is about 15 MB).
const MaxPrecomputed = 300

// maxPreQualities bounds the qualities whose precomputed images are kept
// at once (SetQuality): the least recently used set is let go when a
// further one is needed. The configured quality's set is one of them, so
// at most three times the memory of one set, and lower qualities are
// smaller.
const maxPreQualities = 3

// SyntheticConfig configures a synthetic camera. The zero value is valid.
type SyntheticConfig struct {
	Format  media.VideoFormat // zero value means media.DefaultVideo
	Quality int               // JPEG quality 1..100; 0 means 75
	// Precomputed is 0 to draw and encode every frame live, or K in
	// 1..MaxPrecomputed to encode K distinct images at start and cycle them
	// (cheap on a slow CPU); the COM segment still carries the true frame
	// number, the drawn number is the image's index. After SetQuality the
	// images are encoded again at the new quality as they come round
	// (each once, then kept; see maxPreQualities).
	Precomputed int
	Name        string // drawn along the bottom of the picture; may be empty
}

// Validate reports a field outside its allowed range.
func (c SyntheticConfig) Validate() error {
	if c.Format != (media.VideoFormat{}) {
		if err := c.Format.Validate(); err != nil {
			return fmt.Errorf("camera: synthetic: format: %w", err)
		}
	}
	if c.Quality < 0 || c.Quality > 100 {
		return fmt.Errorf("camera: synthetic: quality %d out of range 1..100 (0 for 75)", c.Quality)
	}
	if c.Precomputed < 0 || c.Precomputed > MaxPrecomputed {
		return fmt.Errorf("camera: synthetic: precomputed %d out of range 0..%d", c.Precomputed, MaxPrecomputed)
	}
	return nil
}

// Synthetic is a camera that draws a moving test picture with the frame
// number on it and encodes real JPEGs, paced in real time like a sensor.
// Every frame starts with a COM segment "callbox frame=<Seq>" so receivers
// can match frames end to end (see FrameNumber).
type Synthetic struct {
	cfg  SyntheticConfig
	done chan struct{}
	once sync.Once

	captured, skipped atomic.Uint64
	quality           atomic.Int32 // SetQuality: what the next frame is encoded at

	mu   sync.Mutex
	size media.Size // what the next frame is drawn at (SetFormat)
	cur  media.Size // what the last frame was drawn at

	// Reader state: Source allows one reader at a time.
	pace   pacer
	seq    uint32
	canvas *canvas
	buf    bytes.Buffer // encoder output, reused between frames
	pre    []*preSet    // precomputed images by quality, most recently used first
}

// preSet is the precomputed images at one quality, each a JPEG without
// its SOI; nil until first needed.
type preSet struct {
	quality int
	img     [][]byte
}

var _ Source = (*Synthetic)(nil)

// NewSynthetic returns a synthetic camera. Its clock starts at the first Read.
func NewSynthetic(cfg SyntheticConfig) (*Synthetic, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Format == (media.VideoFormat{}) {
		cfg.Format = media.DefaultVideo
	}
	if cfg.Quality == 0 {
		cfg.Quality = 75
	}
	s := &Synthetic{
		cfg:    cfg,
		done:   make(chan struct{}),
		pace:   pacer{fps: int64(cfg.Format.FPS)},
		canvas: newCanvas(cfg.Format.Width, cfg.Format.Height, cfg.Name),
	}
	s.size = media.Size{Width: cfg.Format.Width, Height: cfg.Format.Height}
	s.cur = s.size
	s.quality.Store(int32(cfg.Quality))
	if err := s.precompute(); err != nil {
		return nil, err
	}
	return s, nil
}

// precompute encodes the cycled images at the current size and quality,
// and forgets those of other sizes and qualities.
func (s *Synthetic) precompute() error {
	s.pre = s.pre[:0]
	if s.cfg.Precomputed == 0 {
		return nil
	}
	set := s.preSet(int(s.quality.Load()))
	for i := range set.img {
		if _, err := s.preImage(set, uint32(i)); err != nil {
			return err
		}
	}
	return nil
}

// preSet returns the precomputed set at quality q, made (empty) if need
// be, and moves it to the front; the least recently used set beyond
// maxPreQualities is let go.
func (s *Synthetic) preSet(q int) *preSet {
	for i, set := range s.pre {
		if set.quality == q {
			copy(s.pre[1:i+1], s.pre[:i])
			s.pre[0] = set
			return set
		}
	}
	set := &preSet{quality: q, img: make([][]byte, s.cfg.Precomputed)}
	if len(s.pre) >= maxPreQualities {
		s.pre = s.pre[:maxPreQualities-1]
	}
	s.pre = append([]*preSet{set}, s.pre...)
	return set
}

// preImage returns image n of set, encoding it the first time.
func (s *Synthetic) preImage(set *preSet, n uint32) ([]byte, error) {
	if set.img[n] == nil {
		body, err := s.encode(n, set.quality)
		if err != nil {
			return nil, err
		}
		set.img[n] = bytes.Clone(body)
	}
	return set.img[n], nil
}

// SetQuality sets the JPEG quality (clamped to 1..100) from the next frame
// on (q <= 0 only asks). The test pattern is always encoded here: it
// reports true. It does not block; any goroutine may call it.
func (s *Synthetic) SetQuality(q int) bool {
	if q > 0 {
		s.quality.Store(int32(clampQuality(q)))
	}
	return true
}

// SetFormat changes the picture size from the next frame on (the frame
// rate stays). It does not block; any goroutine may call it.
func (s *Synthetic) SetFormat(f media.VideoFormat) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("camera: synthetic: %w", err)
	}
	s.mu.Lock()
	s.size = media.Size{Width: f.Width, Height: f.Height}
	s.mu.Unlock()
	return nil
}

// resize applies SetFormat in the reader's goroutine.
func (s *Synthetic) resize() error {
	s.mu.Lock()
	want := s.size
	s.mu.Unlock()
	if want == s.cur {
		return nil
	}
	s.canvas = newCanvas(want.Width, want.Height, s.cfg.Name)
	s.mu.Lock()
	s.cur = want
	s.mu.Unlock()
	return s.precompute()
}

// Read waits for the next capture slot and returns a freshly numbered frame.
func (s *Synthetic) Read(ctx context.Context) (media.Frame, error) {
	select {
	case <-s.done:
		return media.Frame{}, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return media.Frame{}, err
	}
	t, skipped, err := s.pace.wait(ctx, s.done)
	if err != nil {
		return media.Frame{}, err
	}
	s.skipped.Add(skipped)
	if err := s.resize(); err != nil {
		return media.Frame{}, err
	}
	seq := s.seq
	q := int(s.quality.Load())
	var body []byte
	if n := s.cfg.Precomputed; n > 0 {
		body, err = s.preImage(s.preSet(q), seq%uint32(n))
	} else {
		body, err = s.encode(seq, q)
	}
	if err != nil {
		return media.Frame{}, err
	}
	s.seq++
	s.captured.Add(1)
	return media.Frame{Seq: seq, Time: t, JPEG: withSOI(seq, body)}, nil
}

// withSOI builds a caller-owned JPEG from SOI, the numbering COM segment and
// an encoded image whose own SOI was left out.
func withSOI(seq uint32, body []byte) []byte {
	b := make([]byte, 0, 2+4+len(comPrefix)+10+len(body))
	b = append(b, 0xFF, markSOI)
	b = appendCOM(b, seq)
	return append(b, body...)
}

// encode draws picture n and returns its JPEG at quality q minus the SOI
// marker, in a buffer valid until the next call.
func (s *Synthetic) encode(n uint32, q int) ([]byte, error) {
	s.canvas.render(n)
	s.buf.Reset()
	w := &bodyWriter{buf: &s.buf, skip: 2}
	if err := jpeg.Encode(w, s.canvas.img, &jpeg.Options{Quality: q}); err != nil {
		return nil, fmt.Errorf("camera: synthetic: encode frame %d: %w", n, err)
	}
	return s.buf.Bytes(), nil
}

// bodyWriter drops the encoder's SOI so the COM segment can follow ours.
// Having Flush and WriteByte stops image/jpeg wrapping it in a new
// bufio.Writer for every frame.
type bodyWriter struct {
	buf  *bytes.Buffer
	skip int
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	n := len(p)
	k := min(w.skip, n)
	w.skip -= k
	w.buf.Write(p[k:])
	return n, nil
}

func (w *bodyWriter) WriteByte(c byte) error {
	if w.skip > 0 {
		w.skip--
		return nil
	}
	return w.buf.WriteByte(c)
}

func (w *bodyWriter) Flush() error { return nil }

// RestartClock starts the frame clock again at the next Read, as a V4L2
// stream's starts at STREAMON: for a reader that stopped reading for a
// while (nobody needed frames). The first frame then comes one frame
// time after that Read, and the slots missed meanwhile are not counted
// as skipped. Frame numbers go on. Call it from the reader's goroutine.
func (s *Synthetic) RestartClock() { s.pace.restart() }

// Format returns the format of the frames Read returns now.
func (s *Synthetic) Format() media.VideoFormat {
	s.mu.Lock()
	defer s.mu.Unlock()
	return media.VideoFormat{Width: s.cur.Width, Height: s.cur.Height, FPS: s.cfg.Format.FPS}
}

// Stats returns counters; safe from any goroutine.
func (s *Synthetic) Stats() Stats {
	return Stats{Captured: s.captured.Load(), Skipped: s.skipped.Load()}
}

// Close stops the source; a blocked Read returns ErrClosed. Idempotent.
func (s *Synthetic) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}
