package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callbox/callbox/device/camera"
	"github.com/callbox/callbox/internal/testbox"
	"github.com/callbox/callbox/stream/media"
)

// idleGoal is issue 14's: an idle daemon uses at most this share of one
// core.
const idleGoal = 0.3 // % of one core

// idleRow is what one box cost while it waited for a call, and in the
// call that followed.
type idleRow struct {
	devices      string
	box          string
	window       time.Duration
	cpuPct       float64 // % of one core while idle
	switches     float64 // context switches per second while idle
	callCPUPct   float64 // % of one core in the call
	callSwitches float64 // context switches per second in the call
	firstVideo   time.Duration
	firstAudio   time.Duration
}

// idleDevices are the device sets the idle case runs with.
type idleDevices struct {
	name  string
	extra func(dir string) (string, error) // config for a box whose files go in dir
}

var idleSets = []idleDevices{
	{"simulated (sim camera, test-signal microphone, clocked speaker)", func(string) (string, error) {
		return "log_level = \"warn\"\n[video]\ndevice = \"sim\"\nprecomputed = 30\n", nil
	}},
	{"file camera (MJPEG replay), ALSA null PCMs", func(dir string) (string, error) {
		path := filepath.Join(dir, "camera.mjpeg")
		if err := writeMJPEG(path, 30); err != nil {
			return "", err
		}
		return fmt.Sprintf("log_level = \"warn\"\n[video]\ndevice = %q\n[audio]\ncapture = \"null\"\nplayback = \"null\"\n"+
			"echo_cancel = false\necho_suppress = false\nnoise_suppress = false\nagc = false\nduck = false\n", "file:"+path), nil
	}},
}

// writeMJPEG writes n frames of the test pattern, 640x480, as an MJPEG
// file for the file camera.
func writeMJPEG(path string, n int) error {
	cam, err := camera.NewSynthetic(camera.SyntheticConfig{Format: media.VideoFormat{Width: 640, Height: 480, FPS: 60}, Precomputed: n})
	if err != nil {
		return err
	}
	defer cam.Close()
	var b bytes.Buffer
	for range n {
		f, err := cam.Read(context.Background())
		if err != nil {
			return err
		}
		b.Write(f.JPEG)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// waitClosed waits until every box has its camera, microphone and
// speaker closed (they are opened once at start to check them).
func waitClosed(ctx context.Context, boxes []*box) error {
	deadline := time.Now().Add(20 * time.Second)
	for _, b := range boxes {
		for {
			st, err := b.Status(ctx)
			if err == nil && st.Media.Video == "closed" && st.Media.Audio == "closed" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: devices still open: %+v (%v)", b.Name, st.Media, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// runIdle starts two paired boxes with the device set, measures both over
// window once their devices are closed, then places a call (hall calls,
// door answers by itself) and measures how soon each box gets the other's
// first video frame and audio frame after the answer, and what the call
// costs over callSpan.
func runIdle(ctx context.Context, bin, dir string, set idleDevices, window, callSpan time.Duration) ([]idleRow, error) {
	extra, err := set.extra(dir)
	if err != nil {
		return nil, err
	}
	a, err := startBox(ctx, bin, "hall", filepath.Join(dir, "hall"), extra)
	if err != nil {
		return nil, err
	}
	defer stopBox(a, dir)
	b, err := startBox(ctx, bin, "door", filepath.Join(dir, "door"), extra)
	if err != nil {
		return nil, err
	}
	defer stopBox(b, dir)
	boxes := []*box{a, b}
	if err := testbox.Pair(ctx, a.Box, b.Box); err != nil {
		return nil, err
	}
	if err := waitClosed(ctx, boxes); err != nil {
		return nil, err
	}
	idle, err := idleCPU(ctx, boxes, window)
	if err != nil {
		return nil, err
	}
	rows := make([]idleRow, len(boxes))
	for i, x := range boxes {
		rows[i] = idleRow{devices: set.name, box: x.Name, window: window,
			cpuPct: idle.cpu[i] / 10, switches: idle.switches[i]}
	}

	// The call: poll both boxes every few ms for the first media.
	if err := a.Press(ctx); err != nil {
		return nil, err
	}
	var answered time.Time // door's answer: its state's Since
	got := make([]bool, len(boxes))
	deadline := time.Now().Add(15 * time.Second)
	for done := 0; done < len(boxes); {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no first frames within 15 s of the call: %+v", rows)
		}
		for i, x := range boxes {
			if got[i] {
				continue
			}
			st, err := x.Status(ctx)
			if err != nil {
				return nil, err
			}
			if x == b && answered.IsZero() && st.Phone.State.String() == "in call" {
				answered = st.Phone.Since
			}
			c := st.Phone.Call
			if answered.IsZero() || c == nil {
				continue
			}
			now := time.Since(answered)
			if rows[i].firstVideo == 0 && c.In.VideoFrames > 0 {
				rows[i].firstVideo = now
			}
			if rows[i].firstAudio == 0 && c.In.AudioFrames > 0 {
				rows[i].firstAudio = now
			}
			if rows[i].firstVideo > 0 && rows[i].firstAudio > 0 {
				got[i] = true
				done++
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	inCall, err := idleCPU(ctx, boxes, callSpan) // the same measure, in the call
	if err != nil {
		return nil, err
	}
	for i := range boxes {
		rows[i].callCPUPct, rows[i].callSwitches = inCall.cpu[i]/10, inCall.switches[i]
	}
	if err := a.Client.Do(ctx, "POST", "/v1/hangup", nil, nil); err != nil {
		return nil, fmt.Errorf("hang up: %w", err)
	}
	return rows, nil
}

// formatIdle renders the idle case as a Markdown section.
func formatIdle(rows []idleRow) string {
	var b strings.Builder
	b.WriteString("\n## Idle: nothing runs that nobody needs\n\n")
	b.WriteString("| devices | box | idle window s | idle CPU % of one core | goal ≤ 0.3 % | idle context switches /s | first peer video / audio frame after the answer, ms | in call CPU % of one core | in call context switches /s |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		verdict := "met"
		if r.cpuPct > idleGoal {
			verdict = fmt.Sprintf("MISSED by %.2f", r.cpuPct-idleGoal)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.3f | %s | %.1f | %.0f / %.0f | %.2f | %.0f |\n",
			r.devices, r.box, r.window.Seconds(), r.cpuPct, verdict, r.switches,
			float64(r.firstVideo.Microseconds())/1000, float64(r.firstAudio.Microseconds())/1000, r.callCPUPct, r.callSwitches)
	}
	b.WriteString("\nGoals: idle CPU ≤ 0.3 % of one core; the first peer video frame ≤ 1 s after the answer (")
	first := "met"
	for _, r := range rows {
		if r.firstVideo > time.Second {
			first = "MISSED"
		}
	}
	b.WriteString(first + " here); audio from the first frame.\n")
	b.WriteString("\nFirst frames: hall placed the call (its camera and microphone opened when it started calling), door answered by itself (its camera and microphone opened at the answer); a frame counts when the receiving session has it, polled every few ms.\n")
	return b.String()
}
