package main

import (
	"slices"
	"testing"
	"time"
)

func TestQualityLevels(t *testing.T) {
	for _, tc := range []struct {
		hi, lo int
		want   []int
	}{
		{75, 15, []int{75, 65, 55, 50, 40, 32, 25, 20, 16, 15}},
		{75, 35, []int{75, 65, 55, 50, 40, 35}},
		{90, 90, []int{90}},
		{40, 1, []int{40, 32, 25, 20, 16, 12, 9, 7, 5, 4, 3, 2, 1}},
	} {
		if got := qualityLevels(tc.hi, tc.lo); !slices.Equal(got, tc.want) {
			t.Errorf("qualityLevels(%d, %d) = %v, want %v", tc.hi, tc.lo, got, tc.want)
		}
	}
}

// link simulates a call's sender for the controller: each second the
// camera offers fps frames whose size follows the quality; the link takes
// what fits in its rate, the rest is skipped.
type link struct {
	t       *testing.T
	c       *qualityCtl
	now     time.Time
	started time.Time
	kbps    float64 // the link's true rate, less audio
	est     float64 // the sender's estimate
	sizeAt  func(q int) float64
	look    linkLook
}

func newLink(t *testing.T, c *qualityCtl, kbps, est float64) *link {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := &link{t: t, c: c, now: start, started: start, kbps: kbps, est: est,
		sizeAt: func(q int) float64 { return 4000 + 200*float64(q) }}
	l.look = linkLook{at: start, started: start, audioKbps: 30, linkKbps: est}
	c.observe(l.look)
	return l
}

// second runs one second of the call and returns the quality after the
// controller's look.
func (l *link) second() int {
	size := l.sizeAt(l.c.quality())
	fits := min(l.kbps*1000/8/size, l.c.fps)
	sent := uint64(fits)
	l.now = l.now.Add(time.Second)
	l.look.at = l.now
	l.look.frames += sent
	l.look.bytes += uint64(float64(sent) * size)
	l.look.skipped += uint64(l.c.fps) - sent
	l.look.linkKbps = l.est
	l.c.observe(l.look)
	return l.c.quality()
}

func (l *link) run(n int) []int {
	var qs []int
	for range n {
		qs = append(qs, l.second())
	}
	return qs
}

// changes counts the quality changes in a run.
func changes(qs []int) int {
	n := 0
	for i := 1; i < len(qs); i++ {
		if qs[i] != qs[i-1] {
			n++
		}
	}
	return n
}

// On a fast link the quality stays where it is configured.
func TestQualityStaysOnAFastLink(t *testing.T) {
	c := newQualityCtl(75, 15, 30)
	l := newLink(t, c, 90000, 95000) // LAN
	if qs := l.run(60); changes(qs) != 0 || qs[0] != 75 {
		t.Fatalf("qualities on a LAN: %v", qs)
	}
	l = newLink(t, c, 55e6, 55e6) // loopback
	if qs := l.run(30); changes(qs) != 0 || qs[0] != 75 {
		t.Fatalf("qualities on loopback: %v", qs)
	}
}

// A thin link: the quality steps down until the frames fit, holds
// there without oscillating, and comes back up in steps once the link is
// fast again.
func TestQualityFollowsTheLink(t *testing.T) {
	c := newQualityCtl(75, 15, 30)
	// Frames of 19 kB at 75 on 2 Mbit/s less audio: 12 fps. The estimate
	// reads high, as on a token-bucket link.
	l := newLink(t, c, 1960, 2400)
	qs := l.run(40)
	t.Logf("down: %v", qs)
	if c.quality() >= 75 {
		t.Fatalf("quality stayed at %d", c.quality())
	}
	// The first step down waited for two looks; then the frames were
	// far too large for the link, so it took several steps at once, but
	// at most qualityMaxDown, and never past the highest quality whose
	// frames fit the link's budget.
	if qs[0] != 75 || qs[1] >= 65 {
		t.Fatalf("first steps %v, want a step down after the second look", qs[:2])
	}
	fit := c.levels[len(c.levels)-1]
	for _, q := range c.levels {
		if l.sizeAt(q) <= c.budget(l.look) {
			fit = q
			break
		}
	}
	for i := 1; i < len(qs); i++ {
		from, to := slices.Index(c.levels, qs[i-1]), slices.Index(c.levels, qs[i])
		if to-from > qualityMaxDown {
			t.Fatalf("more than %d steps at once: %v", qualityMaxDown, qs)
		}
		if to > from && qs[i] < fit {
			t.Fatalf("stepped past %d, the highest quality that fits: %v", fit, qs)
		}
	}
	// Stepping several levels a look, it settled within 5 s (a step a
	// look would have taken 8).
	settled := c.quality()
	if i := slices.Index(qs, settled); i > 4 {
		t.Fatalf("settled at %d after %d s: %v", settled, i+1, qs)
	}
	// At the quality it settled on, nearly all frames get through (or it
	// is at the floor).
	if fps := l.kbps * 1000 / 8 / l.sizeAt(settled); fps < 0.9*c.fps && settled != 15 {
		t.Errorf("settled at %d with frames of %.0f bytes: %.1f fps get through", settled, l.sizeAt(settled), fps)
	}
	if qs := l.run(60); changes(qs) != 0 {
		t.Errorf("on a steady thin link the quality moved: %v", qs)
	}
	if c.why == whyConfigured {
		t.Errorf("why = %q at quality %d", c.why, c.quality())
	}

	// The link gets fast: back up, a step at a time, at most one step per
	// qualityUpAfter looks.
	l.kbps, l.est = 20000, 21000
	qs = l.run(60)
	t.Logf("up: %v", qs)
	if c.quality() != 75 {
		t.Fatalf("quality %d after a minute on a fast link, want 75", c.quality())
	}
	last := 0
	for i := 1; i < len(qs); i++ {
		if qs[i] != qs[i-1] {
			if qs[i] < qs[i-1] {
				t.Fatalf("stepped down on a fast link: %v", qs)
			}
			if last > 0 && i-last < qualityUpAfter {
				t.Fatalf("steps up %d s apart: %v", i-last, qs)
			}
			last = i
		}
	}
}

// The floor is kept however thin the link.
func TestQualityFloor(t *testing.T) {
	c := newQualityCtl(75, 35, 30)
	l := newLink(t, c, 500, 600)
	l.run(60)
	if c.quality() != 35 {
		t.Fatalf("quality %d on a very thin link, want the floor 35", c.quality())
	}
}

// A link between two steps does not make the quality go up and down: a
// step up that was too large is remembered.
func TestQualityNoOscillation(t *testing.T) {
	c := newQualityCtl(75, 15, 30)
	// At 30 fps the budget sits between the sizes of two steps: the
	// estimate is exact here.
	// The link carries 25 frames of quality 40 (12 kB) a second, 28.8 of
	// quality 32 (10.4 kB), all 30 of quality 25 (9 kB); the estimate is
	// right.
	l := newLink(t, c, 2400, 2400/qualityShare+qualityAudioKbps)
	qs := l.run(120)
	t.Logf("%v", qs)
	if n := changes(qs[30:]); n != 0 {
		t.Errorf("%d changes after the first 30 s: %v", n, qs)
	}
}

// A new call starts at the configured quality.
func TestQualityNewCall(t *testing.T) {
	c := newQualityCtl(75, 15, 30)
	l := newLink(t, c, 1000, 1200)
	l.run(20)
	if c.quality() == 75 {
		t.Fatal("no step down")
	}
	l.look.started = l.look.started.Add(time.Minute)
	l.look.frames, l.look.bytes, l.look.skipped = 0, 0, 0
	if !c.observe(l.look) || c.quality() != 75 {
		t.Fatalf("new call: quality %d", c.quality())
	}
	if c.reset() {
		t.Error("reset at the configured quality reports a change")
	}
}
