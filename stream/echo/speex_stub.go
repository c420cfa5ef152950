//go:build !cgo

package echo

import "errors"

// speexAvailable says whether this build links speexdsp.
const speexAvailable = false

func newSpeex(dspOptions) (engine, error) {
	return nil, errors.New("echo: compiled without echo cancellation (speexdsp needs cgo)")
}
