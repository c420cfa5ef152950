package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// cpuGoalMs is issue 14's goal: whole-process CPU per frame in a 640x480
// 30 fps call with audio, per side.
const cpuGoalMs = 1.0

// formatTable renders results as one Markdown table, a row per direction.
func formatTable(rs []result) string {
	var b strings.Builder
	b.WriteString("| case | direction | audio codec, kbit/s on the wire | audio ms p50 / p99 / max | video ms p50 / p99 / max | video fps delivered (sent) | frames skipped at sender / receiver | audio lost | playout underruns (frames concealed) | creep p50 first→last 10 s, audio / video ms (offset-corrected) | sender CPU ms per frame (of it idle) | sender context switches /s idle / in call | sender peak RSS MB |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		for _, d := range r.dirs {
			title := r.name
			if r.title != "" && r.title != r.name {
				title += " (" + r.title + ")"
			}
			fmt.Fprintf(&b, "| %s | %s→%s | %s %.1f | %s | %s | %.1f (%.1f) | %d / %d | %d | %s | %s | %s | %s | %.1f |\n",
				title, d.from, d.to, d.codec, d.audioKbps, fmtLat(d.audio), fmtLat(d.video), d.fps, d.sentFPS,
				d.skipped, d.sinkDrops, d.audioDrops, fmtUnderruns(d), fmtCreep(d), fmtCPU(d), fmtSwitches(d), d.rssMB)
		}
	}
	return b.String()
}

func fmtLat(l lat) string {
	if l == (lat{}) {
		return "—"
	}
	return fmt.Sprintf("%s / %s / %s", fmtMs(l.p50), fmtMs(l.p99), fmtMs(l.max))
}

func fmtMs(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtUnderruns(d dirResult) string {
	if d.played == 0 {
		return "—"
	}
	if d.concealed > 0 {
		return fmt.Sprintf("%d (%.2f%%, %d concealed)", d.underruns, underrunPct(d), d.concealed)
	}
	return fmt.Sprintf("%d (%.2f%%)", d.underruns, underrunPct(d))
}

// underrunPct is underruns per 100 frames played.
func underrunPct(d dirResult) float64 {
	if d.played == 0 {
		return 0
	}
	return float64(d.underruns) * 100 / float64(d.played)
}

func fmtCreep(d dirResult) string {
	if !d.creepValid {
		return "—"
	}
	a := "—"
	if d.creepAudio[0] >= 0 {
		a = fmt.Sprintf("%s→%s", fmtMs(d.creepAudio[0]), fmtMs(d.creepAudio[1]))
	}
	return fmt.Sprintf("%s / %s→%s", a, fmtMs(d.creepVideo[0]), fmtMs(d.creepVideo[1]))
}

func fmtCPU(d dirResult) string {
	if d.cpuMsPerFrame == 0 {
		return "—"
	}
	if !d.idleMeasured {
		return fmt.Sprintf("%.3f", d.cpuMsPerFrame)
	}
	return fmt.Sprintf("%.3f (%.3f)", d.cpuMsPerFrame, d.cpuIdleMs)
}

func fmtSwitches(d dirResult) string {
	if d.switchesCall == 0 {
		return "—"
	}
	if !d.idleMeasured {
		return fmt.Sprintf("— / %.0f", d.switchesCall)
	}
	return fmt.Sprintf("%.1f / %.0f", d.switchesIdle, d.switchesCall)
}

// goal is one line of the goals, checked against the results.
type goal struct {
	text     string
	verdicts []string
}

// checkGoals compares the results with the goals of issue 6.
func checkGoals(rs []result) []goal {
	by := map[string]result{}
	for _, r := range rs {
		by[r.name] = r
	}
	var gs []goal
	le := func(what string, got, limit float64, unit string) string {
		if math.IsNaN(got) {
			return what + ": not measured"
		}
		if got <= limit {
			return fmt.Sprintf("%s: %.2f%s, met", what, got, unit)
		}
		return fmt.Sprintf("%s: %.2f%s, MISSED by %.2f%s (%.0f%%)", what, got, unit, got-limit, unit, (got-limit)*100/limit)
	}
	ge := func(what string, got, limit float64, unit string) string {
		if got >= limit {
			return fmt.Sprintf("%s: %.1f%s, met", what, got, unit)
		}
		return fmt.Sprintf("%s: %.2f%s, MISSED by %.2f%s", what, got, unit, limit-got, unit)
	}
	each := func(name string, f func(d dirResult) string) []string {
		r, ok := by[name]
		if !ok {
			return []string{name + ": not run"}
		}
		var v []string
		for _, d := range r.dirs {
			v = append(v, f(d))
		}
		return v
	}
	dir := func(d dirResult) string { return d.from + "→" + d.to }

	// An audio message's latency starts at its first sample, so its own
	// length is in every figure: 10 ms for PCM frames, 20 for Opus packets.
	g := goal{text: "loopback: audio added latency p99 ≤ 20 ms + the audio in one message (30 ms for 10 ms PCM, 40 ms for 20 ms Opus)"}
	for _, n := range []string{"loopback-480p", "loopback-720p"} {
		g.verdicts = append(g.verdicts, each(n, func(d dirResult) string {
			limit := 30.0
			if d.codec == "opus" {
				limit = 40
			}
			return le(n+" "+dir(d)+" ("+d.codec+")", d.audio.p99, limit, " ms")
		})...)
	}
	gs = append(gs, g)
	gs = append(gs, goal{text: "loopback: video added latency p99 ≤ 3 ms at 720p",
		verdicts: each("loopback-720p", func(d dirResult) string { return le(dir(d), d.video.p99, 3, " ms") })})
	g = goal{text: "loopback: ≥ 29 fps delivered each way"}
	for _, n := range []string{"loopback-480p", "loopback-720p"} {
		g.verdicts = append(g.verdicts, each(n, func(d dirResult) string { return ge(n+" "+dir(d), d.fps, 29, " fps") })...)
	}
	gs = append(gs, g)
	g = goal{text: fmt.Sprintf("loopback: whole-process CPU ≤ %.1f ms per 640x480 frame per side in a 30 fps call with audio (issue 14; user+sys of the daemon, per frame it sends; each side also receives a frame per frame); 1280x720 figures for reference", cpuGoalMs)}
	g.verdicts = each("loopback-480p", func(d dirResult) string { return le(d.from+", 480p", d.cpuMsPerFrame, cpuGoalMs, " ms") })
	g.verdicts = append(g.verdicts, each("loopback-720p", func(d dirResult) string {
		return fmt.Sprintf("%s, 720p: %.2f ms, %.0f context switches a second", d.from, d.cpuMsPerFrame, d.switchesCall)
	})...)
	gs = append(gs, g)
	g = goal{text: "loopback: CPU per 720p frame ≤ 0.25 ms per side (the first goal, before issue 14 set the one above; user+sys of the daemon process, per frame it sends; each side also receives a frame per frame)"}
	g.verdicts = each("loopback-720p", func(d dirResult) string { return le(d.from+", whole process", d.cpuMsPerFrame, 0.25, " ms") })
	g.verdicts = append(g.verdicts, each("loopback-720p", func(d dirResult) string {
		return le(d.from+", above its idle CPU", d.cpuMsPerFrame-d.cpuIdleMs, 0.25, " ms")
	})...)
	if one, ok := by["loopback-720p-1fps"]; ok {
		if full, ok := by["loopback-720p"]; ok {
			for i, d := range full.dirs {
				o := one.dirs[i]
				if df := d.sentFPS - o.sentFPS; df > 0 {
					g.verdicts = append(g.verdicts, le(d.from+", video alone (30 fps call minus 1 fps call, per extra frame)", (d.cpuMsPerSec-o.cpuMsPerSec)/df, 0.25, " ms"))
				}
			}
		}
	}
	gs = append(gs, g)
	gs = append(gs, goal{text: "thin uplink: audio ≤ 40 kbit/s on the wire (Opus; payload and message headers or datagram seal)",
		verdicts: each("thin", func(d dirResult) string { return le(dir(d)+" ("+d.codec+")", d.audioKbps, 40, " kbit/s") })})
	gs = append(gs, goal{text: "thin uplink: ≥ 20 fps of 640x480 video delivered",
		verdicts: each("thin", func(d dirResult) string {
			// What the link could carry at the frames' size says whether the
			// gap is pacing or simply bytes.
			v := ge(dir(d), d.fps, 20, " fps")
			if d.videoKB > 0 {
				v += fmt.Sprintf(" (frames of %.1f kB: 2 Mbit/s less the audio carries at most %.1f fps of them)",
					d.videoKB, (2000-d.audioKbps)/8/d.videoKB)
			}
			return v
		})})
	gs = append(gs, goal{text: "thin uplink: audio p99 ≤ 150 ms",
		verdicts: each("thin", func(d dirResult) string { return le(dir(d), d.audio.p99, 150, " ms") })})
	gs = append(gs, goal{text: "thin uplink: video p99 ≤ 300 ms",
		verdicts: each("thin", func(d dirResult) string { return le(dir(d), d.video.p99, 300, " ms") })})
	gs = append(gs, goal{text: "thin uplink: last-10 s p50 within 10% of first-10 s p50 (no creep)",
		verdicts: each("thin", func(d dirResult) string {
			if !d.creepValid {
				return dir(d) + ": not measured (call too short)"
			}
			return creepVerdict(dir(d)+" audio", d.creepAudio) + "; " + creepVerdict(dir(d)+" video", d.creepVideo)
		})})
	gs = append(gs, goal{text: "thin uplink: audio underruns < 1% (per frame played)",
		verdicts: each("thin", func(d dirResult) string {
			p := underrunPct(d)
			if p < 1 {
				return fmt.Sprintf("%s: %.2f%%, met", dir(d), p)
			}
			return fmt.Sprintf("%s: %.2f%%, MISSED by %.2f points", dir(d), p, p-1)
		})})
	gs = append(gs, goal{text: "slow receiver: video latency p99 ≤ 300 ms (no kernel-buffer pile-up)",
		verdicts: each("slow", func(d dirResult) string { return le(dir(d), d.video.p99, 300, " ms") })})
	g = goal{text: "RSS ≤ 30 MB per daemon in a call (peak, VmHWM)"}
	for _, r := range rs {
		for _, d := range r.dirs {
			g.verdicts = append(g.verdicts, le(r.name+" "+d.from, d.rssMB, 30, " MB"))
		}
	}
	gs = append(gs, g)
	return gs
}

// creepVerdict compares the last-10 s p50 with the first-10 s p50. Within
// 10%, or within 1 ms where 10% is less than a millisecond (timer noise),
// is met.
func creepVerdict(what string, c [2]float64) string {
	first, last := c[0], c[1]
	slack := max(first*0.10, 1)
	if last <= first+slack {
		return fmt.Sprintf("%s %s→%s ms, met", what, fmtMs(first), fmtMs(last))
	}
	return fmt.Sprintf("%s %s→%s ms, MISSED: grew by %.0f%%", what, fmtMs(first), fmtMs(last), (last-first)*100/first)
}

// renderReport is the whole output: table, goals, the screen's figures
// (a ready section, may be empty), notes.
func renderReport(env string, rs []result, notes []string, took time.Duration, screen string) string {
	var b strings.Builder
	b.WriteString("# callbox benchmark\n\n")
	b.WriteString(env + "\n\n")
	b.WriteString(formatTable(rs))
	b.WriteString("\nLatencies are whole-call figures as the receiving box measured them: capture timestamp to the moment the\n" +
		"receiving session has the whole frame (audio) or hands the frame to its sink (video), on the receiver's clock\n" +
		"corrected by the ping/pong offset estimate (on one machine the true offset is 0). Playout depth and the\n" +
		"speaker's own buffer come on top for audio; see docs/performance.md.\n")
	b.WriteString("\n## Goals\n\n")
	for _, g := range checkGoals(rs) {
		b.WriteString("- " + g.text + "\n")
		for _, v := range g.verdicts {
			b.WriteString("  - " + v + "\n")
		}
	}
	b.WriteString(screen)
	b.WriteString("\n## Notes\n\n")
	for _, r := range rs {
		for _, d := range r.dirs {
			fmt.Fprintf(&b, "- %s %s→%s: sender's link estimate %.0f kbit/s, receiver's clock offset estimate %.2f ms, playout depth at the end %.1f ms (target %.0f ms for %.0f ms of measured jitter), playout latency-cap drops %d\n",
				r.name, d.from, d.to, d.linkKbps, d.offsetMs, d.playoutDepthMs, d.playoutTarget, d.playoutJitter, d.overflow)
		}
		if r.linkNote != "" {
			fmt.Fprintf(&b, "- %s link: %s\n", r.name, r.linkNote)
		}
		if r.load != "" {
			fmt.Fprintf(&b, "- %s machine: %s\n", r.name, r.load)
		}
	}
	for _, n := range notes {
		b.WriteString("- " + n + "\n")
	}
	fmt.Fprintf(&b, "- the whole run took %v\n", took.Round(time.Second))
	return b.String()
}
