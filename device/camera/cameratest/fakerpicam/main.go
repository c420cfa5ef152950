// Command fakerpicam stands in for rpicam-vid in tests: it takes the
// options callbox passes (and rejects others, as rpicam-vid does), lists
// two cameras for --list-cameras, and writes MJPEG to stdout at the asked
// size and rate. Each frame carries a "callbox frame=N" COM segment.
//
// What it does is read at every start from the file named by
// $FAKE_RPICAM (none: stream until killed), words separated by spaces:
//
//	fail          print "ERROR: *** no cameras available ***", exit 255
//	after=N       do the following after N good frames
//	then=exit     exit with status 1 ("fake: camera went away" on stderr)
//	then=hang     write nothing more, keep stdout open
//	then=garbage  write broken frames and junk, then good frames again
//	ignore-term   ignore SIGTERM (only SIGKILL ends it)
//
// With $FAKE_RPICAM_LOG set, it appends "PID ARGS..." to that file at
// start (and "[NOTIFY_SOCKET=...]" if it got that variable), so a test can
// check the command line, the environment and that every process it
// started is gone.
package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	width, height, fps, quality, camera int
	list                                bool
}

func main() {
	o, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "ERROR: *** "+err.Error()+" ***")
		os.Exit(255)
	}
	if p := os.Getenv("FAKE_RPICAM_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			line := strings.Join(os.Args[1:], " ")
			if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
				line += " [NOTIFY_SOCKET=" + v + "]"
			}
			fmt.Fprintf(f, "%d %s\n", os.Getpid(), line)
			f.Close()
		}
	}
	script := map[string]string{}
	if p := os.Getenv("FAKE_RPICAM"); p != "" {
		b, _ := os.ReadFile(p)
		for _, w := range strings.Fields(string(b)) {
			k, v, _ := strings.Cut(w, "=")
			script[k] = v
		}
	}
	if _, ok := script["ignore-term"]; ok {
		signal.Ignore(syscall.SIGTERM)
	}
	fmt.Fprintln(os.Stderr, "[0:00:00.1] INFO Camera camera_manager.cpp:330 libcamera v0.5 (fake)")
	if o.list {
		if _, ok := script["fail"]; ok {
			fmt.Println("No cameras available!")
			return
		}
		fmt.Print(`Available cameras
-----------------
0 : imx708 [4608x2592 10-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx708@1a)
    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]

1 : ov5647 [2592x1944 10-bit GBRG] (/base/soc/i2c0mux/i2c@0/ov5647@36)
    Modes: 'SGBRG10_CSI2P' : 640x480 [58.92 fps - (16, 0)/2560x1920 crop]

`)
		return
	}
	if _, ok := script["fail"]; ok {
		fmt.Fprintln(os.Stderr, "ERROR: *** no cameras available ***")
		os.Exit(255)
	}
	if o.camera > 1 {
		fmt.Fprintf(os.Stderr, "ERROR: *** could not open camera %d ***\n", o.camera)
		os.Exit(255)
	}
	after := -1
	if v, ok := script["after"]; ok {
		after, _ = strconv.Atoi(v)
	}
	stream(o, after, script["then"])
}

// parse reads the options callbox passes; anything else is an error.
func parse(args []string) (options, error) {
	o := options{width: 640, height: 480, fps: 30, quality: 50}
	num := map[string]*int{"--width": &o.width, "--height": &o.height, "--framerate": &o.fps,
		"--quality": &o.quality, "--camera": &o.camera}
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		switch a {
		case "--list-cameras":
			o.list = true
		case "--nopreview", "-n", "--flush":
		case "--timeout", "-t":
			if v, err := val(); err != nil || v != "0" {
				return o, fmt.Errorf("fake: --timeout %q, want 0", v)
			}
		case "--codec":
			if v, err := val(); err != nil || v != "mjpeg" {
				return o, fmt.Errorf("fake: --codec %q, want mjpeg", v)
			}
		case "--output", "-o":
			if v, err := val(); err != nil || v != "-" {
				return o, fmt.Errorf("fake: --output %q, want -", v)
			}
		default:
			p, ok := num[a]
			if !ok {
				return o, fmt.Errorf("unrecognised option %s", a)
			}
			v, err := val()
			if err != nil {
				return o, err
			}
			if *p, err = strconv.Atoi(v); err != nil {
				return o, fmt.Errorf("option %s: %v", a, err)
			}
		}
	}
	return o, nil
}

// stream writes frames at the asked rate; after good frames it does what
// then says.
func stream(o options, after int, then string) {
	pics := pictures(o)
	tick := time.NewTicker(time.Second / time.Duration(max(o.fps, 1)))
	defer tick.Stop()
	n := 0
	for {
		if n == after {
			switch then {
			case "exit":
				fmt.Fprintln(os.Stderr, "fake: camera went away")
				os.Exit(1)
			case "hang":
				for {
					time.Sleep(time.Hour)
				}
			case "garbage":
				os.Stdout.Write(garbage(pics[0]))
			}
		}
		if _, err := os.Stdout.Write(numbered(pics[n%len(pics)], n)); err != nil {
			os.Exit(1) // the reader went away
		}
		n++
		<-tick.C
	}
}

// pictures encodes four test images at the asked size.
func pictures(o options) [][]byte {
	var out [][]byte
	for k := range 4 {
		img := image.NewRGBA(image.Rect(0, 0, o.width, o.height))
		for y := range o.height {
			for x := range o.width {
				img.Set(x, y, color.RGBA{uint8(x + 64*k), uint8(y), uint8(128 * (k % 2)), 255})
			}
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: max(o.quality, 1)}); err != nil {
			panic(err)
		}
		out = append(out, b.Bytes())
	}
	return out
}

// numbered is pic with a COM segment "callbox frame=n" after its SOI.
func numbered(pic []byte, n int) []byte {
	com := "callbox frame=" + strconv.Itoa(n)
	l := 2 + len(com)
	b := make([]byte, 0, len(pic)+l+2)
	b = append(b, pic[:2]...)
	b = append(b, 0xFF, 0xFE, byte(l>>8), byte(l))
	b = append(b, com...)
	return append(b, pic[2:]...)
}

// garbage is what a broken pipeline might write: junk without a frame
// start, a frame cut short, a frame whose header is damaged, and a
// frame with no image header at all.
func garbage(pic []byte) []byte {
	var b []byte
	for i := range 3000 {
		b = append(b, byte(i*7+1)&0x7F) // no 0xFF: no marker
	}
	b = append(b, pic[:len(pic)/2]...) // cut short: the next SOI comes first
	bad := bytes.Clone(pic)
	bad[3] = 0x00 // the first segment's marker byte: not a marker
	b = append(b, bad...)
	b = append(b, 0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34, 0xFF, 0xD9) // a scan but no frame header
	return b
}
