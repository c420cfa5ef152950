package gpio

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
)

// PinConfig names a GPIO line and how it is wired. The daemon reads one
// for the button and one for the LED.
type PinConfig struct {
	// Line names the line; see ParsePin for the syntax ("GPIO17",
	// "gpiochip0:17"). Required.
	Line string
	// ActiveLow means the line is low while the button is pressed, or is
	// driven low to light the LED. A button wired to ground with a pull-up
	// (the usual wiring) is active-low.
	ActiveLow bool
	// Pull is the input bias: "up", "down" or "none" (leave the line
	// floating, or as the board set it). "" means "up" for a button. An LED
	// is an output and takes only "" or "none".
	Pull string
}

// Validate reports a line that does not parse or an unknown pull.
func (c PinConfig) Validate() error {
	if _, err := ParsePin(c.Line); err != nil {
		return err
	}
	_, err := c.pull(pgpio.PullUp)
	return err
}

// pull maps Pull to periph's value; def stands in for "".
func (c PinConfig) pull(def pgpio.Pull) (pgpio.Pull, error) {
	switch strings.ToLower(c.Pull) {
	case "":
		return def, nil
	case "up":
		return pgpio.PullUp, nil
	case "down":
		return pgpio.PullDown, nil
	case "none":
		return pgpio.Float, nil
	}
	return pgpio.PullNoChange, fmt.Errorf("gpio: line %s: unknown pull %q (want up, down or none)", c.Line, c.Pull)
}

// outputPull refuses a pull on an output line.
func (c PinConfig) outputPull() error {
	pull, err := c.pull(pgpio.Float)
	if err == nil && pull != pgpio.Float {
		err = fmt.Errorf("gpio: output %s: pull %q: an output takes no pull (want \"\" or \"none\")", c.Line, c.Pull)
	}
	return err
}

// active maps a line level to the button's meaning (true = pressed).
func (c PinConfig) active(l pgpio.Level) bool { return bool(l) != c.ActiveLow }

// level maps the LED's meaning to a line level.
func (c PinConfig) level(on bool) pgpio.Level { return pgpio.Level(on != c.ActiveLow) }

// LineSpec is a parsed line name: either Name, or Chip and Offset.
type LineSpec struct {
	// Name is the kernel's line name ("GPIO17"), searched on every chip.
	Name string
	// Chip is a chip's device name ("gpiochip0") or label
	// ("pinctrl-bcm2711"); Offset is the line's offset on that chip.
	Chip   string
	Offset int
}

// String writes the spec in the syntax ParsePin reads.
func (s LineSpec) String() string {
	if s.Chip == "" {
		return s.Name
	}
	return s.Chip + ":" + strconv.Itoa(s.Offset)
}

// maxNameLen is the kernel's limit for chip and line names and labels
// (GPIO_MAX_NAME_SIZE, 32 bytes with the terminating NUL).
const maxNameLen = 31

// ParsePin reads a line spec. Two forms are accepted:
//
//	NAME          a kernel line name, e.g. "GPIO17" (Raspberry Pi OS names
//	              the header pins so); it must be unique across all chips.
//	CHIP:OFFSET   a line by its offset on one chip; CHIP is the chip's
//	              device name ("gpiochip0") or its label
//	              ("pinctrl-bcm2711", "gpio-sim.0-node0"). The spec splits
//	              at its last colon, so a label may contain colons.
//
// OFFSET is decimal. A bare number ("17") is refused: sysfs and BCM numbers
// are not line offsets on every board and kernel (sysfs bases are 512+ on
// recent Pi kernels). Line names containing a colon can only be reached
// as CHIP:OFFSET. `callbox devices` lists the chips and named lines.
func ParsePin(s string) (LineSpec, error) {
	bad := func(why string, args ...any) (LineSpec, error) {
		return LineSpec{}, fmt.Errorf("gpio: line %q: %s", s, fmt.Sprintf(why, args...))
	}
	if s == "" {
		return bad("empty; want a line name (\"GPIO17\") or CHIP:OFFSET (\"gpiochip0:17\")")
	}
	if strings.TrimSpace(s) != s {
		return bad("leading or trailing space")
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		if len(s) > maxNameLen {
			return bad("name longer than %d bytes", maxNameLen)
		}
		if _, err := strconv.ParseUint(s, 10, 64); err == nil {
			return bad("a bare number is ambiguous; use the line name (\"GPIO%s\") or CHIP:OFFSET (\"gpiochip0:%s\")", s, s)
		}
		return LineSpec{Name: s}, nil
	}
	chip, off := s[:i], s[i+1:]
	switch {
	case chip == "":
		return bad("no chip before the colon")
	case len(chip) > maxNameLen:
		return bad("chip longer than %d bytes", maxNameLen)
	case strings.TrimSpace(chip) != chip:
		return bad("space around the chip")
	}
	// Digits only: ParseUint also refuses signs, spaces and "0x".
	n, err := strconv.ParseUint(off, 10, 16)
	if err != nil {
		return bad("offset %q is not a decimal number 0..65535", off)
	}
	return LineSpec{Chip: chip, Offset: int(n)}, nil
}

// pollTimeout bounds each wait for an edge, so a closed button notices
// within this time even when the driver cannot interrupt a wait. It is
// always positive: gpioioctl reads 0 as "forever" and -1 as "at once", the
// reverse of the PinIn docs that gpiotest follows; a positive time means
// the same to both.
const pollTimeout = 100 * time.Millisecond

// PinButton is a push button on a GPIO input line: edges from the line are
// debounced into Press and LongPress events. It implements Button. One
// goroutine waits for edges (each wait bounded by 100ms), one debounces.
// Its methods may be called from any goroutine; only Close blocks.
type PinButton struct {
	name    string
	pin     pgpio.PinIn
	cfg     PinConfig
	release func() // gives the line back to the kernel; nil for fakes
	log     *slog.Logger

	deb *Debouncer
	// edges holds up to 16 raw level changes for the debouncer. When it is
	// full the oldest is dropped (and counted): the newest level is the one
	// that decides what the button settles to.
	edges chan Edge
	// events holds up to 4 debounced events; the debouncer drops (and
	// counts) new ones when nobody reads, as a late press acts wrongly.
	events chan Event

	cancel   context.CancelFunc
	pollDone chan struct{}
	debDone  chan struct{}
	once     sync.Once
	closeErr error

	edgesDropped atomic.Uint64
	waitFailures atomic.Uint64
}

var _ Button = (*PinButton)(nil)

// newPinButton configures pin as an input with both edges and starts the
// edge loop and the debouncer. name is the line as shown in logs and
// errors. release, if not nil, is called once the loop has stopped.
func newPinButton(pin pgpio.PinIn, name string, cfg PinConfig, db DebounceConfig, log *slog.Logger, release func()) (*PinButton, error) {
	pull, err := cfg.pull(pgpio.PullUp)
	if err != nil {
		return nil, err
	}
	deb, err := NewDebouncer(db)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "gpio", "button", name)
	if err := pin.In(pull, pgpio.BothEdges); err != nil {
		return nil, fmt.Errorf("gpio: button %s: input with %s: %w", name, pull, err)
	}
	// One tiny wait before the loop starts: gpioioctl sets up its edge
	// reader on the first wait, and doing it here, before the goroutine,
	// lets Close's Halt interrupt a wait without racing that setup. An edge
	// this consumes is older than the Read below, which sees its level.
	pin.WaitForEdge(time.Nanosecond)
	start := cfg.active(pin.Read())
	if start {
		// Held at start, stuck, or ActiveLow set wrongly: ignore it until
		// released rather than send a LongPress nobody made.
		log.Warn("button reads pressed at start; ignored until released (check active-low and pull)")
	}

	ctx, cancel := context.WithCancel(context.Background())
	b := &PinButton{
		name:     name,
		pin:      pin,
		cfg:      cfg,
		release:  release,
		log:      log,
		deb:      deb,
		edges:    make(chan Edge, 16),
		events:   make(chan Event, 4),
		cancel:   cancel,
		pollDone: make(chan struct{}),
		debDone:  make(chan struct{}),
	}
	go b.poll(ctx, start)
	go func() {
		defer close(b.debDone)
		_ = deb.Run(ctx, b.edges, b.events)
	}()
	log.Info("button open", "pull", pull.String(), "active_low", cfg.ActiveLow)
	return b, nil
}

// Events returns the debounced events; the channel is closed by Close.
func (b *PinButton) Events() <-chan Event { return b.events }

// Dropped counts debounced events lost because nobody read Events.
func (b *PinButton) Dropped() uint64 { return b.deb.Dropped() }

// EdgesDropped counts raw level changes dropped before debouncing (the
// debouncer fell more than 16 edges behind).
func (b *PinButton) EdgesDropped() uint64 { return b.edgesDropped.Load() }

// WaitFailures counts edge waits that failed at once instead of waiting;
// while they fail the button is polled every 100ms instead.
func (b *PinButton) WaitFailures() uint64 { return b.waitFailures.Load() }

// Close stops the edge loop (within 100ms even if the driver cannot be
// interrupted), releases the line and closes Events. Idempotent and safe
// from any goroutine; every call waits and returns the same error.
func (b *PinButton) Close() error {
	b.once.Do(func() {
		b.cancel()
		if err := b.pin.Halt(); err != nil {
			b.closeErr = fmt.Errorf("gpio: button %s: halt: %w", b.name, err)
		}
		<-b.pollDone
		<-b.debDone
		close(b.events)
		if b.release != nil {
			b.release()
		}
		b.log.Info("button closed")
	})
	return b.closeErr
}

// poll is the edge loop: it waits for an edge a bounded time, reads the
// level and passes changes to the debouncer. It also reads after each
// quiet timeout, so a change whose edge the kernel lost (its event queue
// overflows) or a driver without edges is still seen within 100ms.
func (b *PinButton) poll(ctx context.Context, last bool) {
	defer close(b.pollDone)
	defer close(b.edges)
	var failing bool
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	defer pause.Stop()
	for ctx.Err() == nil {
		begin := time.Now()
		edge := b.pin.WaitForEdge(pollTimeout)
		if ctx.Err() != nil {
			return
		}
		if now := b.cfg.active(b.pin.Read()); now != last {
			last = now
			b.send(Edge{Pressed: now, Time: time.Now()})
		}
		if edge || time.Since(begin) >= pollTimeout/2 {
			if failing {
				failing = false
				b.log.Info("button edge wait works again")
			}
			continue
		}
		// The wait failed at once (a driver error, the line gone): poll
		// rather than spin.
		b.waitFailures.Add(1)
		if !failing {
			failing = true
			b.log.Warn("button edge wait fails at once; polling the level every 100ms")
		}
		pause.Reset(pollTimeout)
		select {
		case <-ctx.Done():
			return
		case <-pause.C:
		}
	}
}

// send queues e for the debouncer, dropping the oldest queued edge when
// the queue is full. It never blocks; poll is the only sender.
func (b *PinButton) send(e Edge) {
	for {
		select {
		case b.edges <- e:
			return
		default:
		}
		select {
		case <-b.edges:
			b.edgesDropped.Add(1)
		default:
		}
	}
}

// PinLED is an LED on a GPIO output line, driven by a Blinker. It
// implements LED. The line is only ever written: reading an output line
// (Read, Func) would turn it into an input on gpioioctl.
type PinLED struct {
	*Blinker
	release  func()
	once     sync.Once
	closeErr error
}

var _ LED = (*PinLED)(nil)

// newPinLED drives pin off and starts a Blinker on it. It takes a PinOut
// so that nothing here can read the line. release, if not nil, is called
// once the LED has been turned off by Close.
func newPinLED(pin pgpio.PinOut, name string, cfg PinConfig, release func()) (*PinLED, error) {
	if err := cfg.outputPull(); err != nil {
		return nil, err
	}
	if err := pin.Out(cfg.level(false)); err != nil {
		return nil, fmt.Errorf("gpio: led %s: output: %w", name, err)
	}
	l := &PinLED{release: release}
	l.Blinker = NewBlinker(func(on bool) error {
		if err := pin.Out(cfg.level(on)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	return l, nil
}

// Close turns the LED off, stops its goroutine and releases the line.
// Idempotent; every call waits and returns the same error.
func (l *PinLED) Close() error {
	l.once.Do(func() {
		l.closeErr = l.Blinker.Close()
		if l.release != nil {
			l.release()
		}
	})
	return l.closeErr
}
