// Command callbox controls a running callboxd over its control socket:
// status, call, hangup, answer, press, id, peers and frame. `callbox
// devices` lists the devices itself when no daemon answers.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/internal/rings"
)

const usage = `usage: callbox [-socket PATH] COMMAND [ARGS]
       callbox -version

commands:
  status [--json]                  state, peer and live call figures
  call [NAME]                      call a paired peer or ring a group (default: the button's)
  hangup                           end, decline or abandon the call
  answer                           answer a ringing call
  press [--long] [--button N]      press the (simulated) button; N: the Nth [[button]]
  open [--remote]                  open this box's door ([door]); --remote: ask the
                                   peer of the call in progress to open its door
  devices [--json]                 cameras, microphones, speakers, GPIO lines and screens here
                                   (listed by callbox itself when no daemon answers)
  id                               this box's name and fingerprint
  pair [-confirm | -cancel]        open the pairing window (as a long press), wait
                                   and print the result and the confirmation code
  peers                            list paired peers
  peers add NAME FINGERPRINT ADDR  pair with a box; ADDR is host:port with an IPv4
                                   address, [an IPv6 address] or a host name
                                   (192.168.1.20:7420, [fd7a:115c:a1e0::1]:7420,
                                   door.tail1234.ts.net:7420)
  peers remove NAME                forget a paired box
  frame [--self] -o FILE           save the latest peer (or own) frame as JPEG
  rings [--json]                   who rang: time, button or incoming call, picture
  rings ID -o FILE                 save a ring's picture

The socket defaults to $CALLBOX_SOCKET or /run/callbox/control.sock.
`

// version and commit are stamped by the build (-ldflags "-X main.version=...").
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("callbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	def := os.Getenv("CALLBOX_SOCKET")
	if def == "" {
		def = "/run/callbox/control.sock"
	}
	sock := fs.String("socket", def, "control socket of the daemon")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // usage printed
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "callbox %s (commit %s)\n", version, commit)
		return 0
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	c := control.NewClient(*sock)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := command(ctx, c, fs.Arg(0), fs.Args()[1:], stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "callbox: %v\n\n%s", err, usage)
		return 2
	default:
		fmt.Fprintln(stderr, "callbox:", err)
		return 1
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

func command(ctx context.Context, c *control.Client, cmd string, args []string, out, stderr io.Writer) error {
	flags := flag.NewFlagSet(cmd, flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	asJSON := flags.Bool("json", false, "")
	long := flags.Bool("long", false, "")
	button := flags.Int("button", 0, "")
	self := flags.Bool("self", false, "")
	file := flags.String("o", "", "")
	confirm := flags.Bool("confirm", false, "")
	cancelPair := flags.Bool("cancel", false, "")
	remote := flags.Bool("remote", false, "")
	if err := flags.Parse(args); err != nil {
		return usageError(err.Error())
	}
	args = flags.Args()
	switch cmd {
	case "status":
		var st control.Status
		if err := c.Do(ctx, "GET", "/v1/status", nil, &st); err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		printStatus(out, st)
		return nil
	case "call":
		if len(args) > 1 {
			return usageError("call takes at most one peer name")
		}
		req := control.CallRequest{}
		if len(args) == 1 {
			req.Peer = args[0]
		}
		return c.Do(ctx, "POST", "/v1/call", req, nil)
	case "hangup", "answer":
		return c.Do(ctx, "POST", "/v1/"+cmd, nil, nil)
	case "press":
		return c.Do(ctx, "POST", "/v1/press", control.PressRequest{Long: *long, Button: *button}, nil)
	case "open":
		if len(args) > 0 {
			return usageError("open takes no arguments")
		}
		return openDoor(ctx, c, *remote, out)
	case "id":
		var id control.ID
		if err := c.Do(ctx, "GET", "/v1/id", nil, &id); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(id)
		}
		fmt.Fprintf(out, "name:        %s\nfingerprint: %s\nlisten:      %s\n", id.Name, id.Fingerprint, id.Listen)
		return nil
	case "peers":
		return peers(ctx, c, args, out, *asJSON)
	case "pair":
		if len(args) > 0 {
			return usageError("pair takes no arguments")
		}
		return pair(c, control.PairRequest{Confirm: *confirm, Cancel: *cancelPair}, out)
	case "devices":
		d, err := devices(ctx, c, stderr)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(d)
		}
		control.PrintDevices(out, d)
		return nil
	case "rings":
		return ringsCmd(ctx, c, args, *file, out, *asJSON)
	case "frame":
		if *file == "" {
			return usageError("frame needs -o FILE")
		}
		which := "peer"
		if *self {
			which = "self"
		}
		var jpeg []byte
		if err := c.Do(ctx, "GET", "/v1/frame/"+which, nil, &jpeg); err != nil {
			return err
		}
		return os.WriteFile(*file, jpeg, 0o644)
	}
	return usageError(fmt.Sprintf("unknown command %q", cmd))
}

// ringsCmd lists who rang, or saves one ring's picture (rings ID -o FILE).
func ringsCmd(ctx context.Context, c *control.Client, args []string, file string, out io.Writer, asJSON bool) error {
	if len(args) == 1 {
		if file == "" {
			return usageError("rings ID needs -o FILE")
		}
		var jpeg []byte
		if err := c.Do(ctx, "GET", "/v1/rings/"+url.PathEscape(args[0]), nil, &jpeg); err != nil {
			return err
		}
		return os.WriteFile(file, jpeg, 0o644)
	}
	if len(args) > 1 {
		return usageError("rings takes at most one ring id")
	}
	var list []rings.Ring
	if err := c.Do(ctx, "GET", "/v1/rings", nil, &list); err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(out).Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(out, "nobody rang yet")
		return nil
	}
	for _, r := range list {
		pic := "no picture"
		if r.Bytes > 0 {
			pic = fmt.Sprintf("picture %d kB", (r.Bytes+512)/1024)
		}
		what := "button, called " + r.Peer
		if r.Kind == rings.Incoming {
			what = "call from " + r.Peer
		}
		fmt.Fprintf(out, "%s  %-30s %-16s %s\n", r.Time.Local().Format("2006-01-02 15:04:05"), what, pic, r.ID)
	}
	return nil
}

// openDoor opens this box's door, or asks the peer of the call to open
// its own and prints its answer.
func openDoor(ctx context.Context, c *control.Client, remote bool, out io.Writer) error {
	var res control.DoorOpened
	if err := c.Do(ctx, "POST", "/v1/door/open", control.DoorRequest{Remote: remote}, &res); err != nil {
		return err
	}
	if remote {
		fmt.Fprintf(out, "%s opened its door\n", res.Door)
	} else {
		fmt.Fprintf(out, "door opening (%d s)\n", res.PulseS)
	}
	return nil
}

func peers(ctx context.Context, c *control.Client, args []string, out io.Writer, asJSON bool) error {
	if len(args) == 0 || args[0] == "list" {
		var list []control.Peer
		if err := c.Do(ctx, "GET", "/v1/peers", nil, &list); err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(out).Encode(list)
		}
		if len(list) == 0 {
			fmt.Fprintln(out, "no paired peers")
		}
		for _, p := range list {
			addr := p.Address
			if addr == "" {
				addr = "-"
			}
			if p.LastAddress != "" && p.LastAddress != p.Address {
				addr += " (last reached at " + p.LastAddress + ")"
			}
			fmt.Fprintf(out, "%-16s %s %s\n", p.Name, p.Fingerprint, addr)
		}
		return nil
	}
	switch args[0] {
	case "add":
		if len(args) != 4 {
			return usageError("peers add NAME FINGERPRINT ADDRESS")
		}
		return c.Do(ctx, "POST", "/v1/peers", control.Peer{Name: args[1], Fingerprint: args[2], Address: args[3]}, nil)
	case "remove":
		if len(args) != 2 {
			return usageError("peers remove NAME")
		}
		return c.Do(ctx, "DELETE", "/v1/peers/"+url.PathEscape(args[1]), nil, nil)
	}
	return usageError(fmt.Sprintf("unknown peers command %q", args[0]))
}

// pair opens the pairing window and waits for its end (its own timeout:
// the window may last longer than the usual command timeout), printing
// the code as soon as the other box is found.
func pair(c *control.Client, req control.PairRequest, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var st control.Pairing
	if err := c.Do(ctx, "POST", "/v1/pair", req, &st); err != nil {
		return err
	}
	if req.Confirm || req.Cancel {
		fmt.Fprintf(out, "pairing: %s\n", st.State)
		return nil
	}
	window := st.Window
	fmt.Fprintf(out, "pairing window open until %s: hold the other box's button (or run callbox pair there)\n", st.Until.Local().Format("15:04:05"))
	shown := ""
	for {
		var s control.Status
		if err := c.Do(ctx, "GET", "/v1/status", nil, &s); err != nil {
			return err
		}
		p := s.Pairing
		if p.Window != window {
			return errors.New("pairing: the window was opened again elsewhere")
		}
		if p.Code != "" && p.Code != shown {
			shown = p.Code
			fmt.Fprintf(out, "found %s (%s)\nconfirmation code: %s (must be the same on both boxes)\n", p.Peer, p.Fingerprint, p.Code)
			if p.State == control.PairConfirm {
				fmt.Fprintln(out, "if it is, run: callbox pair -confirm")
			}
		}
		switch p.State {
		case control.PairPaired:
			fmt.Fprintf(out, "paired with %s\n", p.Peer)
			return nil
		case control.PairFailed, control.PairOff:
			return fmt.Errorf("pairing failed: %s", p.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// printPeersSeen says, for each paired peer, when this box last saw it.
// A daemon from before sightings sends no list (nil): nothing is said.
func printPeersSeen(out io.Writer, peers []control.PeerSeen) {
	if peers == nil {
		return
	}
	if len(peers) == 0 {
		fmt.Fprintln(out, "peers: none paired")
	}
	for _, p := range peers {
		sum := p.Summary
		if sum == "" {
			sum = control.SeenSummary(p.Last)
		}
		fmt.Fprintf(out, "peer %s: %s\n", p.Name, sum)
	}
}

func printStatus(out io.Writer, st control.Status) {
	p := st.Phone
	state := p.State.String()
	if p.Peer != nil {
		state += " with " + p.Peer.Name
	}
	fmt.Fprintf(out, "%s (%s): %s, LED %s\n", st.Name, st.Listen, state, st.LED)
	if m := st.MQTT; m != nil {
		if m.Connected {
			fmt.Fprintf(out, "mqtt: connected to %s since %s (%d published, %d events dropped)\n", m.Broker, m.Since.Local().Format("15:04:05"), m.Published, m.Dropped)
		} else {
			fmt.Fprintf(out, "mqtt: NOT connected to %s: %s (the box works without it)\n", m.Broker, m.Error)
		}
	}
	if st.RingErrors != "" {
		fmt.Fprintf(out, "rings: %s\n", st.RingErrors)
	}
	if st.ButtonLEDs != "" {
		fmt.Fprintf(out, "button LEDs: %s\n", st.ButtonLEDs)
	}
	if p.LastEnd != "" && p.State.String() == "idle" {
		fmt.Fprintf(out, "last call ended: %s\n", p.LastEnd)
	}
	if g := p.Group; g != nil {
		line := "group " + g.Name + ": " + g.String()
		if p.State.String() == "idle" {
			line = "last " + line
		}
		fmt.Fprintln(out, line)
	}
	fmt.Fprintf(out, "camera %s; microphone %s; speaker %s\n", st.Camera, st.Microphone, st.Speaker)
	if st.Media.Video != "" {
		fmt.Fprintf(out, "capture: camera %s; microphone and speaker %s\n", st.Media.Video, st.Media.Audio)
	}
	if vq := st.VideoQuality; vq.Quality > 0 {
		fmt.Fprintf(out, "video quality: %d (configured %d, floor %d): %s\n", vq.Quality, vq.Configured, vq.Min, vq.Reason)
	} else if vq.Reason != "" {
		fmt.Fprintf(out, "video quality: %s\n", vq.Reason)
	}
	if st.GPIO != "" {
		fmt.Fprintf(out, "gpio: %s\n", st.GPIO)
	}
	printDoor(out, st)
	if st.PeerStore != "" {
		fmt.Fprintf(out, "WARNING: %s\n", st.PeerStore)
	}
	if pr := st.Pairing; pr.State != control.PairOff && pr.State != "" {
		line := "pairing: " + pr.State
		if pr.Peer != "" {
			line += " with " + pr.Peer + ", code " + pr.Code
		}
		if pr.Error != "" {
			line += ": " + pr.Error
		}
		fmt.Fprintln(out, line)
	}
	if st.Discovery != "" {
		fmt.Fprintf(out, "discovery: %s\n", st.Discovery)
	}
	printPeersSeen(out, st.Peers)
	if sc := st.Screen; sc != nil {
		fmt.Fprintf(out, "screen %s: %s; %d frames shown, %d dropped, %d broken\n", sc.Device, sc.State, sc.Shown, sc.Dropped, sc.Broken)
	}
	if cs := p.Call; cs != nil {
		fmt.Fprintf(out, "call: %.1f s, rtt %.1f ms, clock offset %.1f ms\n", cs.Seconds, cs.RTT, cs.Offset)
		target := ""
		if cs.Out.AudioTargetKbps > 0 {
			target = fmt.Sprintf(" (target %.0f)", cs.Out.AudioTargetKbps)
		}
		fmt.Fprintf(out, "  out: video %.1f fps %.0f kbit/s %d frames %d dropped; audio %s %.0f kbit/s%s %d frames %d dropped, as %s\n",
			cs.Out.VideoFPS, cs.Out.VideoKbps, cs.Out.VideoFrames, cs.Out.VideoDrops, control.CodecName(cs.Out.AudioCodec), cs.Out.AudioKbps, target, cs.Out.AudioFrames, cs.Out.AudioDrops, pathName(cs.Out.AudioPath))
		fmt.Fprintf(out, "  in:  video %.1f fps %.0f kbit/s %d frames, latency p50 %.1f p99 %.1f ms; audio %s %.0f kbit/s %d frames %d lost, latency p50 %.1f p99 %.1f ms, as %s\n",
			cs.In.VideoFPS, cs.In.VideoKbps, cs.In.VideoFrames, cs.In.VideoLatency.P50, cs.In.VideoLatency.P99,
			control.CodecName(cs.In.AudioCodec), cs.In.AudioKbps, cs.In.AudioFrames, cs.In.AudioDrops, cs.In.AudioLatency.P50, cs.In.AudioLatency.P99, pathName(cs.In.AudioPath))
		fmt.Fprintf(out, "  playout: depth %.0f ms (target %.0f ms for %.0f ms of jitter), %d underruns (%d frames concealed), %d dropped (cap), drift %d squeezed %d stretched samples\n",
			st.Playout.DepthMs, st.Playout.TargetMs, st.Playout.JitterMs, st.Playout.Underruns, st.Playout.Concealed, st.Playout.Overflow, st.Playout.Squeezed, st.Playout.Stretched)
		if cs.In.VideoSinkDrops > 0 || cs.Out.LinkKbps > 0 {
			fmt.Fprintf(out, "  link: %.0f kbit/s seen; %d peer frames replaced before shown\n", cs.Out.LinkKbps, cs.In.VideoSinkDrops)
		}
		if cs.In.VideoBad > 0 || cs.In.AudioBad > 0 {
			fmt.Fprintf(out, "  bad media from the peer, dropped: %d video frames (not JPEG), %d audio frames (did not decode)\n", cs.In.VideoBad, cs.In.AudioBad)
		}
	}
	if e := st.Echo; e != nil {
		delay := "delay not found yet"
		if e.DelayKnown {
			delay = fmt.Sprintf("delay %.0f ms (moved %d times)", e.DelayMs, e.DelayChanges)
		}
		duck := "not ducking"
		if e.Ducking {
			duck = fmt.Sprintf("DUCKING the microphone by %.0f dB (half duplex: the canceller falls short)", e.DuckDB)
		}
		fmt.Fprintf(out, "echo: %s; %s; echo reduced by %.1f dB; %s; %d of %d frames ducked\n",
			e.Parts, delay, e.ERLE, duck, e.DuckedFrames, e.Frames)
	}
	l := st.Listener
	fmt.Fprintf(out, "call port: %d handshakes under way (%d in slots kept for paired peers), %d accepted, %d dropped for lack of a slot; %d datagrams refused\n",
		l.InUse, l.Friends, l.Accepted, l.Dropped, l.DatagramsRefused)
	pr := st.Process
	fmt.Fprintf(out, "process: %d goroutines, %.1f MB heap, %d open files\n", pr.Goroutines, float64(pr.HeapBytes)/1e6, pr.OpenFDs)
}

// printDoor prints the door opener's lines: this box's, and the peer's.
func printDoor(out io.Writer, st control.Status) {
	at := func(t time.Time) string { return t.Local().Format("15:04:05") }
	if d := st.Door; d != nil {
		line := fmt.Sprintf("door %s: %s", d.Line, d.State)
		switch {
		case d.Active && d.Last != nil:
			line += " for " + d.Last.Who
			if !d.Until.IsZero() {
				line += " until " + at(d.Until)
			}
		case !d.Until.IsZero():
			line += ", opens again from " + at(d.Until)
		}
		line += fmt.Sprintf("; %d s pulse, %d s gap, remote %s; %d openings, %d refused", d.PulseS, d.GapS, d.Remote, d.Openings, d.Refusals)
		fmt.Fprintln(out, line)
		if l := d.Last; l != nil {
			fmt.Fprintf(out, "  last opened %s by %s\n", at(l.At), l.Who)
		}
		if r := d.LastRefusal; r != nil {
			fmt.Fprintf(out, "  last refused %s to %s: %s\n", at(r.At), r.Who, r.Why)
		}
	}
	p := st.Phone
	if p.PeerDoor && p.Peer != nil {
		fmt.Fprintf(out, "%s has a door opener: callbox open --remote\n", p.Peer.Name)
	}
	if a := p.DoorAsk; a != nil {
		fmt.Fprintf(out, "asked %s to open its door at %s: %s\n", a.Peer, at(a.At), a.Answer)
	}
}

// pathName says how a call's audio goes, for the status lines.
func pathName(p string) string {
	switch p {
	case "datagrams":
		return "datagrams (UDP)"
	case "stream+datagrams":
		return "stream and datagrams (the peer has not seen them arrive)"
	case "":
		return "nothing yet"
	}
	return "the call's TCP stream"
}
