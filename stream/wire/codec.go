package wire

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Append appends the encoded message to dst. It validates everything Decode
// validates (limits, UTF-8, even PCM, chunk bounds...) and, if m is invalid,
// returns a *ProtocolError and dst unchanged.
func Append(dst []byte, m Message) ([]byte, error) {
	if m.Body == nil {
		return dst, malformed(0, "message without body")
	}
	n, err := m.Body.check()
	if err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, HeaderLen+n)
	dst = binary.BigEndian.AppendUint32(dst, uint32(minLen+n))
	dst = append(dst, byte(m.Body.Type()), 0) // flags: always 0 in version 1
	dst = binary.BigEndian.AppendUint32(dst, m.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Time))
	return m.Body.put(dst), nil
}

// Decode parses exactly one whole message, starting with the length field.
// Byte slices in the result (Video.Data, Audio.PCM) alias b. Bytes missing
// or left over after the message are ErrMalformed. Decode never panics, and
// allocates nothing that depends on the length field: only the message
// value and the Hello name or Reject/Hangup text.
func Decode(b []byte) (Message, error) {
	if len(b) < lenFieldLen {
		return Message{}, malformed(0, fmt.Sprintf("truncated: %d bytes", len(b)))
	}
	l := binary.BigEndian.Uint32(b)
	if err := checkLen(l); err != nil {
		return Message{}, err
	}
	if len(b) < HeaderLen {
		return Message{}, malformed(0, fmt.Sprintf("truncated header: %d bytes", len(b)))
	}
	h, err := parseHeader(l, b[lenFieldLen:HeaderLen])
	if err != nil {
		return Message{}, err
	}
	if p := len(b) - HeaderLen; p != h.n {
		return Message{}, malformed(h.t, fmt.Sprintf("have %d payload bytes, length says %d", p, h.n))
	}
	return decodeBody(h, b[HeaderLen:])
}

// header is the part of a message before its payload.
type header struct {
	t    Type
	n    int // payload length, within the limit of t
	seq  uint32
	time int64
}

// checkLen rejects a length field too small to hold the header.
func checkLen(l uint32) error {
	if l < minLen {
		return malformed(0, fmt.Sprintf("length %d below header size %d", l, minLen))
	}
	return nil
}

// parseHeader checks the header bytes after the length field (already
// accepted by checkLen) before any of the payload is looked at, so that an
// oversized or unknown message is refused without reading or buffering it.
func parseHeader(l uint32, b []byte) (header, error) {
	t := Type(b[0])
	limit, ok := MaxPayload(t)
	if !ok {
		return header{}, &ProtocolError{Type: t, Err: ErrUnknownType}
	}
	n := l - minLen
	if limit == 0 && n > 0 {
		// The empty messages are defined to have no payload at all; a
		// payload is a malformed message rather than an oversized one.
		return header{}, malformed(t, fmt.Sprintf("payload %d bytes, want none", n))
	}
	if n > uint32(limit) {
		return header{}, &ProtocolError{Type: t, Err: ErrTooLarge,
			Detail: fmt.Sprintf("payload %d bytes, limit %d", n, limit)}
	}
	if f := b[1]; f != 0 {
		return header{}, malformed(t, fmt.Sprintf("flags %#02x, want 0", f))
	}
	return header{
		t:    t,
		n:    int(n),
		seq:  binary.BigEndian.Uint32(b[2:]),
		time: int64(binary.BigEndian.Uint64(b[6:])),
	}, nil
}

// decodeBody parses the payload p of a message whose header is h;
// len(p) == h.n.
func decodeBody(h header, p []byte) (Message, error) {
	var body Body
	var err error
	switch h.t {
	case TypeHello:
		body, err = decodeHello(p)
	case TypeCall, TypeAnswer, TypeBusy, TypePing, TypeOpenDoor:
		// parseHeader already refused a payload; nothing left to check.
		body = emptyBody(h.t)
	case TypeReject:
		var r Reject
		r.Reason, r.Text, err = decodeReason(h.t, p)
		body = r
	case TypeHangup:
		var r Hangup
		r.Reason, r.Text, err = decodeReason(h.t, p)
		body = r
	case TypePong:
		body, err = decodePong(p)
	case TypeDoorAnswer:
		body, err = decodeDoorAnswer(p)
	case TypeDatagrams:
		body, err = decodeDatagrams(p)
	case TypeVideo:
		body, err = decodeVideo(p)
	case TypeAudio:
		body, err = decodeAudio(p)
	default: // unreachable while MaxPayload and this switch agree
		err = &ProtocolError{Type: h.t, Err: ErrUnknownType}
	}
	if err != nil {
		return Message{}, err
	}
	return Message{Seq: h.seq, Time: h.time, Body: body}, nil
}

func emptyBody(t Type) Body {
	switch t {
	case TypeCall:
		return Call{}
	case TypeAnswer:
		return Answer{}
	case TypeBusy:
		return Busy{}
	case TypeOpenDoor:
		return OpenDoor{}
	}
	return Ping{}
}
