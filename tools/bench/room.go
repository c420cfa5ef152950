package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/callbox/callbox/stream/echo"
	"github.com/callbox/callbox/stream/echo/echotest"
	"github.com/callbox/callbox/stream/room"
)

// roomRow is the echo stage in one configuration in the bench's room
// (the default one unless -room-* say otherwise).
type roomRow struct {
	name string
	res  echotest.Result
	err  error
}

// measureRoom runs the echo stage (stream/echo) through the simulated
// room rc (stream/room) in process: the far end alone for 10 s, a
// +50 ms delay jump and 6 s, the jump back and 6 s, 8 s of double talk,
// 8 s of the near end alone; with every part on, as shipped (ducking
// too), and with the canceller off.
func measureRoom(ctx context.Context, rc room.Config) []roomRow {
	all := echo.Default()
	canceller := all
	canceller.Duck = false
	noAEC := canceller
	noAEC.Cancel, noAEC.Suppress = false, false
	half := noAEC
	half.Duck = true
	var rows []roomRow
	for _, c := range []struct {
		name string
		cfg  echo.Config
	}{
		{"canceller + RES + NS + AGC", canceller},
		{"as shipped (+ ducking)", all},
		{"canceller off: NS + AGC", noAEC},
		{"canceller off: NS + AGC + ducking", half},
	} {
		if ctx.Err() != nil {
			break
		}
		fmt.Printf("  %s ...\n", c.name)
		r, err := echotest.Run(c.cfg, rc, echotest.BenchScript)
		rows = append(rows, roomRow{name: c.name, res: r, err: err})
	}
	return rows
}

// formatRoom is the report's room section.
func formatRoom(rows []roomRow, rc room.Config) string {
	var b strings.Builder
	b.WriteString("\n## Room: echo cancellation, noise suppression, AGC\n\n")
	fmt.Fprintf(&b, "In process, one thread: stream/echo on the microphone path of a simulated room (stream/room: %v delay, RT60 %v, "+
		"direct path %.0f dB, loudspeaker soft clip drive %.1f, noise %.0f dB under the talker), two synthetic voices. "+
		"Script: far end alone 10 s; delay +50 ms, 6 s; back, 6 s; double talk 8 s; near end alone 8 s. "+
		"ERLE: microphone over output energy in windows where the far end talks alone. Double talk: the output projected on the clean near end; "+
		"SNR is the near end against everything else left (unprocessed microphone: %s dB). CPU: the thread's own CPU time for Played+Process per 10 ms frame; "+
		"the Pi 4 estimate multiplies by %.0f–%.0f. Goals in brackets.\n\n",
		rc.Delay, rc.RT60, rc.EchoDB, rc.Drive, rc.SNR, rawSNR(rows), piFactorLo, piFactorHi)
	b.WriteString("| stage | ERLE dB p50 (≥ 25) | to 20 dB ERLE (1.5 s) | again after +50 / −50 ms (2 s) | double talk: near-end SNR dB (≥ 10) / attenuation dB (≤ 6) | near end alone: attenuation dB | noise reduction in pauses dB (≥ 10) | CPU ms per 10 ms mean / p99 (≤ 0.25) | Pi 4 estimate ms | added latency ms (≤ 10) | delay found |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(&b, "| %s | failed: %v |||||||||\n", r.name, r.err)
			continue
		}
		x := r.res
		cpu := ms(x.CPU)
		delay := "—"
		if x.Final.DelayKnown {
			delay = fmt.Sprintf("%v (%d changes)", x.Final.Delay, x.Final.DelayChanges)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s / %s | %s / %s | %s | %s | %.3f / %.3f | %.2f–%.2f | %.1f | %s |\n",
			r.name, db(x.ERLE), dur(x.Converge), dur(x.ReJumpUp), dur(x.ReJumpDown),
			db(x.DoubleSNR), db(x.DoubleAtt), db(x.NearAtt), db(x.NoiseRed),
			cpu, ms(x.CPUp99), cpu*piFactorLo, cpu*piFactorHi, ms(x.Latency), delay)
	}
	return b.String()
}

func rawSNR(rows []roomRow) string {
	for _, r := range rows {
		if r.err == nil {
			return db(r.res.RawSNR)
		}
	}
	return "—"
}

func db(x float64) string {
	if math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.1f", x)
}

func dur(d time.Duration) string {
	if d < 0 {
		return "not reached"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
