package faults

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
)

// Netns is two network namespaces joined by a veth pair, eth0 in each,
// 10.78.0.1/24 and 10.78.0.2/24: a cable that can be pulled.
type Netns struct {
	NS [2]string
	IP [2]string
}

var netnsSeq atomic.Int32

// CanNetns says why namespaces cannot be made here, or "" if they can.
func CanNetns() string {
	if os.Geteuid() != 0 {
		return "needs root to make network namespaces (CI runs as root)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command (iproute2) is missing"
	}
	return ""
}

// NewNetns makes the namespaces; names carry the pid and a counter, so
// parallel rigs and runs do not collide.
func NewNetns() (*Netns, error) {
	if why := CanNetns(); why != "" {
		return nil, errors.New(why)
	}
	n := &Netns{IP: [2]string{"10.78.0.1", "10.78.0.2"}}
	prefix := fmt.Sprintf("cbxf-%d-%d", os.Getpid(), netnsSeq.Add(1))
	for i := range 2 {
		n.NS[i] = fmt.Sprintf("%s-%c", prefix, 'a'+i)
		if err := ipCmd("netns", "add", n.NS[i]); err != nil {
			n.Delete()
			return nil, err
		}
	}
	steps := [][]string{
		{"link", "add", "eth0", "netns", n.NS[0], "type", "veth", "peer", "name", "eth0", "netns", n.NS[1]},
	}
	for i := range 2 {
		steps = append(steps,
			[]string{"-n", n.NS[i], "link", "set", "lo", "up"},
			[]string{"-n", n.NS[i], "addr", "add", n.IP[i] + "/24", "dev", "eth0"},
			[]string{"-n", n.NS[i], "link", "set", "eth0", "up"})
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			n.Delete()
			return nil, err
		}
	}
	return n, nil
}

// SetLink takes eth0 in namespace i down or up.
func (n *Netns) SetLink(i int, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ipCmd("-n", n.NS[i], "link", "set", "eth0", state)
}

// LinkUp says whether eth0 in namespace i has its carrier (LOWER_UP).
func (n *Netns) LinkUp(i int) (bool, error) {
	out, err := exec.Command("ip", "-n", n.NS[i], "-o", "link", "show", "eth0").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("ip link show: %v: %s", err, out)
	}
	return strings.Contains(string(out), "LOWER_UP"), nil
}

// Reaches says whether a packet from namespace i gets to the other one
// and back: a TCP connection to port 9 there (nothing listens) must be
// refused, not unreachable or lost. The boxes are not touched.
func (n *Netns) Reaches(i int) bool {
	script := fmt.Sprintf("exec 3<>/dev/tcp/%s/9", n.IP[1-i])
	out, _ := exec.Command("timeout", "2", "ip", "netns", "exec", n.NS[i], "bash", "-c", script).CombinedOutput()
	return strings.Contains(string(out), "refused")
}

// Delete removes both namespaces (and so the veth pair).
func (n *Netns) Delete() {
	for _, ns := range n.NS {
		if ns != "" {
			exec.Command("ip", "netns", "delete", ns).Run()
		}
	}
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
