// Package dsp holds the signal-processing pieces the audio packages under
// stream/ share: a radix-2 FFT for the room's convolution and the echo
// stage's delay estimate. Plain Go, no C.
package dsp

import (
	"fmt"
	"math"
	"math/bits"
)

// FFT transforms complex sequences of one power-of-two length in place.
// It keeps its twiddle table and bit-reversal permutation; it holds no
// other state, so one FFT may serve several goroutines.
type FFT struct {
	n   int
	tw  []complex128 // exp(-2πik/n), k < n/2
	rev []int
}

// NewFFT returns an FFT of length n, a power of two of at least 2.
func NewFFT(n int) (*FFT, error) {
	if n < 2 || n&(n-1) != 0 {
		return nil, fmt.Errorf("dsp: FFT length %d is not a power of two", n)
	}
	f := &FFT{n: n, tw: make([]complex128, n/2), rev: make([]int, n)}
	for k := range f.tw {
		s, c := math.Sincos(-2 * math.Pi * float64(k) / float64(n))
		f.tw[k] = complex(c, s)
	}
	shift := 64 - bits.Len(uint(n-1))
	for i := range f.rev {
		f.rev[i] = int(bits.Reverse64(uint64(i)) >> shift)
	}
	return f, nil
}

// Len is the transform length.
func (f *FFT) Len() int { return f.n }

// Forward replaces x (of length Len) by its discrete Fourier transform.
func (f *FFT) Forward(x []complex128) { f.run(x, false) }

// Inverse replaces x by its inverse transform, scaled by 1/Len, so that
// Inverse undoes Forward.
func (f *FFT) Inverse(x []complex128) {
	f.run(x, true)
	s := 1 / float64(f.n)
	for i := range x {
		x[i] = complex(real(x[i])*s, imag(x[i])*s)
	}
}

func (f *FFT) run(x []complex128, inverse bool) {
	n := f.n
	x = x[:n]
	for i, j := range f.rev {
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		half, step := size/2, n/size
		for start := 0; start < n; start += size {
			for k := range half {
				w := f.tw[k*step]
				if inverse {
					w = complex(real(w), -imag(w))
				}
				a, b := x[start+k], x[start+k+half]*w
				x[start+k], x[start+k+half] = a+b, a-b
			}
		}
	}
}

// NextPow2 is the smallest power of two at least n (and at least 2).
func NextPow2(n int) int {
	p := 2
	for p < n {
		p <<= 1
	}
	return p
}
