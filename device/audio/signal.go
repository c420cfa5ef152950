package audio

import "github.com/callbox/callbox/stream/media"

// The test signal is computed in integers from the global sample index alone,
// so any box, on any architecture, regenerates a frame bit for bit (floating
// point may be fused differently on arm64 and amd64).
//
// It sounds like a hummed voice at about -12 dBFS peak: a fundamental gliding
// between 150 and 250 Hz and back every 4 s, six harmonics falling off like a
// voice, and a 4 Hz syllable envelope between 30% and 100%. Above the hum,
// quiet tones mark each frame for checks after a lossy codec (see marker.go),
// taking the peak to about -8.5 dBFS; last, the frame index is hidden in the
// least significant bits, for bit-exact checks.
const (
	glideLowHz   = 150
	glideSpanHz  = 100
	glideRiseSec = 2 // seconds from low to high; the fall takes as long
	syllableHz   = 4
	envFloorQ15  = 9830  // 0.3
	envSpanQ15   = 22938 // 0.7
	turn         = 1 << 32
)

// harmonics are the amplitudes of harmonics 1..6 in sample units, falling
// like a voice's; in phase as sin(hφ) they peak at 8100, -12 dBFS.
var harmonics = [...]int64{5067, 3040, 1773, 1013, 507, 253}

// indexBits is how many values at the end of each frame carry the frame index
// in their least significant bit, most significant bit first.
const indexBits = 32

// TestFrame regenerates frame idx of the test signal in format f (the zero
// value means media.DefaultAudio), index bits included. It returns nil if f is
// invalid.
func TestFrame(f media.AudioFormat, idx uint32) []int16 {
	f, err := format(f)
	if err != nil {
		return nil
	}
	s := make([]int16, f.FrameLen())
	testFrame(f, idx, s)
	return s
}

// testFrame writes frame idx into dst, which is f.FrameLen() long.
func testFrame(f media.AudioFormat, idx uint32, dst []int16) {
	rate := uint64(f.Rate)
	inc0 := uint64(glideLowHz) * turn / rate
	half := uint64(glideRiseSec) * rate // samples per half glide
	slope := uint64(glideSpanHz) * turn / rate / half
	cycle := glideSum(2*half, half)
	envInc := uint64(syllableHz) * turn / rate

	k := uint64(idx) * uint64(f.FrameSamples())
	m := newMarker(f, idx)
	// Phase is the closed-form integral of the triangular glide, modulo one
	// turn (uint64 arithmetic wraps, keeping the low 32 bits exact): at the
	// frame's start, then adding the triangle sample by sample, which wraps
	// to the same.
	pos := k % (2 * half)
	glide := k/(2*half)*cycle + glideSum(pos, half)
	for j := range f.FrameSamples() {
		phase := uint32(k*inc0 + slope*glide)
		if pos < half {
			glide += pos
		} else {
			glide += 2*half - pos
		}
		if pos++; pos == 2*half {
			pos = 0
		}
		var acc int64
		for h, amp := range harmonics {
			acc += amp * int64(sinQ15(uint32(h+1)*phase))
		}
		env := envFloorQ15 + envSpanQ15*(32768-int64(sinQ15(uint32(k*envInc)+turn/4)))/65536
		v := int16((acc>>15)*env>>15 + m.at(j))
		for c := range f.Channels {
			dst[j*f.Channels+c] = v
		}
		k++
	}
	setIndex(dst, idx)
}

// glideSum is the sum over j < n of the triangle m(j) = j for j < half and
// 2*half - j after, for n <= 2*half: the glide's phase offset in slope units.
func glideSum(n, half uint64) uint64 {
	if n <= half {
		return tri(n)
	}
	return 2*tri(half) + (n-half)*2*half - tri(n)
}

// tri is 0 + 1 + ... + (n-1), dividing the even factor first so it is exact.
func tri(n uint64) uint64 {
	if n%2 == 0 {
		return n / 2 * (n - 1)
	}
	return (n - 1) / 2 * n
}

// sinQ15 is sin(2π p/2^32) in Q15, from an odd quintic on the quarter wave
// that meets 1 with zero slope (error below 0.04%).
func sinQ15(p uint32) int32 {
	const (
		a1 = 1686629713 // π/2 in Q30
		a3 = 688904866  // π/2 - 1 + a5
		a5 = 76016977   // (π - 3)/2
	)
	x := int64(p & (1<<30 - 1))
	if p&(1<<30) != 0 {
		x = 1<<30 - x
	}
	x2 := x * x >> 30
	y := (a1 - (a3-a5*x2>>30)*x2>>30) * x >> 30 >> 15
	y = min(y, 32767)
	if p&(1<<31) != 0 {
		y = -y
	}
	return int32(y)
}

// setIndex hides idx in the least significant bits of the last indexBits
// values: a change of at most one step, far below hearing.
func setIndex(frame []int16, idx uint32) {
	tail := frame[len(frame)-indexBits:]
	for i := range tail {
		bit := int16(idx >> (indexBits - 1 - i) & 1)
		tail[i] = tail[i]&^1 | bit
	}
}

// frameIndex reads the index setIndex hid.
func frameIndex(frame []int16) uint32 {
	var idx uint32
	for _, v := range frame[len(frame)-indexBits:] {
		idx = idx<<1 | uint32(v&1)
	}
	return idx
}
