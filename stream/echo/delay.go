package echo

import (
	"math"
	"math/cmplx"

	"github.com/callbox/callbox/stream/internal/dsp"
)

// estRate is the rate the delay is estimated at: speech's strong part
// (100–1800 Hz) is all the correlation needs, and the FFTs are small.
const estRate = 4000

// delayEstimator finds the lag between the reference (what the speaker
// played) and the capture by GCC-PHAT: the cross-spectrum of one second
// of each, whitened so that every frequency band votes equally, back in
// the lag domain. A clear peak is the echo's direct path. It runs on the
// capture goroutine; the caller copies the reference window in.
type delayEstimator struct {
	win, maxLag int // in estRate samples
	fft         *dsp.FFT
	a, b        []complex128
	lo, hi      int // the bins weighed

	known      bool
	cur        int // the lag in use
	cand, hits int // a new lag seen, and how many times in a row
	tol        int // lags within tol of cur are the same echo path
	changes    uint64
	atCur      float64 // the last estimate's confidence at the lag in use
}

// minConf is how far above the correlation's RMS a peak must stand; for
// unrelated signals it rarely exceeds 5.
const minConf = 8

func newDelayEstimator(maxLag int) (*delayEstimator, error) {
	win := estRate // one second
	f, err := dsp.NewFFT(dsp.NextPow2(win + maxLag))
	if err != nil {
		return nil, err
	}
	n := f.Len()
	return &delayEstimator{
		win: win, maxLag: maxLag, fft: f,
		a: make([]complex128, n), b: make([]complex128, n),
		lo: 100 * n / estRate, hi: 1800 * n / estRate,
		tol: 5 * estRate / 1000, // 5 ms
	}, nil
}

// estimate takes the last win capture samples and the win+maxLag
// reference samples that end at the same moment, and returns the lag
// (capture sample i echoes reference sample i-lag) and how clearly it
// stands out.
func (e *delayEstimator) estimate(mic, ref []float64) (lag int, conf float64) {
	e.atCur = 0
	clear(e.a)
	clear(e.b)
	for i, v := range mic {
		e.a[i] = complex(v, 0)
	}
	for i, v := range ref {
		e.b[i] = complex(v, 0)
	}
	e.fft.Forward(e.a)
	e.fft.Forward(e.b)
	n := e.fft.Len()
	for k := range n {
		f := min(k, n-k) // the bin's frequency, both halves
		if f < e.lo || f > e.hi {
			e.b[k] = 0
			continue
		}
		c := cmplx.Conj(e.a[k]) * e.b[k]
		e.b[k] = c / complex(cmplx.Abs(c)+1e-9, 0)
	}
	e.fft.Inverse(e.b)
	// b[L'] = Σ a[i]·ref[i+L']: capture i against reference maxLag-L' earlier.
	best, at := math.Inf(-1), 0
	var sq float64
	for l := 0; l <= e.maxLag; l++ {
		v := real(e.b[l])
		sq += v * v
		if v > best {
			best, at = v, l
		}
	}
	r := math.Sqrt(sq / float64(e.maxLag+1))
	if r == 0 {
		return 0, 0
	}
	if e.known {
		// The strongest correlation near the lag in use, for update.
		for l := max(e.maxLag-e.cur-e.tol, 0); l <= min(e.maxLag-e.cur+e.tol, e.maxLag); l++ {
			e.atCur = max(e.atCur, real(e.b[l])/r)
		}
	}
	return e.maxLag - at, best / r
}

// update feeds one estimate through the rules that decide the lag in
// use: the first clear one is taken; later a clear one more than tol
// away replaces it when it is seen twice in a row, or at once when it
// stands twice as high as what is left at the lag in use (the window
// then mostly lies after a jump), so one odd window does not move the
// canceller. It says whether the lag in use changed.
func (e *delayEstimator) update(lag int, conf float64) bool {
	if conf < minConf {
		return false
	}
	if !e.known {
		e.known, e.cur = true, lag
		e.changes++
		return true
	}
	if abs(lag-e.cur) <= e.tol {
		e.hits = 0
		return false
	}
	if e.hits > 0 && abs(lag-e.cand) <= e.tol {
		e.hits++
	} else {
		e.cand, e.hits = lag, 1
	}
	if e.hits >= 2 || conf >= 2*e.atCur {
		e.cur, e.hits = lag, 0
		e.changes++
		return true
	}
	return false
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
