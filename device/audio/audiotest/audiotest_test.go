package audiotest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/stream/media"
)

func TestSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := NewSource(media.DefaultAudio, 2)
		src.Frames <- media.Audio{Seq: 7}
		src.Frames <- media.Audio{Seq: 8}
		for _, want := range []uint32{7, 8} {
			a, err := src.Read(t.Context())
			if err != nil || a.Seq != want {
				t.Fatalf("Read = %d, %v; want %d", a.Seq, err, want)
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			_, err := src.Read(ctx)
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Read after cancel: %v", err)
		}
		go func() {
			_, err := src.Read(t.Context())
			done <- err
		}()
		synctest.Wait()
		src.Close()
		src.Close()
		if err := <-done; !errors.Is(err, audio.ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
		if src.Format() != media.DefaultAudio {
			t.Fatal("Format")
		}
	})
}

func TestSpeaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		spk := NewSpeaker(media.DefaultAudio)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		run := make(chan error)
		var n int16
		go func() {
			run <- spk.Run(ctx, func(dst []int16) {
				n++
				for i := range dst {
					dst[i] = n
				}
			})
		}()
		for want := int16(1); want <= 3; want++ {
			got, err := spk.Pull(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != media.DefaultAudio.FrameLen() || slices.ContainsFunc(got, func(v int16) bool { return v != want }) {
				t.Fatalf("pull %d: got %d values starting %d", want, len(got), got[0])
			}
		}
		fail := errors.New("unplugged")
		spk.Fail <- fail
		if err := <-run; !errors.Is(err, fail) {
			t.Fatalf("Run = %v, want the injected failure", err)
		}
		pctx, pcancel := context.WithCancel(t.Context())
		pcancel()
		if _, err := spk.Pull(pctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Pull without Run: %v", err)
		}
	})
}
