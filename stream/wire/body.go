package wire

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits inside payloads.
const (
	// MaxName is the longest Hello name, in bytes.
	MaxName = 64
	// MaxText is the longest Reject or Hangup text, in bytes.
	MaxText = 128
	// MaxAudio is the largest Audio payload: 20 ms of 48 kHz stereo s16le.
	MaxAudio = 7680
)

// Capability codes in Hello.
const (
	CodecMJPEG  = 1 // VideoCaps.Codec: one complete JPEG image per frame
	FormatS16LE = 1 // AudioCaps.Format: signed 16-bit little-endian, interleaved
)

// AudioCodec names how Audio payloads are coded (Hello.Codecs).
type AudioCodec uint8

// The audio codecs. PCM is what every box receives, listed or not.
const (
	AudioPCM  AudioCodec = 1 // the payload is PCM in the sender's announced format
	AudioOpus AudioCodec = 2 // the payload is one Opus packet (RFC 6716) of 10 or 20 ms
)

func (c AudioCodec) String() string {
	switch c {
	case AudioPCM:
		return "pcm"
	case AudioOpus:
		return "opus"
	}
	return "codec " + strconv.Itoa(int(c))
}

// MaxCodecs is the longest codec list a Hello may carry.
const MaxCodecs = 16

// Fixed payload parts.
const (
	helloFixed  = 2 + 1 + 6 + 7 // version, name length, video caps, audio caps
	helloPrefer = 4             // the optional preferred video size after the fixed part
	reasonFixed = 2             // reason code, text length
	doorFixed   = 6             // request seq, result, text length
	videoFixed  = 12            // frame number, frame size, offset
)

// Body is the payload of a message: one of Hello, Call, Answer, Busy, Reject,
// Hangup, Ping, Pong, OpenDoor, DoorAnswer, Datagrams, Video or Audio (as values). No other type can implement
// it, so a type switch over those is exhaustive.
type Body interface {
	Type() Type
	// check validates the body and returns its encoded payload length.
	check() (int, error)
	// put appends the encoded payload; only called after check succeeded.
	put(b []byte) []byte
}

// Message is one protocol message.
type Message struct {
	Seq  uint32 // per-type sequence number; each type counts on its own from 0
	Time int64  // sender's timestamp, ns since the Unix epoch on the sender's clock
	Body Body
}

// Hello is the first message each side sends: who it is and what it sends.
type Hello struct {
	Version uint16 // must be Version
	Name    string // 0..MaxName bytes of UTF-8 without control characters
	Video   VideoCaps
	Audio   AudioCaps
	// Prefer is the largest video the sender of this Hello wants to
	// receive (e.g. what its screen can decode at frame rate); zero: no
	// preference. Optional on the wire: sent only when not zero, and a
	// Hello that ends before it prefers nothing, so version 1 peers that
	// ignore it interoperate.
	Prefer VideoSize
	// Codecs lists the audio codecs the sender of this Hello can receive
	// (and send), most preferred first; at most MaxCodecs. Optional on
	// the wire (revision 1.2): it follows the preferred size, which is
	// then sent even when zero. Absent or empty: PCM only.
	Codecs []AudioCodec
	// Flags are the sender's call flags (revision 1.3), HelloRingOnly and
	// so on. Optional on the wire: one byte after the codec list, which
	// is then sent even when empty; absent means none.
	Flags uint8
}

// Hello flags (revision 1.3). Receivers ignore bits they do not know.
const (
	// HelloRingOnly asks the callee to ring and wait for someone to
	// answer even if it answers calls by itself: the caller rings a
	// group and the first person to answer takes the call.
	HelloRingOnly uint8 = 1 << 0
	// HelloDoor (revision 1.4): the sender has a door opener and takes
	// OpenDoor requests from the peer during the call. Only a peer that
	// sent it may be sent OpenDoor: an older box does not know the type.
	HelloDoor uint8 = 1 << 1
	// HelloDatagrams (revision 1.5): the sender takes the call's audio as
	// UDP datagrams on the port of this connection (docs/protocol.md,
	// section 11) and may send it that way; only a peer that sent it is
	// sent Datagrams messages.
	HelloDatagrams uint8 = 1 << 2
)

// VideoSize is a frame size in pixels.
type VideoSize struct{ Width, Height uint16 }

// VideoCaps describes the video the sender of a Hello will send.
type VideoCaps struct {
	Width, Height uint16
	FPS           uint8
	Codec         uint8 // CodecMJPEG; other values are carried, not judged
}

// AudioCaps describes the audio the sender of a Hello will send.
type AudioCaps struct {
	Rate     uint32 // samples per second per channel
	Channels uint8
	FrameMs  uint8 // length of one Audio message
	Format   uint8 // FormatS16LE; other values are carried, not judged
}

// Call asks the peer to start a call.
type Call struct{}

// Answer accepts a Call; media flows from then on.
type Answer struct{}

// Busy refuses a Call because the callee is already in one.
type Busy struct{}

// Reject refuses a Call for the given reason.
type Reject struct {
	Reason Reason
	Text   string // 0..MaxText bytes of UTF-8, for logs
}

// Hangup ends the call; the sender closes the connection after it.
type Hangup struct {
	Reason Reason
	Text   string // 0..MaxText bytes of UTF-8, for logs
}

// Ping asks for a Pong. The message time is the send time (T1).
type Ping struct{}

// Pong answers a Ping. The message time is the Pong's send time (T3).
type Pong struct {
	Ping int64 // T1: the time of the Ping, echoed
	Recv int64 // T2: when the Ping was received, responder's clock
}

// OpenDoor (revision 1.4) asks the peer, during a call, to open its door.
// It is sent only to a peer whose Hello has HelloDoor, and answered with
// one DoorAnswer. The message's seq numbers the request.
type OpenDoor struct{}

// DoorAnswer (revision 1.4) answers an OpenDoor: opened, or refused and
// why.
type DoorAnswer struct {
	Request uint32 // the seq of the OpenDoor answered
	Result  DoorResult
	Text    string // 0..MaxText bytes of UTF-8, for people and logs
}

// Video is one chunk of a JPEG frame. The message time is the frame's
// capture time, the same in all its chunks.
type Video struct {
	Frame  uint32 // frame number
	Size   uint32 // size of the whole JPEG, 1..MaxFrameSize
	Offset uint32 // where Data starts in the JPEG; Offset+len(Data) <= Size
	Data   []byte // 1..MaxChunk bytes
}

// Audio is one frame of audio in the codec the Hellos negotiated: s16le
// PCM, interleaved, or one Opus packet. The message sequence number is the
// audio frame (or packet) index; the message time is the capture time of
// the first sample. The framing checks only the length (1..MaxAudio); what
// the payload must hold depends on the codec and is the receiver's check.
type Audio struct {
	PCM []byte // the payload: 1..MaxAudio bytes (named for the original, PCM-only layout)
}

func (Hello) Type() Type      { return TypeHello }
func (Call) Type() Type       { return TypeCall }
func (Answer) Type() Type     { return TypeAnswer }
func (Busy) Type() Type       { return TypeBusy }
func (Reject) Type() Type     { return TypeReject }
func (Hangup) Type() Type     { return TypeHangup }
func (Ping) Type() Type       { return TypePing }
func (Pong) Type() Type       { return TypePong }
func (OpenDoor) Type() Type   { return TypeOpenDoor }
func (Datagrams) Type() Type  { return TypeDatagrams }
func (DoorAnswer) Type() Type { return TypeDoorAnswer }
func (Video) Type() Type      { return TypeVideo }
func (Audio) Type() Type      { return TypeAudio }

func (h Hello) check() (int, error) {
	if h.Version != Version {
		return 0, malformed(TypeHello, fmt.Sprintf("version %d, want %d", h.Version, Version))
	}
	if err := checkName(h.Name); err != nil {
		return 0, err
	}
	if len(h.Codecs) > MaxCodecs {
		return 0, malformed(TypeHello, fmt.Sprintf("%d audio codecs, limit %d", len(h.Codecs), MaxCodecs))
	}
	n := helloFixed + len(h.Name)
	if h.Prefer != (VideoSize{}) || len(h.Codecs) > 0 || h.Flags != 0 {
		n += helloPrefer
	}
	if len(h.Codecs) > 0 || h.Flags != 0 {
		n += 1 + len(h.Codecs)
	}
	if h.Flags != 0 {
		n++
	}
	return n, nil
}

func (h Hello) put(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, h.Version)
	b = append(b, byte(len(h.Name)))
	b = append(b, h.Name...)
	b = binary.BigEndian.AppendUint16(b, h.Video.Width)
	b = binary.BigEndian.AppendUint16(b, h.Video.Height)
	b = append(b, h.Video.FPS, h.Video.Codec)
	b = binary.BigEndian.AppendUint32(b, h.Audio.Rate)
	b = append(b, h.Audio.Channels, h.Audio.FrameMs, h.Audio.Format)
	if h.Prefer != (VideoSize{}) || len(h.Codecs) > 0 || h.Flags != 0 {
		b = binary.BigEndian.AppendUint16(b, h.Prefer.Width)
		b = binary.BigEndian.AppendUint16(b, h.Prefer.Height)
	}
	if len(h.Codecs) > 0 || h.Flags != 0 {
		b = append(b, byte(len(h.Codecs)))
		for _, c := range h.Codecs {
			b = append(b, byte(c))
		}
	}
	if h.Flags != 0 {
		b = append(b, h.Flags)
	}
	return b
}

func decodeHello(p []byte) (Hello, error) {
	if len(p) < 3 {
		return Hello{}, malformed(TypeHello, fmt.Sprintf("payload %d bytes, need at least %d", len(p), helloFixed))
	}
	h := Hello{Version: binary.BigEndian.Uint16(p)}
	if h.Version != Version {
		// ALPN already names the version; a different number here is a broken peer.
		return Hello{}, malformed(TypeHello, fmt.Sprintf("version %d, want %d", h.Version, Version))
	}
	n := int(p[2])
	if n > MaxName {
		return Hello{}, malformed(TypeHello, fmt.Sprintf("name length %d, limit %d", n, MaxName))
	}
	if len(p) < helloFixed+n {
		return Hello{}, malformed(TypeHello, fmt.Sprintf("payload %d bytes, need at least %d", len(p), helloFixed+n))
	}
	h.Name = string(p[3 : 3+n])
	if err := checkName(h.Name); err != nil {
		return Hello{}, err
	}
	c := p[3+n:]
	h.Video = VideoCaps{
		Width:  binary.BigEndian.Uint16(c),
		Height: binary.BigEndian.Uint16(c[2:]),
		FPS:    c[4],
		Codec:  c[5],
	}
	h.Audio = AudioCaps{
		Rate:     binary.BigEndian.Uint32(c[6:]),
		Channels: c[10],
		FrameMs:  c[11],
		Format:   c[12],
	}
	if len(c) >= 13+helloPrefer {
		h.Prefer = VideoSize{Width: binary.BigEndian.Uint16(c[13:]), Height: binary.BigEndian.Uint16(c[15:])}
	}
	if l := c[min(len(c), 13+helloPrefer):]; len(l) > 0 {
		k := int(l[0])
		if k > MaxCodecs {
			return Hello{}, malformed(TypeHello, fmt.Sprintf("%d audio codecs, limit %d", k, MaxCodecs))
		}
		if len(l) < 1+k {
			return Hello{}, malformed(TypeHello, fmt.Sprintf("audio codec list of %d runs past the payload", k))
		}
		for _, v := range l[1 : 1+k] {
			h.Codecs = append(h.Codecs, AudioCodec(v))
		}
		if f := l[1+k:]; len(f) > 0 {
			h.Flags = f[0]
		}
	}
	// Bytes after these are ignored: later minor revisions may append fields.
	return h, nil
}

// checkName rejects names that could garble a log line or a display.
func checkName(s string) error {
	if len(s) > MaxName {
		return malformed(TypeHello, fmt.Sprintf("name length %d, limit %d", len(s), MaxName))
	}
	if !utf8.ValidString(s) {
		return malformed(TypeHello, "name is not valid UTF-8")
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return malformed(TypeHello, "name contains a control character")
	}
	return nil
}

// Datagrams (revision 1.5) tells the peer whether the audio datagrams it
// sends arrive: Arriving once the first one opened, not Arriving when none
// came for a while after that. A sender sends its audio on the stream as
// well until the peer says they arrive, and again once it says they
// stopped.
type Datagrams struct {
	Arriving bool
}

func (Datagrams) check() (int, error) { return 1, nil }
func (d Datagrams) put(b []byte) []byte {
	if d.Arriving {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeDatagrams(p []byte) (Datagrams, error) {
	if len(p) != 1 || p[0] > 1 {
		return Datagrams{}, malformed(TypeDatagrams, fmt.Sprintf("payload % x, want one byte 0 or 1", p))
	}
	return Datagrams{Arriving: p[0] == 1}, nil
}

func (OpenDoor) check() (int, error) { return 0, nil }
func (OpenDoor) put(b []byte) []byte { return b }

func (d DoorAnswer) check() (int, error) {
	if _, err := checkText(TypeDoorAnswer, d.Text); err != nil {
		return 0, err
	}
	return doorFixed + len(d.Text), nil
}

func (d DoorAnswer) put(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, d.Request)
	b = append(b, byte(d.Result), byte(len(d.Text)))
	return append(b, d.Text...)
}

func decodeDoorAnswer(p []byte) (DoorAnswer, error) {
	if len(p) < doorFixed {
		return DoorAnswer{}, malformed(TypeDoorAnswer, fmt.Sprintf("payload %d bytes, need at least %d", len(p), doorFixed))
	}
	n := int(p[5])
	if n > MaxText {
		return DoorAnswer{}, malformed(TypeDoorAnswer, fmt.Sprintf("text length %d, limit %d", n, MaxText))
	}
	if len(p) != doorFixed+n {
		return DoorAnswer{}, malformed(TypeDoorAnswer, fmt.Sprintf("payload %d bytes, text length says %d", len(p), doorFixed+n))
	}
	d := DoorAnswer{Request: binary.BigEndian.Uint32(p), Result: DoorResult(p[4]), Text: string(p[doorFixed:])}
	if _, err := checkText(TypeDoorAnswer, d.Text); err != nil {
		return DoorAnswer{}, err
	}
	return d, nil
}

func (Call) check() (int, error)   { return 0, nil }
func (Answer) check() (int, error) { return 0, nil }
func (Busy) check() (int, error)   { return 0, nil }
func (Ping) check() (int, error)   { return 0, nil }
func (Call) put(b []byte) []byte   { return b }
func (Answer) put(b []byte) []byte { return b }
func (Busy) put(b []byte) []byte   { return b }
func (Ping) put(b []byte) []byte   { return b }

func (r Reject) check() (int, error) { return checkText(TypeReject, r.Text) }
func (r Hangup) check() (int, error) { return checkText(TypeHangup, r.Text) }
func (r Reject) put(b []byte) []byte { return putReason(b, r.Reason, r.Text) }
func (r Hangup) put(b []byte) []byte { return putReason(b, r.Reason, r.Text) }

func checkText(t Type, s string) (int, error) {
	if len(s) > MaxText {
		return 0, malformed(t, fmt.Sprintf("text length %d, limit %d", len(s), MaxText))
	}
	if !utf8.ValidString(s) {
		return 0, malformed(t, "text is not valid UTF-8")
	}
	return reasonFixed + len(s), nil
}

func putReason(b []byte, r Reason, text string) []byte {
	b = append(b, byte(r), byte(len(text)))
	return append(b, text...)
}

// decodeReason parses the payload shared by Reject and Hangup.
func decodeReason(t Type, p []byte) (Reason, string, error) {
	if len(p) < reasonFixed {
		return 0, "", malformed(t, fmt.Sprintf("payload %d bytes, need at least %d", len(p), reasonFixed))
	}
	n := int(p[1])
	if n > MaxText {
		return 0, "", malformed(t, fmt.Sprintf("text length %d, limit %d", n, MaxText))
	}
	if len(p) != reasonFixed+n {
		return 0, "", malformed(t, fmt.Sprintf("payload %d bytes, text length says %d", len(p), reasonFixed+n))
	}
	text := string(p[reasonFixed:])
	if _, err := checkText(t, text); err != nil {
		return 0, "", err
	}
	return Reason(p[0]), text, nil
}

func (Pong) check() (int, error) { return 16, nil }

func (p Pong) put(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(p.Ping))
	return binary.BigEndian.AppendUint64(b, uint64(p.Recv))
}

func decodePong(p []byte) (Pong, error) {
	if len(p) != 16 {
		return Pong{}, malformed(TypePong, fmt.Sprintf("payload %d bytes, want 16", len(p)))
	}
	return Pong{
		Ping: int64(binary.BigEndian.Uint64(p)),
		Recv: int64(binary.BigEndian.Uint64(p[8:])),
	}, nil
}

func (v Video) check() (int, error) {
	if err := checkVideo(v.Size, v.Offset, len(v.Data)); err != nil {
		return 0, err
	}
	return videoFixed + len(v.Data), nil
}

func checkVideo(size, off uint32, n int) error {
	switch {
	case size == 0 || size > MaxFrameSize:
		return malformed(TypeVideo, fmt.Sprintf("frame size %d out of range 1..%d", size, MaxFrameSize))
	case n == 0 || n > MaxChunk:
		return malformed(TypeVideo, fmt.Sprintf("chunk length %d out of range 1..%d", n, MaxChunk))
	case uint64(off)+uint64(n) > uint64(size): // uint64: off+n must not wrap
		return malformed(TypeVideo, fmt.Sprintf("chunk %d+%d past frame size %d", off, n, size))
	}
	return nil
}

func (v Video) put(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, v.Frame)
	b = binary.BigEndian.AppendUint32(b, v.Size)
	b = binary.BigEndian.AppendUint32(b, v.Offset)
	return append(b, v.Data...)
}

func decodeVideo(p []byte) (Video, error) {
	if len(p) < videoFixed {
		return Video{}, malformed(TypeVideo, fmt.Sprintf("payload %d bytes, need at least %d", len(p), videoFixed+1))
	}
	v := Video{
		Frame:  binary.BigEndian.Uint32(p),
		Size:   binary.BigEndian.Uint32(p[4:]),
		Offset: binary.BigEndian.Uint32(p[8:]),
		Data:   p[videoFixed:len(p):len(p)], // capped so appending to Data cannot overwrite what follows
	}
	if err := checkVideo(v.Size, v.Offset, len(v.Data)); err != nil {
		return Video{}, err
	}
	return v, nil
}

func (a Audio) check() (int, error) {
	n := len(a.PCM)
	if n == 0 || n > MaxAudio {
		return 0, malformed(TypeAudio, fmt.Sprintf("payload length %d out of range 1..%d", n, MaxAudio))
	}
	return n, nil
}

func (a Audio) put(b []byte) []byte { return append(b, a.PCM...) }

func decodeAudio(p []byte) (Audio, error) {
	a := Audio{PCM: p[:len(p):len(p)]}
	if _, err := a.check(); err != nil {
		return Audio{}, err
	}
	return a, nil
}

// ClipText makes s fit a Reject or Hangup text: invalid UTF-8 is replaced
// and the result is cut to at most MaxText bytes on a rune boundary.
func ClipText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxText {
		return s
	}
	i := MaxText
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
