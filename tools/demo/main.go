// Command demo is `make demo`: two callbox daemons on 127.0.0.1 with
// simulated devices pair, call each other by a button press, print live
// figures for a while, hang up and print a summary per direction.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/jpeg"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/media"
)

func main() {
	bin := flag.String("bin", "bin/callboxd", "the callboxd binary")
	seconds := flag.Int("seconds", 10, "how long the call lasts")
	roomSeconds := flag.Int("room-seconds", 20, "how long the second call, in simulated rooms, lasts")
	out := flag.String("out", "demo-out", "where the received frames are saved")
	keep := flag.Bool("keep", false, "keep the temporary directory (logs, recordings)")
	flag.Parse()
	if err := run(*bin, *seconds, *roomSeconds, *out, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(bin string, seconds, roomSeconds int, out string, keep bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.MkdirTemp("", "callbox-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	opts := testbox.Options{AutoAnswer: true, RecordVideo: true, RecordAudio: true}
	fmt.Println("starting two boxes, hall and door, on 127.0.0.1 with simulated camera, microphone, speaker, button and LED")
	a, b, err := startCall(ctx, bin, filepath.Join(tmp, "hall"), filepath.Join(tmp, "door"), opts, opts, func(a, b *testbox.Box) {
		fmt.Printf("  hall %s  fingerprint %s\n  door %s  fingerprint %s\n", a.Addr, a.FP, b.Addr, b.FP)
		fmt.Println("paired them (callbox peers add ...); pressing hall's button")
	})
	if err != nil {
		return err
	}
	defer a.Stop()
	defer b.Stop()
	fmt.Println("in call; door answered by itself. Live figures, one line per box per second:")
	fmt.Println("  box   state     video fps out/in   audio kbit/s out/in   drops v/a  video lat p50/p99  audio lat p50/p99  rtt")
	if err := everySecond(ctx, seconds, []*testbox.Box{a, b}, printLine); err != nil {
		return err
	}
	for _, x := range []*testbox.Box{a, b} {
		if err := saveFrame(ctx, x, out); err != nil {
			return err
		}
	}
	fmt.Println("pressing hall's button again: hang up")
	final, err := hangUp(ctx, a, b)
	if err != nil {
		return err
	}
	fmt.Println("\nsummary per direction")
	ok := summary(a, b, final[0], final[1])
	ok = summary(b, a, final[1], final[0]) && ok
	fmt.Printf("last received frames saved as %s and %s\n",
		filepath.Join(out, "hall-received.jpg"), filepath.Join(out, "door-received.jpg"))
	if err := roomCall(ctx, bin, tmp, roomSeconds); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("a direction of the first call missed its target (see above)")
	}
	return nil
}

// everySecond prints each box's status once a second for seconds.
func everySecond(ctx context.Context, seconds int, boxes []*testbox.Box, print func(string, control.Status)) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; i < seconds; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		for _, x := range boxes {
			st, err := x.Status(ctx)
			if err != nil {
				return err
			}
			print(x.Name, st)
		}
	}
	return nil
}

// startCall starts hall (in dirA) and door (in dirB), pairs them, calls
// when told so (said is called in between) and waits until both are in
// the call (door answers by itself).
func startCall(ctx context.Context, bin, dirA, dirB string, oa, ob testbox.Options, said func(a, b *testbox.Box)) (a, b *testbox.Box, err error) {
	if a, err = testbox.Start(ctx, bin, "hall", dirA, oa); err != nil {
		return nil, nil, err
	}
	if b, err = testbox.Start(ctx, bin, "door", dirB, ob); err != nil {
		a.Stop()
		return nil, nil, err
	}
	fail := func(err error) (*testbox.Box, *testbox.Box, error) {
		a.Stop()
		b.Stop()
		return nil, nil, err
	}
	if err := testbox.Pair(ctx, a, b); err != nil {
		return fail(err)
	}
	said(a, b)
	if err := a.Press(ctx); err != nil {
		return fail(err)
	}
	for _, x := range []*testbox.Box{a, b} {
		if _, err := x.WaitState(ctx, "in call", 10*time.Second); err != nil {
			return fail(fmt.Errorf("%w\n%s log:\n%s", err, x.Name, x.Log()))
		}
	}
	return a, b, nil
}

// hangUp presses hall's button, waits for both boxes to be idle, lets the
// speakers play out what was buffered and stops both daemons. It returns
// their last status.
func hangUp(ctx context.Context, a, b *testbox.Box) ([2]control.Status, error) {
	var final [2]control.Status
	if err := a.Press(ctx); err != nil {
		return final, err
	}
	for i, x := range []*testbox.Box{a, b} {
		var err error
		if final[i], err = x.WaitState(ctx, "idle", 5*time.Second); err != nil {
			return final, err
		}
	}
	time.Sleep(300 * time.Millisecond)
	for _, x := range []*testbox.Box{a, b} {
		if err := x.Stop(); err != nil {
			return final, fmt.Errorf("%s stopped badly: %w\n%s", x.Name, err, x.Log())
		}
	}
	return final, nil
}

func printLine(name string, st control.Status) {
	p := st.Phone
	c := p.Call
	if c == nil {
		fmt.Printf("  %-5s %-9s\n", name, p.State)
		return
	}
	fmt.Printf("  %-5s %-9s %5.1f / %5.1f       %-4s %4.0f / %4.0f      %d/%d      %5.1f / %5.1f ms    %5.1f / %5.1f ms    %.2f ms\n",
		name, p.State, c.Out.VideoFPS, c.In.VideoFPS, control.CodecName(c.Out.AudioCodec), c.Out.AudioKbps, c.In.AudioKbps,
		c.Out.VideoDrops+c.In.VideoDrops, c.Out.AudioDrops+c.In.AudioDrops,
		c.In.VideoLatency.P50, c.In.VideoLatency.P99, c.In.AudioLatency.P50, c.In.AudioLatency.P99, c.RTT)
}

func saveFrame(ctx context.Context, x *testbox.Box, dir string) error {
	var data []byte
	if err := x.Client.Do(ctx, "GET", "/v1/frame/peer", nil, &data); err != nil {
		return fmt.Errorf("%s: latest frame: %w", x.Name, err)
	}
	if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
		return fmt.Errorf("%s: latest frame does not decode: %w", x.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, x.Name+"-received.jpg"), data, 0o644)
}

// summary prints the direction from → to and reports whether it met the
// targets: ≥ 25 fps, ≥ 95 % of audio frames, no undecodable frame.
func summary(from, to *testbox.Box, fs, ts control.Status) bool {
	out, in := fs.Phone.LastCall, ts.Phone.LastCall
	if out == nil || in == nil {
		fmt.Printf("  %s → %s: no call figures\n", from.Name, to.Name)
		return false
	}
	secs := in.Seconds
	frames, err := camera.ReadMJPEG(to.VideoRecording())
	if err != nil {
		fmt.Printf("  %s → %s: reading the video recording: %v\n", from.Name, to.Name, err)
		return false
	}
	var bad, backwards int
	var last uint32
	for i, f := range frames {
		if _, err := jpeg.Decode(bytes.NewReader(f)); err != nil {
			bad++
			continue
		}
		n, ok := camera.FrameNumber(f)
		if !ok || (i > 0 && n <= last) {
			backwards++
		}
		last = n
	}
	samples, err := audio.ReadRecording(to.AudioRecording())
	if err != nil {
		fmt.Printf("  %s → %s: reading the audio recording: %v\n", from.Name, to.Name, err)
		return false
	}
	// The played audio is checked frame by frame: sample for sample when
	// it came as PCM; through Opus by the frame number each test frame
	// carries in tones and its likeness to that frame.
	var aGood, aBad int
	var played string
	switch in.In.AudioCodec {
	case "opus":
		rep := audio.CheckCoded(media.DefaultAudio, samples)
		aGood, aBad = rep.Good-rep.OutOfOrder, rep.Bad+rep.OutOfOrder
		played = fmt.Sprintf("%d test frames intact and in order through Opus (median likeness %.2f), %d concealed in %d runs, %d breaks (delay shifts), %d bad",
			aGood, rep.MedianCorr, rep.Concealed, rep.ConcealRuns, rep.Breaks, aBad)
	default:
		rep := audio.Check(media.DefaultAudio, samples)
		aGood, aBad = rep.Good-rep.OutOfOrder, rep.Bad+rep.OutOfOrder
		played = fmt.Sprintf("%d test frames intact (sample for sample) and in order, %d bad", aGood, aBad)
	}
	fps := float64(in.In.VideoFrames) / secs
	audioPct := 100 * float64(in.In.AudioFrames) / float64(max(out.Out.AudioFrames, 1))
	wire := float64(out.Out.AudioWireBytes) * 8 / 1000 / secs
	fmt.Printf("  %s → %s over %.1f s:\n", from.Name, to.Name, secs)
	fmt.Printf("    video: %d frames sent, %d received (%.1f fps), %d dropped at the sender, %d undecodable, %d out of order; latency p50 %.1f ms, p99 %.1f ms\n",
		out.Out.VideoFrames, in.In.VideoFrames, fps, out.Out.VideoDrops, bad, backwards, in.In.VideoLatAll.P50, in.In.VideoLatAll.P99)
	fmt.Printf("    audio: %s as %s at %.1f kbit/s on the wire (headers and seal included), %d packets sent, %d received (%.1f%%), latency p50 %.1f ms, p99 %.1f ms\n",
		control.CodecName(out.Out.AudioCodec), out.Out.AudioPath, wire, out.Out.AudioFrames, in.In.AudioFrames, audioPct, in.In.AudioLatAll.P50, in.In.AudioLatAll.P99)
	fmt.Printf("    played: %s\n", played)
	fmt.Printf("    rtt %.2f ms\n", in.RTT)
	ok := fps >= 25 && audioPct >= 95 && bad == 0 && backwards == 0 && len(frames) > 0 && aGood > 0 && aBad == 0
	if !ok {
		fmt.Println("    BELOW TARGET: want ≥ 25 fps, ≥ 95% audio, no undecodable, bad or reordered frames")
	}
	return ok
}
