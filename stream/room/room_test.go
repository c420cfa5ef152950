package room

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func rms(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s / float64(max(len(x), 1)))
}

// A voice talks at TalkRMS in phrases with pauses, with a pitch in the
// range asked for that moves (intonation), and the same seed repeats it.
func TestVoiceIsSpeechLike(t *testing.T) {
	const rate = 48000
	v := NewVoice(7, 120, rate)
	frame := make([]int16, 480)
	var talk []float64
	var pauses, runs, frames int
	was := true
	all := make([]int16, 0, 20*rate)
	for range 2000 { // 20 s
		on := v.Read(frame)
		all = append(all, frame...)
		frames++
		if !on {
			pauses++
			for _, s := range frame {
				if s != 0 {
					t.Fatal("sound in a pause")
				}
			}
			if was {
				runs++
			}
		} else {
			for _, s := range frame {
				talk = append(talk, float64(s))
			}
		}
		was = on
	}
	if got := rms(talk); got < TalkRMS*0.7 || got > TalkRMS*1.4 {
		t.Errorf("talking RMS %.0f, want about %d", got, TalkRMS)
	}
	if f := float64(pauses) / float64(frames); f < 0.1 || f > 0.5 {
		t.Errorf("paused %.0f%% of the time, want 10–50%%", 100*f)
	}
	if runs < 8 {
		t.Errorf("%d pauses in 20 s, want phrases", runs)
	}
	// Pitch per 40 ms of voiced sound, by autocorrelation in 70–400 Hz.
	var pitches []float64
	for at := 0; at+1920 <= len(all); at += 3 * 1920 {
		w := all[at : at+1920]
		var e float64
		for _, s := range w {
			e += float64(s) * float64(s)
		}
		if math.Sqrt(e/1920) < TalkRMS/2 {
			continue
		}
		best, bestLag := 0.0, 0
		for lag := rate / 400; lag <= rate/70; lag += 2 {
			var c float64
			for i := lag; i < len(w); i++ {
				c += float64(w[i]) * float64(w[i-lag])
			}
			if c > best {
				best, bestLag = c, lag
			}
		}
		if best > 0.5*e {
			pitches = append(pitches, float64(rate)/float64(bestLag))
		}
	}
	if len(pitches) < 20 {
		t.Fatalf("only %d voiced windows", len(pitches))
	}
	slices.Sort(pitches)
	lo, mid, hi := pitches[len(pitches)/10], pitches[len(pitches)/2], pitches[len(pitches)*9/10]
	if mid < 90 || mid > 160 || hi/lo < 1.15 {
		t.Errorf("pitch p10/p50/p90 %.0f/%.0f/%.0f Hz: want about 120 Hz that moves", lo, mid, hi)
	}
	again := NewVoice(7, 120, rate)
	other := NewVoice(8, 120, rate)
	b, c := make([]int16, len(all)), make([]int16, len(all))
	again.Read(b)
	other.Read(c)
	if !slices.Equal(all, b) {
		t.Error("the same seed gave another voice")
	}
	if slices.Equal(all, c) {
		t.Error("another seed gave the same voice")
	}
}

// The echo is the played sound through the delay and the impulse
// response (checked against a direct convolution), the response decays
// at the RT60, and the noise has the level asked for.
func TestRoomEchoDelayDecayNoise(t *testing.T) {
	c := Default()
	c.Drive = 0
	c.SNR = math.Inf(1)
	c.Delay = 23 * time.Millisecond
	c.RT60 = 200 * time.Millisecond
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var played []float64
	var echo []float64
	frame := make([]int16, c.Frame)
	for range 60 {
		for i := range frame {
			frame[i] = int16(rng.NormFloat64() * 3000)
			played = append(played, float64(frame[i]))
		}
		h := r.Hear(frame, nil)
		for i, s := range h.Mic {
			if math.Abs(float64(s)-h.Echo[i]) > 0.51 {
				t.Fatal("mic is not the echo")
			}
		}
		echo = append(echo, h.Echo...)
	}
	h, d := r.ImpulseResponse(), int(c.Delay.Seconds()*float64(c.Rate))
	for _, n := range []int{d - 1, d, d + 100, len(echo) - 1} {
		var want float64
		for j, hj := range h {
			if k := n - d - j; k >= 0 {
				want += hj * played[k]
			}
		}
		if math.Abs(echo[n]-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("echo[%d] = %v, direct convolution %v", n, echo[n], want)
		}
	}
	if echo[d-1] != 0 && math.Abs(echo[d-1]) > 1e-6 {
		t.Errorf("echo before the delay: %v", echo[d-1])
	}
	// Energy in the tail: 30 dB down at RT60/2 (Schroeder integral).
	var total, after float64
	for i, v := range h {
		total += v * v
		if i >= len(h)/2 {
			after += v * v
		}
	}
	if db := 10 * math.Log10(after/total); db > -25 || db < -40 {
		t.Errorf("energy after RT60/2: %.1f dB of the total, want about -33", db)
	}
	// Noise at 30 dB SNR.
	c = Default()
	r, err = New(c)
	if err != nil {
		t.Fatal(err)
	}
	var noise []float64
	for range 200 {
		h := r.Hear(make([]int16, c.Frame), nil)
		noise = append(noise, h.Noise...)
	}
	if db := 20 * math.Log10(TalkRMS/rms(noise)); math.Abs(db-30) > 1 {
		t.Errorf("SNR %.1f dB, want 30", db)
	}
	if err := r.SetDelay(110 * time.Millisecond); err != nil || r.Config().Delay != 110*time.Millisecond {
		t.Errorf("SetDelay: %v", err)
	}
	for _, bad := range []Config{{}, func() Config { c := Default(); c.Delay = time.Second; return c }(), func() Config { c := Default(); c.RT60 = 0; return c }()} {
		if _, err := New(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// A delay jump moves the echo from the next frame on, without a gap.
func TestRoomDelayJump(t *testing.T) {
	c := Default()
	c.SNR = math.Inf(1)
	c.Drive = 0
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	click := make([]int16, c.Frame)
	click[0] = 10000
	silent := make([]int16, c.Frame)
	first := func() int {
		for f := 0; f < 100; f++ {
			h := r.Hear(silent, nil)
			for i, v := range h.Echo {
				if math.Abs(v) > 100 {
					return f*c.Frame + i
				}
			}
		}
		return -1
	}
	r.Hear(click, nil)
	if at := first() + c.Frame; at != 2880 {
		t.Errorf("click heard after %d samples, want 2880 (60 ms)", at)
	}
	for range 60 {
		r.Hear(silent, nil)
	}
	if err := r.SetDelay(110 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r.Hear(click, nil)
	if at := first() + c.Frame; at != 5280 {
		t.Errorf("after the jump, click heard after %d samples, want 5280 (110 ms)", at)
	}
}
