package audio

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
)

var (
	mono48   = media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: 10}
	stereo16 = media.AudioFormat{Rate: 16000, Channels: 2, FrameMs: 20}
)

func TestSourcePacing(t *testing.T) {
	cases := []struct {
		name   string
		format media.AudioFormat
		silent bool
	}{
		{"test mono48", mono48, false},
		{"test stereo16", stereo16, false},
		{"test zero format", media.AudioFormat{}, false},
		{"silent mono48", mono48, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var src interface {
					Source
					Stats() SourceStats
				} = NewTestSource(c.format)
				if c.silent {
					src = NewSilentSource(c.format)
				}
				defer src.Close()
				f := src.Format()
				if c.format == (media.AudioFormat{}) && f != media.DefaultAudio {
					t.Fatalf("zero format became %+v", f)
				}
				period := f.FrameDuration()
				time.Sleep(time.Second) // construction is not the start: the first Read is
				start := time.Now()
				const frames = 50
				for n := range uint32(frames) {
					a, err := src.Read(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					if a.Seq != n {
						t.Fatalf("Seq %d, want %d", a.Seq, n)
					}
					if want := start.Add(time.Duration(n) * period); !a.Time.Equal(want) {
						t.Fatalf("frame %d Time %v after start, want %v", n, a.Time.Sub(start), want.Sub(start))
					}
					if got, want := time.Since(start), time.Duration(n+1)*period; got != want {
						t.Fatalf("frame %d returned %v after start, want %v", n, got, want)
					}
					want := TestFrame(f, n)
					if c.silent {
						want = make([]int16, f.FrameLen())
					}
					if !slices.Equal(a.Samples, want) {
						t.Fatalf("frame %d samples differ from TestFrame", n)
					}
				}
				if st := src.Stats(); st != (SourceStats{Frames: frames}) {
					t.Fatalf("stats %+v", st)
				}
			})
		})
	}
}

func TestSourceStallCatchesUpBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := NewTestSource(mono48)
		defer src.Close()
		period := mono48.FrameDuration()
		start := time.Now()
		for range 2 {
			if _, err := src.Read(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * period) // the reader stalls; now 12 periods after start
		var seqs []uint32
		for range backlog + 1 {
			a, err := src.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, a.Seq)
		}
		// Frames 2..7 are lost to the overrun, the newest backlog come at
		// once, then pacing resumes on the original schedule.
		if want := []uint32{8, 9, 10, 11, 12}; !slices.Equal(seqs, want) {
			t.Fatalf("after stall got %v, want %v", seqs, want)
		}
		if got := time.Since(start); got != 13*period {
			t.Fatalf("schedule moved: %v after start, want %v", got, 13*period)
		}
		if st := src.Stats(); st.Skipped != 6 || st.Frames != 7 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestSourceUnblocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := NewSilentSource(mono48)
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		defer cancel()
		if _, err := src.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read with expiring ctx: %v", err)
		}

		done := make(chan error)
		go func() {
			_, err := src.Read(t.Context())
			done <- err
		}()
		synctest.Wait()
		src.Close()
		src.Close() // idempotent
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Read after Close: %v", err)
		}
		if _, err := src.Read(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	})
}

func TestSourceInvalidFormat(t *testing.T) {
	src := NewTestSource(media.AudioFormat{Rate: 11025, Channels: 1, FrameMs: 10})
	if _, err := src.Read(t.Context()); err == nil {
		t.Fatal("Read from a source with an invalid format succeeded")
	}
}

// A 20 ms source of 10 ms blocks plays the 10 ms signal: frame n is test
// frames 2n and 2n+1, bit for bit, paced and numbered as 20 ms frames, and
// Check reads its output with 10 ms frames; blocks that do not divide the
// frame give the plain source.
func TestSourceOfBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f20 := media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: 20}
		f10 := f20
		f10.FrameMs = 10
		src := NewTestSourceBlocks(f20, 10)
		defer src.Close()
		if src.Format() != f20 {
			t.Fatalf("format %+v", src.Format())
		}
		start := time.Now()
		var all []int16
		for n := range uint32(30) {
			a, err := src.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if a.Seq != n || !a.Time.Equal(start.Add(time.Duration(n)*20*time.Millisecond)) || len(a.Samples) != f20.FrameLen() {
				t.Fatalf("frame %d: seq %d at %v, %d samples", n, a.Seq, a.Time.Sub(start), len(a.Samples))
			}
			want := append(TestFrame(f10, 2*n), TestFrame(f10, 2*n+1)...)
			if !slices.Equal(a.Samples, want) {
				t.Fatalf("frame %d is not 10 ms test frames %d and %d", n, 2*n, 2*n+1)
			}
			all = append(all, a.Samples...)
		}
		if rep := Check(f10, all); rep.Good != 60 || rep.Bad != 0 || rep.OutOfOrder != 0 {
			t.Errorf("Check with 10 ms frames: %v", rep)
		}
		for _, b := range []int{0, 20, 30, 7} {
			plain := NewTestSourceBlocks(f20, b)
			a, err := plain.Read(t.Context())
			plain.Close()
			if err != nil || !slices.Equal(a.Samples, TestFrame(f20, 0)) {
				t.Errorf("blocks of %d ms: not the plain 20 ms source (%v)", b, err)
			}
		}
	})
}
