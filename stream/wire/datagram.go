package wire

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Audio datagrams (revision 1.5, docs/protocol.md section 11). A call's
// audio may go as UDP datagrams beside the TLS stream, so that a lost
// packet costs that packet and not a retransmission wait for everything
// behind it. Each datagram is sealed with ChaCha20-Poly1305 under a key
// exported from the call's TLS 1.3 connection, one key per direction:
//
//	offset size
//	0      1    kind: DatagramAudio
//	1      4    counter: the sender's datagram number in this call, from 0
//	5      n    sealed: audio seq (4), capture time (8), payload; 16-byte tag
//
// The nonce is 4 zero bytes and the counter as 8 bytes, big-endian; the
// first 5 bytes are the additional data. A counter is never used twice
// under one key: a sender stops sending datagrams before it wraps.

// DatagramAudio is the kind of a datagram carrying one Audio payload.
const DatagramAudio = 1

// Datagram sizes.
const (
	datagramHead = 5  // kind, counter
	datagramBody = 12 // audio seq, capture time
	// DatagramOverhead is what a datagram adds to its audio payload.
	DatagramOverhead = datagramHead + datagramBody + chacha20poly1305.Overhead
	// MaxDatagramAudio bounds the payload a datagram carries: with the
	// overhead and IPv6 and UDP headers it stays within the 1280-byte
	// minimum MTU, so no datagram is ever fragmented. Larger payloads
	// (PCM) go on the stream.
	MaxDatagramAudio = 1280 - 40 - 8 - DatagramOverhead
	// MaxDatagram is the largest datagram a receiver need read.
	MaxDatagram = MaxDatagramAudio + DatagramOverhead
)

// DatagramLabel is the TLS exporter label the datagram keys come from
// (RFC 8446 section 7.5), with no context, 64 bytes: the first 32 key the
// caller's datagrams, the last 32 the callee's.
const DatagramLabel = "EXPORTER-callbox-audio-datagrams"

// Errors of OpenDatagram. Every datagram that fails is dropped: a receiver
// never answers one.
var (
	ErrDatagramShort = errors.New("datagram too short")
	ErrDatagramKind  = errors.New("datagram of unknown kind")
	ErrDatagramAuth  = errors.New("datagram does not authenticate")
)

// DatagramKeys makes the two directions' AEADs from the exporter of the
// call's TLS connection (tls.ConnectionState.ExportKeyingMaterial). caller
// says which side this box is: it seals with the caller's key and opens
// with the callee's, and the other way round.
func DatagramKeys(export func(label string, context []byte, length int) ([]byte, error), caller bool) (seal, open cipher.AEAD, err error) {
	k, err := export(DatagramLabel, nil, 2*chacha20poly1305.KeySize)
	if err != nil {
		return nil, nil, fmt.Errorf("datagram keys: %w", err)
	}
	defer clear(k)
	a, err := chacha20poly1305.New(k[:chacha20poly1305.KeySize])
	if err != nil {
		return nil, nil, err
	}
	b, err := chacha20poly1305.New(k[chacha20poly1305.KeySize:])
	if err != nil {
		return nil, nil, err
	}
	if caller {
		return a, b, nil
	}
	return b, a, nil
}

func datagramNonce(n *[chacha20poly1305.NonceSize]byte, counter uint32) []byte {
	*n = [chacha20poly1305.NonceSize]byte{}
	binary.BigEndian.PutUint64(n[4:], uint64(counter))
	return n[:]
}

// SealAudio appends the datagram carrying one Audio payload (seq, capture
// time t in ns since the epoch) as datagram number counter. The payload
// must be 1..MaxDatagramAudio bytes.
func SealAudio(dst []byte, aead cipher.AEAD, counter, seq uint32, t int64, payload []byte) ([]byte, error) {
	if len(payload) == 0 || len(payload) > MaxDatagramAudio {
		return dst, fmt.Errorf("datagram: audio payload of %d bytes, want 1..%d", len(payload), MaxDatagramAudio)
	}
	start := len(dst)
	dst = append(dst, DatagramAudio)
	dst = binary.BigEndian.AppendUint32(dst, counter)
	body := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t))
	dst = append(dst, payload...)
	var n [chacha20poly1305.NonceSize]byte
	return aead.Seal(dst[:body], datagramNonce(&n, counter), dst[body:], dst[start:body]), nil
}

// DatagramCounter reads the counter of a datagram before it is opened, so
// that a receiver can refuse a replay without the cost of opening it.
func DatagramCounter(pkt []byte) (uint32, error) {
	if len(pkt) < DatagramOverhead+1 {
		return 0, ErrDatagramShort
	}
	if pkt[0] != DatagramAudio {
		return 0, ErrDatagramKind
	}
	return binary.BigEndian.Uint32(pkt[1:]), nil
}

// OpenAudio opens an audio datagram in place (pkt is overwritten) and
// returns its counter, the Audio seq and capture time, and the payload,
// which aliases pkt.
func OpenAudio(aead cipher.AEAD, pkt []byte) (counter, seq uint32, t int64, payload []byte, err error) {
	counter, err = DatagramCounter(pkt)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	var n [chacha20poly1305.NonceSize]byte
	body, err := aead.Open(pkt[datagramHead:datagramHead], datagramNonce(&n, counter), pkt[datagramHead:], pkt[:datagramHead])
	if err != nil {
		return 0, 0, 0, nil, ErrDatagramAuth
	}
	return counter, binary.BigEndian.Uint32(body), int64(binary.BigEndian.Uint64(body[4:])), body[datagramBody:], nil
}

// ReplayWindow refuses datagram counters seen before or too old: it keeps
// the highest counter accepted and which of the 64 below it were (RFC 6479
// in its simplest form). The zero value accepts anything first.
type ReplayWindow struct {
	top  uint32
	seen uint64 // bit i: top-i was accepted
	any  bool
}

// Fresh says whether counter is new and inside the window. It does not
// mark it: call Accept once the datagram has opened.
func (w *ReplayWindow) Fresh(counter uint32) bool {
	if !w.any || counter > w.top {
		return true
	}
	d := w.top - counter
	return d < 64 && w.seen&(1<<d) == 0
}

// Accept marks counter as seen; it must be Fresh.
func (w *ReplayWindow) Accept(counter uint32) {
	switch {
	case !w.any:
		w.any, w.top, w.seen = true, counter, 1
	case counter > w.top:
		d := counter - w.top
		if d >= 64 {
			w.seen = 0
		} else {
			w.seen <<= d
		}
		w.seen |= 1
		w.top = counter
	default:
		w.seen |= 1 << (w.top - counter)
	}
}
