package web

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/call"
)

// One sample line of the text format: name, optional labels, a number.
var sampleLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(, ?[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})? [-+0-9.eE]+|NaN|[+-]Inf$`)

func TestMetrics(t *testing.T) {
	s, f := newServer(t, Config{})
	f.st.Fingerprint = "ab:cd"
	f.st.Phone = call.Status{State: call.InCall, Since: time.Now(), Call: &call.CallStats{
		Seconds: 12.5, RTT: 2.1, Offset: -0.4,
		Out: call.Direction{VideoFPS: 30, VideoFrames: 375, VideoDrops: 2, AudioFrames: 1250},
		In: call.Direction{VideoFPS: 25, VideoFrames: 300, VideoKbps: 1500, AudioDrops: 1,
			VideoLatency: call.Latency{N: 25, P50: 12, P99: 45, Max: 50},
			AudioLatency: call.Latency{N: 100, P50: 8, P99: 20, Max: 21}},
	}}
	f.st.Camera = "sim: ok"
	f.st.Microphone = "hw:1,0: down: no such device; retrying in 1s"
	f.st.Speaker = "default: ok"
	f.st.Devices = []control.Device{{Name: "camera", Device: "sim", Health: "up"},
		{Name: "microphone", Device: "hw:1,0", Health: "down", Detail: "no such device; retrying in 1s"},
		{Name: "speaker", Device: "default", Health: "up"}}
	f.st.LED = "on"
	f.st.Playout.Underruns = 3
	f.st.Playout.DepthMs = 40
	f.st.Playout.TargetMs = 70
	f.st.VideoQuality = control.VideoQuality{Quality: 40, Configured: 75, Min: 15, Adjustable: true, Changes: 4}
	f.st.Echo = &control.Echo{Parts: "cancel+duck", DelayKnown: true, DelayMs: 62.5, DelayChanges: 2,
		ERLE: 31.5, Ducking: true, DuckDB: 9, DuckedFrames: 40, Frames: 1000}
	s.sent[1].Add(7)

	w := get(t, s, "GET", "/metrics", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("%d %q", w.Code, w.Header().Get("Content-Type"))
	}
	text := w.Body.String()
	for _, want := range []string{
		`callbox_info{name="door",version="test",fingerprint="ab:cd"} 1`,
		`callbox_call_state{state="in call"} 1`,
		`callbox_call_state{state="idle"} 0`,
		`callbox_video_fps{direction="in"} 25`,
		`callbox_video_fps{direction="out"} 30`,
		`callbox_frames_total{direction="out",media="video"} 375`,
		`callbox_drops_total{direction="out",media="video"} 2`,
		`callbox_drops_total{direction="in",media="audio"} 1`,
		`callbox_bitrate_bits_per_second{direction="in",media="video"} 1.5e+06`,
		`callbox_latency_seconds{media="video",window="1s",quantile="0.5"} 0.012`,
		`callbox_latency_seconds{media="video",window="1s",quantile="0.99"} 0.045`,
		`callbox_latency_seconds{media="audio",window="1s",quantile="0.99"} 0.02`,
		`callbox_rtt_seconds 0.0021`,
		`callbox_call_seconds 12.5`,
		`callbox_playout_underruns_total 3`,
		`callbox_playout_depth_seconds 0.04`,
		`callbox_playout_target_seconds 0.07`,
		`callbox_video_quality 40`,
		`callbox_video_quality_changes_total 4`,
		`callbox_device_up{device="camera"} 1`,
		`callbox_device_up{device="microphone"} 0`,
		`callbox_device_up{device="speaker"} 1`,
		`callbox_device_up{device="gpio"} 1`,
		`callbox_led{pattern="on"} 1`,
		`callbox_web_stream_frames_total{stream="peer"} 7`,
		`callbox_web_stream_clients 0`,
		`callbox_echo_delay_seconds 0.0625`,
		`callbox_echo_delay_changes_total 2`,
		`callbox_echo_erle_db 31.5`,
		`callbox_echo_ducking 1`,
		`callbox_echo_ducked_frames_total 40`,
		"# TYPE callbox_playout_underruns_total counter",
		"# TYPE callbox_video_fps gauge",
		"go_goroutines ",
		"process_resident_memory_bytes ",
		"process_cpu_seconds_total ",
		"process_open_fds ",
		"# TYPE go_gc_cycles_total counter",
	} {
		if !strings.Contains(text, want+"\n") && !strings.Contains(text, "\n"+want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, `window="call",`) {
		t.Error("whole-call latency series without samples")
	}
	types := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name := strings.Fields(rest)[0]
			if types[name] {
				t.Errorf("TYPE of %s twice", name)
			}
			types[name] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		if !sampleLine.MatchString(line) {
			t.Errorf("not a sample line: %q", line)
		}
	}

	// Idle: no call series, the state says so.
	f.mu.Lock()
	f.st.Phone = call.Status{State: call.Idle}
	f.mu.Unlock()
	text = get(t, s, "GET", "/metrics", nil).Body.String()
	if !strings.Contains(text, `callbox_call_state{state="idle"} 1`) || strings.Contains(text, "callbox_video_fps") {
		t.Errorf("idle metrics:\n%s", text)
	}
}

func TestLabelsEscape(t *testing.T) {
	got := labels("name", "a\"b\\c\nd", "x", "y")
	if want := `{name="a\"b\\c\nd",x="y"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
