//go:build cgo

package opus

/*
#cgo LDFLAGS: -lopus
#include <opus/opus.h>

// The ctl calls are variadic macros; these give cgo plain functions.
static int cb_enc_set(OpusEncoder *st, int bitrate, int complexity, int loss) {
	int err;
	if ((err = opus_encoder_ctl(st, OPUS_SET_BITRATE(bitrate))) != OPUS_OK) return err;
	if ((err = opus_encoder_ctl(st, OPUS_SET_VBR(1))) != OPUS_OK) return err;
	if ((err = opus_encoder_ctl(st, OPUS_SET_COMPLEXITY(complexity))) != OPUS_OK) return err;
	if ((err = opus_encoder_ctl(st, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE))) != OPUS_OK) return err;
	if ((err = opus_encoder_ctl(st, OPUS_SET_INBAND_FEC(loss > 0))) != OPUS_OK) return err;
	return opus_encoder_ctl(st, OPUS_SET_PACKET_LOSS_PERC(loss));
}

static int cb_enc_bitrate(OpusEncoder *st, int bitrate) {
	return opus_encoder_ctl(st, OPUS_SET_BITRATE(bitrate));
}
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/callbox/callbox/stream/media"
)

const available = true

func opusErr(what string, code C.int) error {
	return fmt.Errorf("opus: %s: %s", what, C.GoString(C.opus_strerror(code)))
}

// Encoder turns PCM frames into Opus packets. One goroutine at a time.
type Encoder struct {
	mu  sync.Mutex
	st  *C.OpusEncoder
	f   media.AudioFormat
	cfg Config
}

// NewEncoder makes an encoder in c.Mode.
func NewEncoder(c Config) (*Encoder, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	app := C.int(C.OPUS_APPLICATION_VOIP)
	if c.Mode == LowDelay {
		app = C.OPUS_APPLICATION_RESTRICTED_LOWDELAY
	}
	var code C.int
	st := C.opus_encoder_create(C.opus_int32(c.Format.Rate), C.int(c.Format.Channels), app, &code)
	if code != C.OPUS_OK || st == nil {
		return nil, opusErr("encoder", code)
	}
	if code := C.cb_enc_set(st, C.int(c.Bitrate), C.int(c.Complexity), C.int(c.LossPercent)); code != C.OPUS_OK {
		C.opus_encoder_destroy(st)
		return nil, opusErr("encoder settings", code)
	}
	return &Encoder{st: st, f: c.Format, cfg: c}, nil
}

// Config is the encoder's configuration, defaults filled in.
func (e *Encoder) Config() Config { return e.cfg }

// SetBitrate changes the target bit rate (MinBitrate..MaxBitrate) from the
// next packet on; the encoder's state carries over, so the sound does not
// break.
func (e *Encoder) SetBitrate(bps int) error {
	if bps < MinBitrate || bps > MaxBitrate {
		return fmt.Errorf("opus: bit rate %d out of %d..%d", bps, MinBitrate, MaxBitrate)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st == nil {
		return errors.New("opus: encoder closed")
	}
	if code := C.cb_enc_bitrate(e.st, C.int(bps)); code != C.OPUS_OK {
		return opusErr("bit rate", code)
	}
	e.cfg.Bitrate = bps
	return nil
}

// Encode codes one frame (Format.FrameLen samples, interleaved) and
// appends the packet to dst.
func (e *Encoder) Encode(dst []byte, pcm []int16) ([]byte, error) {
	if len(pcm) != e.f.FrameLen() {
		return dst, fmt.Errorf("opus: encode: %d samples, want %d", len(pcm), e.f.FrameLen())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st == nil {
		return dst, errors.New("opus: encoder closed")
	}
	n := len(dst)
	dst = append(dst, make([]byte, MaxPacket)...)
	got := C.opus_encode(e.st, (*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(e.f.FrameSamples()),
		(*C.uchar)(unsafe.Pointer(&dst[n])), C.opus_int32(MaxPacket))
	if got < 0 {
		return dst[:n], opusErr("encode", got)
	}
	return dst[:n+int(got)], nil
}

// Close frees the encoder. It is idempotent.
func (e *Encoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st != nil {
		C.opus_encoder_destroy(e.st)
		e.st = nil
	}
	return nil
}

// Decoder turns Opus packets back into PCM frames. One goroutine at a time.
type Decoder struct {
	mu sync.Mutex
	st *C.OpusDecoder
	f  media.AudioFormat
}

// NewDecoder makes a decoder for format f (zero: media.DefaultAudio).
func NewDecoder(f media.AudioFormat) (*Decoder, error) {
	if f == (media.AudioFormat{}) {
		f = media.DefaultAudio
	}
	if err := checkFormat(f); err != nil {
		return nil, err
	}
	var code C.int
	st := C.opus_decoder_create(C.opus_int32(f.Rate), C.int(f.Channels), &code)
	if code != C.OPUS_OK || st == nil {
		return nil, opusErr("decoder", code)
	}
	return &Decoder{st: st, f: f}, nil
}

// Decode decodes one packet into pcm (Format.FrameLen samples). A nil or
// empty packet conceals a lost one: pcm gets what the decoder predicts.
// A packet that does not decode is an error and leaves pcm silent.
func (d *Decoder) Decode(pcm []int16, packet []byte) error {
	if len(pcm) != d.f.FrameLen() {
		return fmt.Errorf("opus: decode: room for %d samples, want %d", len(pcm), d.f.FrameLen())
	}
	n, err := d.DecodeAny(pcm, packet)
	if err == nil && n != d.f.FrameSamples() {
		clear(pcm)
		return fmt.Errorf("opus: decode: the packet held %d samples per channel, want %d", n, d.f.FrameSamples())
	}
	return err
}

// DecodeAny decodes one packet of any length that fits pcm and returns
// how many samples per channel it held (interleaved in pcm). A nil or
// empty packet conceals len(pcm)/channels samples, which must be a
// multiple of 2.5 ms. On an error pcm is silent.
func (d *Decoder) DecodeAny(pcm []int16, packet []byte) (int, error) {
	room := len(pcm) / d.f.Channels
	if room == 0 {
		return 0, errors.New("opus: decode: no room")
	}
	if len(packet) > MaxPacket*3 {
		clear(pcm)
		return 0, fmt.Errorf("opus: decode: a packet of %d bytes", len(packet))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st == nil {
		clear(pcm)
		return 0, errors.New("opus: decoder closed")
	}
	var data *C.uchar
	if len(packet) > 0 {
		data = (*C.uchar)(unsafe.Pointer(&packet[0]))
	}
	got := C.opus_decode(d.st, data, C.opus_int32(len(packet)),
		(*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(room), 0)
	if got < 0 {
		clear(pcm)
		return 0, opusErr("decode", got)
	}
	return int(got), nil
}

// Close frees the decoder. It is idempotent.
func (d *Decoder) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st != nil {
		C.opus_decoder_destroy(d.st)
		d.st = nil
	}
	return nil
}
