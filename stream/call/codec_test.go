package call

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callbox/callbox/stream/media"
	"github.com/callbox/callbox/stream/opus"
	"github.com/callbox/callbox/stream/wire"
)

func withCodecs(c ...wire.AudioCodec) func(*Config) {
	return func(cfg *Config) { cfg.Codecs = c }
}

// tone is frame seq of a 440 Hz tone in format f, continuous across frames.
func tone(f media.AudioFormat, seq uint32) []int16 {
	s := make([]int16, f.FrameLen())
	n := f.FrameSamples()
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(int(seq)*n+i)/float64(f.Rate)))
		for c := range f.Channels {
			s[i*f.Channels+c] = v
		}
	}
	return s
}

func rms(s []int16) float64 {
	var e float64
	for _, v := range s {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(max(len(s), 1)))
}

// concealSink records like recSink and keeps the Concealer it is given.
type concealSink struct {
	recSink
	cmu     sync.Mutex
	c       Concealer
	sets    int
	dropped int
}

func (s *concealSink) SetConcealer(c Concealer) { s.cmu.Lock(); s.c = c; s.sets++; s.cmu.Unlock() }
func (s *concealSink) DropConcealer(c Concealer) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.c == c {
		s.c = nil
		s.dropped++
	}
}

func TestPickCodec(t *testing.T) {
	o, p := wire.AudioOpus, wire.AudioPCM
	for _, c := range []struct {
		recv, send []wire.AudioCodec
		want       wire.AudioCodec
	}{
		{[]wire.AudioCodec{o, p}, []wire.AudioCodec{o, p}, o},
		{[]wire.AudioCodec{p, o}, []wire.AudioCodec{o, p}, p}, // the receiver's order rules
		{[]wire.AudioCodec{o, p}, []wire.AudioCodec{p}, p},
		{[]wire.AudioCodec{o}, []wire.AudioCodec{p}, p}, // PCM is always taken
		{nil, []wire.AudioCodec{o}, p},
		{[]wire.AudioCodec{9, o}, []wire.AudioCodec{9, o}, o}, // unknown codecs are skipped
		{peerCodecs(wire.Hello{}), []wire.AudioCodec{o, p}, p},
	} {
		if got := pickCodec(c.recv, c.send); got != c.want {
			t.Errorf("pickCodec(%v, %v) = %v, want %v", c.recv, c.send, got, c.want)
		}
	}
}

// TestOpusCall: two boxes that both offer Opus send it both ways: far fewer
// bytes than PCM, every frame arrives in order and sounds like what was
// sent, and the sink gets the session's concealment for the call.
func TestOpusCall(t *testing.T) {
	if !opus.Available() {
		t.Skip("built without Opus")
	}
	synctest.Test(t, func(t *testing.T) {
		var n network
		sa, sb := &concealSink{}, &concealSink{}
		a := n.addWith(t, "a", withCodecs(wire.AudioOpus, wire.AudioPCM), sa, &sa.recSink)
		b := n.addWith(t, "b", withCodecs(wire.AudioOpus, wire.AudioPCM), sb, &sb.recSink)
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, InCall)
		f := media.DefaultAudio
		const frames = 100 // 1 s of 10 ms frames: 50 packets of 20 ms
		for i := range uint32(frames) {
			a.SendAudio(media.Audio{Seq: i, Time: time.Now(), Samples: tone(f, i)})
			time.Sleep(f.FrameDuration())
		}
		synctest.Wait()
		st := b.Status().Call
		if st.In.AudioCodec != "opus" || st.Out.AudioCodec != "opus" {
			t.Fatalf("b's codecs in %q out %q, want opus both ways", st.In.AudioCodec, st.Out.AudioCodec)
		}
		if st.In.AudioFrames != frames/2 || st.In.AudioBad != 0 {
			t.Errorf("b got %d Opus packets (%d bad), want %d", st.In.AudioFrames, st.In.AudioBad, frames/2)
		}
		if pcm := uint64(frames * 2 * f.FrameLen()); st.In.AudioBytes*8 > pcm {
			t.Errorf("%d bytes of Opus for %d of PCM", st.In.AudioBytes, pcm)
		}
		sb.mu.Lock()
		got := slices.Clone(sb.audio)
		sb.mu.Unlock()
		if len(got) != frames {
			t.Fatalf("b's sink got %d frames, want %d", len(got), frames)
		}
		for i, au := range got {
			if au.Seq != uint32(i) || len(au.Samples) != f.FrameLen() {
				t.Fatalf("frame %d: seq %d, %d samples", i, au.Seq, len(au.Samples))
			}
			// Past the codec's start-up, each frame carries the tone's level.
			if r := rms(au.Samples); i >= 4 && (r < 0.7*rms(tone(f, 0)) || r > 1.3*rms(tone(f, 0))) {
				t.Errorf("frame %d: rms %.0f, the tone's is %.0f", i, r, rms(tone(f, 0)))
			}
		}
		sb.cmu.Lock()
		c := sb.c
		sb.cmu.Unlock()
		if c == nil {
			t.Fatal("the Opus call gave the sink no concealer")
		}
		plc := make([]int16, f.FrameLen())
		c.Conceal(plc)
		if rms(plc) == 0 {
			t.Error("concealment after the tone is silent")
		}
		if err := a.Hangup(context.Background()); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, Idle)
		time.Sleep(time.Second) // the sessions close
		synctest.Wait()
		sb.cmu.Lock()
		defer sb.cmu.Unlock()
		if sb.c != nil || sb.dropped != 1 {
			t.Errorf("after the call the sink still conceals with it (dropped %d)", sb.dropped)
		}
	})
}

// TestPCMOnlyPeer: a box that offers Opus calls one that takes only PCM
// (an older box, or audio.codec = "pcm"): both send PCM, bit for bit.
func TestPCMOnlyPeer(t *testing.T) {
	for _, caller := range []string{"opus box", "pcm box"} {
		t.Run(caller+" calls", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var n network
				o := n.add(t, "o", withCodecs(DefaultCodecs()...))
				p := n.add(t, "p", withCodecs(wire.AudioPCM))
				from, to := o, p
				if caller == "pcm box" {
					from, to = p, o
				}
				if err := from.Call(context.Background(), peerOf(to)); err != nil {
					t.Fatal(err)
				}
				wantState(t, to, InCall)
				f := media.DefaultAudio
				for i := range uint32(10) {
					o.SendAudio(media.Audio{Seq: i, Time: time.Now(), Samples: tone(f, i)})
					p.SendAudio(media.Audio{Seq: i, Time: time.Now(), Samples: tone(f, 100+i)})
					time.Sleep(f.FrameDuration())
				}
				synctest.Wait()
				for _, c := range []struct {
					b    *box
					base uint32
				}{{o, 100}, {p, 0}} {
					st := c.b.Status().Call
					if st.In.AudioCodec != "pcm" || st.Out.AudioCodec != "pcm" {
						t.Errorf("%s: codecs in %q out %q, want pcm", c.b.name, st.In.AudioCodec, st.Out.AudioCodec)
					}
					c.b.sink.mu.Lock()
					if len(c.b.sink.audio) != 10 {
						t.Errorf("%s got %d frames, want 10", c.b.name, len(c.b.sink.audio))
					}
					for i, au := range c.b.sink.audio {
						if au.Seq != uint32(i) || !slices.Equal(au.Samples, tone(f, c.base+uint32(i))) {
							t.Errorf("%s: frame %d (seq %d) is not what was sent", c.b.name, i, au.Seq)
						}
					}
					c.b.sink.mu.Unlock()
				}
			})
		})
	}
}

// TestAudioFramesOfOtherLengths: a peer whose frames (PCM) or packets
// (Opus) are longer or shorter than ours is played in our frames.
func TestAudioFramesOfOtherLengths(t *testing.T) {
	type side struct {
		frameMs, opusMs int
		codecs          []wire.AudioCodec
	}
	cases := []struct {
		name     string
		from, to side
	}{
		{"pcm 20 ms into 10 ms", side{20, 0, []wire.AudioCodec{wire.AudioPCM}}, side{10, 0, []wire.AudioCodec{wire.AudioPCM}}},
		{"pcm 10 ms into 20 ms", side{10, 0, []wire.AudioCodec{wire.AudioPCM}}, side{20, 0, []wire.AudioCodec{wire.AudioPCM}}},
		{"opus 10 ms into 20 ms", side{10, 10, []wire.AudioCodec{wire.AudioOpus}}, side{20, 20, []wire.AudioCodec{wire.AudioOpus}}},
		{"opus 20 ms into 10 ms", side{20, 20, []wire.AudioCodec{wire.AudioOpus}}, side{10, 20, []wire.AudioCodec{wire.AudioOpus}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.from.opusMs > 0 && !opus.Available() {
				t.Skip("built without Opus")
			}
			synctest.Test(t, func(t *testing.T) {
				var n network
				mod := func(s side) func(*Config) {
					return func(cfg *Config) {
						cfg.Audio = media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: s.frameMs}
						cfg.Codecs, cfg.OpusFrameMs = s.codecs, s.opusMs
					}
				}
				a, b := n.add(t, "a", mod(c.from)), n.add(t, "b", mod(c.to))
				if err := a.Call(context.Background(), peerOf(b)); err != nil {
					t.Fatal(err)
				}
				wantState(t, b, InCall)
				fa := media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: c.from.frameMs}
				const ms = 400
				for i := range uint32(ms / c.from.frameMs) {
					a.SendAudio(media.Audio{Seq: i, Time: time.Now(), Samples: tone(fa, i)})
					time.Sleep(fa.FrameDuration())
				}
				synctest.Wait()
				b.sink.mu.Lock()
				defer b.sink.mu.Unlock()
				want := ms / c.to.frameMs
				if len(b.sink.audio) != want {
					t.Fatalf("b got %d frames, want %d", len(b.sink.audio), want)
				}
				fb := media.AudioFormat{Rate: 48000, Channels: 1, FrameMs: c.to.frameMs}
				for i, au := range b.sink.audio {
					if au.Seq != uint32(i) || len(au.Samples) != fb.FrameLen() {
						t.Fatalf("frame %d: seq %d, %d samples", i, au.Seq, len(au.Samples))
					}
					if c.from.opusMs == 0 && !slices.Equal(au.Samples, tone(fb, uint32(i))) {
						t.Fatalf("frame %d is not the PCM sent", i)
					}
				}
			})
		})
	}
}

// TestPCMFormatsThatCannotPlay: PCM at another rate cannot be played (no
// resampling): the call ends with reason media and says why. With Opus
// the decoder plays any rate at ours.
func TestPCMFormatsThatCannotPlay(t *testing.T) {
	for _, codec := range []wire.AudioCodec{wire.AudioPCM, wire.AudioOpus} {
		t.Run(codec.String(), func(t *testing.T) {
			if codec == wire.AudioOpus && !opus.Available() {
				t.Skip("built without Opus")
			}
			synctest.Test(t, func(t *testing.T) {
				var n network
				a := n.add(t, "a", func(c *Config) {
					c.Codecs = []wire.AudioCodec{codec}
					c.Audio = media.AudioFormat{Rate: 16000, Channels: 1, FrameMs: 10}
				})
				b := n.add(t, "b", withCodecs(codec))
				if err := a.Call(context.Background(), peerOf(b)); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				if codec == wire.AudioOpus {
					wantState(t, b, InCall)
					return
				}
				time.Sleep(time.Second) // the hangup lingers, then the session closes
				wantState(t, a, Idle)
				if le := a.Status().LastEnd; !strings.Contains(le, "Hz") {
					t.Errorf("a's last end %q does not say the formats differ", le)
				}
			})
		})
	}
}

// TestBadOpusIsDropped: packets that do not decode are counted as bad and
// the call goes on.
func TestBadOpusIsDropped(t *testing.T) {
	if !opus.Available() {
		t.Skip("built without Opus")
	}
	synctest.Test(t, func(t *testing.T) {
		var n network
		a := n.add(t, "a", withCodecs(wire.AudioOpus))
		b := n.add(t, "b", withCodecs(wire.AudioOpus))
		if err := a.Call(context.Background(), peerOf(b)); err != nil {
			t.Fatal(err)
		}
		wantState(t, b, InCall)
		s := a.active.Load()
		// Code 3 with no frames, and a frame count past 120 ms: invalid.
		for _, p := range [][]byte{{0x03}, {0xfb, 0x3f}} {
			s.enqueue(wire.Message{Time: time.Now().UnixNano(), Body: wire.Audio{PCM: p}})
		}
		synctest.Wait()
		for i := range uint32(4) {
			a.SendAudio(media.Audio{Seq: i, Time: time.Now(), Samples: tone(media.DefaultAudio, i)})
		}
		synctest.Wait()
		st := b.Status()
		if st.State != InCall || st.Call.In.AudioBad != 2 || st.Call.In.AudioFrames != 2 {
			t.Fatalf("b: %v, %d bad and %d good packets; want in call, 2 and 2", st.State, st.Call.In.AudioBad, st.Call.In.AudioFrames)
		}
	})
}

// TestLostOpusPacketsAreConcealed: a gap of up to maxGapConceal packets
// is filled from the decoder's concealment, marked as such, so the frames
// keep their timeline; a longer gap is left to the playout buffer.
func TestLostOpusPacketsAreConcealed(t *testing.T) {
	if !opus.Available() {
		t.Skip("built without Opus")
	}
	f := media.DefaultAudio // 10 ms frames, packed two to a 20 ms packet
	pk, err := newPacker(wire.AudioOpus, f, opus.Config{}, 20, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pk.close()
	u, err := newUnpacker(wire.AudioOpus, f, f)
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	var got []media.Audio
	lost := map[uint32]bool{3: true, 6: true, 7: true, 10: true, 11: true, 12: true, 13: true}
	t0 := time.Unix(1000, 0)
	for i := range uint32(40) {
		p, seq, ts, err := pk.add(media.Audio{Seq: i, Time: t0.Add(time.Duration(i) * 10 * time.Millisecond), Samples: tone(f, i)})
		if err == errPartial {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if lost[seq] {
			continue
		}
		if err := u.frames(seq, ts, p, func(a media.Audio) { got = append(got, a) }); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []uint32
	concealed := map[uint32]bool{}
	for i, a := range got {
		seqs = append(seqs, a.Seq)
		if a.Concealed {
			concealed[a.Seq] = true
			if want := t0.Add(time.Duration(a.Seq) * 10 * time.Millisecond); !a.Time.Equal(want) {
				t.Errorf("concealed frame %d at %v, want %v", a.Seq, a.Time.Sub(t0), want.Sub(t0))
			}
		}
		if i > 0 && a.Seq <= got[i-1].Seq {
			t.Fatalf("frame %d after %d", a.Seq, got[i-1].Seq)
		}
	}
	// Packet 3 (frames 6, 7) and packets 6-7 (frames 12-15) are made up;
	// packets 10-13 are a gap of four: frames 20-27 are missing.
	want := map[uint32]bool{6: true, 7: true, 12: true, 13: true, 14: true, 15: true}
	if len(concealed) != len(want) {
		t.Errorf("concealed frames %v, want %v", concealed, want)
	}
	for s := range want {
		if !concealed[s] {
			t.Errorf("frame %d not concealed (got %v)", s, seqs)
		}
	}
	if len(got) != 40-8 {
		t.Errorf("%d frames: %v", len(got), seqs)
	}
}

// TestPackerSeqNeverGoesBack: a microphone re-opened during a call counts
// its frames from 0 again; the packets' seq goes on from the last one
// sent (else the peer drops them as old until the count catches up),
// and a gap in the device's frames stays a gap.
func TestPackerSeqNeverGoesBack(t *testing.T) {
	f := media.DefaultAudio
	codecs := []wire.AudioCodec{wire.AudioPCM}
	if opus.Available() {
		codecs = append(codecs, wire.AudioOpus)
	}
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			pk, err := newPacker(c, f, opus.Config{}, 20, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer pk.close()
			var got []uint32
			feed := func(from, to uint32) {
				for i := from; i < to; i++ {
					_, seq, _, err := pk.add(media.Audio{Seq: i, Time: time.Now(), Samples: tone(f, i)})
					if err == errPartial {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, seq)
				}
			}
			feed(0, 20)  // the device's first life
			feed(0, 8)   // re-opened: counts from 0
			feed(12, 16) // a gap of 4 frames
			per := uint32(1)
			if c == wire.AudioOpus {
				per = 2
			}
			first := 20 / per
			want := []uint32{}
			for i := range first {
				want = append(want, i)
			}
			for i := range 8 / per {
				want = append(want, first+i)
			}
			next := first + 8/per
			for i := range 4 / per {
				want = append(want, next+4/per+i)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("seqs %v\nwant %v", got, want)
			}
		})
	}
}
