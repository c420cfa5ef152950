package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// configfsRoot is where gpio-sim's configfs tree lives (init mounts
// configfs at /sys/kernel/config).
const configfsRoot = "/sys/kernel/config/gpio-sim"

// simChip is a live gpio-sim chip.
type simChip struct {
	spec GPIOSim
	chip string // e.g. "gpiochip1"
	dir  string // sysfs directory holding sim_gpioN/{value,pull}
}

// makeSimChip builds the chip through configfs and brings it live. Its
// lines are named like a Raspberry Pi's header lines (spec.Prefix + offset),
// so the daemon finds "GPIO17" by name as on a Pi.
func makeSimChip(spec GPIOSim) (*simChip, error) {
	if spec.Name == "" || spec.Lines < 1 || spec.Lines > 64 {
		return nil, fmt.Errorf("gpio-sim: bad spec %+v (want a name and 1..64 lines)", spec)
	}
	dev := filepath.Join(configfsRoot, spec.Name)
	bank := filepath.Join(dev, "bank0")
	write := func(path, v string) error {
		if err := os.WriteFile(path, []byte(v), 0); err != nil {
			return fmt.Errorf("gpio-sim: %w", err)
		}
		return nil
	}
	if err := os.Mkdir(dev, 0o755); err != nil {
		return nil, fmt.Errorf("gpio-sim: %w (is the module loaded and configfs mounted?)", err)
	}
	if err := os.Mkdir(bank, 0o755); err != nil {
		return nil, fmt.Errorf("gpio-sim: %w", err)
	}
	if spec.Label != "" {
		if err := write(filepath.Join(bank, "label"), spec.Label); err != nil {
			return nil, err
		}
	}
	if err := write(filepath.Join(bank, "num_lines"), strconv.Itoa(spec.Lines)); err != nil {
		return nil, err
	}
	for i := range spec.Lines {
		line := filepath.Join(bank, fmt.Sprintf("line%d", i))
		if err := os.Mkdir(line, 0o755); err != nil {
			return nil, fmt.Errorf("gpio-sim: %w", err)
		}
		if err := write(filepath.Join(line, "name"), fmt.Sprintf("%s%d", spec.Prefix, i)); err != nil {
			return nil, err
		}
	}
	if err := write(filepath.Join(dev, "live"), "1"); err != nil {
		return nil, err
	}
	read := func(path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("gpio-sim: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	devName, err := read(filepath.Join(dev, "dev_name"))
	if err != nil {
		return nil, err
	}
	chip, err := read(filepath.Join(bank, "chip_name"))
	if err != nil {
		return nil, err
	}
	if chip == "" || chip == "none" {
		return nil, errors.New("gpio-sim: chip is live but has no gpiochip")
	}
	return &simChip{spec: spec, chip: chip, dir: filepath.Join("/sys/devices/platform", devName, chip)}, nil
}

// lineDir returns the sysfs directory of the line named name.
func (c *simChip) lineDir(name string) (string, error) {
	s, ok := strings.CutPrefix(name, c.spec.Prefix)
	n, err := strconv.Atoi(s)
	if !ok || err != nil || n < 0 || n >= c.spec.Lines {
		return "", fmt.Errorf("gpio-sim: no line %q on %s (lines %s0..%s%d)", name, c.chip, c.spec.Prefix, c.spec.Prefix, c.spec.Lines-1)
	}
	return filepath.Join(c.dir, fmt.Sprintf("sim_gpio%d", n)), nil
}

// pull sets the simulated pull of an input line: what the line reads, and
// an edge for whoever watches it.
func (c *simChip) pull(name string, up bool) error {
	d, err := c.lineDir(name)
	if err != nil {
		return err
	}
	v := "pull-down"
	if up {
		v = "pull-up"
	}
	if err := os.WriteFile(filepath.Join(d, "pull"), []byte(v), 0); err != nil {
		return fmt.Errorf("gpio-sim: %s: %w", name, err)
	}
	return nil
}

// valueFile opens the file that shows the line's level (what the daemon
// drives on an output).
func (c *simChip) valueFile(name string) (*os.File, error) {
	d, err := c.lineDir(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d, "value"))
	if err != nil {
		return nil, fmt.Errorf("gpio-sim: %s: %w", name, err)
	}
	return f, nil
}

// readValue reads a sysfs value file from its start ("0\n" or "1\n").
func readValue(f *os.File) (bool, error) {
	var b [4]byte
	n, err := f.ReadAt(b[:], 0)
	if n == 0 && err != nil {
		return false, err
	}
	return b[0] == '1', nil
}
