package echo

import "math"

// The stage works at 16 kHz inside the 48 kHz (or 32 kHz) path: speech
// needs no more for echo cancellation, and the canceller costs a third.
// decimator and interpolator change the rate by an integer factor with
// one linear-phase low-pass FIR (a Hann-windowed sinc, cut off at 7 kHz).

// lowpass is the FIR for a factor of m: 24·m taps at the high rate.
func lowpass(m, rate int) []float64 {
	n := 24 * m
	fc := 7000 / float64(rate) // cycles per sample
	h := make([]float64, n)
	var sum float64
	for i := range h {
		x := float64(i) - float64(n-1)/2
		s := 2 * fc
		if x != 0 {
			s = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		w := 0.5 - 0.5*math.Cos(2*math.Pi*(float64(i)+0.5)/float64(n))
		h[i] = s * w
		sum += h[i]
	}
	for i := range h {
		h[i] /= sum // unit gain at 0 Hz
	}
	return h
}

// decimator takes every m-th sample of the low-passed input.
type decimator struct {
	m   int
	h   []float64
	buf []float64 // the last len(h)-1 inputs, then the frame
}

func newDecimator(m, rate, frame int) *decimator {
	h := lowpass(m, rate)
	return &decimator{m: m, h: h, buf: make([]float64, len(h)-1+frame)}
}

// run decimates in (a multiple of m long) into out (len(in)/m).
func (d *decimator) run(in []int16, out []float64) {
	hist := len(d.h) - 1
	for i, s := range in {
		d.buf[hist+i] = float64(s)
	}
	for j := range out {
		end := hist + j*d.m // the newest input this output sees
		var acc float64
		for k, c := range d.h {
			acc += c * d.buf[end-k]
		}
		out[j] = acc
	}
	copy(d.buf, d.buf[len(in):len(in)+hist])
}

// interpolator puts m-1 zeros after each sample and low-passes (gain m).
type interpolator struct {
	m    int
	h    []float64
	taps int       // per phase
	buf  []float64 // the last taps-1 inputs, then the frame
}

func newInterpolator(m, rate, frame int) *interpolator {
	h := lowpass(m, rate)
	for i := range h {
		h[i] *= float64(m)
	}
	taps := len(h) / m
	return &interpolator{m: m, h: h, taps: taps, buf: make([]float64, taps-1+frame)}
}

// run interpolates in into out (len(in)·m), rounding to int16.
func (p *interpolator) run(in []float64, out []int16) {
	hist := p.taps - 1
	copy(p.buf[hist:], in)
	for n := range out {
		j, ph := n/p.m, n%p.m
		// out[n] = Σ_k h[k]·u[n-k] where u is non-zero at multiples of
		// m: k = ph + m·t meets input j - t.
		var acc float64
		for t := range p.taps {
			acc += p.h[ph+p.m*t] * p.buf[hist+j-t]
		}
		out[n] = sat16(acc)
	}
	copy(p.buf, p.buf[len(in):len(in)+hist])
}

func sat16(x float64) int16 {
	switch {
	case x >= 32767:
		return 32767
	case x <= -32768:
		return -32768
	}
	return int16(math.Round(x))
}
