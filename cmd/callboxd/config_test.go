package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConfigFileAndFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(path, []byte("name = \"hall\"\nauto_answer = false\n[video]\nfps = 15\n"), 0o600)
	cfg, _, err := loadConfig([]string{"-config", path, "-name", "door", "-listen", "127.0.0.1:9000"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "door" || cfg.AutoAnswer || cfg.Video.FPS != 15 || cfg.Listen != "127.0.0.1:9000" || cfg.Video.Width != 640 {
		t.Errorf("config = %+v", cfg)
	}
}

func TestConfigTakesLibcamera(t *testing.T) {
	for _, dev := range []string{"libcamera", "libcamera:1", "libcamera:imx708"} {
		path := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(path, []byte("[video]\ndevice = \""+dev+"\""), 0o600)
		if _, _, err := loadConfig([]string{"-config", path}); err != nil {
			t.Errorf("%s: %v", dev, err)
		}
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ file, want string }{
		{"name = \"front door\"", "name"},
		{"listen = \"7420\"", "listen"},
		{"listen = \"x:99999\"", "listen"},
		{"log_level = \"loud\"", "log_level"},
		{"[video]\ndevice = \"webcam\"", "video.device"},
		{"[video]\ndevice = \"libcamera:a b\"", "video.device: camera: libcamera: camera \"a b\""},
		{"[video]\ndevice = \"libcamera\"\nwidth = 8", "video.width"},
		{"[video]\nstall_ms = 10", "video.stall_ms"},
		{"[video]\nwidth = 8", "video.width"},
		{"[video]\nquality = 0", "video.quality"},
		{"[video]\nmin_quality = 0", "video.min_quality: 0 out of range"},
		{"[audio]\nrate = 11025", "audio.rate"},
		{"[audio]\nchannels = 3", "audio.channels"},
		{"[audio]\nopus_kbps_low = 8", "audio.opus_kbps_low: 8 out of range 12..128"},
		{"[audio]\nopus_mode = \"music\"", `audio.opus_mode: "music" is not "low-delay" or "speech"`},
		{"[audio]\ntarget_ms = 100\nmax_ms = 50", "audio.max_ms"},
		{"[audio]\ncapture = \"default\"\necho_tail_ms = 20", "audio: microphone processing"},
		{"[audio]\ncapture = \"default\"\necho_max_delay_ms = 5000", "audio: microphone processing"},
		{"[audio]\ncapture = \"default\"\nchannels = 2", "audio: microphone processing"},
		{"[audio]\ncapture = \"default\"\nduck_below_db = 99", "audio: microphone processing"},
		{"[audio]\ncapture = \"room\"", "playback = \"room\" go together"},
		{"[audio]\nplayback = \"room\"", "playback = \"room\" go together"},
		{"[audio]\ncapture = \"room\"\nplayback = \"room\"\n[audio.room]\ndelay_ms = 900", "audio.room"},
		{"[audio]\ncapture = \"room\"\nplayback = \"room\"\n[audio.room]\ntalk = \"sometimes\"", "audio.room"},
		{"[audio]\ncapture = \"room\"\nplayback = \"room\"\n[audio.room]\nsnr_db = 500", "audio.room"},
		{"[audio]\ncapture = \"voice\"\nchannels = 2\necho_cancel = false\necho_suppress = false\nnoise_suppress = false\nagc = false\nduck = false", "audio.capture"},
		{"[gpio]\nbutton = \"17\"", "gpio.button"},
		{"[gpio]\nbutton_pull = \"sideways\"", "gpio.button_pull"},
		{"[gpio]\nlong_press_ms = 10", "gpio.long_press_ms"},
		{"[gpio]\nbutton = \"GPIO17\"\nled = \"GPIO17\"", "gpio.led"},
		{"[[group]]\nname = \"house\"", "group[0].peers: 0 peers"},
		{"[[group]]\nname = \"a b\"\npeers = [\"k\"]", "group[0].name"},
		{"[[group]]\nname = \"h\"\npeers = [\"k\", \"k\"]", "group[0].peers: \"k\" listed twice"},
		{"[[group]]\nname = \"h\"\npeers = [\"k\"]\n[[group]]\nname = \"h\"\npeers = [\"o\"]", "group[1].name: \"h\" names two groups"},
		{"[[group]]\nname = \"h\"\npeers = [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]", "group[0].peers: 17 peers"},
		{"[[button]]\ncall = \"kitchen\"", "button[0].line: must be set"},
		{"[[button]]\nline = \"GPIO5\"", "button[0].call"},
		{"[[button]]\nline = \"5\"\ncall = \"k\"", "button[0].line"},
		{"[gpio]\nbutton = \"GPIO17\"\n[[button]]\nline = \"GPIO17\"\ncall = \"k\"", "button[0].line: line \"GPIO17\" is also gpio.button"},
		{"[[button]]\nline = \"GPIO5\"\ncall = \"k\"\nled = \"GPIO5\"", "button[0].led: line \"GPIO5\" is also button[0].line"},
		{"[[button]]\nline = \"sim\"\ncall = \"k\"\nled = \"none\"", "button[0].led: leave it out"},
		{"[record]\nmax_mb = 0", "record.max_mb"},
		{"[screen]\ndevice = \"fb0\"", "screen.device"},
		{"[screen]\nidle = \"clock\"", "screen.idle"},
		{"[screen]\nprefer_video = \"640\"", "screen.prefer_video"},
		{"[screen]\nprefer_video = \"8x8\"", "screen.prefer_video"},
		{"colour = \"blue\"", "unknown key \"colour\""},
		{"[discovery]\nipv4 = false\nipv6 = false", "discovery.ipv4"},
		{"[discovery]\ninterfaces = [\"eth0/1\"]", "discovery.interfaces"},
		{"[discovery]\ninterfaces = \"eth0\"", "c.toml"},
		{"[pairing]\nwindow_s = 5", "pairing.window_s"},
		{"[pairing]\nconfirm = \"yes\"", "c.toml"},
		{"[video\nfps = 1", "c.toml"},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(path, []byte(c.file), 0o600)
		_, _, err := loadConfig([]string{"-config", path})
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want a ConfigError naming %q", c.file, err, c.want)
		}
	}
	if _, _, err := loadConfig([]string{"-config", "/nonexistent/c.toml"}); err == nil {
		t.Error("missing config file accepted")
	}
}

// The microphone's processing is on by default for a real microphone,
// each part can be turned off, and a format it cannot handle passes once
// it is all off; simulated microphones are never processed.
func TestMicProcessingConfig(t *testing.T) {
	load := func(file string) (Config, error) {
		path := filepath.Join(t.TempDir(), "c.toml")
		os.WriteFile(path, []byte(file), 0o600)
		cfg, _, err := loadConfig([]string{"-config", path})
		return cfg, err
	}
	cfg, err := load("[audio]\ncapture = \"default\"")
	if err != nil {
		t.Fatal(err)
	}
	ec := cfg.echoConfig()
	if !cfg.micProcessed() || !ec.Cancel || !ec.Suppress || !ec.Denoise || !ec.AGC || !ec.Duck ||
		ec.Tail != 200*time.Millisecond || ec.MaxDelay != 500*time.Millisecond || ec.DuckBelow != 20 {
		t.Errorf("defaults: %+v", ec)
	}
	cfg, err = load("[audio]\ncapture = \"default\"\necho_cancel = false\nagc = false")
	if err != nil {
		t.Fatal(err)
	}
	if ec := cfg.echoConfig(); ec.Cancel || ec.Suppress || ec.AGC || !ec.Denoise {
		t.Errorf("parts off: %+v", ec)
	}
	if _, err := load("[audio]\ncapture = \"default\"\nchannels = 2\necho_cancel = false\nnoise_suppress = false\nagc = false\nduck = false"); err != nil {
		t.Errorf("stereo with the processing off: %v", err)
	}
	if cfg, err := load("[audio]\ncapture = \"sim\"\nchannels = 2"); err != nil || cfg.micProcessed() {
		t.Errorf("sim microphone: processed %v, err %v", cfg.micProcessed(), err)
	}
}

// The shipped config loads, sets up a Pi's real devices, and documents
// every key the daemon knows.
func TestShippedConfig(t *testing.T) {
	const path = "../../systemd/callbox.toml"
	cfg, _, err := loadConfig([]string{"-config", path})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Video.Device != "/dev/video0" || cfg.Audio.Capture != "default" || cfg.GPIO.Button != "GPIO17" || cfg.GPIO.LED != "GPIO27" {
		t.Errorf("shipped config does not set up a Pi: %+v", cfg)
	}
	text, _ := os.ReadFile(path)
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := f.Tag.Get("toml")
			if key == "" {
				continue
			}
			if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
				if !strings.Contains(string(text), "[["+prefix+key+"]]") {
					t.Errorf("%s: no [[%s%s]] example", path, prefix, key)
				}
				walk(prefix+key+".", f.Type.Elem())
				continue
			}
			if f.Type.Kind() == reflect.Struct {
				if !strings.Contains(string(text), "["+prefix+key+"]") {
					t.Errorf("%s: no [%s%s] table", path, prefix, key)
				}
				walk(prefix+key+".", f.Type)
				continue
			}
			if !regexp.MustCompile(`(?m)^#?` + key + ` = `).Match(text) {
				t.Errorf("%s does not document %s%s", path, prefix, key)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
}

// Device frames are 20 ms by default, and the ALSA buffer about 40 ms of
// them unless audio.periods says otherwise.
func TestAudioPeriodsFollowTheFrame(t *testing.T) {
	cfg := defaultConfig()
	if cfg.Audio.FrameMs != 20 || cfg.Audio.periods() != 2 {
		t.Errorf("default: %d ms frames, %d periods; want 20 and 2", cfg.Audio.FrameMs, cfg.Audio.periods())
	}
	for _, c := range []struct{ frame, periods, want int }{{10, 0, 3}, {20, 0, 2}, {10, 4, 4}, {20, 3, 3}} {
		a := AudioConfig{FrameMs: c.frame, Periods: c.periods}
		if got := a.periods(); got != c.want {
			t.Errorf("frame_ms %d, periods %d: %d periods, want %d", c.frame, c.periods, got, c.want)
		}
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	// 10 ms Opus packets without frame_ms, valid while 10 was the
	// default, still load: with 10 ms frames.
	os.WriteFile(path, []byte("[audio]\nopus_frame_ms = 10\n"), 0o600)
	if cfg, _, err := loadConfig([]string{"-config", path}); err != nil || cfg.Audio.FrameMs != 10 || cfg.Audio.periods() != 3 {
		t.Errorf("opus_frame_ms = 10 alone: %v, %d ms frames", err, cfg.Audio.FrameMs)
	}
	os.WriteFile(path, []byte("[audio]\nopus_frame_ms = 10\nframe_ms = 20\n"), 0o600)
	if _, _, err := loadConfig([]string{"-config", path}); err == nil || !strings.Contains(err.Error(), "audio.opus_frame_ms") {
		t.Errorf("opus_frame_ms = 10 with frame_ms = 20: %v", err)
	}
	os.WriteFile(path, []byte("[audio]\nperiods = 1\n"), 0o600)
	if _, _, err := loadConfig([]string{"-config", path}); err == nil || !strings.Contains(err.Error(), "audio.periods: 1 out of range") {
		t.Errorf("periods = 1: %v", err)
	}
}
