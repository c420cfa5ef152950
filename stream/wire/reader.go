package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Reader reads messages from a stream, such as a TLS connection. Its buffer
// is one message long, sized for the largest message a peer may send, so
// what a peer can make it hold is bounded by MaxMessageLen. A Reader is not
// safe for concurrent use.
type Reader struct {
	r   io.Reader
	buf []byte // MaxMessageLen: holds exactly one message, so nothing queues and nothing is dropped
	err error  // sticky: after a failure the stream is no longer at a message boundary
}

// NewReader returns a Reader that reads messages from r. It reads exactly
// the bytes of each message, never ahead, so it adds no hidden queue.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r, buf: make([]byte, MaxMessageLen)}
}

// Read blocks until it has read the next whole message and returns it.
// Video.Data and Audio.PCM alias the Reader's buffer and are valid only
// until the next Read. Read returns io.EOF only when the stream ends at a
// message boundary; a message cut short is io.ErrUnexpectedEOF (wrapped). An
// oversized message or one of unknown type is refused from its header,
// without reading its payload. Invalid bytes are a *ProtocolError. After
// any error, every later Read returns the same error.
func (r *Reader) Read() (Message, error) {
	if r.err != nil {
		return Message{}, r.err
	}
	m, err := r.read()
	if err != nil {
		r.err = err
	}
	return m, err
}

func (r *Reader) read() (Message, error) {
	b := r.buf
	if _, err := io.ReadFull(r.r, b[:lenFieldLen]); err != nil {
		if err == io.EOF {
			return Message{}, io.EOF // by io.Reader convention, unwrapped
		}
		return Message{}, fmt.Errorf("wire: read length: %w", err)
	}
	l := binary.BigEndian.Uint32(b)
	if err := checkLen(l); err != nil {
		return Message{}, err
	}
	if err := r.fill(b[lenFieldLen:HeaderLen]); err != nil {
		return Message{}, fmt.Errorf("wire: read header: %w", err)
	}
	h, err := parseHeader(l, b[lenFieldLen:HeaderLen])
	if err != nil {
		return Message{}, err
	}
	p := b[HeaderLen : HeaderLen+h.n]
	if err := r.fill(p); err != nil {
		return Message{}, fmt.Errorf("wire: read %s payload: %w", h.t, err)
	}
	return decodeBody(h, p)
}

// fill reads exactly len(p) bytes inside a message, where the stream ending
// means the message was cut short.
func (r *Reader) fill(p []byte) error {
	_, err := io.ReadFull(r.r, p)
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
