// Package wire frames and parses the messages of the callbox call protocol
// (version 1, ALPN "callbox/1"): a stream of length-prefixed messages with hard
// per-type size limits. It only turns bytes into values and back; it knows
// nothing of TLS, sockets or call state. docs/protocol.md specifies the bytes.
package wire

import (
	"errors"
	"strconv"
)

const (
	// ALPN is the TLS application protocol name of this protocol version.
	ALPN = "callbox/1"
	// Version is the protocol version carried in Hello.
	Version = 1
	// HeaderLen is the size of the message header, including the length field.
	HeaderLen = 18
	// MaxChunk is the largest amount of JPEG data in one video chunk.
	MaxChunk = 16384
	// MaxFrameSize is the largest JPEG frame a video chunk may belong to.
	MaxFrameSize = 8 << 20
	// MaxMessageLen is the largest encoded message of any type (a full video
	// chunk), header included: the most a Reader ever buffers.
	MaxMessageLen = HeaderLen + videoFixed + MaxChunk

	// lenFieldLen is the size of the length field; the length counts the
	// bytes after it.
	lenFieldLen = 4
	// minLen is the smallest valid value of the length field: the rest of
	// the header with an empty payload.
	minLen = HeaderLen - lenFieldLen
)

// Type identifies a message and its payload layout.
type Type uint8

// Message types of protocol version 1.
const (
	TypeHello  Type = 1
	TypeCall   Type = 2
	TypeAnswer Type = 3
	TypeBusy   Type = 4
	TypeReject Type = 5
	TypeHangup Type = 6
	TypePing   Type = 7
	TypePong   Type = 8
	// TypeOpenDoor and TypeDoorAnswer (revision 1.4) ask the peer in a
	// call to open its door and answer that. They go only to a peer whose
	// Hello carries HelloDoor: an older box does not know them and ends
	// the call on an unknown type.
	TypeOpenDoor   Type = 9
	TypeDoorAnswer Type = 10
	// TypeDatagrams (revision 1.5) tells the peer whether its audio
	// datagrams arrive (see Datagrams). It goes only to a peer whose Hello
	// carries HelloDatagrams.
	TypeDatagrams Type = 11
	TypeVideo     Type = 16
	TypeAudio     Type = 17
)

// String returns the lower-case name of t, or "type N" for unknown types.
func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeCall:
		return "call"
	case TypeAnswer:
		return "answer"
	case TypeBusy:
		return "busy"
	case TypeReject:
		return "reject"
	case TypeHangup:
		return "hangup"
	case TypePing:
		return "ping"
	case TypePong:
		return "pong"
	case TypeOpenDoor:
		return "open door"
	case TypeDoorAnswer:
		return "door answer"
	case TypeDatagrams:
		return "datagrams"
	case TypeVideo:
		return "video"
	case TypeAudio:
		return "audio"
	}
	return "type " + strconv.Itoa(int(t))
}

// MaxPayload returns the largest payload a message of type t may carry, and
// false if t is not a known type.
func MaxPayload(t Type) (int, bool) {
	switch t {
	case TypeHello:
		return 512, true
	case TypeCall, TypeAnswer, TypeBusy, TypePing, TypeOpenDoor:
		return 0, true
	case TypeReject, TypeHangup:
		return reasonFixed + MaxText, true
	case TypeDoorAnswer:
		return doorFixed + MaxText, true
	case TypePong:
		return 16, true
	case TypeDatagrams:
		return 1, true
	case TypeVideo:
		return videoFixed + MaxChunk, true
	case TypeAudio:
		return MaxAudio, true
	}
	return 0, false
}

// Reason says why a call was rejected or hung up. Unknown codes are carried
// as their number.
type Reason uint8

// Reason codes of protocol version 1.
const (
	ReasonUnspecified Reason = 0
	ReasonNormal      Reason = 1 // the user hung up
	ReasonBusy        Reason = 2
	ReasonDeclined    Reason = 3
	ReasonTimeout     Reason = 4 // no answer
	ReasonShutdown    Reason = 5 // the daemon is stopping
	ReasonProtocol    Reason = 6 // the peer sent something invalid
	ReasonMedia       Reason = 7 // a camera, microphone or speaker failed
	// ReasonElsewhere (revision 1.3): a group call was answered by another
	// box of the group; the caller hangs up on the ones still ringing.
	ReasonElsewhere Reason = 8
)

// String returns a short lower-case description of r, or "reason N" for
// unknown codes.
func (r Reason) String() string {
	switch r {
	case ReasonUnspecified:
		return "unspecified"
	case ReasonNormal:
		return "normal"
	case ReasonBusy:
		return "busy"
	case ReasonDeclined:
		return "declined"
	case ReasonTimeout:
		return "timeout"
	case ReasonShutdown:
		return "shutdown"
	case ReasonProtocol:
		return "protocol error"
	case ReasonMedia:
		return "media error"
	case ReasonElsewhere:
		return "answered elsewhere"
	}
	return "reason " + strconv.Itoa(int(r))
}

// DoorResult is what a box answers a request to open its door
// (revision 1.4): DoorOpened, or why it refused. Unknown codes are
// refusals, carried as their number.
type DoorResult uint8

// Door results.
const (
	DoorOpened     DoorResult = 0 // the door's relay is pulsed
	DoorBusy       DoorResult = 1 // refused: a pulse is under way
	DoorTooSoon    DoorResult = 2 // refused: inside the minimum gap after the last pulse
	DoorNotAllowed DoorResult = 3 // refused: the box takes no request from this peer now (its config, no call)
	DoorFault      DoorResult = 4 // refused: the relay's line failed
	DoorNone       DoorResult = 5 // refused: the box has no door opener
)

// String returns a short lower-case description of r, or "result N" for
// unknown codes.
func (r DoorResult) String() string {
	switch r {
	case DoorOpened:
		return "opened"
	case DoorBusy:
		return "busy"
	case DoorTooSoon:
		return "too soon"
	case DoorNotAllowed:
		return "not allowed"
	case DoorFault:
		return "fault"
	case DoorNone:
		return "no door"
	}
	return "result " + strconv.Itoa(int(r))
}

// Sentinel errors, always returned inside a *ProtocolError.
var (
	// ErrTooLarge: the length field exceeds the limit of the message type.
	ErrTooLarge = errors.New("message too large")
	// ErrUnknownType: the type byte names no type of this version.
	ErrUnknownType = errors.New("unknown message type")
	// ErrMalformed: anything else about the bytes is invalid.
	ErrMalformed = errors.New("malformed message")
)

// ProtocolError reports invalid bytes from the peer (or an invalid message
// given to Append). A call that gets one ends with ReasonProtocol.
type ProtocolError struct {
	Type   Type   // type of the offending message; 0 if not yet known
	Err    error  // ErrTooLarge, ErrUnknownType or ErrMalformed
	Detail string // what exactly was wrong, for logs; may be empty
}

func (e *ProtocolError) Error() string {
	s := "wire: "
	if e.Type != 0 || e.Err == ErrUnknownType {
		s += e.Type.String() + ": "
	}
	if e.Detail != "" {
		s += e.Detail + ": "
	}
	return s + e.Err.Error()
}

func (e *ProtocolError) Unwrap() error { return e.Err }

func malformed(t Type, detail string) error {
	return &ProtocolError{Type: t, Err: ErrMalformed, Detail: detail}
}
