package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/callbox/callbox/device/audio"
	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/call"
	"github.com/callbox/callbox/stream/identity"
	"github.com/callbox/callbox/stream/media"
)

// sinkDelay is how long the slow receiver's video sink takes per frame.
const sinkDelay = 50 * time.Millisecond

// slowSink is a receiver's display that takes sinkDelay per frame. It notes
// how old each frame is when it gets it (both ends share this machine's
// clock, so no offset is involved).
type slowSink struct {
	mu    sync.Mutex
	start time.Time
	got   []latPoint // bounded by maxPoints; later frames are not noted
}

type latPoint struct {
	at  time.Duration // since start
	lat time.Duration
}

const maxPoints = 1 << 16 // ten minutes at 100 frames a second

func (s *slowSink) Video(f media.Frame) {
	now := time.Now()
	s.mu.Lock()
	if len(s.got) < maxPoints {
		s.got = append(s.got, latPoint{at: now.Sub(s.start), lat: now.Sub(f.Time)})
	}
	s.mu.Unlock()
	time.Sleep(sinkDelay) // decoding and showing, on a slow machine
}

func (s *slowSink) Audio(media.Audio) {}

func (s *slowSink) points() []latPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// slowPeer is a box built in this program from stream/call, so that its sink
// can be slow without a daemon knob. It answers calls from paired peers and
// sends the test audio signal back.
type slowPeer struct {
	id    *identity.Identity
	store *identity.Store
	ln    net.Listener
	phone *call.Phone
	sink  *slowSink
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

func newSlowPeer(ctx context.Context, dir string, daemon *box) (*slowPeer, error) {
	id, _, err := identity.LoadOrCreate(filepath.Join(dir, "state"), "slow")
	if err != nil {
		return nil, err
	}
	store, err := identity.OpenStore(filepath.Join(dir, "peers.json"))
	if err != nil {
		return nil, err
	}
	fp, err := identity.ParseFingerprint(daemon.FP)
	if err != nil {
		return nil, err
	}
	if err := store.Add(identity.Peer{Name: daemon.Name, Fingerprint: fp, Address: daemon.Addr}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &slowPeer{id: id, store: store, ln: ln, sink: &slowSink{start: time.Now()}}
	p.phone, err = call.New(call.Config{Name: "slow", ID: id.Fingerprint.String(), AutoAnswer: true},
		func(context.Context, call.Peer) (net.Conn, error) {
			return nil, errors.New("the slow peer does not call")
		},
		p.sink)
	if err != nil {
		ln.Close()
		return nil, err
	}
	ctx, p.stop = context.WithCancel(ctx)
	p.wg.Add(3)
	go func() { defer p.wg.Done(); p.phone.Run(ctx) }()
	go func() { defer p.wg.Done(); p.accept(ctx) }()
	go func() { defer p.wg.Done(); p.talk(ctx) }()
	return p, nil
}

func (p *slowPeer) accept(ctx context.Context) {
	for {
		raw, err := p.ln.Accept()
		if err != nil {
			return
		}
		call.TuneTCP(raw, 16<<10) // as the daemon does
		tc := tls.Server(raw, p.id.ServerTLS(p.store))
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			continue
		}
		fp, err := identity.PeerFingerprint(tc.ConnectionState())
		if err != nil {
			tc.Close()
			continue
		}
		peer, _ := p.store.ByFingerprint(fp)
		p.phone.Accept(tc, call.Peer{Name: peer.Name, Fingerprint: fp.String()})
	}
}

// talk sends the test signal, as a microphone would.
func (p *slowPeer) talk(ctx context.Context) {
	mic := audio.NewTestSource(media.DefaultAudio)
	defer mic.Close()
	for {
		a, err := mic.Read(ctx)
		if err != nil {
			return
		}
		p.phone.SendAudio(a)
	}
}

func (p *slowPeer) close() {
	p.stop()
	p.ln.Close()
	p.wg.Wait()
}

// runSlow has a daemon call the slow peer and measures what the peer's
// sink sees.
func runSlow(ctx context.Context, bin, dir string, length time.Duration) (result, error) {
	res := result{name: "slow", title: "slow receiver"}
	a, err := startBox(ctx, bin, "hall", filepath.Join(dir, "hall"), videoTOML(640, 480, 30))
	if err != nil {
		return res, err
	}
	defer stopBox(a, dir)
	p, err := newSlowPeer(ctx, filepath.Join(dir, "slow"), a)
	if err != nil {
		return res, err
	}
	defer p.close()
	if err := a.Client.Do(ctx, "POST", "/v1/peers", control.Peer{Name: "slow", Fingerprint: p.id.Fingerprint.String(), Address: p.ln.Addr().String()}, nil); err != nil {
		return res, err
	}
	if err := a.Press(ctx); err != nil {
		return res, err
	}
	if _, err := a.WaitState(ctx, "in call", 15*time.Second); err != nil {
		return res, err
	}
	for deadline := time.Now().Add(5 * time.Second); p.phone.Status().State != call.InCall; {
		if time.Now().After(deadline) {
			return res, errors.New("the slow peer never got into the call")
		}
		time.Sleep(20 * time.Millisecond)
	}
	callStart := time.Since(p.sink.start)
	m, err := measure(ctx, []*box{a}, length)
	if err != nil {
		return res, err
	}
	res.seconds = m.seconds
	first, last := m.samples[m.first], m.samples[len(m.samples)-1]
	st := p.phone.Status()
	if st.Call == nil {
		return res, fmt.Errorf("the slow peer left the call: %s", st.LastEnd)
	}
	out := last.st[0].Phone.Call.Out
	fout := first.st[0].Phone.Call.Out
	d := dirResult{
		from: a.Name, to: "slow",
		audio:   latOf(st.Call.In.AudioLatAll),
		skipped: out.VideoDrops, sinkDrops: st.Call.In.VideoSinkDrops,
		audioDrops: out.AudioDrops + st.Call.In.AudioDrops,
		rssMB:      m.rssMB[0], linkKbps: out.LinkKbps, offsetMs: st.Call.Offset,
	}
	dt := (last.at - first.at).Seconds()
	d.cpuMsPerSec = float64(last.ticks[0]-first.ticks[0]) * 1000 / clockTicks / dt
	d.switchesCall = float64(last.switches[0]-first.switches[0]) / dt
	if frames := out.VideoFrames - fout.VideoFrames; frames > 0 {
		d.sentFPS = float64(frames) / dt
		d.cpuMsPerFrame = d.cpuMsPerSec / d.sentFPS
	}
	// Latency and fps as the sink saw them, from the sink's own notes.
	pts := p.sink.points()
	var all, firstSpan, lastSpan []float64
	end := callStart + last.at
	delivered := 0
	for _, pt := range pts {
		ms := float64(pt.lat.Microseconds()) / 1000
		all = append(all, ms)
		rel := pt.at - callStart
		if rel >= first.at && rel <= last.at {
			delivered++
		}
		switch {
		case rel < creepSpan:
			firstSpan = append(firstSpan, ms)
		case pt.at > end-creepSpan:
			lastSpan = append(lastSpan, ms)
		}
	}
	if len(all) == 0 {
		return res, errors.New("the slow peer's sink got no frames")
	}
	d.video = lat{p50: quantile(all, 0.5), p99: quantile(all, 0.99), max: quantile(all, 1)}
	d.fps = float64(delivered) / dt
	if last.at >= 2*creepSpan && len(firstSpan) > 0 && len(lastSpan) > 0 {
		d.creepValid = true
		d.creepVideo = [2]float64{quantile(firstSpan, 0.5), quantile(lastSpan, 0.5)}
		d.creepAudio = [2]float64{-1, -1} // the sink does not time audio
	}
	res.dirs = []dirResult{d}
	if err := a.Client.Do(ctx, "POST", "/v1/hangup", nil, nil); err != nil {
		return res, fmt.Errorf("hang up: %w", err)
	}
	return res, nil
}

// quantile returns the q-quantile of v (nearest rank).
func quantile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
