package camera

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
	"testing/synctest"

	"github.com/callbox/callbox/stream/media"
)

// testFrames returns n numbered synthetic JPEGs of the given size.
func testFrames(t testing.TB, n, w, h int) [][]byte {
	t.Helper()
	s := newSynth(t, SyntheticConfig{Format: media.VideoFormat{Width: w, Height: h, FPS: 30}})
	out := make([][]byte, n)
	for i := range out {
		body, err := s.encode(uint32(i), 75)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = withSOI(uint32(i), body)
	}
	return out
}

func record(t *testing.T, path string, frames [][]byte) {
	t.Helper()
	r, err := NewRecorder(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range frames {
		if err := r.Write(media.Frame{Seq: uint32(i), JPEG: b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, parts ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.mjpeg")
	if err := os.WriteFile(path, cat(parts...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func newReplay(t *testing.T, path string, fps int, loop bool) *Replay {
	t.Helper()
	r, err := NewReplay(path, fps, loop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRecorderReplayRoundTrip(t *testing.T) {
	frames := testFrames(t, 10, 96, 64)
	path := filepath.Join(t.TempDir(), "rec.mjpeg")
	record(t, path, frames)

	got, err := ReadMJPEG(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(frames) {
		t.Fatalf("ReadMJPEG: %d frames, want %d", len(got), len(frames))
	}
	for i := range got {
		if !bytes.Equal(got[i], frames[i]) {
			t.Fatalf("ReadMJPEG frame %d differs", i)
		}
	}

	synctest.Test(t, func(t *testing.T) {
		r := newReplay(t, path, 10, false)
		if want := (media.VideoFormat{Width: 96, Height: 64, FPS: 10}); r.Format() != want {
			t.Fatalf("Format = %+v, want %+v", r.Format(), want)
		}
		for i, want := range frames {
			f, err := r.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if f.Seq != uint32(i) || !bytes.Equal(f.JPEG, want) {
				t.Fatalf("Read %d: Seq %d, %d bytes; want the recorded frame", i, f.Seq, len(f.JPEG))
			}
		}
		for range 2 {
			if _, err := r.Read(t.Context()); err != io.EOF {
				t.Fatalf("Read past the end: %v, want io.EOF", err)
			}
		}
		if st := r.Stats(); st != (Stats{Captured: 10}) {
			t.Fatalf("Stats = %+v", st)
		}
	})
}

func TestReplayLoop(t *testing.T) {
	frames := testFrames(t, 4, 64, 48)
	path := filepath.Join(t.TempDir(), "rec.mjpeg")
	record(t, path, frames)
	synctest.Test(t, func(t *testing.T) {
		r := newReplay(t, path, 20, true)
		for i := range 11 {
			f, err := r.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := FrameNumber(f.JPEG); f.Seq != uint32(i) || n != uint32(i%4) {
				t.Fatalf("Read %d: Seq %d, stored frame %d; want %d, %d", i, f.Seq, n, i, i%4)
			}
		}
	})
}

func TestReplaySkipsBrokenFrames(t *testing.T) {
	fr := testFrames(t, 4, 64, 48)
	malformed := cat(soiB, []byte{0x00, 0x00, 0x00})
	tests := []struct {
		name   string
		parts  [][]byte
		want   []uint32 // stored frame numbers, in order
		broken uint64
	}{
		{"junk between frames", [][]byte{[]byte("junk"), fr[0], make([]byte, 300), fr[1], []byte{0xFF}}, []uint32{0, 1}, 0},
		{"cut frame then next", [][]byte{fr[0], fr[1][:len(fr[1])-50], fr[2]}, []uint32{0, 2}, 1},
		{"malformed", [][]byte{malformed, fr[0], malformed, fr[3]}, []uint32{0, 3}, 2},
		{"truncated at end", [][]byte{fr[0], fr[1], fr[2][:len(fr[2])/2]}, []uint32{0, 1}, 1},
		{"oversized", [][]byte{fr[0], soiB, sofB, sosB, make([]byte, MaxFrameSize), eoiB, fr[1]}, []uint32{0, 1}, 1},
		{"oversized without end", [][]byte{fr[0], soiB, sofB, sosB, make([]byte, MaxFrameSize+3*readChunk), fr[1]}, []uint32{0, 1}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.parts...)
			synctest.Test(t, func(t *testing.T) {
				r := newReplay(t, path, 30, false)
				var got []uint32
				for {
					f, err := r.Read(t.Context())
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					n, _ := FrameNumber(f.JPEG)
					got = append(got, n)
				}
				if !equal(got, tc.want) || r.Stats().Broken != tc.broken {
					t.Fatalf("frames %v, broken %d; want %v, %d", got, r.Stats().Broken, tc.want, tc.broken)
				}
			})
		})
	}
}

func equal(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewReplay(filepath.Join(dir, "missing"), 30, false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := NewReplay(writeFile(t, []byte("no jpeg here")), 30, true); !errors.Is(err, ErrNoFrames) {
		t.Errorf("no frames: %v", err)
	}
	if _, err := NewReplay(writeFile(t, testFrames(t, 1, 32, 32)...), 0, false); err == nil {
		t.Error("fps 0 accepted")
	}
}

func TestReplayClose(t *testing.T) {
	path := writeFile(t, testFrames(t, 2, 32, 32)...)
	synctest.Test(t, func(t *testing.T) {
		r := newReplay(t, path, 1, true)
		errc := make(chan error, 1)
		go func() { _, err := r.Read(t.Context()); errc <- err }()
		synctest.Wait()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("Read during Close: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := r.Read(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	})
}

func TestRecorderCap(t *testing.T) {
	fr := testFrames(t, 3, 32, 32)
	tiny := cat(soiB, sofB, sosB, []byte{1}, eoiB)
	path := filepath.Join(t.TempDir(), "cap.mjpeg")
	r, err := NewRecorder(path, int64(len(fr[0])+len(fr[1])+len(tiny)))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		jpeg []byte
		err  error
	}{
		{cat(fr[0], []byte{0, 0, 0}), nil}, // junk after EOI is trimmed
		{[]byte("not a jpeg"), ErrNoSOI},
		{fr[1], nil},
		{fr[2], ErrFull},
		{tiny, ErrFull}, // would fit, but the recording has ended
	}
	for i, st := range steps {
		if err := r.Write(media.Frame{Seq: uint32(i), JPEG: st.jpeg}); !errors.Is(err, st.err) {
			t.Fatalf("Write %d: %v, want %v", i, err, st.err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	want := RecorderStats{Frames: 2, Bytes: int64(len(fr[0]) + len(fr[1])), Dropped: 3}
	if st := r.Stats(); st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
	got, err := ReadMJPEG(path)
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], fr[0]) || !bytes.Equal(got[1], fr[1]) {
		t.Fatalf("ReadMJPEG: %d frames, %v; want the first two", len(got), err)
	}
	if err := r.Write(media.Frame{JPEG: fr[0]}); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}

func TestReadMJPEGBroken(t *testing.T) {
	fr := testFrames(t, 2, 32, 32)
	path := writeFile(t, fr[0], fr[1][:len(fr[1])-10])
	if _, err := ReadMJPEG(path); !errors.Is(err, ErrTruncated) {
		t.Fatalf("ReadMJPEG of a cut file: %v", err)
	}
}

// TestSplitterReadBoundaries feeds the splitter one byte per read and puts
// an SOI across the first read boundary.
func TestSplitterReadBoundaries(t *testing.T) {
	fr := testFrames(t, 3, 32, 32)
	in := cat(make([]byte, readChunk-1), fr[0], fr[1], []byte{0xFF}, fr[2])
	for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in)), iotest.HalfReader(bytes.NewReader(in))} {
		sp := newSplitter(r, MaxFrameSize)
		for i, want := range fr {
			got, err := sp.next()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
			}
		}
		if _, err := sp.next(); err != io.EOF {
			t.Fatalf("after the last frame: %v", err)
		}
	}
}

func TestSplitterReadError(t *testing.T) {
	boom := errors.New("boom")
	sp := newSplitter(iotest.ErrReader(boom), MaxFrameSize)
	if _, err := sp.next(); !errors.Is(err, boom) {
		t.Fatalf("next = %v, want the read error", err)
	}
}
