package main

import "testing"

// The guest's dial attempts are read back from its text log.
func TestLogFields(t *testing.T) {
	line := `time=2026-12-03T10:00:00.000Z level=DEBUG msg="dial attempt" component=dial peer=host address=10.0.2.2:41235 source=last outcome="failed: dial tcp 10.0.2.2:41235: connect: connection refused" started_ms=0 took_ms=1.5`
	f := logFields(line)
	for k, want := range map[string]string{"msg": "dial attempt", "address": "10.0.2.2:41235", "source": "last",
		"outcome": "failed: dial tcp 10.0.2.2:41235: connect: connection refused", "started_ms": "0", "took_ms": "1.5"} {
		if f[k] != want {
			t.Errorf("%s = %q, want %q", k, f[k], want)
		}
	}
}
