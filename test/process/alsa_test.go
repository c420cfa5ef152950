package process

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/media"
)

// A box configured with real ALSA PCMs (alsa-lib's file plugin over FIFOs
// this test paces in real time) carries what its microphone captured to the
// peer and plays what the peer sent, with device frames (periods) of 10 ms
// and of 20 ms.
func TestDaemonWithALSADevices(t *testing.T) {
	for _, ms := range []int{10, 20} {
		t.Run(fmt.Sprintf("%dms", ms), func(t *testing.T) { testALSADevices(t, ms) })
	}
}

// testALSADevices is TestDaemonWithALSADevices with hall's audio.frame_ms
// set to frameMs; door keeps the default.
func testALSADevices(t *testing.T, frameMs int) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "mic.fifo"), filepath.Join(dir, "speaker.fifo")
	for _, p := range []string{in, out} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rc := filepath.Join(dir, "asoundrc")
	os.WriteFile(rc, []byte(fmt.Sprintf(`
pcm.callbox_mic {
	type file
	slave.pcm { type null }
	format "raw"
	file "/dev/null"
	infile %q
}
pcm.callbox_speaker {
	type file
	slave.pcm { type null }
	format "raw"
	file %q
}
`, in, out)), 0o600)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := media.DefaultAudio
	hf := f // hall's format
	hf.FrameMs = frameMs
	// The microphone: test frames at their real pace, to whoever has the
	// FIFO open. The daemon opens the microphone once at start to check
	// it and then only for a call (it is closed while idle): each time,
	// the writer opens the FIFO again (that blocks until the daemon does)
	// and the frame numbers go on. The null slave does not wait: the FIFO
	// is the device's clock. The file plugin fills each period with a
	// single read(2) of the FIFO and, when that comes back short, hands
	// over the whole period anyway, its rest left as it was (stale
	// audio); a FIFO read comes back short when less than a period was
	// written. So each write is one period of hall's (whole test frames;
	// at most PIPE_BUF bytes, so never split) and each read gets one.
	go func() {
		tick := time.NewTicker(hf.FrameDuration())
		defer tick.Stop()
		buf := make([]byte, 2*hf.FrameLen())
		per := uint32(hf.FrameMs / f.FrameMs) // test frames per period
		i := uint32(0)
		for i < 100*60 && ctx.Err() == nil { // at most a minute of frames
			w, err := openFIFO(ctx, in, os.O_WRONLY)
			if err != nil {
				return
			}
			for ; i < 100*60; i += per {
				for k := range per {
					at := buf[2*int(k)*f.FrameLen():]
					for j, v := range audio.TestFrame(f, i+k) {
						binary.LittleEndian.PutUint16(at[2*j:], uint16(v))
					}
				}
				if _, err := w.Write(buf); err != nil {
					break // the daemon closed the microphone
				}
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
				if ctx.Err() != nil {
					break
				}
			}
			w.Close()
		}
	}()
	// The speaker: read at the real pace, keep what was played, each time
	// the daemon opens it.
	played := make(chan []int16, 1)
	go func() {
		var got []int16
		defer func() { played <- got }()
		tick := time.NewTicker(f.FrameDuration())
		defer tick.Stop()
		buf := make([]byte, 2*f.FrameLen())
		for len(got) < 60*f.Rate && ctx.Err() == nil { // at most a minute
			r, err := openFIFO(ctx, out, os.O_RDONLY)
			if err != nil {
				return
			}
			for len(got) < 60*f.Rate {
				if _, err := io.ReadFull(r, buf); err != nil {
					break // the daemon closed the speaker
				}
				for j := 0; j < len(buf); j += 2 {
					got = append(got, int16(binary.LittleEndian.Uint16(buf[j:])))
				}
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
				if ctx.Err() != nil {
					break
				}
			}
			r.Close()
		}
	}()

	a := start(t, "hall", withFrameMs(frameMs, testbox.Options{
		AutoAnswer: true,
		Env:        []string{"ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:" + rc},
		// The microphone's processing (echo cancellation, noise
		// suppression, AGC, ducking) would change the test signal, which
		// this test follows frame by frame: off. And the call's audio
		// goes as PCM: this test's subject is the ALSA path, the same
		// whatever the codec, and PCM is checked sample for sample
		// wherever a frame lands. Through Opus, on a loaded machine, this
		// test's paced FIFOs make hall's playout underrun, and the
		// decoder's concealment that fills the gap carries the last
		// frame's marker tones on: a CI run read one such window as that
		// frame played again. The Opus path is checked with the simulated
		// devices (process_test.go).
		Extra: "[audio]\ncapture = \"callbox_mic\"\nplayback = \"callbox_speaker\"\ncodec = \"pcm\"\n" +
			"echo_cancel = false\necho_suppress = false\nnoise_suppress = false\nagc = false\nduck = false\n",
	}))
	b := start(t, "door", testbox.Options{AutoAnswer: true, RecordAudio: true})
	pair(t, a, b)
	st := waitState(t, a, "idle", time.Second)
	for deadline := time.Now().Add(10 * time.Second); st.Microphone != "callbox_mic: ok" || st.Speaker != "callbox_speaker: ok"; {
		if time.Now().After(deadline) {
			t.Fatalf("ALSA devices not up: microphone %q, speaker %q", st.Microphone, st.Speaker)
		}
		time.Sleep(50 * time.Millisecond)
		st, _ = a.Status(t.Context())
	}
	a.Press(t.Context())
	waitState(t, b, "in call", 10*time.Second)
	time.Sleep(3 * time.Second)
	a.Press(t.Context())
	waitState(t, b, "idle", 5*time.Second)
	time.Sleep(1500 * time.Millisecond) // the FIFO and ALSA buffers drain
	hall, err := a.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a.Stop()
	cancel()

	// What hall's microphone heard reached door's speaker, intact and in order.
	door := checkAudio(t, b, 100)
	t.Logf("door played from hall's ALSA microphone: %s", door)
	// What door sent came out of hall's ALSA speaker.
	got := <-played
	speaker := checkPlayed(t, "hall's ALSA speaker", hall, got, 100)
	t.Logf("hall's ALSA speaker played: %s", speaker)
	for _, s := range []string{door, speaker} {
		if !strings.HasPrefix(s, "PCM: ") {
			t.Errorf("the call's audio went as %s, want PCM", s)
		}
	}
}

// withFrameMs sets audio.frame_ms to ms in o's [audio] table.
func withFrameMs(ms int, o testbox.Options) testbox.Options {
	o.Extra = strings.Replace(o.Extra, "[audio]\n", fmt.Sprintf("[audio]\nframe_ms = %d\n", ms), 1)
	return o
}

// openFIFO opens a FIFO, which blocks until the other side opens it too,
// or gives up when ctx ends.
func openFIFO(ctx context.Context, path string, flag int) (*os.File, error) {
	type res struct {
		f   *os.File
		err error
	}
	ch := make(chan res, 1)
	go func() {
		f, err := os.OpenFile(path, flag, 0)
		ch <- res{f, err}
	}()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-ctx.Done():
		// Unblock the open with an open of the other side, and close both.
		other := os.O_RDONLY
		if flag == os.O_RDONLY {
			other = os.O_WRONLY
		}
		if o, err := os.OpenFile(path, other|syscall.O_NONBLOCK, 0); err == nil {
			defer o.Close()
		}
		if r := <-ch; r.f != nil {
			r.f.Close()
		}
		return nil, ctx.Err()
	}
}
