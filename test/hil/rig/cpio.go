package rig

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// Payload is a per-scenario initramfs archive: the files a scenario adds
// to the cached base (its /hil/ config, the binaries under test, the box's
// identity). The kernel unpacks the base and then the payload, so a
// payload file replaces a base file of the same name. Parent directories
// are added as needed (mode 0755 unless added explicitly).
type Payload struct {
	entries map[string]entry
}

type entry struct {
	mode os.FileMode
	data []byte
	src  string // read at write time when data is nil
}

// NewPayload returns an empty payload.
func NewPayload() *Payload { return &Payload{entries: map[string]entry{}} }

// Dir adds a directory.
func (p *Payload) Dir(name string, perm os.FileMode) {
	p.entries[clean(name)] = entry{mode: os.ModeDir | perm}
}

// File adds a file with the given contents.
func (p *Payload) File(name string, perm os.FileMode, data []byte) {
	p.entries[clean(name)] = entry{mode: perm, data: data}
}

// Copy adds the file at src (read when the payload is written).
func (p *Payload) Copy(name string, perm os.FileMode, src string) {
	p.entries[clean(name)] = entry{mode: perm, src: src}
}

func clean(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// WriteTo writes the payload as a "newc" cpio archive (what the kernel's
// initramfs unpacker reads), directories before what they hold, owned by
// root.
func (p *Payload) WriteTo(w io.Writer) (int64, error) {
	all := map[string]entry{}
	for name, e := range p.entries {
		all[name] = e
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				if _, ok := p.entries[d]; !ok {
					all[d] = entry{mode: os.ModeDir | 0o755}
				}
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.Sort(names) // a parent sorts before its children
	cw := &countWriter{w: bufio.NewWriter(w)}
	for i, name := range names {
		e := all[name]
		data := e.data
		if e.mode.IsRegular() && data == nil && e.src != "" {
			var err error
			if data, err = os.ReadFile(e.src); err != nil {
				return cw.n, fmt.Errorf("payload: %w", err)
			}
		}
		if err := writeEntry(cw, uint32(i+1), name, e.mode, data); err != nil {
			return cw.n, err
		}
	}
	if err := writeEntry(cw, 0, "TRAILER!!!", 0, nil); err != nil {
		return cw.n, err
	}
	return cw.n, cw.w.(*bufio.Writer).Flush()
}

// writeEntry writes one newc header, name and data, each padded to 4 bytes.
func writeEntry(w io.Writer, ino uint32, name string, mode os.FileMode, data []byte) error {
	m := uint32(mode.Perm())
	nlink := 1
	switch {
	case mode.IsDir():
		m |= 0o040000
		nlink = 2
	case name == "TRAILER!!!":
	default:
		m |= 0o100000
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, m, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	var buf []byte
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	_, err := w.Write(make([]byte, (4-len(data)%4)%4))
	return err
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
