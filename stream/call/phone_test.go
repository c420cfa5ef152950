package call

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/wire"
)

// recSink records what a phone received.
type recSink struct {
	mu     sync.Mutex
	frames []media.Frame
	audio  []media.Audio
}

func (s *recSink) Video(f media.Frame) { s.mu.Lock(); s.frames = append(s.frames, f); s.mu.Unlock() }
func (s *recSink) Audio(a media.Audio) { s.mu.Lock(); s.audio = append(s.audio, a); s.mu.Unlock() }
func (s *recSink) counts() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames), len(s.audio)
}

// box is a phone under test with its sink and a way to stop it.
type box struct {
	*Phone
	name string
	sink *recSink
	stop context.CancelFunc
	done chan struct{}
}

// net joins boxes with net.Pipe: dialling a box hands the other end of a
// pipe to its Accept, as the daemon's TLS listener would.
type network struct {
	mu    sync.Mutex
	boxes map[string]*box
	wrap  func(c net.Conn) net.Conn // optional: interpose on the caller's end
	// slow makes the named box's dials take this long (a TLS handshake
	// still under way).
	slow map[string]time.Duration
}

func (n *network) dialer(from string) Dialer {
	return func(ctx context.Context, peer Peer) (net.Conn, error) {
		n.mu.Lock()
		b, ok := n.boxes[peer.Name]
		wrap := n.wrap
		delay := n.slow[from]
		n.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if !ok {
			return nil, errors.New("connection refused")
		}
		c1, c2 := net.Pipe()
		go b.Accept(c2, Peer{Name: from, Fingerprint: "fp-" + from})
		if wrap != nil {
			return wrap(c1), nil
		}
		return c1, nil
	}
}

func (n *network) add(t *testing.T, name string, mod func(*Config)) *box {
	t.Helper()
	sink := &recSink{}
	return n.addWith(t, name, mod, sink, sink)
}

// addWith adds a box whose phone delivers to sink; rec is what the sink
// records into.
func (n *network) addWith(t *testing.T, name string, mod func(*Config), sink Sink, rec *recSink) *box {
	t.Helper()
	// PCM unless a test says otherwise: these tests check audio sample for
	// sample (codec_test.go calls with Opus).
	cfg := Config{Name: name, ID: "fp-" + name, AutoAnswer: true, Codecs: []wire.AudioCodec{wire.AudioPCM}}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg, n.dialer(name), sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &box{Phone: p, name: name, sink: rec, stop: cancel, done: make(chan struct{})}
	go func() { p.Run(ctx); close(b.done) }()
	n.mu.Lock()
	if n.boxes == nil {
		n.boxes = map[string]*box{}
	}
	n.boxes[name] = b
	n.mu.Unlock()
	t.Cleanup(func() { cancel(); <-b.done })
	return b
}

func peerOf(b *box) Peer { return Peer{Name: b.name, Fingerprint: "fp-" + b.name} }

func wantState(t *testing.T, b *box, want State) {
	t.Helper()
	synctest.Wait()
	if got := b.Status().State; got != want {
		t.Fatalf("%s: state %v, want %v (last end: %q)", b.name, got, want, b.Status().LastEnd)
	}
}

func TestCallAutoAnswerMediaAndHangup(t *testing.T) {
	for _, who := range []string{"caller", "callee"} {
		t.Run("hangup by "+who, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var n network
				a, b := n.add(t, "a", nil), n.add(t, "b", nil)
				if err := a.Call(context.Background(), peerOf(b)); err != nil {
					t.Fatal(err)
				}
				wantState(t, a, InCall)
				wantState(t, b, InCall)
				if got := b.Status().Peer; got == nil || got.Name != "a" {
					t.Fatalf("b's peer = %+v, want a", got)
				}
				// Media both ways, paced like devices.
				for i := range 20 {
					jpeg := testJPEG(fmt.Sprintf("frame %d of a", i), 0)
					a.SendVideo(media.Frame{Seq: uint32(i), Time: time.Now(), JPEG: jpeg})
					b.SendAudio(media.Audio{Seq: uint32(i), Time: time.Now(), Samples: testPCM(int16(i), -int16(i))})
					time.Sleep(33 * time.Millisecond)
				}
				synctest.Wait()
				b.sink.mu.Lock()
				if len(b.sink.frames) != 20 {
					t.Errorf("b got %d frames, want 20", len(b.sink.frames))
				}
				for i, f := range b.sink.frames {
					if f.Seq != uint32(i) || !bytes.Equal(f.JPEG, testJPEG(fmt.Sprintf("frame %d of a", i), 0)) {
						t.Errorf("frame %d = seq %d %q", i, f.Seq, f.JPEG)
					}
				}
				b.sink.mu.Unlock()
				a.sink.mu.Lock()
				if len(a.sink.audio) != 20 {
					t.Errorf("a got %d audio frames, want 20", len(a.sink.audio))
				}
				for i, au := range a.sink.audio {
					if au.Seq != uint32(i) || au.Samples[0] != int16(i) || au.Samples[1] != -int16(i) {
						t.Errorf("audio %d = %+v", i, au)
					}
				}
				a.sink.mu.Unlock()
				st := a.Status()
				if st.Call == nil || st.Call.Out.VideoFrames != 20 || st.Call.In.AudioFrames != 20 {
					t.Fatalf("a's stats = %+v", st.Call)
				}
				if st.Call.RTT < 0 || st.Call.In.AudioLatency.N == 0 {
					t.Errorf("no rtt or latency figures: %+v", st.Call)
				}

				hanger, other := a, b
				if who == "callee" {
					hanger, other = b, a
				}
				if err := hanger.Hangup(context.Background()); err != nil {
					t.Fatal(err)
				}
				wantState(t, hanger, Idle)
				wantState(t, other, Idle)
				if le := other.Status().LastEnd; !strings.Contains(le, "hung up") {
					t.Errorf("%s: last end %q, want it to say hung up", other.name, le)
				}
				if lc := other.Status().LastCall; lc == nil || lc.Seconds <= 0 {
					t.Errorf("%s: no last call figures: %+v", other.name, lc)
				}
				// Both can call again.
				if err := other.Call(context.Background(), peerOf(hanger)); err != nil {
					t.Fatal(err)
				}
				wantState(t, other, InCall)
				wantState(t, hanger, InCall)
			})
		})
	}
}

func TestRingingAnswerByPress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		a := n.add(t, "a", nil)
		b := n.add(t, "b", func(c *Config) { c.AutoAnswer = false })
		a.Call(context.Background(), peerOf(b))
		wantState(t, b, Ringing)
		wantState(t, a, Calling)
		// No media flows before the answer.
		a.SendVideo(media.Frame{JPEG: testJPEG("", 0)})
		synctest.Wait()
		if f, _ := b.sink.counts(); f != 0 {
			t.Fatalf("media before answer: %d frames", f)
		}
		if err := b.Press(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, InCall)
		wantState(t, a, InCall)
		// Press again hangs up.
		b.Press(context.Background())
		wantState(t, b, Idle)
		wantState(t, a, Idle)
	})
}

func TestRingTimeoutAndDecline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		a := n.add(t, "a", nil)
		b := n.add(t, "b", func(c *Config) { c.AutoAnswer = false; c.RingTimeout = 10 * time.Second })
		a.Call(context.Background(), peerOf(b))
		wantState(t, b, Ringing)
		time.Sleep(11 * time.Second)
		wantState(t, a, Idle)
		wantState(t, b, Idle)
		if le := a.Status().LastEnd; !strings.Contains(le, "declined") {
			t.Errorf("caller's last end %q, want declined", le)
		}
		// Declining by hangup.
		a.Call(context.Background(), peerOf(b))
		wantState(t, b, Ringing)
		b.Hangup(context.Background())
		wantState(t, a, Idle)
		wantState(t, b, Idle)
	})
}

func TestBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		a, b, c := n.add(t, "a", nil), n.add(t, "b", nil), n.add(t, "c", nil)
		a.Call(context.Background(), peerOf(b))
		wantState(t, b, InCall)
		c.Call(context.Background(), peerOf(b))
		wantState(t, c, Idle)
		if le := c.Status().LastEnd; !strings.Contains(le, "busy") {
			t.Errorf("third caller's last end %q, want busy", le)
		}
		wantState(t, a, InCall)
		wantState(t, b, InCall)
		if err := a.Call(context.Background(), peerOf(c)); !errors.Is(err, ErrBusy) {
			t.Errorf("call while in a call: %v, want ErrBusy", err)
		}
	})
}

// TestCrossedCallsWhileDialling: when one box's call request arrives while
// the other's own dial is still connecting, both still end up in one call
// (the one the smaller fingerprint placed), whichever box is slower.
func TestCrossedCallsWhileDialling(t *testing.T) {
	for _, slow := range []string{"a", "b"} {
		t.Run(slow+" dials slowly", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := network{slow: map[string]time.Duration{slow: 200 * time.Millisecond}}
				a, b := n.add(t, "a", nil), n.add(t, "b", nil)
				a.Call(context.Background(), peerOf(b))
				b.Call(context.Background(), peerOf(a))
				time.Sleep(time.Second)
				wantState(t, a, InCall)
				wantState(t, b, InCall)
				// a has the smaller fingerprint: its call is the one kept,
				// never refused as busy (a busy on both sides left both
				// boxes idle when the two refusals crossed).
				if le := a.Status().LastEnd; le != "" {
					t.Errorf("a's own call ended (%q); want it kept", le)
				}
				a.SendAudio(media.Audio{Samples: testPCM(1)})
				synctest.Wait()
				if _, au := b.sink.counts(); au != 1 {
					t.Fatalf("b got %d audio frames over the surviving call, want 1", au)
				}
			})
		})
	}
}

func TestCrossedCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		a, b := n.add(t, "a", nil), n.add(t, "b", nil)
		a.Call(context.Background(), peerOf(b))
		b.Call(context.Background(), peerOf(a))
		time.Sleep(time.Second)
		wantState(t, a, InCall)
		wantState(t, b, InCall)
		a.SendAudio(media.Audio{Samples: testPCM(1)})
		synctest.Wait()
		if _, au := b.sink.counts(); au != 1 {
			t.Fatalf("b got %d audio frames over the surviving call, want 1", au)
		}
	})
}

// blackhole is a conn end whose link can be cut: afterwards writes vanish
// and nothing more arrives, like a pulled cable.
type blackhole struct {
	net.Conn
	mu  sync.Mutex
	cut bool
}

func (b *blackhole) Write(p []byte) (int, error) {
	b.mu.Lock()
	cut := b.cut
	b.mu.Unlock()
	if cut {
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func TestKeepaliveDetectsDeadPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		var bh *blackhole
		n.wrap = func(c net.Conn) net.Conn { bh = &blackhole{Conn: c}; return bh }
		a, b := n.add(t, "a", nil), n.add(t, "b", nil)
		a.Call(context.Background(), peerOf(b))
		wantState(t, b, InCall)
		time.Sleep(5 * time.Second) // pings keep a healthy call up
		wantState(t, a, InCall)
		wantState(t, b, InCall)

		// Cut a's sending side: b hears nothing more.
		bh.mu.Lock()
		bh.cut = true
		bh.mu.Unlock()
		cut := time.Now()
		for b.Status().State != Idle {
			time.Sleep(10 * time.Millisecond)
			if time.Since(cut) > 10*time.Second {
				t.Fatal("b never noticed the dead peer")
			}
		}
		if d := time.Since(cut); d > 3*time.Second {
			t.Errorf("dead peer noticed after %v, want within 3s", d)
		}
		if le := b.Status().LastEnd; !strings.Contains(le, "silent") {
			t.Errorf("last end %q, want the peer timeout", le)
		}
	})
}

func TestGarbageFromPeerEndsSession(t *testing.T) {
	cases := map[string][]byte{
		"not a header":  []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"oversized":     {0xff, 0xff, 0xff, 0xff, 1, 0},
		"unknown type":  {0, 0, 0, 14, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"call no hello": {0, 0, 0, 14, byte(wire.TypeCall), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	for name, junk := range cases {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var n network
				b := n.add(t, "b", nil)
				c1, c2 := net.Pipe()
				b.Accept(c2, Peer{Name: "x", Fingerprint: "fp-x"})
				go func() {
					// Read whatever b says, so its writes do not block.
					buf := make([]byte, 4096)
					for {
						if _, err := c1.Read(buf); err != nil {
							return
						}
					}
				}()
				c1.Write(junk)
				time.Sleep(6 * time.Second)
				wantState(t, b, Idle)
				// The connection is closed by b.
				if _, err := c1.Write([]byte{0}); err == nil {
					t.Error("b kept the connection open")
				}
				c1.Close()
			})
		})
	}
}

func TestLatestWinsVideo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		a, b := n.add(t, "a", nil), n.add(t, "b", nil)
		a.Call(context.Background(), peerOf(b))
		wantState(t, a, InCall)
		// Offer many frames at once; the writer can only take some.
		for i := range 50 {
			a.SendVideo(media.Frame{Seq: uint32(i), Time: time.Now(), JPEG: testJPEG("", 20000)})
		}
		synctest.Wait()
		time.Sleep(time.Second)
		st := a.Status().Call
		got, _ := b.sink.counts()
		// Frames are replaced at the sender before sending and, when two
		// arrive before b's sink took the first, at the receiver.
		sinkDrops := b.Status().Call.In.VideoSinkDrops
		if uint64(got)+st.Out.VideoDrops+sinkDrops != 50 || st.Out.VideoDrops == 0 {
			t.Fatalf("received %d + dropped %d by a + %d by b, want 50 with some dropped", got, st.Out.VideoDrops, sinkDrops)
		}
		b.sink.mu.Lock()
		last := b.sink.frames[len(b.sink.frames)-1].Seq
		b.sink.mu.Unlock()
		if last != 49 {
			t.Errorf("last delivered frame %d, want the newest (49)", last)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.ChunkSize = 100 }, "chunk size"},
		{func(c *Config) { c.PeerTimeout = 100 * time.Millisecond }, "peer timeout"},
		{func(c *Config) { c.Audio = media.AudioFormat{Rate: 12345, Channels: 1, FrameMs: 10} }, "audio rate"},
		{func(c *Config) { c.Video = media.VideoFormat{Width: 8, Height: 8, FPS: 30} }, "width"},
	}
	for _, c := range cases {
		var cfg Config
		c.mod(&cfg)
		err := cfg.Validate()
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want %q", err, c.want)
		}
	}
}

// Each side learns the video size the other wants, for the call's length.
func TestPreferredVideoSizeReachesThePeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n network
		var seen []*media.Size
		a := n.add(t, "a", func(c *Config) {
			c.OnChange = func(st Status) {
				if st.State == InCall {
					seen = append(seen, st.PeerPrefers)
				}
			}
		})
		b := n.add(t, "b", func(c *Config) { c.Prefer = media.Size{Width: 640, Height: 480} })
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, a, InCall)
		wantState(t, b, InCall)
		if p := a.Status().PeerPrefers; p == nil || *p != (media.Size{Width: 640, Height: 480}) {
			t.Errorf("a: peer prefers %v, want 640x480", p)
		}
		if len(seen) != 1 || seen[0] == nil || *seen[0] != (media.Size{Width: 640, Height: 480}) {
			t.Errorf("a's OnChange in call saw %v, want 640x480 once", seen)
		}
		if p := b.Status().PeerPrefers; p != nil {
			t.Errorf("b: peer prefers %v, want nil (a has no preference)", *p)
		}
		if err := a.Hangup(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantState(t, a, Idle)
		if p := a.Status().PeerPrefers; p != nil {
			t.Errorf("a after hangup: peer prefers %v, want nil", *p)
		}
	})
}
