package call

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// latHist is a fixed-size log-linear histogram of durations in microseconds:
// exact below 32 µs, then 32 sub-buckets per power of two (about 3 %
// resolution) up to 2^31 µs. It never grows.
type latHist struct {
	n      uint64
	max    int64
	counts [32 + 26*32]uint32
}

func latBucket(us int64) int {
	if us < 32 {
		if us < 0 {
			return 0
		}
		return int(us)
	}
	if us >= 1<<31 {
		us = 1<<31 - 1
	}
	e := bits.Len64(uint64(us)) - 6 // us in [32<<e, 64<<e)
	sub := int(us>>uint(e)) - 32
	return 32 + e*32 + sub
}

// latBucketTop is the largest value that falls in bucket b.
func latBucketTop(b int) int64 {
	if b < 32 {
		return int64(b)
	}
	e := (b - 32) / 32
	sub := (b - 32) % 32
	return (int64(32+sub+1) << uint(e)) - 1
}

func (h *latHist) add(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0 // clock offset estimate can be off by a little; clamp
	}
	h.counts[latBucket(us)]++
	h.n++
	if us > h.max {
		h.max = us
	}
}

// quantile returns the q-quantile (0 < q <= 1) as an upper bound of its bucket.
func (h *latHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for b, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			v := latBucketTop(b)
			if v > h.max {
				v = h.max
			}
			return time.Duration(v) * time.Microsecond
		}
	}
	return time.Duration(h.max) * time.Microsecond
}

func (h *latHist) summary() Latency {
	return Latency{
		N:   h.n,
		P50: ms(h.quantile(0.50)),
		P99: ms(h.quantile(0.99)),
		Max: ms(time.Duration(h.max) * time.Microsecond),
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

// Latency summarises one latency distribution in milliseconds.
type Latency struct {
	N   uint64  `json:"n"`
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Direction holds the figures of one direction of a call.
type Direction struct {
	VideoFrames uint64  `json:"video_frames"`
	VideoBytes  uint64  `json:"video_bytes"`
	VideoDrops  uint64  `json:"video_drops"` // out: replaced before sending; in: abandoned part-frames
	VideoFPS    float64 `json:"video_fps"`
	VideoKbps   float64 `json:"video_kbps"`
	AudioFrames uint64  `json:"audio_frames"`
	AudioBytes  uint64  `json:"audio_bytes"`
	AudioDrops  uint64  `json:"audio_drops"`           // out: dropped oldest on a full queue; in: gaps in sequence
	AudioKbps   float64 `json:"audio_kbps"`            // payload only: add 18 bytes of message header per frame for the wire
	AudioCodec  string  `json:"audio_codec,omitempty"` // "opus" or "pcm", once the hellos are in
	// AudioTargetKbps (out only, Opus) is the encoder's target: the
	// configured one, or the lower one while the link holds the video
	// back.
	AudioTargetKbps float64 `json:"audio_target_kbps,omitempty"`
	// AudioWireBytes is what the audio took on the wire above UDP or TLS:
	// message headers on the stream, the whole datagram as datagrams
	// (out: both, while the peer has not said datagrams arrive; in: the
	// copies taken).
	AudioWireBytes uint64 `json:"audio_wire_bytes"`
	// AudioPath is how the audio goes: "stream", "datagrams", or (out
	// only) "stream+datagrams" while the peer has not said they arrive.
	AudioPath string `json:"audio_path,omitempty"`
	// DatagramErrors (out only) counts audio datagrams the system would
	// not send.
	DatagramErrors uint64 `json:"datagram_errors,omitempty"`
	// Latency (in only) runs from the sender's capture timestamp, on our
	// clock through the ping/pong offset estimate, to when the sink got the
	// frame (video) or the whole frame was received (audio).
	VideoLatency Latency `json:"video_latency"` // the last second
	AudioLatency Latency `json:"audio_latency"` // the last second
	VideoLatAll  Latency `json:"video_latency_call"`
	AudioLatAll  Latency `json:"audio_latency_call"`
	// VideoSinkDrops (in only) counts whole frames replaced by a newer one
	// before a slow sink took them.
	VideoSinkDrops uint64 `json:"video_sink_drops"`
	// LinkKbps (out only) is what the link was seen to carry: the largest
	// TCP delivery rate of the last two seconds; 0 where unknown.
	LinkKbps float64 `json:"link_kbps,omitempty"`
	// VideoBad and AudioBad (in only) count media that failed its checks
	// (a frame that is not a JPEG, audio that does not decode): dropped, never
	// shown, served or played, and not counted in VideoFrames/AudioFrames.
	VideoBad uint64 `json:"video_bad,omitempty"`
	AudioBad uint64 `json:"audio_bad,omitempty"`
}

// CallStats are the figures of one call (one session).
type CallStats struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	RTT      float64   `json:"rtt_ms"`
	Offset   float64   `json:"clock_offset_ms"` // peer clock minus ours
	Out      Direction `json:"out"`
	In       Direction `json:"in"`
	Received uint64    `json:"messages_in"`
}

// counter totals for one direction; updated by the owning goroutine (writer
// for out, reader for in) under stats.mu.
type dirCounters struct {
	videoFrames, videoBytes, videoDrops uint64
	audioFrames, audioBytes, audioDrops uint64
	videoLat, audioLat                  latHist // whole call
	videoWin, audioWin                  latHist // current window
	videoPrev, audioPrev                latHist // previous complete window
	videoSinkDrops                      uint64  // in: frames replaced before the sink took them
	linkKbps                            float64 // out: the link gate's rate estimate
	videoBad, audioBad                  uint64  // in: failed the media checks, dropped
	codec                               string  // the audio codec this way
	audioWire                           uint64  // audio bytes on the wire (see Direction.AudioWireBytes)
	dgErrors                            uint64  // out: datagrams the socket refused
	datagram                            bool    // in: the last audio taken came as a datagram
	audioTarget                         float64 // out: the Opus target, kbit/s
}

type rateSample struct {
	t                  time.Time
	vFrames, vBytes    uint64
	aBytes             uint64
	inVFrames, inVByte uint64
	inABytes           uint64
}

// stats belongs to one session. Writer and reader update it; Status reads it.
type stats struct {
	mu       sync.Mutex
	started  time.Time
	out, in  dirCounters
	rtt      time.Duration
	offset   time.Duration
	received uint64
	// rate window: samples taken by tick, the oldest one about a second old.
	samples [3]rateSample
	nsample int
	lastWin time.Time
}

func newStats(now time.Time) *stats {
	return &stats{started: now, lastWin: now}
}

// tick records a rate sample and rotates the latency window each second.
func (s *stats) tick(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	smp := rateSample{
		t: now, vFrames: s.out.videoFrames, vBytes: s.out.videoBytes, aBytes: s.out.audioBytes,
		inVFrames: s.in.videoFrames, inVByte: s.in.videoBytes, inABytes: s.in.audioBytes,
	}
	if s.nsample < len(s.samples) {
		s.samples[s.nsample] = smp
		s.nsample++
	} else {
		copy(s.samples[:], s.samples[1:])
		s.samples[len(s.samples)-1] = smp
	}
	if now.Sub(s.lastWin) >= time.Second {
		s.lastWin = now
		for _, d := range []*dirCounters{&s.out, &s.in} {
			d.videoPrev, d.videoWin = d.videoWin, latHist{}
			d.audioPrev, d.audioWin = d.audioWin, latHist{}
		}
	}
}

func (s *stats) snapshot(now time.Time) CallStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := CallStats{
		Started:  s.started,
		Seconds:  math.Round(now.Sub(s.started).Seconds()*10) / 10,
		RTT:      ms(s.rtt),
		Offset:   ms(s.offset),
		Received: s.received,
	}
	fill := func(d *dirCounters) Direction {
		vw, aw := d.videoPrev, d.audioPrev
		if vw.n == 0 {
			vw = d.videoWin
		}
		if aw.n == 0 {
			aw = d.audioWin
		}
		return Direction{
			VideoFrames: d.videoFrames, VideoBytes: d.videoBytes, VideoDrops: d.videoDrops,
			AudioFrames: d.audioFrames, AudioBytes: d.audioBytes, AudioDrops: d.audioDrops,
			VideoLatency: vw.summary(), AudioLatency: aw.summary(),
			VideoLatAll: d.videoLat.summary(), AudioLatAll: d.audioLat.summary(),
			VideoSinkDrops: d.videoSinkDrops, LinkKbps: d.linkKbps, AudioTargetKbps: d.audioTarget,
			VideoBad: d.videoBad, AudioBad: d.audioBad,
			AudioCodec: d.codec, AudioWireBytes: d.audioWire, DatagramErrors: d.dgErrors,
		}
	}
	cs.Out, cs.In = fill(&s.out), fill(&s.in)
	switch {
	case s.in.datagram:
		cs.In.AudioPath = "datagrams"
	case s.in.audioFrames > 0:
		cs.In.AudioPath = "stream"
	}
	if s.nsample >= 2 {
		a, b := s.samples[0], s.samples[s.nsample-1]
		if dt := b.t.Sub(a.t).Seconds(); dt > 0 {
			r := func(x, y uint64) float64 { return math.Round(float64(y-x)/dt*10) / 10 }
			cs.Out.VideoFPS = r(a.vFrames, b.vFrames)
			cs.Out.VideoKbps = r(a.vBytes*8/1000, b.vBytes*8/1000)
			cs.Out.AudioKbps = r(a.aBytes*8/1000, b.aBytes*8/1000)
			cs.In.VideoFPS = r(a.inVFrames, b.inVFrames)
			cs.In.VideoKbps = r(a.inVByte*8/1000, b.inVByte*8/1000)
			cs.In.AudioKbps = r(a.inABytes*8/1000, b.inABytes*8/1000)
		}
	}
	return cs
}
