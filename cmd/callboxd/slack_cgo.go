//go:build linux && cgo

package main

/*
#include <stdlib.h>
#include <sys/prctl.h>

// CB_SLACK_NS is what callboxd asks of the kernel: timers of its threads may
// fire up to this late, so wake-ups due close together become one.
#define CB_SLACK_NS 1000000L

static long cb_slack_before = -1;

// cb_timer_slack runs as a constructor of the executable: before the Go
// runtime starts any thread of its own, so every thread inherits the
// slack, the runtime's monitor thread (sysmon) included. That thread
// polls every 20 us while the process is busy; with the kernel's default
// 50 us slack it wakes hundreds of times a second in a call.
//
// CALLBOX_TIMER_SLACK_NS, when set, is used as it is (0: the kernel's
// default); otherwise a slack under 1 ms is raised to 1 ms and a larger
// one (systemd's TimerSlackNSec=) is kept.
__attribute__((constructor)) static void cb_timer_slack(void) {
	long cur = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	cb_slack_before = cur;
	const char *s = getenv("CALLBOX_TIMER_SLACK_NS");
	if (s != NULL && *s != '\0') {
		char *end;
		long v = strtol(s, &end, 10);
		if (*end == '\0' && v >= 0 && v <= 1000000000L) {
			prctl(PR_SET_TIMERSLACK, (unsigned long)v, 0, 0, 0);
		}
		return;
	}
	if (cur >= 0 && cur < CB_SLACK_NS) {
		prctl(PR_SET_TIMERSLACK, (unsigned long)CB_SLACK_NS, 0, 0, 0);
	}
}

static long cb_slack_now(void) { return prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0); }
static long cb_slack_was(void) { return cb_slack_before; }
*/
import "C"

import "time"

// timerSlack reports the slack the process's threads run with and what
// it was before callboxd set it.
func timerSlack() (now, before time.Duration) {
	return time.Duration(C.cb_slack_now()), time.Duration(C.cb_slack_was())
}
