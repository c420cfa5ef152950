package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics, that whatever it accepts
// re-encodes to the same bytes, and that a Reader agrees with it.
func FuzzDecode(f *testing.F) {
	for _, c := range cases {
		b := unhex(f, c.hex)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, c := range bad {
		f.Add(unhex(f, c.hex))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Decode(in)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("Decode error %v is not a *ProtocolError", err)
			}
			return
		}
		out, err := Append(nil, m)
		if err != nil {
			t.Fatalf("Append of decoded %#v: %v", m, err)
		}
		if !bytes.Equal(out, canonical(in, m)) {
			t.Fatalf("re-encoded differs:\n  in %x\n out %x", in, out)
		}
		r := NewReader(bytes.NewReader(in))
		got, err := r.Read()
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("Reader disagrees with Decode: %#v, %v; want %#v", got, err, m)
		}
		if _, err := r.Read(); err != io.EOF {
			t.Fatalf("Reader after the only message: %v, want io.EOF", err)
		}
	})
}

// canonical returns in as Append would write the message it decodes to m:
// the same bytes, except that Hello drops the trailing bytes that version 1
// ignores (and a preferred size of 0x0 without a codec list, which means
// none, and an empty codec list without flags).
func canonical(in []byte, m Message) []byte {
	h, ok := m.Body.(Hello)
	if !ok {
		return in
	}
	n := HeaderLen + helloFixed + len(h.Name)
	if h.Prefer != (VideoSize{}) || len(h.Codecs) > 0 || h.Flags != 0 {
		n += helloPrefer
	}
	if len(h.Codecs) > 0 || h.Flags != 0 {
		n += 1 + len(h.Codecs)
	}
	if h.Flags != 0 {
		n++
	}
	out := bytes.Clone(in[:n])
	binary.BigEndian.PutUint32(out, uint32(n-lenFieldLen))
	return out
}
