package testbox

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Broker is a real Mosquitto broker on 127.0.0.1 with a password file,
// for the MQTT tests: Debian's mosquitto, started and stopped by the test.
type Broker struct {
	URL        string // tcp://127.0.0.1:port
	Port       int
	User, Pass string
	dir        string
	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	log        bytes.Buffer
}

// ErrNoMosquitto means mosquitto is not installed (make test installs it).
var ErrNoMosquitto = errors.New("mosquitto is not installed: apt-get install mosquitto (make test does)")

// StartBroker starts a broker in dir that takes user with pass and
// nobody else, on a free port.
func StartBroker(dir, user, pass string) (*Broker, error) {
	for _, tool := range []string{"mosquitto", "mosquitto_passwd"} {
		if _, err := lookTool(tool); err != nil {
			return nil, ErrNoMosquitto
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pw := filepath.Join(dir, "passwd")
	os.Remove(pw)
	tool, _ := lookTool("mosquitto_passwd")
	if out, err := exec.Command(tool, "-b", "-c", pw, user, pass).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mosquitto_passwd: %v: %s", err, out)
	}
	b := &Broker{User: user, Pass: pass, dir: dir}
	// A port that was free a moment ago; a clash shows as a start failure
	// and is tried again with another.
	var err error
	for range 5 {
		if b.Port, err = freePort(); err != nil {
			return nil, err
		}
		b.URL = fmt.Sprintf("tcp://127.0.0.1:%d", b.Port)
		if err = b.Start(); err == nil {
			return b, nil
		}
	}
	return nil, err
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	// Debian puts the broker in /usr/sbin, which a plain user's PATH lacks.
	p := "/usr/sbin/" + name
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", exec.ErrNotFound
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Start (re)starts the broker on its port and waits until it takes
// connections.
func (b *Broker) Start() error {
	conf := filepath.Join(b.dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\npersistence false\nlog_dest stderr\n",
		b.Port, filepath.Join(b.dir, "passwd"))
	if os.Getuid() == 0 {
		// As root it would drop to the mosquitto user, who cannot read
		// the test's files.
		text += "user root\n"
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return err
	}
	tool, _ := lookTool("mosquitto")
	cmd := exec.Command(tool, "-c", conf)
	b.mu.Lock()
	b.log.Reset()
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &b.mu, w: &b.log}, &lockedWriter{mu: &b.mu, w: &b.log}
	b.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.mu.Lock()
	b.cmd, b.done = cmd, done
	b.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(b.Port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("mosquitto exited: %s", b.Log())
		default:
		}
		if time.Now().After(deadline) {
			b.Stop()
			return fmt.Errorf("mosquitto did not listen on %d: %s", b.Port, b.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the broker at once (SIGKILL): clients see the connection drop.
func (b *Broker) Kill() { b.stop(syscall.SIGKILL) }

// Stop stops the broker (SIGTERM) and waits for it.
func (b *Broker) Stop() { b.stop(syscall.SIGTERM) }

func (b *Broker) stop(sig syscall.Signal) {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Log is what the broker wrote.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// Watcher is a subscriber of the test's own on a Broker: it keeps the
// last message of each topic and, in order, every message of the topics
// ending in /event.
type Watcher struct {
	mu     sync.Mutex
	last   map[string][]byte
	events []string
	cl     mqtt.Client
}

// Watch subscribes to topics (wildcards allowed), and again after the
// broker comes back.
func (b *Broker) Watch(topics ...string) (*Watcher, error) {
	w := &Watcher{last: map[string][]byte{}}
	opts := mqtt.NewClientOptions().AddBroker(b.URL).SetClientID(fmt.Sprintf("watcher-%d", time.Now().UnixNano())).
		SetUsername(b.User).SetPassword(b.Pass).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond)
	handler := func(_ mqtt.Client, m mqtt.Message) {
		w.mu.Lock()
		w.last[m.Topic()] = bytes.Clone(m.Payload())
		if strings.HasSuffix(m.Topic(), "/event") {
			w.events = append(w.events, string(m.Payload()))
		}
		w.mu.Unlock()
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		for _, tp := range topics {
			c.Subscribe(tp, 1, handler)
		}
	})
	w.cl = mqtt.NewClient(opts)
	if tok := w.cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("watcher: connect: %v", tok.Error())
	}
	return w, nil
}

// Reset forgets what was seen (say, before the broker restarted without
// its retained messages).
func (w *Watcher) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.last)
	w.events = nil
}

// Close disconnects the watcher.
func (w *Watcher) Close() { w.cl.Disconnect(100) }

// Wait polls (every 20 ms, at most within) until f holds for the last
// message of each topic and the events so far.
func (w *Watcher) Wait(within time.Duration, what string, f func(last map[string][]byte, events []string) bool) error {
	deadline := time.Now().Add(within)
	for {
		w.mu.Lock()
		ok := f(w.last, w.events)
		w.mu.Unlock()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			w.mu.Lock()
			defer w.mu.Unlock()
			var seen []string
			for k, v := range w.last {
				seen = append(seen, k+" = "+string(v[:min(len(v), 80)]))
			}
			sort.Strings(seen)
			return fmt.Errorf("waited %v for %s; seen:\n%s\nevents %q", within, what, strings.Join(seen, "\n"), w.events)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Last is the last message on topic, nil if none.
func (w *Watcher) Last(topic string) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[topic]
}

// Topics are the topics seen with prefix.
func (w *Watcher) Topics(prefix string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for k := range w.last {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Publish sends payload to topic (QoS 1) and waits for the broker.
func (w *Watcher) Publish(topic, payload string) error {
	tok := w.cl.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return errors.New("publish: timed out")
	}
	return tok.Error()
}
