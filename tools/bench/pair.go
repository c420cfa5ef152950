package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/call"
)

// pairCase is one call between two daemons.
type pairCase struct {
	name, title string
	bin         string // the daemon, or a wrapper that runs it in a namespace
	binA, binB  string // per box, when they differ from bin
	dir         string
	width       int
	height      int
	fps         int           // default 30
	length      time.Duration // of the call
	series      string        // if set, write the per-poll figures here (CSV)
}

// lat is one latency summary in milliseconds.
type lat struct{ p50, p99, max float64 }

func latOf(l call.Latency) lat { return lat{l.P50, l.P99, l.Max} }

// dirResult is what one direction of a call measured: latencies and fps
// as the receiver saw them, CPU and memory of the sending process.
type dirResult struct {
	from, to       string
	audio, video   lat
	fps            float64 // video frames delivered to the receiver's sink per second
	sentFPS        float64 // video frames the sender put on the wire per second
	skipped        uint64  // frames the sender replaced before sending (latest wins)
	sinkDrops      uint64  // frames the receiver replaced before its sink took them
	audioDrops     uint64  // audio frames lost: sender queue drops plus receiver sequence gaps
	underruns      uint64  // the receiver's playout ran dry
	played         uint64  // frames the receiver's playout played
	overflow       uint64  // frames the receiver's playout dropped at its latency cap
	creepAudio     [2]float64
	creepVideo     [2]float64
	creepValid     bool
	cpuMsPerFrame  float64 // sender process CPU (user+sys) per video frame sent
	cpuIdleMs      float64 // of that, what the same process spends idle (its device loops), per frame
	cpuMsPerSec    float64 // sender process CPU in the call, ms per second
	idleMeasured   bool    // cpuIdleMs and switchesIdle were measured
	switchesIdle   float64 // sender process context switches per second before the call
	switchesCall   float64 // and in the call
	rssMB          float64 // sender process peak RSS (VmHWM)
	linkKbps       float64 // the sender's estimate of what the link carries
	offsetMs       float64 // the receiver's clock offset estimate (0 is the truth on one machine)
	playoutDepthMs float64 // the receiver's playout depth at the end
	playoutTarget  float64 // the receiver's playout target at the end, ms (adaptive)
	playoutJitter  float64 // and the arrival jitter it measured, ms
	codec          string  // the audio codec this way
	audioKbps      float64 // audio on the wire over the steady window: payload and message headers or datagram seal
	concealed      uint64  // frames the receiver's playout concealed after underruns
	videoKB        float64 // mean size of the video frames sent, kB
}

// result is one case.
type result struct {
	name, title string
	seconds     float64
	dirs        []dirResult
	linkNote    string // what the emulated link did, if any
	load        string // how busy the machine was meanwhile
}

// box is a running daemon and what the bench samples of it.
type box struct {
	*testbox.Box
	pid int
}

func startBox(ctx context.Context, bin, name, dir, extra string) (*box, error) {
	b, err := testbox.Start(ctx, bin, name, dir, testbox.Options{AutoAnswer: true, Extra: extra})
	if err != nil {
		return nil, err
	}
	pid, err := findPid(filepath.Join(dir, "callbox.toml"))
	if err != nil {
		b.Stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &box{Box: b, pid: pid}, nil
}

// videoTOML is the config the bench adds to testbox's: simulated devices,
// pre-encoded frames (so encoding does not count as call cost), quiet logs.
func videoTOML(w, h, fps int) string {
	return fmt.Sprintf(`log_level = "warn"
[video]
device = "sim"
width = %d
height = %d
fps = %d
precomputed = 30
`, w, h, fps)
}

// runPair runs one call from box a to box b and measures it.
func runPair(ctx context.Context, c pairCase) (result, error) {
	res := result{name: c.name, title: c.title}
	binA, binB := c.bin, c.bin
	if c.binA != "" {
		binA, binB = c.binA, c.binB
	}
	if c.fps == 0 {
		c.fps = 30
	}
	extra := videoTOML(c.width, c.height, c.fps)
	a, err := startBox(ctx, binA, "hall", filepath.Join(c.dir, "hall"), extra)
	if err != nil {
		return res, err
	}
	defer stopBox(a, c.dir)
	b, err := startBox(ctx, binB, "door", filepath.Join(c.dir, "door"), extra)
	if err != nil {
		return res, err
	}
	defer stopBox(b, c.dir)
	if err := testbox.Pair(ctx, a.Box, b.Box); err != nil {
		return res, err
	}
	if err := waitClosed(ctx, []*box{a, b}); err != nil {
		return res, err
	}
	idle, err := idleCPU(ctx, []*box{a, b}, idleSpan)
	if err != nil {
		return res, err
	}
	if err := a.Press(ctx); err != nil {
		return res, err
	}
	for _, x := range []*box{a, b} {
		if _, err := x.WaitState(ctx, "in call", 15*time.Second); err != nil {
			return res, err
		}
	}
	m, err := measure(ctx, []*box{a, b}, c.length)
	if err != nil {
		return res, err
	}
	m.idle, m.idleSwitches = idle.cpu, idle.switches
	if c.series != "" {
		if err := m.writeSeries(c.series); err != nil {
			return res, err
		}
	}
	res.seconds = m.seconds
	res.dirs = []dirResult{m.direction(0, 1), m.direction(1, 0)}
	if err := a.Client.Do(ctx, "POST", "/v1/hangup", nil, nil); err != nil {
		return res, fmt.Errorf("hang up: %w", err)
	}
	return res, nil
}

// stopBox stops a daemon and keeps its log next to its config.
func stopBox(b *box, dir string) {
	b.Stop()
	os.WriteFile(filepath.Join(b.Dir, "daemon.log"), []byte(b.Log()), 0o644)
}

// sample is one poll of every box.
type sample struct {
	at       time.Duration // since the call was up on every box
	st       []control.Status
	ticks    []uint64 // process CPU, user+sys, in clock ticks
	switches []uint64 // process context switches, voluntary and not
}

// measurement is a call watched from start to end.
type measurement struct {
	boxes   []*box
	seconds float64
	samples []sample // every half second
	first   int      // the sample that opens the steady window (after warm-up)
	rssMB   []float64
	idle    []float64 // per box, CPU ms per second before the call; nil if not measured
	// per box, context switches per second before the call
	idleSwitches []float64
}

// idleSpan is how long the bench watches the boxes' CPU before the call.
const idleSpan = 3 * time.Second

// idleFigures is what boxes cost while they wait for a call, per box.
type idleFigures struct {
	cpu      []float64 // CPU ms per second
	switches []float64 // context switches per second
}

// idleCPU measures each box's CPU use (ms per second) and context
// switches (per second) over span before any call: with the devices
// closed while nobody needs them, what waiting for a call costs.
func idleCPU(ctx context.Context, boxes []*box, span time.Duration) (idleFigures, error) {
	var before, swBefore []uint64
	for _, b := range boxes {
		t, err := cpuTicks(b.pid)
		if err != nil {
			return idleFigures{}, err
		}
		sw, err := switches(b.pid)
		if err != nil {
			return idleFigures{}, err
		}
		before, swBefore = append(before, t), append(swBefore, sw)
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return idleFigures{}, ctx.Err()
	case <-time.After(span):
	}
	dt := time.Since(start).Seconds()
	var f idleFigures
	for i, b := range boxes {
		t, err := cpuTicks(b.pid)
		if err != nil {
			return idleFigures{}, err
		}
		sw, err := switches(b.pid)
		if err != nil {
			return idleFigures{}, err
		}
		f.cpu = append(f.cpu, float64(t-before[i])*1000/clockTicks/dt)
		f.switches = append(f.switches, float64(sw-swBefore[i])/dt)
	}
	return f, nil
}

// switches sums the voluntary and involuntary context switches of every
// thread of a process (/proc/<pid>/task/*/status; a thread that ended
// takes its count with it, which Go's threads rarely do).
func switches(pid int) (uint64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue // the thread ended meanwhile
		}
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok || (k != "voluntary_ctxt_switches" && k != "nonvoluntary_ctxt_switches") {
				continue
			}
			c, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/task/%s/status: %s: %w", pid, t.Name(), k, err)
			}
			n += c
		}
	}
	return n, nil
}

const (
	warmup     = 2 * time.Second // excluded from fps and CPU per frame
	creepSpan  = 10 * time.Second
	pollPeriod = 500 * time.Millisecond
)

// measure polls every box for length and returns what it saw.
func measure(ctx context.Context, boxes []*box, length time.Duration) (*measurement, error) {
	m := &measurement{boxes: boxes}
	start := time.Now()
	tick := time.NewTicker(pollPeriod)
	defer tick.Stop()
	for {
		s := sample{at: time.Since(start)}
		for _, b := range boxes {
			st, err := b.Status(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s status: %w", b.Name, err)
			}
			if st.Phone.Call == nil {
				return nil, fmt.Errorf("%s left the call (%s)", b.Name, st.Phone.LastEnd)
			}
			s.st = append(s.st, st)
			t, err := cpuTicks(b.pid)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name, err)
			}
			s.ticks = append(s.ticks, t)
			sw, err := switches(b.pid)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name, err)
			}
			s.switches = append(s.switches, sw)
		}
		m.samples = append(m.samples, s)
		if m.first == 0 && s.at >= warmup {
			m.first = len(m.samples) - 1
		}
		if s.at >= length {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	m.seconds = m.samples[len(m.samples)-1].at.Seconds()
	for _, b := range boxes {
		m.rssMB = append(m.rssMB, peakRSSMB(b.pid))
	}
	return m, nil
}

// direction summarises what went from box i to box j.
func (m *measurement) direction(i, j int) dirResult {
	first, last := m.samples[m.first], m.samples[len(m.samples)-1]
	src, dst := last.st[i], last.st[j]
	in := dst.Phone.Call.In
	out := src.Phone.Call.Out
	d := dirResult{
		from: src.Name, to: dst.Name,
		audio: latOf(in.AudioLatAll), video: latOf(in.VideoLatAll),
		skipped: out.VideoDrops, sinkDrops: in.VideoSinkDrops,
		audioDrops: out.AudioDrops + in.AudioDrops,
		underruns:  dst.Playout.Underruns, played: dst.Playout.Played, overflow: dst.Playout.Overflow,
		rssMB:    m.rssMB[i],
		linkKbps: out.LinkKbps, offsetMs: dst.Phone.Call.Offset, playoutDepthMs: dst.Playout.DepthMs,
		playoutTarget: dst.Playout.TargetMs, playoutJitter: dst.Playout.JitterMs,
	}
	dt := (last.at - first.at).Seconds()
	fin, lin := first.st[j].Phone.Call.In, in
	fout := first.st[i].Phone.Call.Out
	delivered := func(x call.Direction) float64 { return float64(x.VideoFrames - x.VideoSinkDrops) }
	d.fps = (delivered(lin) - delivered(fin)) / dt
	d.sentFPS = float64(out.VideoFrames-fout.VideoFrames) / dt
	d.codec, d.concealed = out.AudioCodec, dst.Playout.Concealed
	if fout.AudioTargetKbps > 0 {
		// The target as the measure began and ended: it follows the link.
		d.codec += fmt.Sprintf(" %.0f", fout.AudioTargetKbps)
		if out.AudioTargetKbps != fout.AudioTargetKbps {
			d.codec += fmt.Sprintf("→%.0f", out.AudioTargetKbps)
		}
		d.codec += " kbit/s"
	}
	// On the wire above TLS or UDP: message headers on the stream, the
	// whole datagram (its seal) as datagrams; both while the peer has
	// not said datagrams arrive.
	d.audioKbps = float64(out.AudioWireBytes-fout.AudioWireBytes) * 8 / 1000 / dt
	if out.AudioPath != "" {
		d.codec += " (" + out.AudioPath + ")"
	}
	if n := out.VideoFrames - fout.VideoFrames; n > 0 {
		d.videoKB = float64(out.VideoBytes-fout.VideoBytes) / float64(n) / 1000
	}
	d.cpuMsPerSec = float64(last.ticks[i]-first.ticks[i]) * 1000 / clockTicks / dt
	d.switchesCall = float64(last.switches[i]-first.switches[i]) / dt
	if m.idleSwitches != nil {
		d.switchesIdle, d.idleMeasured = m.idleSwitches[i], true
	}
	if d.sentFPS > 0 {
		d.cpuMsPerFrame = d.cpuMsPerSec / d.sentFPS
		if m.idle != nil {
			d.cpuIdleMs = m.idle[i] / d.sentFPS
		}
	}
	// Creep: the median of the per-second p50s in the first and the last
	// creepSpan of the call. Both boxes run on this machine's clock, so the
	// receiver's clock offset estimate (which it adds to every figure, and
	// which may change during the call) is taken back out: what is left is
	// the latency itself.
	var fa, fv, la, lv []float64
	end := last.at
	for _, s := range m.samples {
		w := s.st[j].Phone.Call.In
		if w.AudioLatency.N == 0 || w.VideoLatency.N == 0 {
			continue
		}
		off := s.st[j].Phone.Call.Offset
		a, v := w.AudioLatency.P50-off, w.VideoLatency.P50-off
		switch {
		case s.at < creepSpan:
			fa, fv = append(fa, a), append(fv, v)
		case s.at > end-creepSpan:
			la, lv = append(la, a), append(lv, v)
		}
	}
	if end >= 2*creepSpan && len(fa) > 0 && len(la) > 0 {
		d.creepValid = true
		d.creepAudio = [2]float64{median(fa), median(la)}
		d.creepVideo = [2]float64{median(fv), median(lv)}
	}
	return d
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture callbox runs on.
const clockTicks = 100

// cpuTicks returns the user+system CPU time of a process in clock ticks.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces), from field 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64) // field 14, utime
	s, err2 := strconv.ParseUint(f[12], 10, 64) // field 15, stime
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + s, nil
}

// peakRSSMB returns a process's peak resident set size (VmHWM) in MB.
func peakRSSMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return math.NaN()
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return math.NaN()
}

// findPid finds the callboxd process started with config file cfg. The
// daemon may have been started through `ip netns exec`, which execs it, so
// the pid is looked up by command line rather than taken from testbox.
func findPid(cfg string) (int, error) {
	want := []byte("\x00-config\x00" + cfg + "\x00")
	for range 100 { // the exec chain of a wrapper takes a moment at most
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil || !bytes.Contains(cl, want) {
				continue
			}
			arg0, _, _ := bytes.Cut(cl, []byte{0})
			if filepath.Base(string(arg0)) == "callboxd" {
				return pid, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("no callboxd process with -config %s", cfg)
}

// writeSeries writes what every poll saw, per direction, as CSV: the
// receiver's last-second latency window and the sender's link estimate.
func (m *measurement) writeSeries(path string) error {
	var b strings.Builder
	b.WriteString("seconds,direction,audio_p50_ms,audio_p99_ms,audio_max_ms,video_p50_ms,video_p99_ms,video_max_ms,video_fps_in,link_kbps,playout_depth_ms,offset_ms\n")
	for _, s := range m.samples {
		for i := range s.st {
			for j := range s.st {
				if i == j {
					continue
				}
				in, out := s.st[j].Phone.Call.In, s.st[i].Phone.Call.Out
				fmt.Fprintf(&b, "%.1f,%s→%s,%g,%g,%g,%g,%g,%g,%g,%g,%g,%g\n", s.at.Seconds(), s.st[i].Name, s.st[j].Name,
					in.AudioLatency.P50, in.AudioLatency.P99, in.AudioLatency.Max,
					in.VideoLatency.P50, in.VideoLatency.P99, in.VideoLatency.Max, in.VideoFPS,
					out.LinkKbps, s.st[j].Playout.DepthMs, s.st[j].Phone.Call.Offset)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
