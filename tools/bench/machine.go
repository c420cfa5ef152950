package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// machineMark is the machine's CPU counters at the start of a case, so the
// report can say how busy the machine was meanwhile: figures taken while
// something else loads the CPUs are not comparable.
type machineMark struct {
	at         time.Time
	busy, all  uint64 // jiffies, all CPUs
	valid      bool
	selfTicks  uint64
	selfExists bool
}

func markMachine() machineMark {
	busy, all, ok := cpuJiffies()
	m := machineMark{at: time.Now(), busy: busy, all: all, valid: ok}
	if t, err := cpuTicks(os.Getpid()); err == nil {
		m.selfTicks, m.selfExists = t, true
	}
	return m
}

// since describes the machine's CPU use since the mark.
func (m machineMark) since() string {
	if !m.valid {
		return ""
	}
	busy, all, ok := cpuJiffies()
	if !ok || all <= m.all {
		return ""
	}
	s := fmt.Sprintf("CPUs %.0f%% busy over the case (all processes)", float64(busy-m.busy)*100/float64(all-m.all))
	if m.selfExists {
		if t, err := cpuTicks(os.Getpid()); err == nil {
			secs := time.Since(m.at).Seconds()
			s += fmt.Sprintf(", of which the bench itself (emulated link, polling) %.1f%% of one CPU", float64(t-m.selfTicks)*100/clockTicks/secs)
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 0 {
			s += ", load average " + f[0]
		}
	}
	return s
}

// cpuJiffies reads the first line of /proc/stat: busy and total time of
// all CPUs.
func cpuJiffies() (busy, all uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		all += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, all, true
}
