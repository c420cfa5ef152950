// Package echotest measures the echo stage (stream/echo) in a simulated
// room (stream/room): a scripted conversation — the far end alone, a
// delay jump each way, both talking, the near end alone — and the figures
// issue 13 asks for: ERLE, convergence, double talk, noise reduction,
// added latency and CPU. Tests use it with loose bounds; the bench prints
// it.
package echotest

import (
	"math"
	"runtime"
	"slices"
	"time"

	"github.com/callbox/callbox/stream/echo"
	"github.com/callbox/callbox/stream/internal/dsp"
	"github.com/callbox/callbox/stream/room"
)

// Script is the conversation, phase by phase.
type Script struct {
	Far    time.Duration // the far end alone (convergence, ERLE)
	Jump   time.Duration // the far end alone after the delay moves by +JumpBy, then as long after it moves back
	JumpBy time.Duration
	Double time.Duration // both talk
	Near   time.Duration // the near end alone
}

// BenchScript is the bench's conversation: 38 s.
var BenchScript = Script{Far: 10 * time.Second, Jump: 6 * time.Second, JumpBy: 50 * time.Millisecond,
	Double: 8 * time.Second, Near: 8 * time.Second}

// Result is what was measured. NaN where a figure could not be taken.
type Result struct {
	ERLE        float64       // dB, median of 1 s windows of far-end single talk from 3 s on
	ERLEWindows int           // how many windows that is
	Converge    time.Duration // first reaching 20 dB ERLE and holding it (-1: never)
	ReJumpUp    time.Duration // the same after the delay grew by JumpBy (-1: never)
	ReJumpDown  time.Duration // and after it shrank back (-1: never)
	DoubleSNR   float64       // dB, near end against what else is left in the output, median of 1 s windows
	DoubleAtt   float64       // dB, how much quieter the near end comes out in double talk
	RawSNR      float64       // dB, the same SNR at the microphone, unprocessed
	NearAtt     float64       // dB, how much quieter the near end comes out alone
	NoiseRed    float64       // dB, noise at the microphone over noise out, in the near end's pauses
	Latency     time.Duration // the output's lag behind the microphone, by correlation
	CPU         time.Duration // mean CPU time of Played+Process per frame (the thread's, where the system says)
	CPUp99      time.Duration
	Final       echo.Stats
	// Curve is the ERLE of every 250 ms window of the far end talking
	// alone (NaN where it does not talk through most of the window).
	Curve []float64
}

// Run plays script through r's room config and a stage of config c.
func Run(c echo.Config, rc room.Config, sc Script) (Result, error) {
	st, err := echo.New(c)
	if err != nil {
		return Result{}, err
	}
	defer st.Close()
	r, err := room.New(rc)
	if err != nil {
		return Result{}, err
	}
	n := rc.Frame
	// CPU time of this thread, so that other work on the machine does
	// not count.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	frameDur := time.Duration(n) * time.Second / time.Duration(rc.Rate)
	frames := func(d time.Duration) int { return int(d / frameDur) }
	farV := room.NewVoice(11, 110, rc.Rate)
	nearV := room.NewVoice(22, 210, rc.Rate)
	tJump1 := frames(sc.Far)
	tJump2 := tJump1 + frames(sc.Jump)
	tDouble := tJump2 + frames(sc.Jump)
	tNear := tDouble + frames(sc.Double)
	total := tNear + frames(sc.Near)

	mic := make([]float32, 0, total*n)
	out := make([]float32, 0, total*n)
	near := make([]float32, 0, total*n)
	farOn := make([]bool, total)
	nearOn := make([]bool, total)
	cpu := make([]time.Duration, total)
	far := make([]int16, n)
	nearF := make([]int16, n)
	buf := make([]int16, n)
	for f := range total {
		switch f {
		case tJump1:
			if err := r.SetDelay(rc.Delay + sc.JumpBy); err != nil {
				return Result{}, err
			}
		case tJump2:
			if err := r.SetDelay(rc.Delay); err != nil {
				return Result{}, err
			}
		}
		clear(far)
		clear(nearF)
		if f < tNear {
			farOn[f] = farV.Read(far)
		}
		if f >= tDouble {
			nearOn[f] = nearV.Read(nearF)
		}
		h := r.Hear(far, nearF)
		copy(buf, h.Mic)
		t0 := threadCPU()
		st.Played(far)
		st.Process(buf)
		cpu[f] = threadCPU() - t0
		for i := range n {
			mic = append(mic, float32(h.Mic[i]))
			out = append(out, float32(buf[i]))
			near = append(near, float32(nearF[i]))
		}
	}
	res := Result{Final: st.Stats()}

	// The output lags the microphone by the stage's filters: find the lag
	// on the near end alone and line the output up.
	lag := bestLag(near[tNear*n:], out[tNear*n:], rc.Rate/25)
	res.Latency = time.Duration(lag) * time.Second / time.Duration(rc.Rate)
	outAt := func(i int) float64 {
		if i+lag < len(out) {
			return float64(out[i+lag])
		}
		return 0
	}
	// ERLE over a window of frames [a, b): valid when the far end talks
	// through most of it.
	erle := func(a, b int) (float64, bool) {
		on := 0
		for f := a; f < b; f++ {
			if farOn[f] {
				on++
			}
		}
		if on*2 < b-a {
			return 0, false
		}
		var pm, po float64
		for i := a * n; i < b*n; i++ {
			pm += float64(mic[i]) * float64(mic[i])
			po += outAt(i) * outAt(i)
		}
		return 10 * math.Log10(pm/math.Max(po, 1)), true
	}
	second := frames(time.Second)
	var erles []float64
	for a := frames(3 * time.Second); a+second <= tJump1; a += second {
		if e, ok := erle(a, a+second); ok {
			erles = append(erles, e)
		}
	}
	res.ERLE, res.ERLEWindows = median(erles), len(erles)
	for a := 0; a+second/4 <= tDouble; a += second / 4 {
		e, ok := erle(a, a+second/4)
		if !ok {
			e = math.NaN()
		}
		res.Curve = append(res.Curve, e)
	}
	converge := func(from, to int) time.Duration {
		w := frames(250 * time.Millisecond)
		var ends []int
		var vals []float64
		for a := from; a+w <= to; a += w / 2 {
			if e, ok := erle(a, a+w); ok {
				ends = append(ends, a+w)
				vals = append(vals, e)
			}
		}
		for i := range vals {
			if i+3 > len(vals) {
				break
			}
			if vals[i] >= 20 && vals[i+1] >= 20 && vals[i+2] >= 20 {
				return time.Duration(ends[i]-from) * frameDur
			}
		}
		return -1
	}
	res.Converge = converge(0, tJump1)
	res.ReJumpUp = converge(tJump1, tJump2)
	res.ReJumpDown = converge(tJump2, tDouble)

	// Double talk and the near end alone: project the output on the
	// clean near end, 1 s windows where the near end talks.
	project := func(a, b int, raw bool) (snr, att float64, ok bool) {
		on := 0
		for f := a; f < b; f++ {
			if nearOn[f] {
				on++
			}
		}
		if on*2 < b-a {
			return 0, 0, false
		}
		var nn, no float64
		for i := a * n; i < b*n; i++ {
			y := outAt(i)
			if raw {
				y = float64(mic[i])
			}
			nn += float64(near[i]) * float64(near[i])
			no += float64(near[i]) * y
		}
		g := no / nn
		var rr float64
		for i := a * n; i < b*n; i++ {
			y := outAt(i)
			if raw {
				y = float64(mic[i])
			}
			d := y - g*float64(near[i])
			rr += d * d
		}
		return 10 * math.Log10(g*g*nn/math.Max(rr, 1)), -20 * math.Log10(math.Abs(g)), true
	}
	var snrs, atts, raws, natts []float64
	for a := tDouble + second; a+second <= tNear; a += second {
		if s, at, ok := project(a, a+second, false); ok {
			snrs, atts = append(snrs, s), append(atts, at)
		}
		if s, _, ok := project(a, a+second, true); ok {
			raws = append(raws, s)
		}
	}
	for a := tNear + second; a+second <= total; a += second {
		if _, at, ok := project(a, a+second, false); ok {
			natts = append(natts, at)
		}
	}
	res.DoubleSNR, res.DoubleAtt, res.RawSNR, res.NearAtt = median(snrs), median(atts), median(raws), median(natts)

	// Noise: the near end's pauses once the far end's echo has died away
	// (from 1 s into the near-end phase), skipping a pause's first 100 ms.
	var pm, po float64
	quiet := 0
	for f := tNear + second; f < total; f++ {
		if nearOn[f] {
			quiet = 0
			continue
		}
		if quiet++; quiet <= 10 {
			continue
		}
		for i := f * n; i < (f+1)*n; i++ {
			pm += float64(mic[i]) * float64(mic[i])
			po += outAt(i) * outAt(i)
		}
	}
	res.NoiseRed = math.NaN()
	if pm > 0 {
		res.NoiseRed = 10 * math.Log10(pm/math.Max(po, 1e-3))
	}
	var sum time.Duration
	for _, d := range cpu {
		sum += d
	}
	res.CPU = sum / time.Duration(len(cpu))
	slices.Sort(cpu)
	res.CPUp99 = cpu[len(cpu)*99/100]
	return res, nil
}

// bestLag is the lag in [0, maxLag] at which y best matches x, by
// cross-correlation over (at most) the first second of x.
func bestLag(x, y []float32, maxLag int) int {
	n := min(len(x), 48000)
	f, err := dsp.NewFFT(dsp.NextPow2(n + maxLag))
	if err != nil {
		return 0
	}
	a, b := make([]complex128, f.Len()), make([]complex128, f.Len())
	for i := range n {
		a[i] = complex(float64(x[i]), 0)
	}
	for i := 0; i < n+maxLag && i < len(y); i++ {
		b[i] = complex(float64(y[i]), 0)
	}
	f.Forward(a)
	f.Forward(b)
	for i := range a {
		b[i] *= complex(real(a[i]), -imag(a[i]))
	}
	f.Inverse(b)
	best, at := math.Inf(-1), 0
	for l := 0; l <= maxLag; l++ {
		if v := real(b[l]); v > best {
			best, at = v, l
		}
	}
	return at
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	x = slices.Clone(x)
	slices.Sort(x)
	return x[len(x)/2]
}
