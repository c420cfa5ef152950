package faults

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Proxy forwards TCP connections from its own address on 127.0.0.1 to a
// target, byte for byte, half-closes included, and can reset every
// connection it carries on both sides at once.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[*proxied]bool
	closed bool
	wg     sync.WaitGroup
}

type proxied struct{ in, out *net.TCPConn }

// NewProxy listens on a free port of 127.0.0.1 and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[*proxied]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is where to connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Active is the number of connections being carried.
func (p *Proxy) Active() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.carry(c.(*net.TCPConn))
		}()
	}
}

func (p *Proxy) carry(in *net.TCPConn) {
	o, err := net.Dial("tcp", p.target)
	if err != nil {
		reset(in)
		return
	}
	pc := &proxied{in: in, out: o.(*net.TCPConn)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		reset(pc.in)
		reset(pc.out)
		return
	}
	p.conns[pc] = true
	p.mu.Unlock()
	done := make(chan bool, 2)
	pipe := func(dst, src *net.TCPConn) {
		_, err := io.Copy(dst, src)
		if err == nil {
			dst.CloseWrite() // the sender half-closed: pass it on
			done <- true
			return
		}
		done <- false
	}
	go pipe(pc.out, pc.in)
	go pipe(pc.in, pc.out)
	for range 2 {
		if !<-done {
			// One side failed (e.g. was reset): so does the other.
			reset(pc.in)
			reset(pc.out)
		}
	}
	pc.in.Close()
	pc.out.Close()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// reset closes c with an RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// ResetAll resets every connection being carried, on both sides, and
// returns how many there were.
func (p *Proxy) ResetAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		reset(pc.in)
		reset(pc.out)
	}
	return len(p.conns)
}

// Close stops accepting, resets what is carried and waits for it all.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.ResetAll()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
