//go:build cgo

package opus

import (
	"fmt"
	"math"
	"testing"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/room"
)

func power(x []int16) float64 {
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return e / float64(max(len(x), 1))
}

func correlation(a, b []float64) float64 {
	var ma, mb float64
	for i := range a {
		ma += a[i]
		mb += b[i]
	}
	ma /= float64(len(a))
	mb /= float64(len(b))
	var ab, aa, bb float64
	for i := range a {
		ab += (a[i] - ma) * (b[i] - mb)
		aa += (a[i] - ma) * (a[i] - ma)
		bb += (b[i] - mb) * (b[i] - mb)
	}
	return ab / math.Sqrt(aa*bb)
}

// speech is n frames of the speech-like voice, talking (pauses skipped).
func speech(f media.AudioFormat, n int) [][]int16 {
	v := room.NewVoice(7, 130, f.Rate)
	var out [][]int16
	for len(out) < n {
		fr := make([]int16, f.FrameLen())
		if v.Read(fr) && power(fr) > 100*100 {
			out = append(out, fr)
		}
	}
	return out
}

// Speech at the default 32 kbit/s costs about that on the wire and comes
// back sounding like what went in: the same level and course of level,
// lined up past the codec's delay (in either mode: 6.5 ms for speech,
// 2.5 ms with CELT alone), and at the thin link's 24 kbit/s too.
func TestRoundTripSpeech(t *testing.T) {
	type tc struct {
		f      media.AudioFormat
		mode   Mode
		kbps   int
		lagMin int // the codec's delay, in samples at 48 kHz
		lagMax int
	}
	f20 := media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: 20}
	for _, c := range []tc{
		{media.DefaultAudio, Speech, 32, 250, 400},
		{f20, Speech, 32, 250, 400},
		{media.DefaultAudio, LowDelay, 32, 60, 200},
		{f20, LowDelay, 32, 60, 200},
		{f20, LowDelay, 24, 60, 200},
	} {
		f := c.f
		enc, err := NewEncoder(Config{Format: f, Complexity: 5, Mode: c.mode, Bitrate: c.kbps * 1000})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := NewDecoder(f)
		if err != nil {
			t.Fatal(err)
		}
		frames := speech(f, 300*10/f.FrameMs) // 3 s
		var in, out []int16
		var bytes int
		pcm := make([]int16, f.FrameLen())
		for _, fr := range frames {
			pkt, err := enc.Encode(nil, fr)
			if err != nil {
				t.Fatal(err)
			}
			bytes += len(pkt)
			if err := dec.Decode(pcm, pkt); err != nil {
				t.Fatal(err)
			}
			in = append(in, fr...)
			out = append(out, pcm...)
		}
		secs := float64(len(in)) / float64(f.Rate)
		kbps := float64(bytes*8) / secs / 1000
		// Opus' delay at 48 kHz is 6.5 ms (312 samples); find it.
		best, lag := math.Inf(-1), 0
		for l := 0; l < 1000; l++ {
			var c float64
			for i := 0; i+l < len(out); i += 7 {
				c += float64(in[i]) * float64(out[i+l])
			}
			if c > best {
				best, lag = c, l
			}
		}
		// Opus keeps what is heard, not the waveform (SILK codes speech
		// by its envelope and pitch; sample-wise SNR is a few dB): compare
		// the level and its course, 10 ms at a time.
		step := f.Rate / 100
		var a, b []float64
		for i := 0; i+lag+step <= len(out); i += step {
			a = append(a, 10*math.Log10(power(in[i:i+step])+1))
			b = append(b, 10*math.Log10(power(out[i+lag:i+lag+step])+1))
		}
		corr, levelDiff := correlation(a, b), 10*math.Log10(power(out[lag:])/power(in[:len(in)-lag]))
		name := fmt.Sprintf("%v %d ms frames at %d kbit/s", c.mode, f.FrameMs, c.kbps)
		t.Logf("%s: %.1f kbit/s, delay %d samples, level %+.1f dB, envelope correlation %.3f",
			name, kbps, lag, levelDiff, corr)
		if kbps < float64(c.kbps)/2 || kbps > float64(c.kbps)*3/2 {
			t.Errorf("%s: %.1f kbit/s", name, kbps)
		}
		if lag < c.lagMin || lag > c.lagMax {
			t.Errorf("%s: decoded speech lags by %d samples, want %d..%d", name, lag, c.lagMin, c.lagMax)
		}
		if corr < 0.9 || math.Abs(levelDiff) > 2 {
			t.Errorf("%s: envelope correlation %.3f, level %+.1f dB; want ≥ 0.9 and within 2 dB", name, corr, levelDiff)
		}
		enc.Close()
		dec.Close()
		enc.Close() // idempotent
		if _, err := enc.Encode(nil, frames[0]); err == nil {
			t.Error("a closed encoder encoded")
		}
	}
}

// A lost packet is concealed: the frame after speech is not silence, and
// the decoder goes on with the next real packet.
func TestConcealment(t *testing.T) {
	f := media.DefaultAudio
	enc, _ := NewEncoder(Config{})
	dec, _ := NewDecoder(f)
	defer enc.Close()
	defer dec.Close()
	pcm := make([]int16, f.FrameLen())
	frames := speech(f, 50)
	for _, fr := range frames[:40] {
		pkt, _ := enc.Encode(nil, fr)
		if err := dec.Decode(pcm, pkt); err != nil {
			t.Fatal(err)
		}
	}
	if err := dec.Decode(pcm, nil); err != nil {
		t.Fatal(err)
	}
	if power(pcm) < 10*10 {
		t.Errorf("a concealed frame after speech is silent (power %.0f)", power(pcm))
	}
	pkt, _ := enc.Encode(nil, frames[41])
	if err := dec.Decode(pcm, pkt); err != nil {
		t.Fatalf("decoding after concealment: %v", err)
	}
}

// Bad input gets a clear error, never a crash or a stale frame.
func TestBadInput(t *testing.T) {
	f := media.DefaultAudio
	for _, c := range []Config{
		{Bitrate: 5000}, {Bitrate: 500000}, {Complexity: 11},
		{Format: media.AudioFormat{Rate: 44100, Channels: 1, FrameMs: 10}},
		{Format: media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: 30}},
	} {
		if _, err := NewEncoder(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	enc, _ := NewEncoder(Config{})
	defer enc.Close()
	if _, err := enc.Encode(nil, make([]int16, 10)); err == nil {
		t.Error("a short frame was encoded")
	}
	dec, _ := NewDecoder(f)
	defer dec.Close()
	pcm := make([]int16, f.FrameLen())
	for i := range pcm {
		pcm[i] = 1000
	}
	// A TOC byte saying 60 ms of audio: more than the frame holds.
	if err := dec.Decode(pcm, []byte{0xfb, 0x03, 0x00, 0x00}); err == nil || power(pcm) != 0 {
		t.Errorf("a packet of the wrong length decoded: err %v, power %.0f", err, power(pcm))
	}
	if err := dec.Decode(pcm[:5], []byte{1, 2}); err == nil {
		t.Error("decoded into a short buffer")
	}
}

// Garbage packets never crash the decoder.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x78, 0x01, 0x02})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		dec, err := NewDecoder(media.DefaultAudio)
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		pcm := make([]int16, media.DefaultAudio.FrameLen())
		dec.Decode(pcm, pkt)
	})
}

// SetBitrate changes what the encoder spends from the next packet on,
// without a break in the sound; out-of-range rates are refused and leave
// the rate as it was.
func TestSetBitrate(t *testing.T) {
	f := media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: 20}
	enc, err := NewEncoder(Config{Format: f, Complexity: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := NewDecoder(f)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	frames := speech(f, 300) // 6 s
	rate := func(fr [][]int16) float64 {
		bytes := 0
		pcm := make([]int16, f.FrameLen())
		for _, x := range fr {
			pkt, err := enc.Encode(nil, x)
			if err != nil {
				t.Fatal(err)
			}
			if err := dec.Decode(pcm, pkt); err != nil {
				t.Fatal(err)
			}
			if power(pcm) < 1 {
				t.Fatal("speech decoded as silence")
			}
			bytes += len(pkt)
		}
		return float64(bytes*8) / (float64(len(fr)*f.FrameMs) / 1000) / 1000
	}
	hi := rate(frames[:100])
	for _, bad := range []int{MinBitrate - 1, MaxBitrate + 1, 0} {
		if err := enc.SetBitrate(bad); err == nil {
			t.Errorf("SetBitrate(%d) accepted", bad)
		}
	}
	if enc.Config().Bitrate != DefaultBitrate {
		t.Errorf("a refused rate changed the config to %d", enc.Config().Bitrate)
	}
	if err := enc.SetBitrate(16000); err != nil {
		t.Fatal(err)
	}
	lo := rate(frames[100:200])
	if err := enc.SetBitrate(DefaultBitrate); err != nil {
		t.Fatal(err)
	}
	back := rate(frames[200:])
	t.Logf("%.1f kbit/s at 32, %.1f at 16, %.1f back at 32", hi, lo, back)
	if lo > 20 || lo > hi*0.7 {
		t.Errorf("at a 16 kbit/s target the encoder spent %.1f kbit/s (%.1f at 32)", lo, hi)
	}
	if back < hi*0.8 {
		t.Errorf("back at 32 kbit/s the encoder spent %.1f kbit/s, %.1f before", back, hi)
	}
	enc.Close()
	if err := enc.SetBitrate(24000); err == nil {
		t.Error("a closed encoder took a bit rate")
	}
}

// The mode's names read back, and CELT alone refuses in-band FEC, which
// only SILK carries.
func TestModes(t *testing.T) {
	for _, m := range []Mode{Speech, LowDelay} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("music"); err == nil {
		t.Error(`ParseMode("music") worked`)
	}
	if err := (Config{Mode: LowDelay, LossPercent: 5}).Validate(); err == nil {
		t.Error("low-delay with forward error correction validated")
	}
	if err := (Config{Mode: Mode(7)}).Validate(); err == nil {
		t.Error("an unknown mode validated")
	}
	if err := (Config{Mode: Speech, LossPercent: 5}).Validate(); err != nil {
		t.Error(err)
	}
}

// What a 20 ms packet costs to code and decode, per mode and complexity
// (go test -bench Codec ./stream/opus).
func BenchmarkCodec(b *testing.B) {
	f := media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: 20}
	frames := speech(f, 50)
	for _, m := range []Mode{Speech, LowDelay} {
		for _, cx := range []int{0, 5, 10} {
			b.Run(fmt.Sprintf("%v/c%d", m, cx), func(b *testing.B) {
				enc, err := NewEncoder(Config{Format: f, Complexity: cx, Mode: m})
				if err != nil {
					b.Fatal(err)
				}
				defer enc.Close()
				dec, err := NewDecoder(f)
				if err != nil {
					b.Fatal(err)
				}
				defer dec.Close()
				pkt := make([]byte, 0, MaxPacket)
				pcm := make([]int16, f.FrameLen())
				for i := 0; b.Loop(); i++ {
					p, err := enc.Encode(pkt[:0], frames[i%len(frames)])
					if err != nil {
						b.Fatal(err)
					}
					if err := dec.Decode(pcm, p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
