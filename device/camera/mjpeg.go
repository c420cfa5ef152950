package camera

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// readChunk is the smallest read the splitter makes.
const readChunk = 64 << 10

// errBroken marks a frame the splitter skipped; the caller counts it.
var errBroken = errors.New("camera: broken frame")

// splitter cuts a stream of concatenated JPEGs (MJPEG) into frames with the
// same marker walk as Trim. Bytes between frames are skipped. Its buffer is
// bounded: it never holds more than max+readChunk bytes, and a frame still
// unfinished at max bytes is dropped and the stream resynchronised on the
// next SOI.
type splitter struct {
	r      io.Reader
	max    int
	buf    []byte
	r0, r1 int // buf[r0:r1] is unread
	eof    bool
	// live makes each fill one Read (a pipe from a running camera):
	// a frame is handed out as soon as its last byte arrived, not once
	// a whole chunk has. A file is read in whole chunks.
	live bool
	// junk counts the bytes skipped between frames (not part of any
	// frame the splitter returned or called broken).
	junk uint64
}

func newSplitter(r io.Reader, max int) *splitter {
	return &splitter{r: r, max: max}
}

// next returns the next frame, valid until the following call; an error
// wrapping errBroken for a frame it skipped; io.EOF at the end; or a read
// error.
func (s *splitter) next() ([]byte, error) {
	soi := []byte{0xFF, markSOI}
	for {
		data := s.buf[s.r0:s.r1]
		if i := bytes.Index(data, soi); i >= 0 {
			s.r0 += i
			s.junk += uint64(i)
			break
		}
		s.r0 = s.r1
		s.junk += uint64(len(data))
		if n := len(data); n > 0 && data[n-1] == 0xFF {
			s.r0-- // may be the first half of an SOI
			s.junk--
		}
		if s.eof {
			return nil, io.EOF
		}
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
	for {
		data := s.buf[s.r0:s.r1]
		end, err := scan(data)
		switch {
		case err == nil && end > s.max:
			s.r0 += end
			return nil, fmt.Errorf("%w: %d bytes, over the %d byte limit", errBroken, end, s.max)
		case err == nil:
			s.r0 += end
			return data[:end:end], nil
		case errors.Is(err, ErrTruncated) && len(data) > s.max:
			// Drop the SOI; the search above discards the rest of the
			// frame on the way to the next one.
			s.r0 += 2
			return nil, fmt.Errorf("%w: over the %d byte limit", errBroken, s.max)
		case errors.Is(err, ErrTruncated) && !s.eof:
			if err := s.fill(); err != nil {
				return nil, err
			}
		case errors.Is(err, ErrTruncated):
			s.r0 = s.r1
			return nil, fmt.Errorf("%w: %w", errBroken, err)
		default:
			s.r0 += 2
			return nil, fmt.Errorf("%w: %w", errBroken, err)
		}
	}
}

// fill reads more input, at least as much as is already buffered so that
// rescanning a growing frame from its start costs O(n) overall.
func (s *splitter) fill() error {
	n := copy(s.buf, s.buf[s.r0:s.r1])
	s.r0, s.r1 = 0, n
	want := max(readChunk, n)
	if n+want > s.max+readChunk {
		want = s.max + readChunk - n
	}
	if len(s.buf) < n+want {
		nb := make([]byte, n+want)
		copy(nb, s.buf[:n])
		s.buf = nb
	}
	var m int
	var err error
	if s.live {
		for m == 0 && err == nil {
			m, err = s.r.Read(s.buf[n : n+want])
		}
	} else {
		m, err = io.ReadFull(s.r, s.buf[n:n+want])
	}
	s.r1 += m
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		s.eof = true
	case err != nil:
		return err
	}
	return nil
}

// reset starts over on r (for looping).
func (s *splitter) reset(r io.Reader) {
	s.r, s.r0, s.r1, s.eof = r, 0, 0, false
}

// ReadMJPEG splits an MJPEG file (JPEGs back to back, as Recorder writes)
// into its frames. Bytes between frames are ignored; a broken frame is an
// error naming its index.
func ReadMJPEG(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("camera: read mjpeg: %w", err)
	}
	defer f.Close()
	var frames [][]byte
	sp := newSplitter(f, MaxFrameSize)
	for {
		b, err := sp.next()
		switch {
		case err == io.EOF:
			return frames, nil
		case err != nil:
			return nil, fmt.Errorf("camera: read mjpeg %s: frame %d: %w", path, len(frames), err)
		}
		frames = append(frames, bytes.Clone(b))
	}
}
