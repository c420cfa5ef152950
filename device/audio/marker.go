package audio

import "github.com/callbox/callbox/stream/media"

// The marker lets a test frame be recognised after a lossy codec, which
// destroys the index bits: every frame carries one quiet tone from each of
// three sets, the digits of the frame index modulo markerPeriod.
//
// The layout is what survived Opus when measured (see coded_test.go): at
// 12 kbit/s libopus codes narrowband (nothing above 4 kHz) with one spectral
// envelope per 20 ms, and smears a tone over about ±200 Hz and into the next
// frame. So the set that changes every frame (set 0, the fastest digit) sits
// in 1.6–3.2 kHz, its tones 400 Hz apart and consecutive frames' tones 800
// or 1200 Hz apart; the slower digits sit in 3.6–7 kHz, where a wideband or
// better codec keeps them. All tones are above the hum's highest harmonic
// (1.5 kHz) and are multiples of 200 Hz, so that over half a frame (a whole
// number of their cycles for 10 and 20 ms frames) they are orthogonal. Each
// rises and falls with raised-cosine edges of a tenth of a frame, so that the
// switch at a frame boundary does not click. Formats below markerMinRate have
// no room for them and carry no marker.
const (
	markerPeriod  = 5 * 9 * 7 // frames: 3.15 s of 10 ms frames
	markerMinRate = 16000
	markerAmp     = 1464 // per tone in sample units, -27 dBFS; three add up to -18 dBFS
)

// markerSet is one digit of the marker: the frame index divided by div,
// modulo the number of tones, is the digit; the digit times hop (coprime
// with the number of tones) picks the tone, so that consecutive digits lie
// far apart.
type markerSet struct {
	lowHz, stepHz int
	tones         int
	div           uint32
	hop           int
}

// markerDigits are the sets, fastest digit first. Their periods, 5*9*7,
// share little with the hum's glide of 400 frames, so that marker and hum
// together repeat only every 25200 frames (4.2 min).
var markerDigits = [...]markerSet{
	{lowHz: 1600, stepHz: 400, tones: 5, div: 1, hop: 2},
	{lowHz: 3600, stepHz: 200, tones: 9, div: 5, hop: 4},
	{lowHz: 5600, stepHz: 200, tones: 7, div: 45, hop: 3},
}

// tone is the tone (0..tones-1, low to high) set s uses in frame idx.
func (s markerSet) tone(idx uint32) int {
	return int(idx/s.div%uint32(s.tones)) * s.hop % s.tones
}

// digit is the digit that tone stands for.
func (s markerSet) digit(tone int) uint32 {
	for d := range s.tones {
		if d*s.hop%s.tones == tone {
			return uint32(d)
		}
	}
	return 0
}

func (s markerSet) hz(tone int) int { return s.lowHz + s.stepHz*tone }

// marker generates the marker of one frame.
type marker struct {
	inc  [len(markerDigits)]uint32 // phase step of each set's tone
	n    int                       // samples per channel in the frame
	edge int                       // samples in each raised-cosine edge; 0: no marker
}

func newMarker(f media.AudioFormat, idx uint32) marker {
	if f.Rate < markerMinRate {
		return marker{}
	}
	m := marker{n: f.FrameSamples(), edge: markerEdge(f.FrameSamples())}
	for i, s := range markerDigits {
		m.inc[i] = uint32(uint64(s.hz(s.tone(idx))) * turn / uint64(f.Rate))
	}
	return m
}

// markerEdge is the length of a tone's rise and fall in a frame of n
// samples per channel.
func markerEdge(n int) int { return n / 10 }

// at is the marker's value at sample j (per channel) of the frame. Every
// tone starts at a zero crossing on the frame's first sample, where its
// edge is quietest (a start at the crest read worse through Opus). It falls
// from there rather than rising only because that keeps test/hil/rig's
// corrupt-sample case, which flips bit 8 of one sample, from reading as a
// fade: a coin toss on that sample's sign and bit 8.
func (m marker) at(j int) int64 {
	if m.edge == 0 {
		return 0
	}
	var acc int64
	for _, inc := range m.inc {
		acc += int64(sinQ15(uint32(j)*inc + turn/2))
	}
	acc = acc * markerAmp >> 15
	if e := min(j, m.n-1-j); e < m.edge {
		// (1 - cos(π(2e+1)/(2 edge)))/2 rises from near 0 to near 1.
		g := (32768 - int64(sinQ15(uint32(uint64(2*e+1)<<30/uint64(m.edge))+turn/4))) / 2
		acc = acc * g >> 15
	}
	return acc
}
