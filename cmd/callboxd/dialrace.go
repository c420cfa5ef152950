package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Where a call's candidate address came from, in the order the known
// ones are tried.
const (
	srcLast       = "last"       // where the last call to the peer worked
	srcConfigured = "configured" // the peer's configured address
	srcDiscovery  = "discovery"  // where mDNS heard the peer's key
)

const (
	// dialBudget bounds a whole call dial: every address, discovery
	// included. A peer that is down fails within it, however many
	// addresses it has.
	dialBudget = 3 * time.Second
	// dialStagger is how long an attempt has to itself before the next
	// address is started beside it (RFC 8305's "connection attempt
	// delay"; an attempt that fails starts the next one at once). A TLS
	// 1.3 handshake to a box on the LAN takes one round trip and two
	// Ed25519 signatures: well under 100 ms even on a Pi 3 or over
	// Wi-Fi, so an address silent for 200 ms is most likely dead, and
	// the next known address still rings the peer within the 300 ms goal
	// (RFC 8305's 250 ms would leave too little of it). Much shorter
	// would open a second connection to a box that is merely slow,
	// which costs it a handshake it then throws away.
	dialStagger = 200 * time.Millisecond
)

// candidate is an address to dial and where it came from.
type candidate struct {
	addr, source string
}

func (c candidate) String() string { return c.addr + " (" + c.source + ")" }

// dialRace dials a peer at several addresses, happy-eyeballs style: the
// known ones (last, configured) at once, one dialStagger apart, and
// discovery's answers as they arrive, behind them; the first connection
// whose handshake succeeds (attempt checks the key) wins and every other
// is closed. It owns its goroutines: run returns only once every attempt
// and the discovery it started have ended.
type dialRace struct {
	peer    string
	known   []candidate
	find    func(ctx context.Context, found func(addr string)) // nil: no discovery
	attempt func(ctx context.Context, addr string) (net.Conn, error)
	log     *slog.Logger

	// For tests: the budgets. Zero: dialBudget, lookupTimeout, dialStagger.
	budget, lookup, stagger time.Duration
}

type attemptResult struct {
	cand candidate
	conn net.Conn
	err  error
	// began is when the attempt started, from the start of the dial;
	// took is how long it ran.
	began, took time.Duration
}

// run dials until one address connects, or every address has failed and
// discovery has nothing more, or the budget or ctx ends. The error of a
// dial that failed names every address with its source and its failure.
func (r *dialRace) run(parent context.Context) (net.Conn, candidate, error) {
	budget := cmp.Or(r.budget, dialBudget)
	stagger := cmp.Or(r.stagger, dialStagger)
	begin := time.Now()
	ctx, cancel := context.WithTimeout(parent, budget)
	defer cancel()

	var queue []candidate
	queued := map[string]bool{}
	add := func(c candidate) {
		key := addrKey(c.addr)
		if c.addr == "" || queued[key] {
			return
		}
		queued[key] = true
		queue = append(queue, c)
	}
	for _, c := range r.known {
		add(c)
	}

	// Discovery runs beside the dials from the start and never holds a
	// known address back: what it finds joins the queue behind them.
	found := make(chan string)
	var discDone chan struct{} // nil once discovery has ended (or never ran)
	if r.find != nil {
		discDone = make(chan struct{})
		lctx, lcancel := context.WithTimeout(ctx, cmp.Or(r.lookup, lookupTimeout))
		defer lcancel()
		go func() {
			defer close(discDone)
			r.find(lctx, func(addr string) {
				select {
				case found <- addr:
				case <-lctx.Done():
				}
			})
		}()
	}

	results := make(chan attemptResult)
	inFlight, tried, discovered := 0, 0, 0
	stag := time.NewTimer(stagger)
	defer stag.Stop()
	mayStart := true // the stagger since the last start has run out
	var won *attemptResult
	var errs []error
	for {
		stopped := won != nil || ctx.Err() != nil
		if !stopped && len(queue) > 0 && (mayStart || inFlight == 0) {
			c := queue[0]
			queue = queue[1:]
			inFlight++
			tried++
			go func() {
				t0 := time.Now()
				conn, err := r.attempt(ctx, c.addr)
				results <- attemptResult{cand: c, conn: conn, err: err, began: t0.Sub(begin), took: time.Since(t0)}
			}()
			mayStart = false
			stag.Reset(stagger)
			continue
		}
		if inFlight == 0 && discDone == nil && (stopped || len(queue) == 0) {
			break
		}
		var done <-chan struct{}
		if !stopped {
			done = ctx.Done()
		}
		select {
		case res := <-results:
			inFlight--
			switch {
			case res.err == nil && won == nil:
				won = &res
				cancel() // the other attempts and discovery stop
				r.logAttempt(res, "connected")
			case res.err == nil:
				res.conn.Close() // connected too late: another won
				r.logAttempt(res, "lost: "+lostWhy)
			case won != nil:
				r.logAttempt(res, "stopped: "+lostWhy)
			default:
				err := res.err
				if ctx.Err() != nil && parent.Err() == nil && timedOut(err) {
					err = &noAnswerError{budget: budget, err: err}
				}
				errs = append(errs, fmt.Errorf("%s: %w", res.cand, err))
				r.logAttempt(res, "failed: "+err.Error())
				mayStart = true
			}
		case addr := <-found:
			discovered++
			add(candidate{addr, srcDiscovery})
		case <-discDone:
			discDone = nil
		case <-stag.C:
			mayStart = true
		case <-done:
		}
	}
	if won != nil {
		return won.conn, won.cand, nil
	}
	if err := parent.Err(); err != nil {
		return nil, candidate{}, err // abandoned: nobody reads the details
	}
	if tried == 0 {
		if r.find == nil {
			return nil, candidate{}, fmt.Errorf("peer %s has no address (and discovery is off)", r.peer)
		}
		return nil, candidate{}, fmt.Errorf("peer %s has no address and was not found on the link", r.peer)
	}
	for _, c := range queue {
		errs = append(errs, fmt.Errorf("%s: not tried: no time left", c))
	}
	if r.find != nil && discovered == 0 {
		errs = append(errs, errors.New("not found on the link by discovery"))
	}
	return nil, candidate{}, errors.Join(errs...)
}

// lostWhy is why the attempts other than the winner end.
const lostWhy = "another address answered first"

// logAttempt reports one attempt in the debug log.
func (r *dialRace) logAttempt(res attemptResult, outcome string) {
	r.log.Debug("dial attempt", "component", "dial", "peer", r.peer, "address", res.cand.addr,
		"source", res.cand.source, "outcome", outcome,
		"started_ms", ms(res.began), "took_ms", ms(res.took))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// timedOut reports an error that means a deadline passed.
// noAnswerError is an attempt the dial's budget ran out on: nothing
// answered (a black hole, a tunnel that is down).
type noAnswerError struct {
	budget time.Duration
	err    error
}

func (e *noAnswerError) Error() string { return fmt.Sprintf("no answer within %v", e.budget) }
func (e *noAnswerError) Unwrap() error { return e.err }

func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

// addrKey is the form in which two spellings of one address compare
// equal: IPv4-mapped IPv6 as IPv4, host names in lower case.
func addrKey(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return strings.ToLower(addr)
}
