package rig

import (
	"slices"
	"testing"
)

func TestSplitNumbers(t *testing.T) {
	cases := []struct {
		in, shape string
		nums      []string
	}{
		{"guest amd64 booted to its agent in 4.2s", "guest amd64 booted to its agent in \x00s", []string{"4.2"}},
		{"latency p50 12 ms p99 -3.5 ms", "latency p50 \x00 ms p99 \x00 ms", []string{"12", "-3.5"}},
		{"frames 0.0..79.6, 640x480 on GPIO17", "frames \x00..\x00, \x00x480 on GPIO17", []string{"0.0", "79.6", "640"}},
		{"125 ms ±45 and 2–8 ms, fb0", "\x00 ms ±\x00 and \x00–\x00 ms, fb0", []string{"125", "45", "2", "8"}},
		{"x-1 a-b", "x-1 a-b", nil},
	}
	for _, c := range cases {
		shape, nums := splitNumbers(c.in)
		var got []string
		for _, n := range nums {
			got = append(got, n.text)
		}
		if shape != c.shape || !slices.Equal(got, c.nums) {
			t.Errorf("splitNumbers(%q) = %q, %q; want %q, %q", c.in, shape, got, c.shape, c.nums)
		}
	}
}

func TestTally(t *testing.T) {
	var ta Tally
	ta.Add(1, "audio", "PASS", []string{"booted in 4.1s", "5000 ms good, 3 replayed"}, "")
	ta.Add(1, "camera", "SKIPPED", nil, "skipped: no qemu")
	ta.Add(2, "audio", "FAIL", []string{"booted in 12.0s", "4800 ms good, 10 replayed", "WARNING 10 replayed"}, "1 bad\n    console: x")
	ta.Add(2, "camera", "SKIPPED", nil, "skipped: no qemu")
	ta.Add(3, "audio", "PASS", []string{"booted in 4.1s", "5100 ms good, 0 replayed"}, "")
	ta.Add(3, "camera", "SKIPPED", nil, "skipped: no qemu")
	if ta.Runs != 3 || !ta.Failed() {
		t.Fatalf("runs %d, failed %v", ta.Runs, ta.Failed())
	}
	sc := ta.Scenarios()
	if len(sc) != 2 || sc[0].Name != "audio" || sc[1].Name != "camera" {
		t.Fatalf("scenarios %v", sc)
	}
	a := sc[0]
	if a.Pass != 2 || a.Fail != 1 || a.Skip != 0 || !slices.Equal(a.Failures, []string{"run 2: 1 bad"}) {
		t.Errorf("audio: %v, failures %q", a, a.Failures)
	}
	want := []string{"booted in [4.1..12.0]s", "[4800..5100] ms good, [0..10] replayed", "WARNING 10 replayed (in 1 of 3 runs)"}
	if got := a.Figures(); !slices.Equal(got, want) {
		t.Errorf("audio figures %q, want %q", got, want)
	}
	if c := sc[1]; c.Skip != 3 || c.Pass+c.Fail != 0 || len(c.Figures()) != 0 {
		t.Errorf("camera: %v %q", c, c.Figures())
	}
	var ok Tally
	ok.Add(1, "audio", "PASS", nil, "")
	if ok.Failed() {
		t.Error("a tally of passes failed")
	}
}
