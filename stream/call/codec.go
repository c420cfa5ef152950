package call

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/opus"
	"github.com/callbox/callbox/stream/wire"
)

// Audio codec negotiation (docs/protocol.md, Hello): each box lists the
// codecs it can receive and send, preferred first. A sender sends the first
// codec of the receiver's list that is also on its own list, else PCM,
// which every box takes. Both ends work out both directions alike from the
// two lists, so no further message is needed.

// DefaultCodecs is what a Config without Codecs offers: Opus, then PCM,
// when this build has Opus; PCM alone otherwise.
func DefaultCodecs() []wire.AudioCodec {
	if opus.Available() {
		return []wire.AudioCodec{wire.AudioOpus, wire.AudioPCM}
	}
	return []wire.AudioCodec{wire.AudioPCM}
}

// pickCodec is what a sender listing send sends to a receiver listing recv.
func pickCodec(recv, send []wire.AudioCodec) wire.AudioCodec {
	for _, c := range recv {
		if slices.Contains(send, c) && (c == wire.AudioPCM || c == wire.AudioOpus) {
			return c
		}
	}
	return wire.AudioPCM
}

// peerCodecs is what a peer's hello lists, PCM for a peer that lists none
// (revision 1.1 and older).
func peerCodecs(h wire.Hello) []wire.AudioCodec {
	if len(h.Codecs) == 0 {
		return []wire.AudioCodec{wire.AudioPCM}
	}
	return h.Codecs
}

// packer turns captured frames into Audio payloads for one session: PCM
// as it is, or Opus packets of several frames. Safe for concurrent use
// (the capture goroutine calls it; the session closes it).
type packer struct {
	mu    sync.Mutex
	codec wire.AudioCodec
	f     media.AudioFormat
	enc   *opus.Encoder // Opus only
	per   int           // capture frames per packet
	buf   []int16       // the packet's samples so far
	n     int           // frames in buf
	seq   uint32        // seq of buf's first frame
	t     time.Time     // capture time of buf's first sample
	shut  bool          // closed: frames are dropped quietly
	// The seq sent last, and what is added to the device's count so that
	// the session's seq never goes back: a microphone that re-opened in
	// the call counts from 0 again, and the peer would drop its packets
	// as old ones until the count caught up.
	last  uint32
	shift uint32
	sent  bool
	// want is the Opus target the session's writer asks for (bits per
	// second; see audioRate), applied before the next packet is coded;
	// rate is the one in use.
	want atomic.Int32
	rate int
	// ctl picks the target from the link (nil: fixed); the session's
	// writer owns it.
	ctl *audioRate
}

// setBitrate asks for an Opus target from the next packet on (any
// goroutine; the capture goroutine applies it). PCM ignores it.
func (p *packer) setBitrate(bps int) {
	if p != nil && p.enc != nil {
		p.want.Store(int32(bps))
	}
}

// outSeq is the seq to send for the packet the device numbered s: s
// moved on by the shift, and past the last one sent if the device's
// count went back.
func (p *packer) outSeq(s uint32) uint32 {
	o := s + p.shift
	if p.sent && int32(o-p.last) <= 0 {
		p.shift += p.last + 1 - o
		o = p.last + 1
	}
	p.last, p.sent = o, true
	return o
}

// newPacker makes the sender's half of codec c for frames in format f;
// low is the Opus target while the link holds the video back (0: fixed).
func newPacker(c wire.AudioCodec, f media.AudioFormat, oc opus.Config, packetMs, low int) (*packer, error) {
	p := &packer{codec: c, f: f, per: 1}
	if c != wire.AudioOpus {
		return p, nil
	}
	if packetMs%f.FrameMs != 0 {
		return nil, fmt.Errorf("opus packets of %d ms are not whole %d ms frames", packetMs, f.FrameMs)
	}
	p.per = packetMs / f.FrameMs
	oc.Format = media.AudioFormat{Rate: f.Rate, Channels: f.Channels, FrameMs: packetMs}
	enc, err := opus.NewEncoder(oc)
	if err != nil {
		return nil, err
	}
	p.rate = enc.Config().Bitrate
	if low > 0 && low < p.rate {
		p.ctl = newAudioRate(p.rate, low)
	}
	p.enc, p.buf = enc, make([]int16, p.per*f.FrameLen())
	return p, nil
}

// errPartial means the frame went into a packet still being filled.
var errPartial = errors.New("packet not complete")

// add takes one captured frame and returns the next payload with its seq
// and capture time, or errPartial while an Opus packet fills. A gap in the
// frames' seq abandons a part-filled packet; packets start on frames whose
// seq is a multiple of the packet's frame count, so that a packet's seq is
// its first frame's divided by that count and gaps carry over.
func (p *packer) add(a media.Audio) ([]byte, uint32, time.Time, error) {
	if len(a.Samples) != p.f.FrameLen() {
		return nil, 0, time.Time{}, fmt.Errorf("a captured frame of %d samples, want %d", len(a.Samples), p.f.FrameLen())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.codec != wire.AudioOpus {
		b := make([]byte, 0, 2*len(a.Samples))
		for _, v := range a.Samples {
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		}
		return b, p.outSeq(a.Seq), a.Time, nil
	}
	if p.shut {
		return nil, 0, time.Time{}, errPartial // the session is ending: nothing to send
	}
	if p.n > 0 && a.Seq != p.seq+uint32(p.n) {
		p.n = 0
	}
	if p.n == 0 {
		if a.Seq%uint32(p.per) != 0 {
			return nil, 0, time.Time{}, errPartial
		}
		p.seq, p.t = a.Seq, a.Time
	}
	fl := p.f.FrameLen()
	copy(p.buf[p.n*fl:], a.Samples)
	if p.n++; p.n < p.per {
		return nil, 0, time.Time{}, errPartial
	}
	p.n = 0
	if w := int(p.want.Load()); w != 0 && w != p.rate {
		p.rate = w // asked once: a refusal costs one packet and is reported; the next go at the old rate
		if err := p.enc.SetBitrate(w); err != nil {
			return nil, 0, time.Time{}, err
		}
	}
	b, err := p.enc.Encode(make([]byte, 0, 256), p.buf)
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	return b, p.outSeq(p.seq / uint32(p.per)), p.t, nil
}

func (p *packer) close() {
	if p == nil || p.enc == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shut = true
	p.enc.Close()
}

// maxPacketMs bounds the audio one Opus packet may hold.
const maxPacketMs = 60

// unpacker turns the peer's Audio payloads into frames of our format for
// one session (the reader goroutine), and conceals for the playout buffer
// (its goroutine) through the decoder, which has a lock of its own.
type unpacker struct {
	codec wire.AudioCodec
	f     media.AudioFormat // ours: what the playout buffer plays
	in    int               // PCM: bytes in one of the peer's frames
	dec   *opus.Decoder     // Opus only
	pcm   []int16           // decode scratch
	// A frame of ours being put together from shorter messages.
	pend    []int16
	pendN   int // messages in pend
	pendSeq uint32
	pendT   time.Time
	// pendConcealed: some of pend was made up for lost audio.
	pendConcealed bool
	// The last Opus packet decoded: its seq and samples per channel.
	haveLast bool
	lastSeq  uint32
	lastN    int
	// arrived is when the packet being unpacked reached us: each frame
	// handed on carries it (media.Audio.Arrived).
	arrived time.Time
}

// newUnpacker makes the receiver's half of codec c; peer is the format the
// peer announced, ours what we play.
func newUnpacker(c wire.AudioCodec, peer, ours media.AudioFormat) (*unpacker, error) {
	u := &unpacker{codec: c, f: ours, pend: make([]int16, ours.FrameLen())}
	if c != wire.AudioOpus {
		if peer.Rate != ours.Rate || peer.Channels != ours.Channels {
			return nil, fmt.Errorf("PCM of %d Hz × %d ch, we play %d Hz × %d ch", peer.Rate, peer.Channels, ours.Rate, ours.Channels)
		}
		if err := peer.Validate(); err != nil {
			return nil, err
		}
		if !fits(peer.FrameLen(), ours.FrameLen()) {
			return nil, fmt.Errorf("PCM frames of %d ms do not make %d ms frames", peer.FrameMs, ours.FrameMs)
		}
		u.in = 2 * peer.FrameLen()
		return u, nil
	}
	dec, err := opus.NewDecoder(ours)
	if err != nil {
		return nil, err
	}
	u.dec, u.pcm = dec, make([]int16, ours.Rate*maxPacketMs/1000*ours.Channels)
	return u, nil
}

// fits says whether messages of n values make frames of fl values: whole
// frames, or whole fractions of one.
func fits(n, fl int) bool { return n > 0 && (n%fl == 0 || fl%n == 0) }

// maxGapConceal bounds how many lost Opus packets in a row frames makes
// up from the decoder (60 ms of 20 ms packets): a longer gap is a stall,
// which the playout buffer's own concealment and ramp handle.
const maxGapConceal = 3

// frames decodes one payload and hands emit the frames it completes, with
// seq counted in our frames and their capture times. Opus packets lost
// just before it (a gap in seq of up to maxGapConceal) are first made up
// by the decoder's concealment, so the audio keeps its timeline and the
// decoder its state. A payload that is not what the codec allows is an
// error: the caller counts it as bad media.
func (u *unpacker) frames(seq uint32, t time.Time, payload []byte, emit func(media.Audio)) error {
	if u.codec == wire.AudioOpus {
		if miss := seq - u.lastSeq - 1; u.haveLast && miss > 0 && miss <= maxGapConceal && u.lastN > 0 {
			dur := time.Duration(u.lastN) * time.Second / time.Duration(u.f.Rate)
			for i := range miss {
				n, err := u.dec.DecodeAny(u.pcm[:u.lastN*u.f.Channels], nil)
				if err != nil || n != u.lastN {
					break
				}
				u.emit(u.lastSeq+1+i, t.Add(-time.Duration(miss-i)*dur), u.pcm[:n*u.f.Channels], true, emit)
			}
		}
		n, err := u.dec.DecodeAny(u.pcm, payload)
		if err != nil {
			return err
		}
		s := u.pcm[:n*u.f.Channels]
		if !fits(len(s), len(u.pend)) {
			return fmt.Errorf("an Opus packet of %d samples", n)
		}
		u.haveLast, u.lastSeq, u.lastN = true, seq, n
		u.emit(seq, t, s, false, emit)
		return nil
	}
	if len(payload) != u.in {
		return fmt.Errorf("%d bytes of PCM, want %d", len(payload), u.in)
	}
	s := make([]int16, len(payload)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(payload[2*i:]))
	}
	u.emit(seq, t, s, false, emit)
	return nil
}

// emit cuts the samples s of message seq into frames of ours, or gathers
// them into one, and hands each complete frame to emit.
func (u *unpacker) emit(seq uint32, t time.Time, s []int16, concealed bool, emit func(media.Audio)) {
	fl, dur := len(u.pend), u.f.FrameDuration()
	if len(s) >= fl {
		k := len(s) / fl
		for i := range k {
			fr := s[i*fl : (i+1)*fl]
			if u.codec == wire.AudioOpus {
				fr = slices.Clone(fr) // s is the decoder's scratch
			}
			emit(media.Audio{Seq: seq*uint32(k) + uint32(i), Time: t.Add(time.Duration(i) * dur), Samples: fr, Concealed: concealed, Arrived: u.arrived})
		}
		return
	}
	k := fl / len(s)
	idx, fs := int(seq%uint32(k)), seq/uint32(k)
	if idx == 0 {
		u.pendN, u.pendSeq, u.pendT, u.pendConcealed = 0, fs, t, false
	} else if u.pendN != idx || u.pendSeq != fs {
		u.pendN = 0 // a gap: the part-built frame is lost with it
		return
	}
	copy(u.pend[idx*len(s):], s)
	u.pendConcealed = u.pendConcealed || concealed
	if u.pendN++; u.pendN == k {
		u.pendN = 0
		emit(media.Audio{Seq: fs, Time: u.pendT, Samples: slices.Clone(u.pend), Concealed: u.pendConcealed, Arrived: u.arrived})
	}
}

// Conceal makes up one frame of our format from the decoder's packet-loss
// concealment (a playout.Concealer). Without a decoder, or on an error,
// dst is silent.
func (u *unpacker) Conceal(dst []int16) {
	if u.dec == nil {
		clear(dst)
		return
	}
	if _, err := u.dec.DecodeAny(dst, nil); err != nil {
		clear(dst)
	}
}

func (u *unpacker) close() {
	if u != nil && u.dec != nil {
		u.dec.Close()
	}
}

// Concealer makes up audio for a gap in the peer's audio (see
// stream/playout.Concealer, which has the same method).
type Concealer interface {
	Conceal(dst []int16)
}

// ConcealingSink is a Sink that can fill the gaps in what it plays: a
// session whose codec can conceal (Opus) sets its Concealer when the call's
// audio starts and drops it when the session ends.
type ConcealingSink interface {
	Sink
	SetConcealer(c Concealer)
	// DropConcealer removes c only if it is the one set.
	DropConcealer(c Concealer)
}
