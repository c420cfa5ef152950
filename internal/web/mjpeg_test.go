package web

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// testJPEG is a small image whose colour tells n.
func testJPEG(t testing.TB, n int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 32, 24))
	c := color.RGBA{uint8(n * 40), uint8(255 - n*40), 128, 255}
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// partReader checks a stream's answer and returns a reader of its parts.
func partReader(t *testing.T, resp *http.Response) *multipart.Reader {
	t.Helper()
	if resp.StatusCode != 200 {
		t.Fatalf("status %s", resp.Status)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/x-mixed-replace" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	return multipart.NewReader(resp.Body, params["boundary"])
}

// readPart reads one part and checks its headers.
func readPart(t *testing.T, mr *multipart.Reader) []byte {
	t.Helper()
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(p)
	if err != nil {
		t.Fatal(err)
	}
	if ct := p.Header.Get("Content-Type"); ct != "image/jpeg" {
		t.Fatalf("part Content-Type %q", ct)
	}
	if cl := p.Header.Get("Content-Length"); cl != strconv.Itoa(len(data)) {
		t.Fatalf("part Content-Length %q for %d bytes", cl, len(data))
	}
	return data
}

// The stream's parts parse with mime/multipart and decode as the JPEGs
// that were put, in order, one per new frame; a client that connects
// before the first frame waits for it.
func TestStreamParts(t *testing.T) {
	s, f := newServer(t, Config{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/peer.mjpg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Cache-Control") == "" {
		t.Error("stream may be cached")
	}
	mr := partReader(t, resp) // headers came before any frame
	for n := 1; n <= 6; n++ {
		want := testJPEG(t, n)
		f.peer.Put(want)
		got := readPart(t, mr)
		if !bytes.Equal(got, want) {
			t.Fatalf("part %d is not frame %d", n, n)
		}
		img, err := jpeg.Decode(bytes.NewReader(got))
		if err != nil {
			t.Fatalf("part %d: %v", n, err)
		}
		if r, _, _, _ := img.At(5, 5).RGBA(); int(r>>8) < n*40-8 || int(r>>8) > n*40+8 {
			t.Fatalf("part %d shows red %d, want about %d", n, r>>8, n*40)
		}
	}
	// The handler counts a part after writing it: the sixth was read, so
	// the first five are counted.
	if got := s.sent[1].Load(); got < 5 || got > 6 {
		t.Errorf("sent counter %d, want 5 or 6", got)
	}
}

// smallBufListener gives accepted connections a small send buffer, so
// that a client that does not read blocks the server soon.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		c.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	return c, err
}

// A client that stops reading makes the server skip frames, not keep
// them: after 150 frames of 1 MiB it gets the newest one within a few
// parts, and the heap holds a few frames, not 150.
func TestSlowClientSkips(t *testing.T) {
	s, f := newServer(t, Config{})
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Listener = smallBufListener{srv.Listener}
	srv.Start()
	defer srv.Close()

	const size, frames = 1 << 20, 150
	frame := func(v uint64) []byte {
		b := make([]byte, size)
		binary.BigEndian.PutUint64(b, v)
		return b
	}
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	fmt.Fprintf(conn, "GET /self.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), nil)
	if err != nil {
		t.Fatal(err)
	}
	mr := partReader(t, resp)
	f.self.Put(frame(1))
	if v := binary.BigEndian.Uint64(readPart(t, mr)); v != 1 {
		t.Fatalf("first part is frame %d", v)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for v := uint64(2); v <= frames; v++ {
		f.self.Put(frame(v)) // nobody reads meanwhile
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16*size {
		t.Errorf("heap grew by %d MiB while a client did not read %d frames of 1 MiB", grew>>20, frames-1)
	}

	var parts int
	for {
		parts++
		v := binary.BigEndian.Uint64(readPart(t, mr))
		if v == frames {
			break
		}
		if parts > 5 {
			t.Fatalf("part %d after the stall is frame %d: frames were queued", parts, v)
		}
	}
	if skipped := s.skip[0].Load(); skipped < frames-1-5 {
		t.Errorf("skipped counter %d, want at least %d", skipped, frames-1-5)
	}
}

// At most MaxStreams clients; the next gets 503 until one leaves.
func TestStreamLimit(t *testing.T) {
	s, _ := newServer(t, Config{MaxStreams: 2})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	open := func(path string) *http.Response {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	a, b := open("/self.mjpg"), open("/peer.mjpg") // 200 came: each holds its place
	defer b.Body.Close()
	if a.StatusCode != 200 || b.StatusCode != 200 {
		t.Fatalf("%s, %s", a.Status, b.Status)
	}
	c := open("/self.mjpg")
	c.Body.Close()
	if c.StatusCode != 503 || c.Header.Get("Retry-After") == "" {
		t.Fatalf("third client: %s, want 503 with Retry-After", c.Status)
	}
	if s.refused.Load() != 1 {
		t.Errorf("refused counter %d, want 1", s.refused.Load())
	}
	// Snapshots are not streams: still served.
	r := open("/snapshot/self.jpg")
	r.Body.Close()
	if r.StatusCode != 503 || r.Header.Get("Retry-After") != "1" {
		t.Errorf("snapshot: %s, want 503: no frame yet", r.Status)
	}
	a.Body.Close() // the server notices and frees the place
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := open("/self.mjpg")
		d.Body.Close()
		if d.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a client left and its place was never freed")
		}
		time.Sleep(10 * time.Millisecond) // polling for the server to notice the close
	}
}
