package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// Timestamps used in the golden vectors (ns since the Unix epoch).
const (
	t1 = 1700000000123456789 // 0x17979cfe3d85cd15
	t2 = 1700000000173456789 // 0x17979cfe4080bd95
	t3 = 1700000000223456789 // 0x17979cfe437bae15
)

// cases are the golden vectors: each message and its exact encoding, written
// by hand from docs/protocol.md (spaces in hex are for reading only). They
// drive Append, Decode, Reader and the fuzz seeds.
var cases = []struct {
	name string
	msg  Message
	hex  string
}{
	{
		"hello empty name",
		Message{Body: Hello{Version: 1,
			Video: VideoCaps{Width: 640, Height: 480, FPS: 30, Codec: CodecMJPEG},
			Audio: AudioCaps{Rate: 48000, Channels: 1, FrameMs: 10, Format: FormatS16LE}}},
		"0000001e 01 00 00000000 0000000000000000" +
			"0001 00 0280 01e0 1e 01 0000bb80 01 0a 01",
	},
	{
		"hello unicode name stereo",
		Message{Time: t1, Body: Hello{Version: 1, Name: "Tür vorne 🚪",
			Video: VideoCaps{Width: 1280, Height: 720, FPS: 15, Codec: CodecMJPEG},
			Audio: AudioCaps{Rate: 16000, Channels: 2, FrameMs: 20, Format: FormatS16LE}}},
		"0000002d 01 00 00000000 17979cfe3d85cd15" +
			"0001 0f 54c3bc7220766f726e6520f09f9aaa 0500 02d0 0f 01 00003e80 02 14 01",
	},
	{
		"hello max name unknown codec and format",
		Message{Seq: 1, Body: Hello{Version: 1, Name: strings.Repeat("a", MaxName),
			Video: VideoCaps{Width: 4096, Height: 4096, FPS: 60, Codec: 7},
			Audio: AudioCaps{Rate: 8000, Channels: 1, FrameMs: 20, Format: 9}}},
		"0000005e 01 00 00000001 0000000000000000" +
			"0001 40" + strings.Repeat("61", MaxName) + "1000 1000 3c 07 00001f40 01 14 09",
	},
	{
		"hello preferring 640x480",
		Message{Body: Hello{Version: 1, Name: "door",
			Video:  VideoCaps{Width: 1280, Height: 720, FPS: 30, Codec: CodecMJPEG},
			Audio:  AudioCaps{Rate: 48000, Channels: 1, FrameMs: 10, Format: FormatS16LE},
			Prefer: VideoSize{Width: 640, Height: 480}}},
		"00000026 01 00 00000000 0000000000000000" +
			"0001 04 646f6f72 0500 02d0 1e 01 0000bb80 01 0a 01 0280 01e0",
	},
	{
		// Revision 1.2: receives Opus (preferred) and PCM; no preferred
		// size, so 0x0 stands before the list.
		"hello with opus and pcm",
		Message{Time: t1, Body: Hello{Version: 1, Name: "door",
			Video:  VideoCaps{Width: 640, Height: 480, FPS: 30, Codec: CodecMJPEG},
			Audio:  AudioCaps{Rate: 48000, Channels: 1, FrameMs: 10, Format: FormatS16LE},
			Codecs: []AudioCodec{AudioOpus, AudioPCM}}},
		"00000029 01 00 00000000 17979cfe3d85cd15" +
			"0001 04 646f6f72 0280 01e0 1e 01 0000bb80 01 0a 01 0000 0000 02 02 01",
	},
	{
		"hello preferring 640x480 with opus only",
		Message{Body: Hello{Version: 1, Name: "",
			Video:  VideoCaps{Width: 1280, Height: 720, FPS: 30, Codec: CodecMJPEG},
			Audio:  AudioCaps{Rate: 16000, Channels: 1, FrameMs: 20, Format: FormatS16LE},
			Prefer: VideoSize{Width: 640, Height: 480},
			Codecs: []AudioCodec{AudioOpus}}},
		"00000024 01 00 00000000 0000000000000000" +
			"0001 00 0500 02d0 1e 01 00003e80 01 14 01 0280 01e0 01 02",
	},
	{
		// Revision 1.3: a caller ringing a group (ring only), PCM only,
		// so an empty codec list stands before the flags.
		"hello ringing a group",
		Message{Time: t1, Body: Hello{Version: 1, Name: "door",
			Video: VideoCaps{Width: 640, Height: 480, FPS: 30, Codec: CodecMJPEG},
			Audio: AudioCaps{Rate: 48000, Channels: 1, FrameMs: 10, Format: FormatS16LE},
			Flags: HelloRingOnly}},
		"00000028 01 00 00000000 17979cfe3d85cd15" +
			"0001 04 646f6f72 0280 01e0 1e 01 0000bb80 01 0a 01 0000 0000 00 01",
	},
	{
		// Revision 1.4: a door box that takes requests to open its door
		// (call flags bit 1) and receives Opus then PCM.
		"hello with a door",
		Message{Time: t1, Body: Hello{Version: 1, Name: "door",
			Video:  VideoCaps{Width: 640, Height: 480, FPS: 30, Codec: CodecMJPEG},
			Audio:  AudioCaps{Rate: 48000, Channels: 1, FrameMs: 10, Format: FormatS16LE},
			Codecs: []AudioCodec{AudioOpus, AudioPCM},
			Flags:  HelloDoor}},
		"0000002a 01 00 00000000 17979cfe3d85cd15" +
			"0001 04 646f6f72 0280 01e0 1e 01 0000bb80 01 0a 01 0000 0000 02 02 01 02",
	},
	{"call", Message{Time: t1, Body: Call{}}, "0000000e 02 00 00000000 17979cfe3d85cd15"},
	{"answer", Message{Time: t3, Body: Answer{}}, "0000000e 03 00 00000000 17979cfe437bae15"},
	{"busy", Message{Body: Busy{}}, "0000000e 04 00 00000000 0000000000000000"},
	{
		"reject without text",
		Message{Time: t1, Body: Reject{Reason: ReasonDeclined}},
		"00000010 05 00 00000000 17979cfe3d85cd15 03 00",
	},
	{
		"reject with text",
		Message{Seq: 1, Time: t1, Body: Reject{Reason: ReasonBusy, Text: "in a call"}},
		"00000019 05 00 00000001 17979cfe3d85cd15 02 09 696e20612063616c6c",
	},
	{
		"hangup max text",
		Message{Time: t1, Body: Hangup{Reason: ReasonNormal, Text: strings.Repeat("z", MaxText)}},
		"00000090 06 00 00000000 17979cfe3d85cd15 01 80" + strings.Repeat("7a", MaxText),
	},
	{
		"hangup unknown reason unicode text",
		Message{Time: t1, Body: Hangup{Reason: 200, Text: "Störung"}},
		"00000018 06 00 00000000 17979cfe3d85cd15 c8 08 5374c3b672756e67",
	},
	{
		// Revision 1.3: the caller of a group to the boxes still ringing.
		"hangup answered elsewhere",
		Message{Time: t3, Body: Hangup{Reason: ReasonElsewhere, Text: "answered elsewhere"}},
		"00000022 06 00 00000000 17979cfe437bae15 08 12 616e73776572656420656c73657768657265",
	},
	// Revision 1.4: the first request to open the peer's door, and the
	// answers to it and to a second one inside the minimum gap.
	{"open door", Message{Time: t1, Body: OpenDoor{}}, "0000000e 09 00 00000000 17979cfe3d85cd15"},
	{
		"door answer opened",
		Message{Time: t2, Body: DoorAnswer{Request: 0, Result: DoorOpened}},
		"00000014 0a 00 00000000 17979cfe4080bd95 00000000 00 00",
	},
	{
		"door answer too soon",
		Message{Seq: 1, Time: t3, Body: DoorAnswer{Request: 1, Result: DoorTooSoon, Text: "too soon: the door opens again in 4s"}},
		"00000038 0a 00 00000001 17979cfe437bae15 00000001 02 24" +
			"746f6f20736f6f6e3a2074686520646f6f72206f70656e7320616761696e20696e203473",
	},
	{
		"door answer unknown result max text",
		Message{Seq: 2, Body: DoorAnswer{Request: 0xffffffff, Result: 200, Text: strings.Repeat("z", MaxText)}},
		"00000094 0a 00 00000002 0000000000000000 ffffffff c8 80" + strings.Repeat("7a", MaxText),
	},
	// Revision 1.5: the callee says the caller's audio datagrams arrive,
	// and later that they stopped.
	{"datagrams arriving", Message{Time: t2, Body: Datagrams{Arriving: true}}, "0000000f 0b 00 00000000 17979cfe4080bd95 01"},
	{"datagrams stopped", Message{Seq: 1, Time: t3, Body: Datagrams{}}, "0000000f 0b 00 00000001 17979cfe437bae15 00"},
	{"ping", Message{Seq: 41, Time: t1, Body: Ping{}}, "0000000e 07 00 00000029 17979cfe3d85cd15"},
	{
		"ping max seq negative time",
		Message{Seq: 0xffffffff, Time: -1, Body: Ping{}},
		"0000000e 07 00 ffffffff ffffffffffffffff",
	},
	{
		"pong",
		Message{Seq: 41, Time: t3, Body: Pong{Ping: t1, Recv: t2}},
		"0000001e 08 00 00000029 17979cfe437bae15 17979cfe3d85cd15 17979cfe4080bd95",
	},
	{
		"video first chunk",
		Message{Time: t1, Body: Video{Frame: 7, Size: 12000, Offset: 0, Data: []byte{0xff, 0xd8, 0xff, 0xe0}}},
		"0000001e 10 00 00000000 17979cfe3d85cd15 00000007 00002ee0 00000000 ffd8ffe0",
	},
	{
		"video last chunk at offset",
		Message{Seq: 1, Time: t1, Body: Video{Frame: 7, Size: 12000, Offset: 11998, Data: []byte{0xff, 0xd9}}},
		"0000001c 10 00 00000001 17979cfe3d85cd15 00000007 00002ee0 00002ede ffd9",
	},
	{
		"video one byte frame",
		Message{Seq: 2, Body: Video{Frame: 0xffffffff, Size: 1, Data: []byte{0}}},
		"0000001b 10 00 00000002 0000000000000000 ffffffff 00000001 00000000 00",
	},
	{
		"video max chunk ending max frame",
		Message{Seq: 3, Time: t1, Body: Video{Frame: 9, Size: MaxFrameSize, Offset: MaxFrameSize - MaxChunk,
			Data: bytes.Repeat([]byte{0xab}, MaxChunk)}},
		"0000401a 10 00 00000003 17979cfe3d85cd15 00000009 00800000 007fc000" + strings.Repeat("ab", MaxChunk),
	},
	{
		"audio mono one sample",
		Message{Time: t1, Body: Audio{PCM: []byte{0x01, 0x00}}},
		"00000010 11 00 00000000 17979cfe3d85cd15 0100",
	},
	{
		"audio stereo",
		Message{Seq: 2, Time: t1, Body: Audio{PCM: []byte{0x01, 0x00, 0xff, 0xff}}},
		"00000012 11 00 00000002 17979cfe3d85cd15 0100ffff",
	},
	{
		"audio max",
		Message{Seq: 3, Time: t2, Body: Audio{PCM: bytes.Repeat([]byte{0x34, 0x12}, MaxAudio/2)}},
		"00001e0e 11 00 00000003 17979cfe4080bd95" + strings.Repeat("3412", MaxAudio/2),
	},
	{
		// An Opus packet: TOC 0x78 (hybrid, fullband, 20 ms, mono, one
		// frame) and its coded bytes; any length 1..MaxAudio, odd too.
		"audio opus packet",
		Message{Seq: 7, Time: t3, Body: Audio{PCM: []byte{0x78, 0x0b, 0xe4}}},
		"00000011 11 00 00000007 17979cfe437bae15 780be4",
	},
	{
		"audio one byte",
		Message{Body: Audio{PCM: []byte{0xf8}}},
		"0000000f 11 00 00000000 0000000000000000 f8",
	},
}

// bad are inputs every decoder must refuse, with the sentinel it must
// return. Truncations and trailing bytes are generated from cases instead.
var bad = []struct {
	name string
	hex  string
	want error
}{
	{"length zero", "00000000", ErrMalformed},
	{"length below header", "0000000d 02 00 00000000 00000000000000", ErrMalformed},
	{"type zero", "0000000e 00 00 00000000 0000000000000000", ErrUnknownType},
	{"type 15 huge length", "ffffffff 0f 00 00000000 0000000000000000", ErrUnknownType},
	{"type 12 empty", "0000000e 0c 00 00000000 0000000000000000", ErrUnknownType},
	{"datagrams empty", "0000000e 0b 00 00000000 0000000000000000", ErrMalformed},
	{"datagrams value 2", "0000000f 0b 00 00000000 0000000000000000 02", ErrMalformed},
	{"datagrams two bytes", "00000010 0b 00 00000000 0000000000000000 0100", ErrTooLarge},
	{"type 255", "0000000f ff 00 00000000 0000000000000000 00", ErrUnknownType},
	{"flags set", "0000000e 02 01 00000000 0000000000000000", ErrMalformed},
	{"flags high bit", "00000010 11 80 00000000 0000000000000000 0100", ErrMalformed},
	{"nonempty call", "0000000f 02 00 00000000 0000000000000000 00", ErrMalformed},
	{"nonempty answer", "0000000f 03 00 00000000 0000000000000000 00", ErrMalformed},
	{"nonempty busy", "0000000f 04 00 00000000 0000000000000000 00", ErrMalformed},
	{"nonempty ping", "0000000f 07 00 00000000 0000000000000000 00", ErrMalformed},
	{"nonempty open door", "0000000f 09 00 00000000 0000000000000000 00", ErrMalformed},
	{"door answer empty", "0000000e 0a 00 00000000 0000000000000000", ErrMalformed},
	{"door answer without text length", "00000013 0a 00 00000000 0000000000000000 00000000 00", ErrMalformed},
	{"door answer text past payload", "00000015 0a 00 00000000 0000000000000000 00000000 02 02 61", ErrMalformed},
	{"door answer bytes after text", "00000016 0a 00 00000000 0000000000000000 00000000 02 01 6162", ErrMalformed},
	{"door answer text invalid utf8", "00000015 0a 00 00000000 0000000000000000 00000000 02 01 ff", ErrMalformed},
	{"door answer text length 129", "00000094 0a 00 00000000 0000000000000000 00000000 02 81" + strings.Repeat("7a", 128), ErrMalformed},
	{"door answer text 129 bytes", "00000095 0a 00 00000000 0000000000000000 00000000 02 81" + strings.Repeat("7a", 129), ErrTooLarge},
	{"hello empty", "0000000e 01 00 00000000 0000000000000000", ErrMalformed},
	{"hello version only", "00000010 01 00 00000000 0000000000000000 0001", ErrMalformed},
	{"hello version 0", "0000001e 01 00 00000000 0000000000000000 0000 00 0280 01e0 1e 01 0000bb80 01 0a 01", ErrMalformed},
	{"hello version 2", "0000001e 01 00 00000000 0000000000000000 0002 00 0280 01e0 1e 01 0000bb80 01 0a 01", ErrMalformed},
	{"hello no audio caps", "00000017 01 00 00000000 0000000000000000 0001 00 0280 01e0 1e 01", ErrMalformed},
	{"hello short audio caps", "0000001d 01 00 00000000 0000000000000000 0001 00 0280 01e0 1e 01 0000bb80 01 0a", ErrMalformed},
	{"hello name past payload", "00000020 01 00 00000000 0000000000000000 0001 05 6162 0280 01e0 1e 01 0000bb80 01 0a 01", ErrMalformed},
	{"hello name too long", "0000005f 01 00 00000000 0000000000000000 0001 41" + strings.Repeat("61", 65) + "0280 01e0 1e 01 0000bb80 01 0a 01", ErrMalformed},
	{"hello name invalid utf8", "0000001f 01 00 00000000 0000000000000000 0001 01 ff 0280 01e0 1e 01 0000bb80 01 0a 01", ErrMalformed},
	{"hello name cut rune", "00000020 01 00 00000000 0000000000000000 0001 02 61c3 0280 01e0 1e 01 0000bb80 01 0a 01", ErrMalformed},
	{"hello name newline", "00000021 01 00 00000000 0000000000000000 0001 03 610a62 0280 01e0 1e 01 0000bb80 01 0a 01", ErrMalformed},
	{"hello name escape", "00000021 01 00 00000000 0000000000000000 0001 03 1b5b41 0280 01e0 1e 01 0000bb80 01 0a 01", ErrMalformed},
	{"hello name del", "0000001f 01 00 00000000 0000000000000000 0001 01 7f 0280 01e0 1e 01 0000bb80 01 0a 01", ErrMalformed},
	{"hello name c1 control", "00000020 01 00 00000000 0000000000000000 0001 02 c285 0280 01e0 1e 01 0000bb80 01 0a 01", ErrMalformed},
	{"reject empty", "0000000e 05 00 00000000 0000000000000000", ErrMalformed},
	{"reject reason only", "0000000f 05 00 00000000 0000000000000000 02", ErrMalformed},
	{"reject text past payload", "00000011 05 00 00000000 0000000000000000 02 02 61", ErrMalformed},
	{"reject bytes after text", "00000012 05 00 00000000 0000000000000000 02 01 6162", ErrMalformed},
	{"reject text invalid utf8", "00000011 05 00 00000000 0000000000000000 02 01 80", ErrMalformed},
	{"hangup text length 129", "00000090 06 00 00000000 0000000000000000 01 81" + strings.Repeat("7a", 128), ErrMalformed},
	{"hangup text 129 bytes", "00000091 06 00 00000000 0000000000000000 01 81" + strings.Repeat("7a", 129), ErrTooLarge},
	{"hangup text invalid utf8", "00000012 06 00 00000000 0000000000000000 01 02 c328", ErrMalformed},
	{"pong short", "0000001d 08 00 00000000 0000000000000000" + strings.Repeat("00", 15), ErrMalformed},
	{"pong empty", "0000000e 08 00 00000000 0000000000000000", ErrMalformed},
	{"pong long", "0000001f 08 00 00000000 0000000000000000" + strings.Repeat("00", 17), ErrTooLarge},
	{"video short header", "00000019 10 00 00000000 0000000000000000 00000001 00000001 000000", ErrMalformed},
	{"video no data", "0000001a 10 00 00000000 0000000000000000 00000001 00000010 00000000", ErrMalformed},
	{"video zero size frame", "0000001b 10 00 00000000 0000000000000000 00000001 00000000 00000000 ff", ErrMalformed},
	{"video frame over 8 MiB", "0000001b 10 00 00000000 0000000000000000 00000001 00800001 00000000 ff", ErrMalformed},
	{"video chunk past frame", "0000001c 10 00 00000000 0000000000000000 00000001 00000010 0000000f ffd9", ErrMalformed},
	{"video offset past frame", "0000001b 10 00 00000000 0000000000000000 00000001 00000010 00000010 ff", ErrMalformed},
	{"video offset wraps", "0000001c 10 00 00000000 0000000000000000 00000001 00800000 ffffffff ffd9", ErrMalformed},
	{"audio empty", "0000000e 11 00 00000000 0000000000000000", ErrMalformed},
	{"hello codec list past payload", "00000023 01 00 00000000 0000000000000000 0001 00 0280 01e0 1e 01 0000bb80 01 0a 01 0000 0000 03 02", ErrMalformed},
	{"hello 17 codecs", "00000034 01 00 00000000 0000000000000000 0001 00 0280 01e0 1e 01 0000bb80 01 0a 01 0000 0000 11" + strings.Repeat("01", 17), ErrMalformed},
}

// unhex decodes hex written with spaces for readability.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad test hex: %v", err)
	}
	return b
}

// golden returns the encoding of the named case.
func golden(t testing.TB, name string) []byte {
	t.Helper()
	for _, c := range cases {
		if c.name == name {
			return unhex(t, c.hex)
		}
	}
	t.Fatalf("no golden case %q", name)
	return nil
}

func TestAppend(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := unhex(t, c.hex)
			got, err := Append(nil, c.msg)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Append:\n got %x\nwant %x", got, want)
			}
			// Appending keeps what dst held.
			prefix := []byte("xyz")
			got, err = Append(prefix, c.msg)
			if err != nil || !bytes.Equal(got, append([]byte("xyz"), want...)) {
				t.Fatalf("Append to prefix: %x, %v", got, err)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(unhex(t, c.hex))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, c.msg) {
				t.Fatalf("Decode:\n got %#v\nwant %#v", got, c.msg)
			}
		})
	}
}

func TestReader(t *testing.T) {
	var all []byte
	for _, c := range cases {
		all = append(all, unhex(t, c.hex)...)
	}
	wrappers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data with EOF", iotest.DataErrReader},
	}
	for _, w := range wrappers {
		t.Run(w.name, func(t *testing.T) {
			r := NewReader(w.wrap(bytes.NewReader(all)))
			for _, c := range cases {
				got, err := r.Read()
				if err != nil {
					t.Fatalf("%s: Read: %v", c.name, err)
				}
				// Compared before the next Read, which reuses the buffer.
				if !reflect.DeepEqual(got, c.msg) {
					t.Fatalf("%s: Read:\n got %#v\nwant %#v", c.name, got, c.msg)
				}
			}
			for range 2 {
				if _, err := r.Read(); err != io.EOF {
					t.Fatalf("Read at end: %v, want io.EOF", err)
				}
			}
		})
	}
}

// truncations returns the lengths to cut an encoding of n bytes at: all of
// them for small messages, and the header and both ends of the payload for
// big ones (cutting a 16 KiB chunk at every byte teaches nothing more).
func truncations(n int) []int {
	var cuts []int
	for i := range n {
		if n <= 1024 || i < HeaderLen+64 || i > n-64 {
			cuts = append(cuts, i)
		}
	}
	return cuts
}

func TestTruncated(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := unhex(t, c.hex)
			for _, i := range truncations(len(b)) {
				if _, err := Decode(b[:i]); !errors.Is(err, ErrMalformed) {
					t.Errorf("Decode cut at %d: %v, want ErrMalformed", i, err)
				}
				want := io.ErrUnexpectedEOF
				if i == 0 {
					want = io.EOF
				}
				r := NewReader(bytes.NewReader(b[:i]))
				if _, err := r.Read(); !errors.Is(err, want) {
					t.Errorf("Read cut at %d: %v, want %v", i, err, want)
				}
			}
		})
	}
}

func TestTrailingBytes(t *testing.T) {
	for _, c := range cases {
		b := append(unhex(t, c.hex), 0)
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s with a trailing byte: Decode: %v, want ErrMalformed", c.name, err)
		}
	}
}

func TestBad(t *testing.T) {
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			b := unhex(t, c.hex)
			if m, err := Decode(b); !errors.Is(err, c.want) {
				t.Fatalf("Decode: %#v, %v; want %v", m, err, c.want)
			}
			r := NewReader(bytes.NewReader(b))
			_, err := r.Read()
			if !errors.Is(err, c.want) {
				t.Fatalf("Read: %v, want %v", err, c.want)
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("Read: %T is not a *ProtocolError", err)
			}
			// The stream is out of step after an error, so it stays failed.
			if _, err2 := r.Read(); err2 != err {
				t.Fatalf("second Read: %v, want the first error again", err2)
			}
		})
	}
}

// errPastHeader is returned by the reader behind a header when the Reader
// under test reads further.
var errPastHeader = errors.New("read past the header")

// TestRefusedFromHeader checks that a message too large for its type or of
// unknown type is refused after its header, without reading the payload.
func TestRefusedFromHeader(t *testing.T) {
	type refusal struct {
		name   string
		header string
		want   error
	}
	var tests []refusal
	for ty := range 256 {
		limit, ok := MaxPayload(Type(ty))
		if !ok {
			continue
		}
		want := ErrTooLarge
		if limit == 0 {
			want = ErrMalformed // an empty message with a payload
		}
		for _, l := range []uint32{uint32(minLen + limit + 1), 1 << 31, 0xffffffff} {
			var h [HeaderLen]byte
			h[0], h[1], h[2], h[3], h[4] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l), byte(ty)
			tests = append(tests, refusal{Type(ty).String(), hex.EncodeToString(h[:]), want})
		}
	}
	tests = append(tests,
		refusal{"unknown type 15", "00004000 0f 00 00000000 0000000000000000", ErrUnknownType},
		refusal{"unknown type 255", "ffffffff ff 00 00000000 0000000000000000", ErrUnknownType},
		refusal{"unknown type 0", "0000000e 00 00 00000000 0000000000000000", ErrUnknownType},
	)
	for _, c := range tests {
		b := unhex(t, c.header)
		r := NewReader(io.MultiReader(bytes.NewReader(b), iotest.ErrReader(errPastHeader)))
		if _, err := r.Read(); !errors.Is(err, c.want) {
			t.Errorf("%s %s: Read: %v, want %v", c.name, c.header, err, c.want)
		}
		if _, err := Decode(b); !errors.Is(err, c.want) {
			t.Errorf("%s %s: Decode: %v, want %v", c.name, c.header, err, c.want)
		}
	}
}

func TestReaderPassesErrors(t *testing.T) {
	boom := errors.New("connection reset")
	ping := unhex(t, "0000000e 07 00 00000029 17979cfe3d85cd15")
	video := golden(t, "video first chunk")
	tests := []struct {
		name   string
		prefix []byte
	}{
		{"before a message", nil},
		{"after a message", ping},
		{"in the length", ping[:2]},
		{"in the header", ping[:9]},
		{"in the payload", video[:len(video)-1]},
	}
	for _, c := range tests {
		r := NewReader(io.MultiReader(bytes.NewReader(c.prefix), iotest.ErrReader(boom)))
		var err error
		for range 3 {
			if _, err = r.Read(); err != nil {
				break
			}
		}
		if !errors.Is(err, boom) {
			t.Errorf("%s: Read: %v, want %v", c.name, err, boom)
		}
		var pe *ProtocolError
		if errors.As(err, &pe) {
			t.Errorf("%s: Read: an I/O error reported as a protocol error: %v", c.name, err)
		}
	}
}

func TestHelloExtension(t *testing.T) {
	// Bytes after the known Hello fields are ignored, up to the 512 limit.
	// Fewer than 4 are not a preferred size; 4 or more start with one; a
	// fifth starts the codec list, the byte after the list holds the
	// flags, and what follows them is ignored.
	for _, extra := range []int{1, 3, 4, 8, 9, 512 - helloFixed} {
		want := cases[0].msg
		if extra >= helloPrefer {
			h := want.Body.(Hello)
			h.Prefer = VideoSize{Width: 0xeeee, Height: 0xeeee}
			if extra > helloPrefer {
				h.Codecs = []AudioCodec{0xee, 0xee, 0xee}
			}
			if extra > helloPrefer+4 {
				h.Flags = 0xee
			}
			want.Body = h
		}
		b := golden(t, cases[0].name)
		tail := bytes.Repeat([]byte{0xee}, extra)
		if extra > helloPrefer {
			tail[helloPrefer] = 3 // the codec list: three unknown codecs
		}
		b = append(b, tail...)
		l := minLen + helloFixed + extra
		b[0], b[1], b[2], b[3] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%d extra bytes: Decode: %v", extra, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d extra bytes: Decode:\n got %#v\nwant %#v", extra, got, want)
		}
		got, err = NewReader(bytes.NewReader(b)).Read()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%d extra bytes: Read: %#v, %v", extra, got, err)
		}
	}
}

func TestAppendInvalid(t *testing.T) {
	video := func(size, off uint32, n int) Message {
		return Message{Body: Video{Frame: 1, Size: size, Offset: off, Data: make([]byte, n)}}
	}
	hello := func(version uint16, name string) Message {
		return Message{Body: Hello{Version: version, Name: name}}
	}
	tests := []struct {
		name string
		msg  Message
	}{
		{"no body", Message{Seq: 1}},
		{"hello version 0", hello(0, "door")},
		{"hello version 2", hello(2, "door")},
		{"hello name too long", hello(1, strings.Repeat("a", MaxName+1))},
		{"hello name invalid utf8", hello(1, "a\xffb")},
		{"hello name tab", hello(1, "a\tb")},
		{"hello name c1 control", hello(1, "a\u0085b")},
		{"reject text too long", Message{Body: Reject{Text: strings.Repeat("ü", MaxText/2+1)}}},
		{"hangup text invalid utf8", Message{Body: Hangup{Text: "\xc3"}}},
		{"door answer text too long", Message{Body: DoorAnswer{Result: DoorBusy, Text: strings.Repeat("a", MaxText+1)}}},
		{"door answer text invalid utf8", Message{Body: DoorAnswer{Text: "\xff"}}},
		{"video zero size", video(0, 0, 1)},
		{"video frame too large", video(MaxFrameSize+1, 0, 1)},
		{"video empty chunk", video(10, 0, 0)},
		{"video chunk too large", video(MaxFrameSize, 0, MaxChunk+1)},
		{"video chunk past frame", video(10, 5, 6)},
		{"video offset wraps", video(MaxFrameSize, 0xffffffff, 2)},
		{"audio empty", Message{Body: Audio{}}},
		{"hello 17 codecs", Message{Body: Hello{Version: 1, Codecs: make([]AudioCodec, MaxCodecs+1)}}},
		{"audio too large", Message{Body: Audio{PCM: make([]byte, MaxAudio+2)}}},
	}
	for _, c := range tests {
		dst := make([]byte, 3, 64)
		copy(dst, "abc")
		got, err := Append(dst, c.msg)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Append: %v, want ErrMalformed", c.name, err)
		}
		if string(got) != "abc" || string(dst[:cap(dst)][3:]) != string(make([]byte, 61)) {
			t.Errorf("%s: Append changed dst: %q", c.name, dst[:cap(dst)])
		}
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		hex  string
		ty   Type
		want string
	}{
		{"0000001f 01 00 00000000 0000000000000000 0001 01 ff 0280 01e0 1e 01 0000bb80 01 0a 01",
			TypeHello, "wire: hello: name is not valid UTF-8: malformed message"},
		{"00000000", 0, "wire: length 0 below header size 14: malformed message"},
		{"0000000e 0f 00 00000000 0000000000000000", 15, "wire: type 15: unknown message type"},
		{"0000001f 08 00 00000000 0000000000000000" + strings.Repeat("00", 17),
			TypePong, "wire: pong: payload 17 bytes, limit 16: message too large"},
	}
	for _, c := range tests {
		_, err := Decode(unhex(t, c.hex))
		if err == nil || err.Error() != c.want {
			t.Errorf("Decode(%s): %v, want %q", c.hex, err, c.want)
		}
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Type != c.ty {
			t.Errorf("Decode(%s): %#v, want a *ProtocolError for %v", c.hex, err, c.ty)
		}
	}
}

func TestStrings(t *testing.T) {
	types := map[Type]string{TypeHello: "hello", TypeCall: "call", TypeAnswer: "answer", TypeBusy: "busy",
		TypeReject: "reject", TypeHangup: "hangup", TypePing: "ping", TypePong: "pong", TypeVideo: "video",
		TypeAudio: "audio", TypeOpenDoor: "open door", TypeDoorAnswer: "door answer", TypeDatagrams: "datagrams", 15: "type 15"}
	for ty, want := range types {
		if got := ty.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", ty, got, want)
		}
		if _, ok := MaxPayload(ty); ok != (ty != 15) {
			t.Errorf("MaxPayload(%v) known = %v", ty, ok)
		}
	}
	reasons := map[Reason]string{ReasonUnspecified: "unspecified", ReasonNormal: "normal", ReasonBusy: "busy",
		ReasonDeclined: "declined", ReasonTimeout: "timeout", ReasonShutdown: "shutdown",
		ReasonProtocol: "protocol error", ReasonMedia: "media error", ReasonElsewhere: "answered elsewhere", 9: "reason 9"}
	for r, want := range reasons {
		if got := r.String(); got != want {
			t.Errorf("Reason(%d).String() = %q, want %q", r, got, want)
		}
	}
	results := map[DoorResult]string{DoorOpened: "opened", DoorBusy: "busy", DoorTooSoon: "too soon",
		DoorNotAllowed: "not allowed", DoorFault: "fault", DoorNone: "no door", 6: "result 6"}
	for r, want := range results {
		if got := r.String(); got != want {
			t.Errorf("DoorResult(%d).String() = %q, want %q", r, got, want)
		}
	}
}

func TestClipText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"camera gone", "camera gone"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{strings.Repeat("a", 200), strings.Repeat("a", MaxText)},
		{"a" + strings.Repeat("ü", 100), "a" + strings.Repeat("ü", 63)}, // 127 bytes: the 64th ü would cross 128
	}
	for _, c := range tests {
		got := ClipText(c.in)
		if got != c.want {
			t.Errorf("ClipText(%q) = %q, want %q", c.in, got, c.want)
		}
		if _, err := Append(nil, Message{Body: Hangup{Text: got}}); err != nil {
			t.Errorf("ClipText(%q) not sendable: %v", c.in, err)
		}
	}
}

// TestDecodeAllocations checks that the payload is never copied: a decoded
// media message costs one small allocation (the Body value) whatever its size.
func TestDecodeAllocations(t *testing.T) {
	for _, name := range []string{"video max chunk ending max frame", "audio max"} {
		b := golden(t, name)
		if n := testing.AllocsPerRun(100, func() { _, _ = Decode(b) }); n > 1 {
			t.Errorf("%s: Decode made %v allocations, want at most 1", name, n)
		}
	}
}
