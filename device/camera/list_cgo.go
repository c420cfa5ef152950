//go:build linux && cgo

package camera

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/vladimirvivien/go4vl/v4l2"
)

// List describes every V4L2 video capture node (/dev/videoN) with its
// driver, card, bus, the /dev/v4l/by-id and by-path symlinks naming it, and
// its formats, frame sizes and frame rates. Nodes that are not capture
// nodes (UVC metadata, codecs) are left out; a node that cannot be queried
// (permission) is listed with Error set. No devices gives an empty list and
// no error. It only queries: safe while a camera streams, from any
// goroutine. Multi-planar-only devices are not supported and not listed.
func List() ([]DeviceInfo, error) {
	return listDevices("/dev")
}

// listDevices is List over the nodes in dir.
func listDevices(dir string) ([]DeviceInfo, error) {
	nodes, err := videoNodes(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return []DeviceInfo{}, nil
		}
		return nil, fmt.Errorf("camera: list devices: %w", err)
	}
	byID := linksTo(dir + "/v4l/by-id")
	byPath := linksTo(dir + "/v4l/by-path")
	out := []DeviceInfo{}
	for _, n := range nodes {
		info, ok := probe(n)
		if !ok {
			continue
		}
		info.Links = slices.Concat(byID[n], byPath[n])
		info.classify()
		out = append(out, info)
	}
	return out, nil
}

// probe queries one node; ok is false if it is not a capture node.
func probe(path string) (info DeviceInfo, ok bool) {
	info = DeviceInfo{Path: path, Formats: []FormatInfo{}}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		info.Error = (&os.PathError{Op: "open", Path: path, Err: err}).Error()
		return info, true
	}
	defer syscall.Close(fd)
	caps, err := v4l2.GetCapability(uintptr(fd))
	if err != nil {
		if notV4L2(err) {
			return info, false
		}
		info.Error = fmt.Sprintf("query capabilities: %v", err)
		return info, true
	}
	if !isCaptureNode(caps) {
		return info, false
	}
	info.Driver, info.Card, info.Bus = caps.Driver, caps.Card, caps.BusInfo
	if info.Formats, err = enumFormats(uintptr(fd)); err != nil {
		info.Formats = []FormatInfo{}
		info.Error = fmt.Sprintf("list formats: %v", err)
	}
	return info, true
}
