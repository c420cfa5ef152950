package call

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/callbox/callbox/stream/wire"
)

// The door opener (protocol revision 1.4): during a call either box may
// ask the other to open its door, if the other's hello said it has a door
// opener that takes requests (wire.HelloDoor). A box older than that does
// not know the messages and would end the call on them, so a request to a
// peer without the flag is refused here and never sent. The door box
// decides each request (Config.OnDoor) and answers at once; the
// asker waits up to DoorAnswerTimeout for the answer, one request at a
// time.

// DoorAnswerTimeout bounds how long OpenPeerDoor waits for the peer's
// answer. The door box answers at once; this covers a link that stalls.
const DoorAnswerTimeout = 5 * time.Second

// Why a request to open the peer's door was not sent, or not answered.
var (
	ErrNoDoorCall   = errors.New("not in a call: a peer's door opens only during a call with it")
	ErrNoPeerDoor   = errors.New("the peer has no door opener that takes requests (or runs a callbox older than protocol revision 1.4)")
	ErrDoorAsking   = errors.New("already asked the peer to open its door: waiting for its answer")
	ErrDoorNoAnswer = fmt.Errorf("the peer did not answer the request to open its door within %v", DoorAnswerTimeout)
	ErrDoorCallEnd  = errors.New("the call ended before the peer answered the request to open its door")
)

// DoorError is a refused request to open a door: what the door box
// answered (Peer names it on the asking side) or, returned by
// Config.OnDoor, what this box answers the peer.
type DoorError struct {
	Peer   string // the door box that refused; "" on the door box itself
	Result wire.DoorResult
	Text   string // why, for people: "too soon: the door opens again in 4s"
}

func (e *DoorError) Error() string {
	why := e.Text
	if why == "" {
		why = e.Result.String()
	}
	if e.Peer == "" {
		return "refused to open the door: " + why
	}
	return e.Peer + " refused to open its door: " + why
}

// DoorAsk is this box's last request to open a peer's door and how it
// went. It stays in the status until the next request.
type DoorAsk struct {
	Peer   string    `json:"peer"`
	At     time.Time `json:"at"`
	Opened bool      `json:"opened"`
	// Answer says how it went: "waiting for the answer", "opened", the
	// peer's refusal ("refused: too soon: the door opens again in 4s"),
	// or why there was no answer or no request sent.
	Answer string `json:"answer"`
}

// doorAsk is the request to open the peer's door waiting for its answer
// (owner goroutine).
type doorAsk struct {
	s    *session
	seq  uint32
	at   time.Time
	done chan error // capacity 1: nil (opened), a *DoorError, or why it got no answer
}

// OpenPeerDoor asks the peer of the call in progress to open its door and
// waits for its answer (at most DoorAnswerTimeout). nil means the peer
// opened it; a *DoorError says why it refused; ErrNoPeerDoor means the
// peer has no door opener, or one too old for the request, which is then
// not sent. Status().DoorAsk shows the outcome too.
func (p *Phone) OpenPeerDoor(ctx context.Context) error {
	var a *doorAsk
	err := p.do(ctx, func() error {
		if p.state != InCall || p.sess == nil {
			return ErrNoDoorCall
		}
		if p.ask != nil {
			return ErrDoorAsking
		}
		s := p.sess
		if s.hello.Flags&wire.HelloDoor == 0 {
			p.log.Info("not asking the peer to open its door: it has no door opener", "peer", s.peer.Name)
			p.setDoorAsk(&DoorAsk{Peer: s.peer.Name, At: time.Now(), Answer: "not asked: " + ErrNoPeerDoor.Error()})
			return ErrNoPeerDoor
		}
		a = &doorAsk{s: s, seq: s.doorSeq, at: time.Now(), done: make(chan error, 1)}
		s.doorSeq++
		s.enqueue(wire.Message{Time: a.at.UnixNano(), Body: wire.OpenDoor{}})
		p.ask = a
		p.setDoorAsk(&DoorAsk{Peer: s.peer.Name, At: a.at, Answer: "waiting for the answer"})
		p.log.Info("asked the peer to open its door", "peer", s.peer.Name)
		return nil
	})
	if err != nil {
		return err
	}
	t := time.NewTimer(DoorAnswerTimeout)
	defer t.Stop()
	select {
	case err := <-a.done:
		return err
	case <-t.C:
		return p.giveUpAsk(a, ErrDoorNoAnswer)
	case <-ctx.Done():
		return p.giveUpAsk(a, ctx.Err())
	case <-p.done:
		return ErrStopped
	}
}

// giveUpAsk stops waiting for the answer to a, unless it came meanwhile.
func (p *Phone) giveUpAsk(a *doorAsk, why error) error {
	err := p.do(context.Background(), func() error {
		p.endAsk(a, why)
		return nil
	})
	select {
	case answer := <-a.done:
		return answer // it came after all
	default:
	}
	if err != nil {
		return err
	}
	return why
}

// endAsk settles the request a (if it is still the one waiting) with
// err: nil, the peer's refusal or why there is no answer. Owner goroutine.
func (p *Phone) endAsk(a *doorAsk, err error) {
	if a == nil || p.ask != a {
		return
	}
	p.ask = nil
	st := &DoorAsk{Peer: a.s.peer.Name, At: a.at, Opened: err == nil, Answer: "opened"}
	var de *DoorError
	switch {
	case errors.As(err, &de):
		st.Answer = "refused: " + de.Text
		if de.Text == "" {
			st.Answer = "refused: " + de.Result.String()
		}
		p.log.Info("the peer refused to open its door", "peer", st.Peer, "result", de.Result.String(), "why", de.Text)
	case err != nil:
		st.Answer = err.Error()
		p.log.Warn("no answer to the request to open the peer's door", "peer", st.Peer, "err", err)
	default:
		p.log.Info("the peer opened its door", "peer", st.Peer)
	}
	p.setDoorAsk(st)
	a.done <- err
}

func (p *Phone) setDoorAsk(a *DoorAsk) {
	p.mu.Lock()
	p.status.DoorAsk = a
	p.mu.Unlock()
}

// doorAnswered handles the peer's answer to our request (owner goroutine).
// An answer to no request waiting (late, after we gave up) is ignored.
func (p *Phone) doorAnswered(e event) {
	a := p.ask
	if a == nil || a.s != e.s || a.seq != e.seq {
		p.log.Debug("door answer to no request waiting: ignored", "peer", e.s.peer.Name, "request", e.seq)
		return
	}
	var err error
	if e.door != wire.DoorOpened {
		err = &DoorError{Peer: e.s.peer.Name, Result: e.door, Text: e.text}
	}
	p.endAsk(a, err)
}

// doorRequested answers the peer's request to open our door (owner
// goroutine): only the peer of the call in progress may, and only when we
// have a door opener; Config.OnDoor decides the rest.
func (p *Phone) doorRequested(e event) {
	s := e.s
	answer := func(r wire.DoorResult, text string) {
		s.enqueue(wire.Message{Time: time.Now().UnixNano(),
			Body: wire.DoorAnswer{Request: e.seq, Result: r, Text: wire.ClipText(text)}})
	}
	switch {
	case !p.cfg.Door || p.cfg.OnDoor == nil:
		p.log.Info("door request refused: no door opener here", "peer", s.peer.Name)
		answer(wire.DoorNone, "no door opener here")
		return
	case s != p.sess || p.state != InCall:
		p.log.Info("door request refused: not in a call with the peer", "peer", s.peer.Name)
		answer(wire.DoorNotAllowed, "not in a call with you")
		return
	}
	err := p.cfg.OnDoor(s.peer)
	if err == nil {
		answer(wire.DoorOpened, "")
		return
	}
	var de *DoorError
	if errors.As(err, &de) {
		answer(de.Result, de.Text)
		return
	}
	answer(wire.DoorFault, err.Error())
}
