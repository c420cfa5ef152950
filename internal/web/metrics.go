package web

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/call"
)

// metrics answers /metrics in Prometheus text format (version 0.0.4): the
// box's figures from one Status snapshot, the web server's own counters,
// and a few figures of the process (CPU, memory, file descriptors,
// goroutines) under the names Prometheus' own clients use.
//
// Call figures are there only during a call; their counters start from
// zero with each call (Prometheus' rate() takes such resets in its
// stride), as do the playout counters.
//
// The format is written here rather than by a client library: measured on
// the arm64 build, prometheus/client_golang adds 2.6 MB and
// VictoriaMetrics/metrics 200 KB (70 KB even with its process figures
// left out), against callboxd's 12 MiB budget; these 40 lines add a few.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 16<<10)
	writeStatusMetrics(bw, s.b.Status())
	p := prom{w: bw}
	p.family("callbox_web_stream_clients", "gauge", "MJPEG stream clients being served.")
	p.count("callbox_web_stream_clients", "", uint64(len(s.streams)))
	p.family("callbox_web_stream_frames_total", "counter", "Frames written to MJPEG stream clients.")
	p.family("callbox_web_stream_skipped_total", "counter", "Frames that MJPEG stream clients were too slow to take (latest wins).")
	for i, st := range []Stream{Self, Peer} {
		l := labels("stream", string(st))
		p.count("callbox_web_stream_frames_total", l, s.sent[i].Load())
		p.count("callbox_web_stream_skipped_total", l, s.skip[i].Load())
	}
	p.family("callbox_web_stream_refused_total", "counter", "MJPEG stream clients turned away: too many at once.")
	p.count("callbox_web_stream_refused_total", "", s.refused.Load())
	p.family("callbox_web_unauthorized_total", "counter", "Requests refused for want of the token.")
	p.count("callbox_web_unauthorized_total", "", s.unauthorized.Load())
	writeProcessMetrics(bw)
	bw.Flush()
}

// prom writes the text format: a HELP and a TYPE line per family, then
// its samples, "name{labels} value" a line. Help texts must not hold a
// backslash or a line break (they are constants here).
type prom struct{ w io.Writer }

func (p prom) family(name, typ, help string) {
	io.WriteString(p.w, "# HELP "+name+" "+help+"\n# TYPE "+name+" "+typ+"\n")
}

func (p prom) sample(name, labels string, v float64) {
	var b [64]byte
	io.WriteString(p.w, name+labels+" ")
	p.w.Write(append(strconv.AppendFloat(b[:0], v, 'g', -1, 64), '\n'))
}

// count writes an integer exactly (a float64 would round counters past 2^53).
func (p prom) count(name, labels string, v uint64) {
	var b [24]byte
	io.WriteString(p.w, name+labels+" ")
	p.w.Write(append(strconv.AppendUint(b[:0], v, 10), '\n'))
}

// writeProcessMetrics writes what is cheap to read: nothing here stops
// the world but runtime.ReadMemStats, briefly. A figure that cannot be
// read (no /proc) is left out.
func writeProcessMetrics(w io.Writer) {
	p := prom{w: w}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		p.family("process_cpu_seconds_total", "counter", "User and system CPU time spent.")
		sec := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
		p.sample("process_cpu_seconds_total", "", sec(ru.Utime)+sec(ru.Stime))
	}
	if statm, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(statm)); len(f) > 1 {
			if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				p.family("process_resident_memory_bytes", "gauge", "Resident memory size.")
				p.count("process_resident_memory_bytes", "", pages*uint64(os.Getpagesize()))
			}
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		p.family("process_open_fds", "gauge", "Open file descriptors.")
		p.count("process_open_fds", "", uint64(len(fds)))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.family("go_goroutines", "gauge", "Goroutines that exist.")
	p.count("go_goroutines", "", uint64(runtime.NumGoroutine()))
	p.family("go_memstats_heap_alloc_bytes", "gauge", "Heap bytes allocated and in use.")
	p.count("go_memstats_heap_alloc_bytes", "", ms.HeapAlloc)
	p.family("go_memstats_sys_bytes", "gauge", "Bytes obtained from the system.")
	p.count("go_memstats_sys_bytes", "", ms.Sys)
	p.family("go_gc_cycles_total", "counter", "Completed garbage collection cycles.")
	p.count("go_gc_cycles_total", "", uint64(ms.NumGC))
}

// labels renders {k="v",...} with the values escaped as the format wants.
func labels(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func writeStatusMetrics(w io.Writer, st control.Status) {
	p := prom{w: w}
	p.family("callbox_info", "gauge", "This box: name, version and fingerprint, always 1.")
	p.sample("callbox_info", labels("name", st.Name, "version", st.Version, "fingerprint", st.Fingerprint), 1)

	p.family("callbox_call_state", "gauge", "1 for the call state the box is in, 0 for the others.")
	for cs := call.Idle; cs <= call.InCall; cs++ {
		p.sample("callbox_call_state", labels("state", cs.String()), b2f(st.Phone.State == cs))
	}

	p.family("callbox_device_up", "gauge", "1 when the device works, 0 when it is starting, down or failed.")
	for _, d := range st.Devices {
		p.sample("callbox_device_up", labels("device", d.Name), b2f(d.Up()))
	}
	p.sample("callbox_device_up", labels("device", "gpio"), b2f(st.GPIO == ""))
	if st.Door != nil {
		p.sample("callbox_device_up", labels("device", "door"), b2f(st.Door.Error == ""))
	}
	if st.LED != "" {
		p.family("callbox_led", "gauge", "The LED's pattern, always 1.")
		p.sample("callbox_led", labels("pattern", st.LED), 1)
	}

	writeDoorMetrics(w, st.Door)

	if vq := st.VideoQuality; vq.Quality > 0 {
		p.family("callbox_video_quality", "gauge", "JPEG quality of the video we send: video.quality, lower while the call's link cannot carry its frames.")
		p.sample("callbox_video_quality", "", float64(vq.Quality))
		p.family("callbox_video_quality_changes_total", "counter", "Times the video quality followed the link down or up.")
		p.count("callbox_video_quality_changes_total", "", vq.Changes)
	}

	pl := st.Playout
	p.family("callbox_playout_depth_seconds", "gauge", "Audio queued in the playout buffer.")
	p.sample("callbox_playout_depth_seconds", "", pl.DepthMs/1000)
	p.family("callbox_playout_target_seconds", "gauge", "The depth the playout buffer keeps: the configured target, more while arrivals jitter.")
	p.sample("callbox_playout_target_seconds", "", pl.TargetMs/1000)
	p.family("callbox_playout_jitter_seconds", "gauge", "The spread of the peer's audio arrival times the playout buffer measured.")
	p.sample("callbox_playout_jitter_seconds", "", pl.JitterMs/1000)
	for _, c := range []struct {
		name, help string
		v          uint64
	}{
		{"callbox_playout_played_total", "Audio frames played (since the call began).", pl.Played},
		{"callbox_playout_underruns_total", "Times the playout buffer ran dry while playing.", pl.Underruns},
		{"callbox_playout_concealed_total", "Audio frames made up by the codec's loss concealment after underruns.", pl.Concealed},
		{"callbox_playout_overflow_total", "Audio frames dropped, oldest first, to cap the latency.", pl.Overflow},
		{"callbox_playout_late_total", "Audio frames dropped for arriving out of order.", pl.Late},
		{"callbox_playout_squeezed_total", "Audio samples merged to follow a faster peer clock.", pl.Squeezed},
		{"callbox_playout_stretched_total", "Audio samples inserted to follow a slower peer clock.", pl.Stretched},
	} {
		p.family(c.name, "counter", c.help)
		p.count(c.name, "", c.v)
	}

	if e := st.Echo; e != nil {
		p.family("callbox_echo_delay_seconds", "gauge", "The speaker-to-microphone delay the echo canceller uses (0 until found).")
		p.sample("callbox_echo_delay_seconds", "", e.DelayMs/1000)
		p.family("callbox_echo_delay_changes_total", "counter", "Times the speaker-to-microphone delay was found or moved.")
		p.count("callbox_echo_delay_changes_total", "", e.DelayChanges)
		p.family("callbox_echo_erle_db", "gauge", "Echo return loss enhancement the microphone's processing reaches, in dB.")
		p.sample("callbox_echo_erle_db", "", e.ERLE)
		p.family("callbox_echo_ducking", "gauge", "1 while the microphone is ducked (half duplex) because the canceller falls short.")
		p.sample("callbox_echo_ducking", "", b2f(e.Ducking))
		p.family("callbox_echo_ducked_frames_total", "counter", "Microphone frames ducked by 1 dB or more.")
		p.count("callbox_echo_ducked_frames_total", "", e.DuckedFrames)
	}

	cs := st.Phone.Call
	if cs == nil {
		return
	}
	p.family("callbox_call_seconds", "gauge", "How long the call in progress has lasted.")
	p.sample("callbox_call_seconds", "", cs.Seconds)
	p.family("callbox_rtt_seconds", "gauge", "Round-trip time to the peer, from ping/pong.")
	p.sample("callbox_rtt_seconds", "", cs.RTT/1000)
	p.family("callbox_clock_offset_seconds", "gauge", "The peer's clock minus ours, estimated from ping/pong.")
	p.sample("callbox_clock_offset_seconds", "", cs.Offset/1000)
	p.family("callbox_video_fps", "gauge", "Video frames per second over the last second or two.")
	p.family("callbox_bitrate_bits_per_second", "gauge", "Media bit rate over the last second or two.")
	p.family("callbox_frames_total", "counter", "Media frames sent (out) or received (in) in this call.")
	p.family("callbox_bytes_total", "counter", "Media bytes sent (out) or received (in) in this call.")
	p.family("callbox_drops_total", "counter", "Frames dropped: out, replaced or dropped before sending; in, lost or abandoned.")
	for _, d := range []struct {
		dir string
		d   call.Direction
	}{{"out", cs.Out}, {"in", cs.In}} {
		v, a := labels("direction", d.dir, "media", "video"), labels("direction", d.dir, "media", "audio")
		p.sample("callbox_video_fps", labels("direction", d.dir), d.d.VideoFPS)
		p.sample("callbox_bitrate_bits_per_second", v, d.d.VideoKbps*1000)
		p.sample("callbox_bitrate_bits_per_second", a, d.d.AudioKbps*1000)
		p.count("callbox_frames_total", v, d.d.VideoFrames)
		p.count("callbox_frames_total", a, d.d.AudioFrames)
		p.count("callbox_bytes_total", v, d.d.VideoBytes)
		p.count("callbox_bytes_total", a, d.d.AudioBytes)
		p.count("callbox_drops_total", v, d.d.VideoDrops)
		p.count("callbox_drops_total", a, d.d.AudioDrops)
	}
	p.family("callbox_latency_seconds", "gauge", "Capture-to-receive latency of the peer's media: quantiles over the last second (window=\"1s\") and the whole call (window=\"call\").")
	for _, l := range []struct {
		media, window string
		lat           call.Latency
	}{
		{"video", "1s", cs.In.VideoLatency}, {"audio", "1s", cs.In.AudioLatency},
		{"video", "call", cs.In.VideoLatAll}, {"audio", "call", cs.In.AudioLatAll},
	} {
		if l.lat.N == 0 {
			continue
		}
		for _, q := range []struct {
			q string
			v float64
		}{{"0.5", l.lat.P50}, {"0.99", l.lat.P99}, {"1", l.lat.Max}} {
			p.sample("callbox_latency_seconds", labels("media", l.media, "window", l.window, "quantile", q.q), q.v/1000)
		}
	}
	p.family("callbox_messages_received_total", "counter", "Protocol messages received in this call.")
	p.count("callbox_messages_received_total", "", cs.Received)
}
