package cameratest

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/stream/media"
)

func TestFake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := New(media.DefaultVideo)
		if f.Format() != media.DefaultVideo {
			t.Fatalf("Format = %+v", f.Format())
		}
		type result struct {
			fr  media.Frame
			err error
		}
		res := make(chan result, 1)
		read := func(ctx context.Context) {
			go func() { fr, err := f.Read(ctx); res <- result{fr, err} }()
		}

		read(t.Context())
		f.Frames <- media.Frame{Seq: 7, JPEG: []byte{1}}
		if r := <-res; r.err != nil || r.fr.Seq != 7 {
			t.Fatalf("Read = %+v, %v; want the injected frame", r.fr, r.err)
		}

		boom := errors.New("unplugged")
		read(t.Context())
		f.Errs <- boom
		if r := <-res; !errors.Is(r.err, boom) {
			t.Fatalf("Read error = %v, want the injected one", r.err)
		}

		ctx, cancel := context.WithCancel(t.Context())
		read(ctx)
		synctest.Wait()
		cancel()
		if r := <-res; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("Read after cancel = %v", r.err)
		}

		read(t.Context())
		synctest.Wait()
		if f.Closed() {
			t.Fatal("Closed before Close")
		}
		f.Close()
		f.Close()
		if r := <-res; !errors.Is(r.err, camera.ErrClosed) || !f.Closed() {
			t.Fatalf("Read during Close = %v", r.err)
		}
	})
}
