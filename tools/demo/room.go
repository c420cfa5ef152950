package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/media"
)

// roomCall is the demo's second call: each box stands in a simulated room
// (device/audio.Room: its microphone hears its own speaker 60 ms later
// through a reverberant room, with background noise) and someone talks in
// front of each, in turns of 4 s of the wall clock: hall in the even
// turns, door in the odd ones. The microphone's processing (echo
// cancellation, residual echo and noise suppression, AGC, ducking) runs as
// shipped. It prints what each box's echo stage reports, then a figure
// measured from outside: in what each box sent (its peer's speaker
// played it), how loud it was while only the peer's talker spoke (the
// peer's voice echoed by the box's room, what the stage left of it, and
// the room's noise) against the box's own talker.
func roomCall(ctx context.Context, bin, tmp string, seconds int) error {
	if seconds < 16 {
		return fmt.Errorf("the call in simulated rooms needs 16 s or more (-room-seconds %d)", seconds)
	}
	fmt.Println("\nsecond call: each box in a simulated room (its microphone hears its speaker through a")
	fmt.Println("60 ms, RT60 400 ms echo path, background noise 30 dB below the talker); hall's talker")
	fmt.Println("speaks in the even 4 s turns of the clock, door's in the odd ones; echo stage as shipped")
	opts := func(talk string) testbox.Options {
		return testbox.Options{AutoAnswer: true, RecordAudio: true, Extra: testbox.InRoom(talk)}
	}
	a, b, err := startCall(ctx, bin, filepath.Join(tmp, "room-hall"), filepath.Join(tmp, "room-door"),
		opts(string(audio.TalkEven)), opts(string(audio.TalkOdd)), func(*testbox.Box, *testbox.Box) {})
	if err != nil {
		return err
	}
	defer a.Stop()
	defer b.Stop()
	fmt.Println("in call. Each box's echo stage, once a second:")
	fmt.Println("  box   talking  delay found   echo reduced (ERLE)  ducking")
	err = everySecond(ctx, seconds, []*testbox.Box{a, b}, func(name string, st control.Status) {
		printEcho(name, st, talking(name, time.Now()))
	})
	if err != nil {
		return err
	}
	final, err := hangUp(ctx, a, b)
	if err != nil {
		return err
	}
	fmt.Println("\necho, per box")
	for i, x := range []*testbox.Box{a, b} {
		peer := []*testbox.Box{b, a}[i]
		e := final[i].Echo
		if e == nil {
			return fmt.Errorf("%s: no echo stage in its status", x.Name)
		}
		fmt.Printf("  %s: stage %s; delay %.0f ms (true: 60 ms plus the devices'), ERLE %.1f dB, %d of %d frames ducked\n",
			x.Name, e.Parts, e.DelayMs, e.ERLE, e.DuckedFrames, e.Frames)
		back, err := echoBack(peer)
		if err != nil {
			fmt.Printf("    %v\n", err)
			continue
		}
		var turns []string
		for _, db := range back {
			turns = append(turns, fmt.Sprintf("%.1f", db))
		}
		fmt.Printf("    what %s sent while only %s's talker spoke (%s's echo, what the stage left of it), %s's turns one by one\n",
			x.Name, peer.Name, peer.Name, peer.Name)
		fmt.Printf("    after the first 4 s: %s dB below %s's own talker\n", strings.Join(turns, ", "), x.Name)
	}
	return nil
}

func talking(name string, t time.Time) bool {
	turn := t.UnixNano() / int64(audio.TurnLength) % 2
	return (turn == 0) == (name == "hall")
}

func printEcho(name string, st control.Status, talks bool) {
	e := st.Echo
	if e == nil {
		fmt.Printf("  %-5s no echo stage\n", name)
		return
	}
	who := "-"
	if talks {
		who = "yes"
	}
	delay := "not yet"
	if e.DelayKnown {
		delay = fmt.Sprintf("%.0f ms", e.DelayMs)
	}
	duck := "-"
	if e.Ducking {
		duck = fmt.Sprintf("%.0f dB", e.DuckDB)
	}
	fmt.Printf("  %-5s %-8s %-13s %5.1f dB             %s\n", name, who, delay, e.ERLE, duck)
}

// echoBack measures, in what the peer's speaker played (x's microphone
// after x's stage), the level in each of the peer's turns, while only the
// peer's talker spoke (the peer's voice as x's room echoed it, what x's
// stage left of it, and x's room noise), below the level while x's own
// talker spoke, in dB: the canceller converging turn by turn. The
// turns are found in the recording itself (where x's talker is loudest,
// trying every phase of the 8 s cycle in 10 ms steps), so no clock needs
// lining up. Turn edges (± 600 ms, for the playout and the room's delay)
// and the call's first 4 s (the canceller converging) are left out.
func echoBack(peer *testbox.Box) ([]float64, error) {
	samples, err := audio.ReadRecording(peer.AudioRecording())
	if err != nil {
		return nil, err
	}
	frame := media.DefaultAudio.FrameSamples()
	frameDur := media.DefaultAudio.FrameDuration()
	var e []float64 // power per frame
	first, last := -1, -1
	for i := 0; i+frame <= len(samples); i += frame {
		var p float64
		for _, v := range samples[i : i+frame] {
			p += float64(v) * float64(v)
		}
		if p > 0 {
			if first < 0 {
				first = len(e)
			}
			last = len(e)
		}
		e = append(e, p/float64(frame))
	}
	turn := int(audio.TurnLength / frameDur)
	guard := int(600 * time.Millisecond / frameDur)
	from := first + turn // the call's first turn: the canceller converging
	if first < 0 || last-from < 2*turn {
		return nil, fmt.Errorf("%s's recording: the call was too short to measure the echo", peer.Name)
	}
	split := func(phase int) (mine, theirs float64) {
		var nm, nt int
		for k := from; k <= last; k++ {
			in := (k + phase) % (2 * turn)
			switch {
			case in%turn < guard || in%turn >= turn-guard:
			case in < turn:
				mine += e[k]
				nm++
			default:
				theirs += e[k]
				nt++
			}
		}
		return mine / float64(max(nm, 1)), theirs / float64(max(nt, 1))
	}
	best, bestScore := 0, -1.0
	for phase := 0; phase < 2*turn; phase++ {
		if m, t := split(phase); m-t > bestScore {
			best, bestScore = phase, m-t
		}
	}
	mine, _ := split(best)
	// The peer's turns one by one, each against x's talker's mean.
	var turns []float64
	var p float64
	var n int
	for k := from; k <= last; k++ {
		in := (k + best) % (2 * turn)
		if in >= turn && in%turn >= guard && in%turn < turn-guard {
			p += e[k]
			n++
		}
		if (in == 2*turn-1 || k == last) && n > turn/2 {
			turns = append(turns, 10*math.Log10((mine+1)/(p/float64(n)+1)))
		}
		if in == 2*turn-1 {
			p, n = 0, 0
		}
	}
	if len(turns) == 0 {
		return nil, fmt.Errorf("%s's recording: the call was too short to measure the echo", peer.Name)
	}
	return turns, nil
}
