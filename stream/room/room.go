// Package room simulates the room a callbox stands in: given what its
// loudspeaker plays (the far end) and what the person in front of it says
// (the near end), it produces what its microphone hears. The echo goes
// through a mild loudspeaker non-linearity (a soft clip), a delay and a
// deterministic room impulse response (a direct path, a few early
// reflections and exponentially decaying noise for the room's RT60), and
// background noise at a chosen SNR is added. Voice is a speech-like talker
// to drive it. Tests, the demo and the bench use it to measure the echo
// stage (stream/echo) without a room; it is plain Go.
package room

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/callbox/callbox/stream/internal/dsp"
)

// Config describes a room. Default is a living room.
type Config struct {
	Rate  int           // samples per second (mono)
	Frame int           // samples per Hear call
	Delay time.Duration // loudspeaker to microphone, device buffers included: 5–200 ms (SetDelay may move it up to 500 ms)
	RT60  time.Duration // the time the reverberation takes to fall by 60 dB: 100 ms – 1 s
	// EchoDB is the level of the direct path from the loudspeaker to the
	// microphone relative to what is played, in dB (the reverberation adds
	// about as much energy again).
	EchoDB float64
	// Drive is the loudspeaker's soft clip, y = tanh(Drive·x)/Drive on a
	// full scale of 1: 0 is linear, 1.5 compresses a -12 dBFS peak by 4 %.
	Drive float64
	// SNR is the near-end talker's level (TalkRMS) over the background
	// noise's, in dB; +Inf for no noise.
	SNR  float64
	Seed uint64 // the impulse response and the noise
}

// Default is the default room: 48 kHz frames of 10 ms, 60 ms delay, RT60
// 400 ms, the direct path 6 dB below what is played, a mild clip and
// background noise 30 dB below the talker.
func Default() Config {
	return Config{Rate: 48000, Frame: 480, Delay: 60 * time.Millisecond, RT60: 400 * time.Millisecond,
		EchoDB: -6, Drive: 1.5, SNR: 30, Seed: 1}
}

// Validate says what is wrong with c, if anything.
func (c Config) Validate() error {
	switch {
	case c.Rate < 8000 || c.Rate > 96000:
		return fmt.Errorf("room: rate %d out of 8000–96000", c.Rate)
	case c.Frame < 16 || c.Frame > c.Rate:
		return fmt.Errorf("room: frame of %d samples out of 16–%d", c.Frame, c.Rate)
	case c.Delay < 5*time.Millisecond || c.Delay > 200*time.Millisecond:
		return fmt.Errorf("room: delay %v out of 5–200 ms", c.Delay)
	case c.RT60 < 100*time.Millisecond || c.RT60 > time.Second:
		return fmt.Errorf("room: RT60 %v out of 100 ms – 1 s", c.RT60)
	case c.EchoDB > 6 || c.EchoDB < -60 || math.IsNaN(c.EchoDB):
		return fmt.Errorf("room: echo level %v dB out of -60–6", c.EchoDB)
	case c.Drive < 0 || c.Drive > 10 || math.IsNaN(c.Drive):
		return fmt.Errorf("room: drive %v out of 0–10", c.Drive)
	case math.IsNaN(c.SNR) || c.SNR < -10:
		return fmt.Errorf("room: SNR %v dB below -10", c.SNR)
	}
	return nil
}

// Room turns played frames into heard frames. It is not safe for
// concurrent use.
type Room struct {
	c     Config
	rir   []float64 // without the delay
	delay int       // samples
	conv  *convolver
	noise *noiseGen
	in    []float64
	heard Heard
}

// Heard is one frame at the microphone and the parts it is made of, as
// floating-point sample values (before rounding and clipping). The slices
// are reused by the next Hear.
type Heard struct {
	Mic   []int16
	Echo  []float64 // the loudspeaker through the room
	Noise []float64 // the background noise
}

// New builds a room.
func New(c Config) (*Room, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r := &Room{c: c, rir: impulseResponse(c), in: make([]float64, c.Frame)}
	r.delay = int(math.Round(c.Delay.Seconds() * float64(c.Rate)))
	conv, err := newConvolver(c.Frame)
	if err != nil {
		return nil, err
	}
	r.conv = conv
	r.conv.setFilter(r.delay, r.rir)
	r.noise = newNoise(c)
	r.heard = Heard{Mic: make([]int16, c.Frame), Echo: make([]float64, c.Frame), Noise: make([]float64, c.Frame)}
	return r, nil
}

// Config is the room's configuration (Delay as last set).
func (r *Room) Config() Config { return r.c }

// SetDelay moves the loudspeaker-to-microphone delay, as a sound card
// restarting with other buffers would: from the next frame on. 5–500 ms.
func (r *Room) SetDelay(d time.Duration) error {
	if d < 5*time.Millisecond || d > 500*time.Millisecond {
		return fmt.Errorf("room: delay %v out of 5–500 ms", d)
	}
	r.c.Delay = d
	r.delay = int(math.Round(d.Seconds() * float64(r.c.Rate)))
	r.conv.setFilter(r.delay, r.rir)
	return nil
}

// ImpulseResponse is the room's echo path without its delay, per sample,
// the loudspeaker's gain included.
func (r *Room) ImpulseResponse() []float64 { return r.rir }

// Hear takes the frame the loudspeaker plays and the frame the near-end
// talker says (nil for silence), both Config.Frame long, and returns what
// the microphone hears over the same 10 ms.
func (r *Room) Hear(played, near []int16) Heard {
	if len(played) != r.c.Frame || (near != nil && len(near) != r.c.Frame) {
		panic(fmt.Sprintf("room: frames of %d and %d samples, want %d", len(played), len(near), r.c.Frame))
	}
	for i, s := range played {
		x := float64(s) / 32768
		if r.c.Drive > 0 {
			x = math.Tanh(r.c.Drive*x) / r.c.Drive
		}
		r.in[i] = x * 32768
	}
	r.conv.process(r.in, r.heard.Echo)
	r.noise.read(r.heard.Noise)
	for i := range r.heard.Mic {
		v := r.heard.Echo[i] + r.heard.Noise[i]
		if near != nil {
			v += float64(near[i])
		}
		r.heard.Mic[i] = clip16(v)
	}
	return r.heard
}

// impulseResponse is the echo path: a direct path of gain EchoDB, six
// early reflections in the first 20 ms, then from 5 ms on Gaussian noise
// decaying by 60 dB over RT60 and carrying as much energy as the direct
// path, until it is 60 dB down.
func impulseResponse(c Config) []float64 {
	rng := rand.New(rand.NewPCG(c.Seed, 0x726f6f6d))
	rate := float64(c.Rate)
	n := int(c.RT60.Seconds() * rate)
	h := make([]float64, n)
	h[0] = 1
	for range 6 {
		at := int((0.002 + 0.018*rng.Float64()) * rate)
		if at < n {
			h[at] += (0.25 + 0.35*rng.Float64()) * float64(1-2*rng.IntN(2))
		}
	}
	start := int(0.005 * rate)
	decay := 6.908 / c.RT60.Seconds() // ln(1000): amplitude 60 dB down at RT60
	tail := make([]float64, n)
	var e float64
	for i := start; i < n; i++ {
		tail[i] = rng.NormFloat64() * math.Exp(-decay*float64(i)/rate)
		e += tail[i] * tail[i]
	}
	norm := 1 / math.Sqrt(e)
	g := math.Pow(10, c.EchoDB/20)
	for i := range h {
		h[i] = g * (h[i] + tail[i]*norm)
	}
	return h
}

// convolver filters frame after frame through a long impulse response:
// uniformly partitioned overlap-save, partitions one frame long, FFT of
// at least two frames, and a delay line of input spectra.
type convolver struct {
	p     int
	fft   *dsp.FFT
	parts [][]complex128 // spectra of the filter's partitions; nil: all zero
	fdl   [][]complex128 // input spectra, newest at head
	head  int
	win   []float64 // the last fft.Len() input samples
	acc   []complex128
}

func newConvolver(p int) (*convolver, error) {
	f, err := dsp.NewFFT(dsp.NextPow2(2 * p))
	if err != nil {
		return nil, err
	}
	return &convolver{p: p, fft: f, win: make([]float64, f.Len()), acc: make([]complex128, f.Len())}, nil
}

// setFilter makes the filter delay zeros then h. The input history is
// kept: the change takes effect at the next frame.
func (c *convolver) setFilter(delay int, h []float64) {
	n := c.fft.Len()
	k := (delay + len(h) + c.p - 1) / c.p
	c.parts = make([][]complex128, k)
	for i := range c.parts {
		lo, hi := i*c.p-delay, (i+1)*c.p-delay // h's indexes in partition i
		if hi <= 0 || lo >= len(h) {
			continue
		}
		part := make([]complex128, n)
		for j := max(lo, 0); j < min(hi, len(h)); j++ {
			part[j-lo] = complex(h[j], 0)
		}
		c.fft.Forward(part)
		c.parts[i] = part
	}
	old := c.fdl
	c.fdl = make([][]complex128, k)
	for i := range c.fdl {
		if i < len(old) {
			c.fdl[i] = old[(c.head-i+len(old))%len(old)]
		}
		if c.fdl[i] == nil {
			c.fdl[i] = make([]complex128, n)
		}
	}
	c.head = 0
}

func (c *convolver) process(in, out []float64) {
	n := c.fft.Len()
	copy(c.win, c.win[c.p:])
	copy(c.win[n-c.p:], in)
	c.head = (c.head + 1) % len(c.fdl)
	x := c.fdl[c.head]
	for i, v := range c.win {
		x[i] = complex(v, 0)
	}
	c.fft.Forward(x)
	clear(c.acc)
	for k, h := range c.parts {
		if h == nil {
			continue
		}
		xk := c.fdl[(c.head-k+len(c.fdl))%len(c.fdl)]
		for i := range c.acc {
			c.acc[i] += h[i] * xk[i]
		}
	}
	c.fft.Inverse(c.acc)
	for i := range out {
		out[i] = real(c.acc[n-c.p+i])
	}
}

// noiseGen is room noise: a low rumble (white noise through a one-pole
// low-pass at about 200 Hz) under a broadband hiss 10 dB quieter.
type noiseGen struct {
	rng    *rand.Rand
	lp, a  float64
	rumble float64 // 1 / the low-pass output's standard deviation
	gain   float64 // 0: no noise
}

func newNoise(c Config) *noiseGen {
	g := &noiseGen{rng: rand.New(rand.NewPCG(c.Seed, 0x6e6f697365)), a: math.Exp(-2 * math.Pi * 200 / float64(c.Rate))}
	// The low-pass output's variance is (1-a)/(1+a) of its input's.
	g.rumble = 1 / math.Sqrt((1-g.a)/(1+g.a))
	if !math.IsInf(c.SNR, 1) {
		g.gain = TalkRMS * math.Pow(10, -c.SNR/20) / math.Sqrt(1+hiss*hiss)
	}
	return g
}

const hiss = 0.316 // the hiss's amplitude against the rumble's

func (g *noiseGen) read(dst []float64) {
	if g.gain == 0 {
		clear(dst)
		return
	}
	for i := range dst {
		g.lp = g.a*g.lp + (1-g.a)*g.rng.NormFloat64()
		dst[i] = g.gain * (g.lp*g.rumble + hiss*g.rng.NormFloat64())
	}
}
