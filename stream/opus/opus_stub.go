//go:build !cgo

package opus

import "github.com/callbox/callbox/stream/media"

const available = false

// Encoder is unavailable without cgo.
type Encoder struct{}

// NewEncoder says "compiled without Opus".
func NewEncoder(Config) (*Encoder, error) { return nil, ErrUnavailable }

// Config is the zero Config.
func (*Encoder) Config() Config { return Config{} }

// SetBitrate fails.
func (*Encoder) SetBitrate(int) error { return ErrUnavailable }

// Encode fails.
func (*Encoder) Encode(dst []byte, _ []int16) ([]byte, error) { return dst, ErrUnavailable }

// Close does nothing.
func (*Encoder) Close() error { return nil }

// Decoder is unavailable without cgo.
type Decoder struct{}

// NewDecoder says "compiled without Opus".
func NewDecoder(media.AudioFormat) (*Decoder, error) { return nil, ErrUnavailable }

// Decode fails.
func (*Decoder) Decode(pcm []int16, _ []byte) error { clear(pcm); return ErrUnavailable }

// DecodeAny fails.
func (*Decoder) DecodeAny(pcm []int16, _ []byte) (int, error) { clear(pcm); return 0, ErrUnavailable }

// Close does nothing.
func (*Decoder) Close() error { return nil }
