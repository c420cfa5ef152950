package audio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
)

func decode(b []byte) []int16 {
	s := make([]int16, len(b)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return s
}

func TestClockedSpeakerPacesAndRecords(t *testing.T) {
	for _, f := range []media.AudioFormat{mono48, stereo16} {
		synctest.Test(t, func(t *testing.T) {
			var rec bytes.Buffer
			spk := NewClockedSpeaker(f, &rec)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			const periods = 40
			var played []int16
			var at []time.Duration
			start := time.Now()
			fill := func(dst []int16) {
				if len(dst) != f.FrameLen() {
					t.Errorf("fill got %d values, want one frame of %d", len(dst), f.FrameLen())
				}
				n := uint32(len(at))
				at = append(at, time.Since(start))
				copy(dst, TestFrame(f, n))
				played = append(played, dst...)
				if len(at) == periods {
					cancel()
				}
			}
			if err := spk.Run(ctx, fill); err != nil {
				t.Fatalf("Run: %v", err)
			}
			for n, d := range at {
				if want := time.Duration(n) * f.FrameDuration(); d != want {
					t.Fatalf("period %d pulled at %v, want %v", n, d, want)
				}
			}
			if !slices.Equal(decode(rec.Bytes()), played) {
				t.Fatal("recording differs from what fill produced")
			}
			if r := Check(f, decode(rec.Bytes())); r.Good != periods || r.OutOfOrder != 0 {
				t.Fatalf("check: %v", r)
			}
			if st := spk.Stats(); st != (SpeakerStats{Periods: periods}) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestClockedSpeakerStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spk := NewClockedSpeaker(mono48, nil)
		period := mono48.FrameDuration()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		start := time.Now()
		var at []time.Duration
		fill := func([]int16) {
			at = append(at, time.Since(start))
			switch len(at) {
			case 2:
				time.Sleep(10 * period) // a stall, only to test what follows
			case 2 + backlog + 1:
				cancel()
			}
		}
		spk.Run(ctx, fill)
		// Period 1 ended at 11: periods 2..7 are missed, 8..11 (the backlog)
		// are pulled at once, then the schedule resumes with 12.
		want := []time.Duration{0, period, 11 * period, 11 * period, 11 * period, 11 * period, 12 * period}
		if !slices.Equal(at, want) {
			t.Fatalf("pulled at %v, want %v", at, want)
		}
		if st := spk.Stats(); st.Missed != 6 || st.Periods != 7 {
			t.Fatalf("stats %+v", st)
		}
	})
}

type failAfter struct {
	ok, calls int
}

func (w *failAfter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls > w.ok {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestClockedSpeakerFailingRecorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &failAfter{ok: 2}
		spk := NewClockedSpeaker(mono48, w)
		ctx, cancel := context.WithTimeout(t.Context(), 10*mono48.FrameDuration()-1)
		defer cancel()
		if err := spk.Run(ctx, func(dst []int16) { clear(dst) }); err != nil {
			t.Fatalf("Run: %v", err)
		}
		st := spk.Stats()
		if st.Periods != 10 || st.RecordErr == nil || w.calls != 3 {
			t.Fatalf("stats %+v after %d writes: want 10 periods, one failed write, then no more", st, w.calls)
		}
	})
}

func TestClockedSpeakerOneRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spk := NewClockedSpeaker(media.AudioFormat{}, nil)
		if spk.Format() != media.DefaultAudio {
			t.Fatalf("zero format became %+v", spk.Format())
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- spk.Run(ctx, func([]int16) {}) }()
		synctest.Wait()
		if err := spk.Run(ctx, func([]int16) {}); !errors.Is(err, ErrRunning) {
			t.Fatalf("second Run: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
		if err := NewClockedSpeaker(media.AudioFormat{Rate: 48000}, nil).Run(t.Context(), nil); err == nil {
			t.Fatal("Run with an invalid format succeeded")
		}
	})
}

func TestRecorderCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec.s16")
	r, err := NewRecorder(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	for _, p := range [][]byte{data[:4], data[4:8], data[8:12], data[12:14]} {
		if n, err := r.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v; dropping is not an error", n, err)
		}
	}
	if st := r.Stats(); st != (RecorderStats{Written: 10, Dropped: 4}) {
		t.Fatalf("stats %+v", st)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Write(data); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	got, err := ReadRecording(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := decode(data[:10]); !slices.Equal(got, want) {
		t.Fatalf("recording %v, want %v", got, want)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("recording mode %v, %v: want 0600", info.Mode(), err)
	}
}

func TestRecorderErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewRecorder(filepath.Join(dir, "a"), 0); err == nil {
		t.Fatal("NewRecorder accepted a zero limit")
	}
	if _, err := NewRecorder(filepath.Join(dir, "missing", "a"), 10); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("NewRecorder in a missing dir: %v", err)
	}
	odd := filepath.Join(dir, "odd")
	if err := os.WriteFile(odd, []byte{1, 2, 3}, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecording(odd); err == nil {
		t.Fatal("ReadRecording accepted an odd length")
	}
	if _, err := ReadRecording(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadRecording of a missing file: %v", err)
	}
}

// TestSpeakerRecordsToRecorder is the demo's pipeline in miniature: test
// frames through a clocked speaker into a capped file, read back and checked.
func TestSpeakerRecordsToRecorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "rec.s16")
		frameBytes := int64(2 * mono48.FrameLen())
		r, err := NewRecorder(path, 5*frameBytes+frameBytes/2)
		if err != nil {
			t.Fatal(err)
		}
		spk := NewClockedSpeaker(mono48, r)
		ctx, cancel := context.WithTimeout(t.Context(), 8*mono48.FrameDuration()-1)
		defer cancel()
		var n uint32
		spk.Run(ctx, func(dst []int16) { copy(dst, TestFrame(mono48, n)); n++ })
		r.Close()
		got, err := ReadRecording(path)
		if err != nil {
			t.Fatal(err)
		}
		want := Report{Frames: 5, Good: 5, First: 0, Last: 4}
		if rep := Check(mono48, got); rep != want || spk.Stats().RecordErr != nil {
			t.Fatalf("check %v, want %v (partial sixth frame ignored)", rep, want)
		}
	})
}
