//go:build cgo

package echo

/*
#cgo LDFLAGS: -lspeexdsp
#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>

static int cb_pp_int(SpeexPreprocessState *st, int req, int v) { return speex_preprocess_ctl(st, req, &v); }
static int cb_pp_float(SpeexPreprocessState *st, int req, float v) { return speex_preprocess_ctl(st, req, &v); }
static int cb_pp_echo(SpeexPreprocessState *st, SpeexEchoState *ec) { return speex_preprocess_ctl(st, SPEEX_PREPROCESS_SET_ECHO_STATE, ec); }
static int cb_ec_rate(SpeexEchoState *st, int rate) { return speex_echo_ctl(st, SPEEX_ECHO_SET_SAMPLING_RATE, &rate); }
*/
import "C"

import (
	"errors"
	"unsafe"
)

// speexAvailable says whether this build links speexdsp.
const speexAvailable = true

// speex is speexdsp's MDF echo canceller and its preprocessor (residual
// echo suppression, noise suppression, AGC), linked dynamically.
type speex struct {
	ec *C.SpeexEchoState
	pp *C.SpeexPreprocessState
}

func newSpeex(o dspOptions) (engine, error) {
	s := &speex{}
	if o.cancel {
		s.ec = C.speex_echo_state_init(C.int(o.frame), C.int(o.filter))
		if s.ec == nil {
			return nil, errors.New("echo: speexdsp could not make an echo canceller")
		}
		C.cb_ec_rate(s.ec, C.int(o.rate))
	}
	if o.suppress && o.cancel || o.denoise || o.agc {
		s.pp = C.speex_preprocess_state_init(C.int(o.frame), C.int(o.rate))
		if s.pp == nil {
			s.close()
			return nil, errors.New("echo: speexdsp could not make a preprocessor")
		}
		C.cb_pp_int(s.pp, C.SPEEX_PREPROCESS_SET_DENOISE, b2i(o.denoise))
		C.cb_pp_int(s.pp, C.SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, C.int(o.noiseDB))
		C.cb_pp_int(s.pp, C.SPEEX_PREPROCESS_SET_AGC, b2i(o.agc))
		if o.agc {
			C.cb_pp_float(s.pp, C.SPEEX_PREPROCESS_SET_AGC_LEVEL, C.float(o.agcLevel))
			C.cb_pp_int(s.pp, C.SPEEX_PREPROCESS_SET_AGC_MAX_GAIN, C.int(o.agcMaxDB))
			C.cb_pp_int(s.pp, C.SPEEX_PREPROCESS_SET_AGC_INCREMENT, C.int(o.agcUpDB))
			C.cb_pp_int(s.pp, C.SPEEX_PREPROCESS_SET_AGC_DECREMENT, C.int(-o.agcDownDB))
		}
		C.cb_pp_int(s.pp, C.SPEEX_PREPROCESS_SET_DEREVERB, 0)
		if o.suppress && o.cancel {
			C.cb_pp_echo(s.pp, s.ec)
			C.cb_pp_int(s.pp, C.SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, C.int(o.echoDB))
			C.cb_pp_int(s.pp, C.SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, C.int(o.echoActiveDB))
		}
	}
	return s, nil
}

func b2i(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func ptr(x []int16) *C.spx_int16_t { return (*C.spx_int16_t)(unsafe.Pointer(&x[0])) }

// cancel writes rec with play's echo removed into out (all one frame).
func (s *speex) cancel(rec, play, out []int16) {
	if s.ec == nil {
		copy(out, rec)
		return
	}
	C.speex_echo_cancellation(s.ec, ptr(rec), ptr(play), ptr(out))
}

// preprocess runs the preprocessor on x in place.
func (s *speex) preprocess(x []int16) {
	if s.pp != nil {
		C.speex_preprocess_run(s.pp, ptr(x))
	}
}

func (s *speex) close() {
	if s.pp != nil {
		C.speex_preprocess_state_destroy(s.pp)
		s.pp = nil
	}
	if s.ec != nil {
		C.speex_echo_state_destroy(s.ec)
		s.ec = nil
	}
}
