package dsp

import (
	"math"
	"math/cmplx"
	"testing"
)

// The FFT agrees with the textbook DFT and Inverse undoes Forward.
func TestFFTMatchesDFT(t *testing.T) {
	for _, n := range []int{2, 8, 64} {
		f, err := NewFFT(n)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]complex128, n)
		for i := range x {
			x[i] = complex(math.Sin(float64(i*i)+1), math.Cos(float64(3*i)))
		}
		want := make([]complex128, n)
		for k := range want {
			for j, v := range x {
				want[k] += v * cmplx.Exp(complex(0, -2*math.Pi*float64(j*k)/float64(n)))
			}
		}
		y := append([]complex128(nil), x...)
		f.Forward(y)
		for k := range y {
			if cmplx.Abs(y[k]-want[k]) > 1e-9 {
				t.Fatalf("n=%d bin %d: %v, want %v", n, k, y[k], want[k])
			}
		}
		f.Inverse(y)
		for k := range y {
			if cmplx.Abs(y[k]-x[k]) > 1e-12 {
				t.Fatalf("n=%d: inverse at %d: %v, want %v", n, k, y[k], x[k])
			}
		}
	}
	if _, err := NewFFT(12); err == nil {
		t.Fatal("length 12 accepted")
	}
	if NextPow2(480) != 512 || NextPow2(1) != 2 || NextPow2(1024) != 1024 {
		t.Fatal("NextPow2")
	}
}
