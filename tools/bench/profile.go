package main

import (
	"fmt"
	"strings"
	"time"
)

// profile is an emulated network: what each direction of the link does to
// the packets that cross it.
type profile struct {
	name, title string
	delay       time.Duration // one way
	jitter      time.Duration // uniform ± around delay, order kept
	loss        float64       // probability per packet
	rateKbit    int           // rate limit of each direction (tbf)
}

func (p profile) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v", p.delay)
	if p.jitter > 0 {
		fmt.Fprintf(&b, " ± %v", p.jitter)
	}
	b.WriteString(" one way")
	if p.loss > 0 {
		fmt.Fprintf(&b, ", %g%% loss", p.loss*100)
	}
	if p.rateKbit >= 1000 {
		fmt.Fprintf(&b, ", %g Mbit/s", float64(p.rateKbit)/1000)
	} else {
		fmt.Fprintf(&b, ", %d kbit/s", p.rateKbit)
	}
	b.WriteString(" each way")
	return b.String()
}
