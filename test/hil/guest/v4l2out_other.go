//go:build !linux

package guest

import "errors"

type loopOut struct{}

func openLoopOut(node string, width, height, fps int) (*loopOut, error) {
	return nil, errors.New("v4l2 output: only on linux")
}

func (o *loopOut) write(jpeg []byte) error { return errors.New("v4l2 output: only on linux") }

func (o *loopOut) close() error { return nil }
