package echo

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/stream/room"
)

// The delay is found by GCC-PHAT on speech, and found again after it
// jumps by 50 ms either way, within two estimates.
func TestDelayEstimatorFindsAndTracks(t *testing.T) {
	const maxLag = estRate / 2
	e, err := newDelayEstimator(maxLag)
	if err != nil {
		t.Fatal(err)
	}
	v := room.NewVoice(5, 120, estRate*4)
	raw := make([]int16, 16*4*estRate)
	v.Read(raw)
	ref := make([]float64, len(raw)/4)
	for i := range ref {
		ref[i] = float64(raw[4*i]+raw[4*i+1]/2) / 2 // roughly low-passed, 4 kHz
	}
	mic := func(end, lag int) []float64 {
		m := make([]float64, e.win)
		for i := range m {
			if j := end - e.win + i - lag; j >= 0 {
				m[i] = 0.5 * ref[j]
			}
			m[i] += 20 * math.Sin(float64(i)*0.7) // a hum that is not the echo
		}
		return m
	}
	refWin := func(end int) []float64 { return ref[end-e.win-maxLag : end] }
	lag := 240 // 60 ms
	end := e.win + maxLag
	for range 3 {
		l, c := e.estimate(mic(end, lag), refWin(end))
		e.update(l, c)
		end += estRate / 4
	}
	if !e.known || abs(e.cur-lag) > 2 {
		t.Fatalf("delay %d (known %v), want %d", e.cur, e.known, lag)
	}
	for _, next := range []int{440, 240} { // +50 ms, back
		lag = next
		found := false
		for range 8 {
			// a window wholly after the jump
			l, c := e.estimate(mic(end+e.win, lag), refWin(end+e.win))
			e.update(l, c)
			end += estRate / 4
			if abs(e.cur-lag) <= 2 {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("after a jump to %d, delay still %d", lag, e.cur)
		}
	}
}

// 16 kHz and back: a 1 kHz tone keeps its level, 10 kHz is gone, and the
// pair delays by what Latency says.
func TestResampleRoundTrip(t *testing.T) {
	d, p := newDecimator(3, 48000, 480), newInterpolator(3, 48000, 160)
	for _, c := range []struct {
		hz   float64
		gain [2]float64
	}{{1000, [2]float64{0.97, 1.03}}, {10000, [2]float64{0, 0.03}}} {
		in := make([]int16, 480)
		mid := make([]float64, 160)
		out := make([]int16, 480)
		var ein, eout float64
		for f := range 50 {
			for i := range in {
				in[i] = int16(8000 * math.Sin(2*math.Pi*c.hz*float64(f*480+i)/48000))
			}
			d.run(in, mid)
			p.run(mid, out)
			if f > 5 {
				for i := range in {
					ein += float64(in[i]) * float64(in[i])
					eout += float64(out[i]) * float64(out[i])
				}
			}
		}
		if g := math.Sqrt(eout / ein); g < c.gain[0] || g > c.gain[1] {
			t.Errorf("%v Hz: gain %.3f, want %v", c.hz, g, c.gain)
		}
	}
	s, err := New(Config{Duck: true, DuckBelow: 20, Tail: 250 * time.Millisecond, MaxDelay: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if l := s.Latency(); l < time.Millisecond || l > 2*time.Millisecond {
		t.Errorf("latency %v, want about 1.5 ms", l)
	}
}

func TestConfig(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{})
	if err != nil || !s.Config().Bypass() {
		t.Fatalf("zero config: %v", err)
	}
	in := []int16{1, 2, 3}
	s.Process(in)
	s.Played(in)
	if in[0] != 1 || s.Latency() != 0 {
		t.Error("bypass changed the audio")
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.Tail = time.Second },
		func(c *Config) { c.MaxDelay = 0 },
		func(c *Config) { c.Cancel = false },         // suppress without cancel
		func(c *Config) { c.Format.Rate = 44100 },    // not a multiple of 16 kHz
		func(c *Config) { c.Format.Channels = 2 },    // stereo
		func(c *Config) { c.DuckBelow = math.NaN() }, // nonsense
		func(c *Config) { c.Format.Rate = 8000 },     // below 16 kHz
	} {
		c := Default()
		bad(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// Ducking alone (no speexdsp): while the far end talks and its echo
// comes back, the microphone goes down by the target, and comes back
// when the far end stops; a microphone that hears no echo of it (a
// headset) is never ducked.
func TestDuckingHalfDuplex(t *testing.T) {
	c := Config{Duck: true, DuckBelow: 20, Tail: 250 * time.Millisecond, MaxDelay: 500 * time.Millisecond}
	rc := room.Default()
	rc.SNR = math.Inf(1)
	for _, coupled := range []bool{true, false} {
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		r, err := room.New(rc)
		if err != nil {
			t.Fatal(err)
		}
		far, near := room.NewVoice(1, 110, 48000), room.NewVoice(2, 210, 48000)
		farF, nearF := make([]int16, 480), make([]int16, 480)
		var in, out float64
		for f := range 500 { // 5 s
			far.Read(farF)
			near.Read(nearF)
			mic := append([]int16(nil), nearF...)
			if coupled {
				copy(mic, r.Hear(farF, nil).Mic)
			}
			s.Played(farF)
			before := energy16(mic)
			s.Process(mic)
			if f >= 300 {
				in += before
				out += energy16(mic)
			}
		}
		db := 10 * math.Log10(in/out)
		if coupled && db < 12 {
			t.Errorf("echo ducked by %.1f dB, want about 20", db)
		}
		if !coupled && math.Abs(db) > 1 {
			t.Errorf("no echo path, yet the microphone changed by %.1f dB", db)
		}
	}
}

func energy16(x []int16) float64 {
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return e
}

// Without cgo the stage says it has no echo cancellation.
func TestAvailable(t *testing.T) {
	_, err := New(Default())
	if Available() {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "compiled without echo cancellation") {
		t.Fatalf("err = %v", err)
	}
}

// Played runs on the speaker's thread while Process runs on the capture
// loop: under -race this finds shared scratch between them (it did:
// Process read the reference through Played's buffer).
func TestPlayedAndProcessConcurrently(t *testing.T) {
	c := Default()
	if !Available() {
		c.Cancel, c.Suppress, c.Denoise, c.AGC = false, false, false, false
	}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := c.Format.FrameSamples()
	if n == 0 {
		n = 480
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		v := room.NewVoice(1, 120, 48000)
		frame := make([]int16, n)
		for range 300 {
			v.Read(frame)
			s.Played(frame)
		}
	}()
	mic := make([]int16, n)
	for i := range 300 {
		for k := range mic {
			mic[k] = int16((i*k)%200 - 100)
		}
		s.Process(mic)
	}
	<-done
	if st := s.Stats(); st.Frames == 0 && Available() {
		t.Errorf("no frame processed: %+v", st)
	}
}

// A microphone that stops while the speaker plays on (or the two started
// at different moments) leaves the sample counts apart by that long; a
// Restart when it opens again lines them up from there, and the stage
// finds the room's delay again, as a new one would.
func TestRestartRealigns(t *testing.T) {
	c := Default()
	if !Available() {
		c.Cancel, c.Suppress, c.Denoise, c.AGC = false, false, false, false
	}
	rc := room.Default()
	run := func(restart bool) Stats {
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		r, err := room.New(rc)
		if err != nil {
			t.Fatal(err)
		}
		far := room.NewVoice(1, 110, 48000)
		frame := make([]int16, 480)
		talk := func(frames int) {
			for range frames {
				far.Read(frame)
				s.Played(frame)
				mic := append([]int16(nil), r.Hear(frame, nil).Mic...)
				s.Process(mic)
			}
		}
		talk(300)
		if st := s.Stats(); !st.DelayKnown {
			t.Fatalf("no delay found in 3 s: %+v", st)
		}
		// The microphone is closed for 1 s; the speaker plays on.
		for range 100 {
			far.Read(frame)
			s.Played(frame)
			r.Hear(frame, nil)
		}
		if restart {
			s.Restart()
			if st := s.Stats(); st.DelayKnown {
				t.Errorf("delay still known after Restart: %+v", st)
			}
		}
		talk(500)
		return s.Stats()
	}
	st := run(true)
	want := rc.Delay
	if !st.DelayKnown || st.Delay < want-15*time.Millisecond || st.Delay > want+40*time.Millisecond {
		t.Errorf("after Restart: delay %v (known %v), want about %v", st.Delay, st.DelayKnown, want)
	}
	if st.Frames != 800 {
		t.Errorf("frames %d, want 800 (counted across Restart)", st.Frames)
	}
	if !Available() {
		return
	}
	stale := run(false)
	t.Logf("ERLE after 5 s: with Restart %.1f dB, without %.1f dB (delay %v)", st.ERLE, stale.ERLE, stale.Delay)
	if st.ERLE < 10 || st.ERLE < stale.ERLE+5 {
		t.Errorf("ERLE with Restart %.1f dB, without %.1f dB: want ≥ 10 dB and well above", st.ERLE, stale.ERLE)
	}
}
