package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// fixedExport stands in for a TLS connection's exporter: bytes 0, 1, 2 …
// whatever the label, so that the golden vector below is reproducible.
func fixedExport(label string, context []byte, n int) ([]byte, error) {
	if label != DatagramLabel || context != nil {
		return nil, errors.New("unexpected label or context")
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b, nil
}

// The golden datagram of docs/protocol.md section 11: the caller's key is
// bytes 00..1f, datagram number 2 carries audio seq 7, captured at
// 1700000000.1 s, payload "opus".
// (Checked against another ChaCha20-Poly1305 implementation, Python's
// cryptography package.)
const goldenDatagram = "01 00000002" +
	"4dcab0f0 1deafbaaf12159cd a2803c6b" +
	"a9b8a8efeea6a44d099e88715b824fba"

func TestDatagramGolden(t *testing.T) {
	seal, _, err := DatagramKeys(fixedExport, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := SealAudio(nil, seal, 2, 7, 1700000000_100000000, []byte("opus"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(goldenDatagram, " ", "")
	if hex.EncodeToString(got) != want {
		t.Fatalf("sealed\n got %x\nwant %s", got, want)
	}
	if len(got) != DatagramOverhead+4 {
		t.Fatalf("%d bytes, want overhead %d + 4", len(got), DatagramOverhead)
	}
	_, open, err := DatagramKeys(fixedExport, false) // the callee opens with the caller's key
	if err != nil {
		t.Fatal(err)
	}
	ctr, seq, ts, p, err := OpenAudio(open, got)
	if err != nil || ctr != 2 || seq != 7 || ts != 1700000000_100000000 || string(p) != "opus" {
		t.Fatalf("opened %d %d %d %q %v", ctr, seq, ts, p, err)
	}
}

func TestDatagramDirectionsDiffer(t *testing.T) {
	callerSeal, callerOpen, _ := DatagramKeys(fixedExport, true)
	calleeSeal, calleeOpen, _ := DatagramKeys(fixedExport, false)
	a, _ := SealAudio(nil, callerSeal, 0, 0, 0, []byte{1})
	b, _ := SealAudio(nil, calleeSeal, 0, 0, 0, []byte{1})
	if bytes.Equal(a, b) {
		t.Fatal("both directions seal alike: a reflected datagram would open")
	}
	if _, _, _, _, err := OpenAudio(callerOpen, bytes.Clone(a)); !errors.Is(err, ErrDatagramAuth) {
		t.Fatalf("the caller opened its own datagram: %v", err)
	}
	if _, _, _, _, err := OpenAudio(calleeOpen, bytes.Clone(a)); err != nil {
		t.Fatalf("the callee cannot open the caller's datagram: %v", err)
	}
}

func TestDatagramRefused(t *testing.T) {
	seal, _, _ := DatagramKeys(fixedExport, true)
	_, open, _ := DatagramKeys(fixedExport, false)
	good, _ := SealAudio(nil, seal, 5, 9, 42, []byte("payload"))
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	for _, c := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrDatagramShort},
		{"header only", good[:5], ErrDatagramShort},
		{"no payload", good[:DatagramOverhead], ErrDatagramShort},
		{"kind 2", flip(0)[:len(good)], ErrDatagramKind},
		{"counter changed", flip(4), ErrDatagramAuth},
		{"seq changed", flip(5), ErrDatagramAuth},
		{"payload changed", flip(len(good) - 17), ErrDatagramAuth},
		{"tag changed", flip(len(good) - 1), ErrDatagramAuth},
		{"cut short", good[:len(good)-1], ErrDatagramAuth},
	} {
		if _, _, _, _, err := OpenAudio(open, bytes.Clone(c.pkt)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := SealAudio(nil, seal, 0, 0, 0, nil); err == nil {
		t.Error("sealed an empty payload")
	}
	if _, err := SealAudio(nil, seal, 0, 0, 0, make([]byte, MaxDatagramAudio+1)); err == nil {
		t.Error("sealed a payload that would be fragmented")
	}
	if b, err := SealAudio(nil, seal, 0, 0, 0, make([]byte, MaxDatagramAudio)); err != nil || len(b) != MaxDatagram || MaxDatagram+48 != 1280 {
		t.Errorf("largest datagram: %d bytes, %v", len(b), err)
	}
}

func TestReplayWindow(t *testing.T) {
	var w ReplayWindow
	take := func(c uint32) bool {
		if !w.Fresh(c) {
			return false
		}
		w.Accept(c)
		return true
	}
	steps := []struct {
		c    uint32
		want bool
	}{
		{10, true}, {10, false}, {12, true}, {11, true}, {11, false}, {9, true},
		{200, true}, {137, true}, {136, false}, {137, false}, {12, false}, {201, true},
		{0xffffffff, true}, {0xffffffff - 63, true}, {0xffffffff - 64, false}, {201, false},
	}
	for i, s := range steps {
		if got := take(s.c); got != s.want {
			t.Fatalf("step %d: counter %d taken %v, want %v", i, s.c, got, s.want)
		}
	}
}

func FuzzOpenAudio(f *testing.F) {
	f.Add(mustHex(f, goldenDatagram))
	f.Add([]byte{1, 0, 0, 0, 0})
	_, open, _ := DatagramKeys(fixedExport, false)
	f.Fuzz(func(t *testing.T, in []byte) {
		// Nothing but the golden datagram opens; nothing panics.
		_, _, _, p, err := OpenAudio(open, bytes.Clone(in))
		if err == nil && string(p) != "opus" {
			t.Fatalf("a forged datagram opened: %x", in)
		}
	})
}

func mustHex(f *testing.F, s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		f.Fatal(err)
	}
	return b
}
