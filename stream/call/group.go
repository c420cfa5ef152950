package call

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/callbox/callbox/stream/wire"
)

// A group call rings several peers at once; the first to answer takes the
// call and the caller hangs up on the others with reason "answered
// elsewhere" (wire.ReasonElsewhere). Its Hello carries wire.HelloRingOnly:
// a member that answers calls by itself rings instead, because a call that
// every member answered by itself would go to whichever box was quickest,
// not to a person. A member that is busy, declines, cannot be reached or
// does not answer in RingTimeout drops out; when all have, the call ends
// and says why for each.

// MaxGroup is the most peers a group call rings.
const MaxGroup = 16

// MemberState is how one member of a group call is doing.
type MemberState string

// The states of a group member. Dialling and Ringing are still open; the
// others are final.
const (
	MemberDialling    MemberState = "dialling"
	MemberRinging     MemberState = "ringing"
	MemberAnswered    MemberState = "answered"
	MemberBusy        MemberState = "busy"
	MemberDeclined    MemberState = "declined"
	MemberUnreachable MemberState = "unreachable"
	MemberNoAnswer    MemberState = "no answer"
	MemberElsewhere   MemberState = "answered elsewhere"
	MemberLost        MemberState = "lost"
	MemberCancelled   MemberState = "cancelled"
)

func (m MemberState) open() bool { return m == MemberDialling || m == MemberRinging }

// MemberStatus is one member of a group call.
type MemberStatus struct {
	Name   string      `json:"name"`
	State  MemberState `json:"state"`
	Detail string      `json:"detail,omitempty"` // the error or the reason, when there is one
}

// GroupStatus shows the group call in progress, or the last one until the
// next call starts: who rang and who answered.
type GroupStatus struct {
	Name       string         `json:"name"`
	Members    []MemberStatus `json:"members"`
	AnsweredBy string         `json:"answered_by,omitempty"`
}

// String is a one-line summary: "kitchen answered; office busy; ...".
func (g GroupStatus) String() string {
	parts := make([]string, 0, len(g.Members))
	for _, m := range g.Members {
		p := m.Name + " " + string(m.State)
		if m.Detail != "" {
			p += " (" + m.Detail + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

// groupCall is the owner goroutine's record of a group call.
type groupCall struct {
	name   string
	legs   []*leg
	stop   context.CancelFunc // ends the dials still under way and the ring timer
	winner *leg
}

type leg struct {
	peer   Peer
	sess   *session
	state  MemberState
	detail string
}

func (g *groupCall) legOf(s *session) *leg {
	for _, l := range g.legs {
		if l.sess == s {
			return l
		}
	}
	return nil
}

func (g *groupCall) status() *GroupStatus {
	st := &GroupStatus{Name: g.name, Members: make([]MemberStatus, len(g.legs))}
	for i, l := range g.legs {
		st.Members[i] = MemberStatus{Name: l.peer.Name, State: l.state, Detail: l.detail}
	}
	if g.winner != nil {
		st.AnsweredBy = g.winner.peer.Name
	}
	return st
}

// CallGroup rings every peer of group name at once; the first to answer
// takes the call. It returns once the call is being placed; Status shows
// how it goes on (Status.Group has each member).
func (p *Phone) CallGroup(ctx context.Context, name string, peers []Peer) error {
	if len(peers) == 0 {
		return fmt.Errorf("group %s has no peers", name)
	}
	if len(peers) > MaxGroup {
		return fmt.Errorf("group %s has %d peers, limit %d", name, len(peers), MaxGroup)
	}
	seen := make(map[string]bool, len(peers))
	for _, pe := range peers {
		if seen[pe.Fingerprint] {
			return fmt.Errorf("group %s names %s twice", name, pe.Name)
		}
		seen[pe.Fingerprint] = true
	}
	return p.do(ctx, func() error { return p.startGroup(name, peers) })
}

func (p *Phone) startGroup(name string, peers []Peer) error {
	if p.state != Idle {
		return ErrBusy
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.RingTimeout)
	g := &groupCall{name: name, stop: cancel}
	for _, pe := range peers {
		g.legs = append(g.legs, &leg{peer: pe, state: MemberDialling})
	}
	p.group = g
	p.peer = Peer{Name: name}
	p.dialSeq++ // a single call's dial still in flight is forgotten
	p.setGroup()
	p.setState(Calling, "")
	// RingTimeout after the start, whoever is still dialling or ringing
	// has not answered.
	context.AfterFunc(ctx, func() {
		if ctx.Err() != context.DeadlineExceeded {
			return // answered or abandoned
		}
		select {
		case p.reqs <- func() { p.groupTimedOut(g) }:
		case <-p.done:
		}
	})
	for _, l := range g.legs {
		go func() {
			conn, err := p.dial(ctx, l.peer)
			select {
			case p.reqs <- func() { p.legDialled(g, l, conn, err) }:
			case <-p.done:
				if conn != nil {
					conn.Close()
				}
			}
		}()
	}
	return nil
}

// legDialled runs in the owner goroutine when a member's dial ends.
func (p *Phone) legDialled(g *groupCall, l *leg, conn net.Conn, err error) {
	if p.group != g || g.winner != nil || p.state != Calling || !l.state.open() {
		if conn != nil {
			conn.Close() // answered elsewhere or abandoned meanwhile
		}
		return
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			l.state = MemberNoAnswer
		} else {
			l.state, l.detail = MemberUnreachable, err.Error()
		}
		p.log.Info("group member unreachable", "group", g.name, "peer", l.peer.Name, "err", err)
		p.groupChanged(g)
		return
	}
	h := p.hello
	h.Flags |= wire.HelloRingOnly
	s := newSession(p.ctx, p, conn, l.peer, h, true)
	l.sess, l.state = s, MemberRinging
	p.groupChanged(g)
}

// groupTimedOut ends the group call nobody answered in RingTimeout.
func (p *Phone) groupTimedOut(g *groupCall) {
	if p.group != g || g.winner != nil {
		return
	}
	for _, l := range g.legs {
		if l.state.open() {
			l.state = MemberNoAnswer
			p.endLeg(l, wire.Hangup{Reason: wire.ReasonTimeout, Text: "no answer"})
		}
	}
	p.groupChanged(g)
}

// endLeg sends a member's session its final message (if it has one) and
// keeps it among the leftovers until it has closed.
func (p *Phone) endLeg(l *leg, final wire.Body) {
	if l.sess == nil {
		return
	}
	if final != nil { // nil: the member ended it
		l.sess.end(final)
	}
	if _, ok := p.pending[l.sess]; !ok {
		p.pending[l.sess] = time.Now()
	}
}

// groupEvent handles an event of a member's session before anyone
// answered. It reports whether it did.
func (p *Phone) groupEvent(e event) bool {
	g := p.group
	if g == nil || g.winner != nil || p.state != Calling {
		return false
	}
	l := g.legOf(e.s)
	if l == nil {
		return false
	}
	s := e.s
	switch e.kind {
	case evHello:
		s.hello = e.hello
		return true
	case evAnswer:
		if !l.state.open() {
			return true
		}
		l.state = MemberAnswered
		g.winner = l
		g.stop()
		for _, o := range g.legs {
			if o != l && o.state.open() {
				o.state = MemberElsewhere
				p.endLeg(o, wire.Hangup{Reason: wire.ReasonElsewhere, Text: "answered elsewhere"})
			}
		}
		p.log.Info("group call answered", "group", g.name, "peer", l.peer.Name)
		p.sess, p.peer = s, l.peer
		p.active.Store(s)
		p.setGroup()
		p.setState(InCall, "")
		return true
	case evBusy, evReject, evHangup:
		if !l.state.open() {
			return true
		}
		switch {
		case e.kind == evBusy:
			l.state = MemberBusy
		case e.kind == evReject && e.reason == wire.ReasonTimeout:
			l.state = MemberNoAnswer
		case e.kind == evReject:
			l.state, l.detail = MemberDeclined, e.reason.String()
		default:
			l.state, l.detail = MemberLost, "hung up: "+e.reason.String()
		}
		p.endLeg(l, nil)
	case evClosed:
		delete(p.pending, s)
		if l.state.open() {
			l.state, l.detail = MemberLost, "connection closed"
			if r := s.endReason(); r != "" {
				l.detail = r
			}
			if e.err != nil {
				l.detail = e.err.Error()
			}
		}
	default:
		return true
	}
	p.groupChanged(g)
	return true
}

// groupChanged publishes the members and ends the call once none is left
// ringing or dialling.
func (p *Phone) groupChanged(g *groupCall) {
	p.setGroup()
	for _, l := range g.legs {
		if l.state.open() {
			return
		}
	}
	why := fmt.Sprintf("nobody in %s answered: %s", g.name, g.status())
	p.log.Info("group call ended", "group", g.name, "why", why)
	p.endCall(why)
}

// groupHangup abandons a group call nobody answered yet: every member
// still ringing stops.
func (p *Phone) groupHangup(reason wire.Reason, why string) {
	for _, l := range p.group.legs {
		if l.state.open() {
			l.state = MemberCancelled
			p.endLeg(l, wire.Hangup{Reason: reason, Text: why})
		}
	}
	p.setGroup()
	p.endCall(why)
}

// setGroup copies the group call's members into the status. The last
// group call's stay there after it ended, until the next call starts.
func (p *Phone) setGroup() {
	if p.group == nil {
		return
	}
	st := p.group.status()
	p.mu.Lock()
	p.status.Group = st
	p.mu.Unlock()
}
