package rig

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"net"
	"os"
	"strconv"
	"time"
)

// Screendump grabs the guest's display through QEMU's QMP monitor
// (VMConfig.QMP) into a PPM file at path and returns it decoded.
func (v *VM) Screendump(ctx context.Context, path string) (*image.RGBA, error) {
	if v.cfg.QMP == "" {
		return nil, errors.New("rig: screendump: the VM has no QMP socket")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", v.cfg.QMP)
	if err != nil {
		return nil, fmt.Errorf("rig: qmp: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	r := bufio.NewReader(conn)
	if _, err := r.ReadBytes('\n'); err != nil { // the greeting
		return nil, fmt.Errorf("rig: qmp greeting: %w", err)
	}
	for _, cmd := range []map[string]any{
		{"execute": "qmp_capabilities"},
		{"execute": "screendump", "arguments": map[string]any{"filename": path}},
	} {
		b, _ := json.Marshal(cmd)
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return nil, fmt.Errorf("rig: qmp: %w", err)
		}
		if err := qmpReply(r); err != nil {
			return nil, fmt.Errorf("rig: qmp %s: %w", cmd["execute"], err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return DecodePPM(b)
}

// qmpReply reads lines until the command's answer, skipping events.
func qmpReply(r *bufio.Reader) error {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return err
		}
		var m struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("bad reply %q: %w", line, err)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s", m.Error.Class, m.Error.Desc)
		}
		if m.Return != nil {
			return nil
		}
	}
}

// DecodePPM reads a binary PPM (P6, maxval 255): what QEMU's screendump
// writes.
func DecodePPM(b []byte) (*image.RGBA, error) {
	var fields []int
	i := 2
	if !bytes.HasPrefix(b, []byte("P6")) {
		return nil, errors.New("rig: not a P6 PPM")
	}
	for len(fields) < 3 {
		for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
			i++
		}
		if i < len(b) && b[i] == '#' {
			for i < len(b) && b[i] != '\n' {
				i++
			}
			continue
		}
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(string(b[i:j]))
		if err != nil {
			return nil, fmt.Errorf("rig: PPM header: %w", err)
		}
		fields = append(fields, n)
		i = j
	}
	i++ // the single whitespace after maxval
	w, h := fields[0], fields[1]
	if fields[2] != 255 || w <= 0 || h <= 0 || len(b)-i < w*h*3 {
		return nil, fmt.Errorf("rig: PPM %dx%d maxval %d with %d bytes of pixels", w, h, fields[2], len(b)-i)
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	px := b[i:]
	for k := range w * h {
		img.Pix[4*k], img.Pix[4*k+1], img.Pix[4*k+2], img.Pix[4*k+3] = px[3*k], px[3*k+1], px[3*k+2], 255
	}
	return img, nil
}
