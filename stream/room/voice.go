package room

import (
	"math"
	"math/rand/v2"
)

// TalkRMS is the level of a Voice while it talks (within phrases, pauses
// between syllables included): about -24 dBFS, a voice a metre from a
// microphone at a sensible capture gain.
const TalkRMS = 2000

// vowels are formant targets (F1, F2, F3 in Hz) of a few vowels.
var vowels = [...][3]float64{
	{730, 1090, 2440}, // a
	{530, 1840, 2480}, // e
	{270, 2290, 3010}, // i
	{570, 840, 2410},  // o
	{300, 870, 2240},  // u
	{660, 1720, 2410}, // æ
}

// breath is the aspiration noise's amplitude against the pulses'.
const breath = 0.0017

// formantBW are the formants' bandwidths in Hz.
var formantBW = [3]float64{90, 110, 170}

// Voice is a deterministic speech-like talker of our own: a glottal pulse
// train whose pitch glides with intonation (falling over each phrase, a
// rise on accented syllables, a slight vibrato) through three formant
// resonators that move between vowels, syllables of 100–250 ms with
// fricative onsets, and phrases of 3–9 syllables separated by pauses of
// 0.3–1 s. The same seed gives the same voice.
type Voice struct {
	rate float64
	rng  *rand.Rand
	gain float64

	// The plan: the current segment and what is left of it.
	left                       int // samples left in the segment
	pause                      bool
	sylLeft                    int // syllables left in the phrase
	sylCount                   int // syllables in the phrase
	cons, vowel, gap, segLen   int // the syllable's parts in samples
	fricHz                     float64
	f0Target, accent, baseF0   float64
	vowelIdx                   int
	f0, phase, pulsePrev, time float64
	jitter                     float64
	form                       [3]float64 // current formants
	res                        [3]resonator
	fric                       resonator
	coefEvery                  int
}

// resonator is a two-pole filter y = b·x + a1·y1 + a2·y2.
type resonator struct{ b, a1, a2, y1, y2 float64 }

func (r *resonator) tune(hz, bw, rate float64) {
	rad := math.Exp(-math.Pi * bw / rate)
	r.a1 = 2 * rad * math.Cos(2*math.Pi*hz/rate)
	r.a2 = -rad * rad
	r.b = 1 - r.a1 - r.a2 // unit gain at 0 Hz, as in a cascade formant synthesiser
}

func (r *resonator) step(x float64) float64 {
	y := r.b*x + r.a1*r.y1 + r.a2*r.y2
	r.y2, r.y1 = r.y1, y
	return y
}

// NewVoice returns a talker at rate samples per second with a mean pitch
// of pitchHz (about 110 for a low voice, 200 for a high one).
func NewVoice(seed uint64, pitchHz float64, rate int) *Voice {
	v := newVoice(seed, pitchHz, rate)
	// Calibrate the level on the voice's own first seconds (a twin with
	// the same seed), so that every voice talks at TalkRMS.
	twin := newVoice(seed, pitchHz, rate)
	var sum float64
	var n int
	for range 6 * rate {
		s, talking := twin.next()
		if talking {
			sum += s * s
			n++
		}
	}
	v.gain = TalkRMS / math.Sqrt(sum/float64(max(n, 1)))
	return v
}

func newVoice(seed uint64, pitchHz float64, rate int) *Voice {
	v := &Voice{rate: float64(rate), rng: rand.New(rand.NewPCG(seed, 0x766f696365)), gain: 1, baseF0: pitchHz, f0: pitchHz}
	v.form = vowels[0]
	v.jitter = 1
	v.fric.tune(5000, 2500, v.rate)
	v.startPause()
	v.left = int(0.2 * v.rate) // a short silence before the first phrase
	return v
}

func (v *Voice) between(lo, hi float64) float64 { return lo + (hi-lo)*v.rng.Float64() }

func (v *Voice) startPause() {
	v.pause = true
	v.left = int(v.between(0.3, 1.0) * v.rate)
	v.sylCount = 3 + v.rng.IntN(7)
	v.sylLeft = v.sylCount
}

func (v *Voice) startSyllable() {
	v.pause = false
	v.sylLeft--
	v.cons = 0
	if v.rng.IntN(2) == 0 {
		v.cons = int(v.between(0.03, 0.08) * v.rate)
		v.fricHz = v.between(3000, 6000)
		v.fric.tune(v.fricHz, 2000, v.rate)
	}
	v.vowel = int(v.between(0.09, 0.19) * v.rate)
	v.gap = int(v.between(0.02, 0.07) * v.rate)
	v.segLen = v.cons + v.vowel + v.gap
	v.left = v.segLen
	v.vowelIdx = v.rng.IntN(len(vowels))
	v.accent = 1
	if v.rng.IntN(3) == 0 {
		v.accent = v.between(1.1, 1.3)
	}
	// Declination: the pitch falls by about a fifth over a phrase.
	pos := float64(v.sylCount-v.sylLeft-1) / float64(max(v.sylCount-1, 1))
	v.f0Target = v.baseF0 * (1.1 - 0.25*pos) * v.accent
}

// glottal is one period of a glottal flow pulse (opening over 40% of the
// period, closing over 16%, closed for the rest) at phase p in [0, 1).
func glottal(p float64) float64 {
	switch {
	case p < 0.4:
		return 0.5 * (1 - math.Cos(math.Pi*p/0.4))
	case p < 0.56:
		return math.Cos(math.Pi * (p - 0.4) / 0.32)
	}
	return 0
}

// next is one sample before the level gain, and whether the voice is
// within a phrase.
func (v *Voice) next() (float64, bool) {
	for v.left <= 0 {
		if v.pause || v.sylLeft > 0 {
			v.startSyllable()
		} else {
			v.startPause()
		}
	}
	v.left--
	v.time += 1 / v.rate
	if v.pause {
		return 0, false
	}
	at := v.segLen - v.left - 1 // sample index within the syllable
	var voiced, noise float64
	switch {
	case at < v.cons:
		x := float64(at) / float64(v.cons)
		noise = 0.05 * math.Sin(math.Pi*x) // about 12 dB under the vowels
	case at < v.cons+v.vowel:
		x := float64(at-v.cons) / float64(v.vowel)
		switch {
		case x < 0.15:
			voiced = 0.5 * (1 - math.Cos(math.Pi*x/0.15))
		case x > 0.7:
			voiced = 0.5 * (1 + math.Cos(math.Pi*(x-0.7)/0.3))
		default:
			voiced = 1
		}
	}
	// Pitch and formants glide towards their targets (about 40 and 25 ms).
	v.f0 += (v.f0Target - v.f0) * (1 / (0.04 * v.rate))
	if v.coefEvery--; v.coefEvery <= 0 {
		v.coefEvery = 16
		k := 16 / (0.025 * v.rate)
		for i := range v.form {
			v.form[i] += (vowels[v.vowelIdx][i] - v.form[i]) * k
			v.res[i].tune(v.form[i], formantBW[i], v.rate)
		}
	}
	f0 := v.f0 * (1 + 0.012*math.Sin(2*math.Pi*5.5*v.time)) * v.jitter
	v.phase += f0 / v.rate
	if v.phase >= 1 {
		v.phase--
		v.jitter = 1 + 0.02*(v.rng.Float64()-0.5) // each period a little off, as in a real voice
	}
	pulse := glottal(v.phase)
	// The lips radiate the flow's derivative; breath rides on it, about
	// 20 dB under the pulses, loudest while the glottis is open.
	src := (pulse - v.pulsePrev + breath*pulse*v.rng.NormFloat64()) * voiced
	v.pulsePrev = pulse
	s := src
	for i := range v.res {
		s = v.res[i].step(s)
	}
	if noise > 0 {
		s += noise * v.fric.step(v.rng.NormFloat64())
	} else {
		v.fric.step(0)
	}
	return s, true
}

// Read writes the next len(dst) samples and says whether any of them was
// within a phrase (talk, not a pause).
func (v *Voice) Read(dst []int16) (talking bool) {
	for i := range dst {
		s, on := v.next()
		dst[i] = clip16(s * v.gain)
		talking = talking || on
	}
	return talking
}

func clip16(x float64) int16 {
	switch {
	case x > 32767:
		return 32767
	case x < -32768:
		return -32768
	}
	return int16(math.Round(x))
}
