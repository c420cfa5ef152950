package wire

import (
	"bytes"
	"testing"
)

func videoChunk() Message {
	return Message{Seq: 1, Time: t1, Body: Video{Frame: 1, Size: 4 * MaxChunk, Offset: MaxChunk,
		Data: bytes.Repeat([]byte{0x5a}, MaxChunk)}}
}

func BenchmarkAppendVideo(b *testing.B) {
	m := videoChunk()
	buf := make([]byte, 0, MaxMessageLen)
	b.SetBytes(MaxMessageLen)
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaderVideo(b *testing.B) {
	msg, err := Append(nil, videoChunk())
	if err != nil {
		b.Fatal(err)
	}
	r := NewReader(&endless{b: msg})
	b.SetBytes(MaxMessageLen)
	for b.Loop() {
		if _, err := r.Read(); err != nil {
			b.Fatal(err)
		}
	}
}

// endless repeats b forever, so the Reader sees an unending stream of
// whole messages.
type endless struct {
	b []byte
	i int
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.b[e.i:])
	e.i = (e.i + n) % len(e.b)
	return n, nil
}
