package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Doc        string
	Deps       []string
	Imports    []string
	Name       string
}

func list(t *testing.T, pattern string) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", pattern)
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// The one hard layering rule: the protocol side (stream/...) builds and
// tests without any device or hardware library, neither callbox's device
// packages nor go4vl, malgo or periph, so it runs on any machine, with no
// camera, sound card or GPIO and no C library behind them.
func TestStreamImportsNoDevice(t *testing.T) {
	forbidden := []string{
		"github.com/callbox/callbox/device",
		"github.com/vladimirvivien/go4vl",
		"github.com/gen2brain/malgo",
		"periph.io/",
	}
	pkgs := list(t, "./stream/...")
	if len(pkgs) < 5 {
		t.Fatalf("found only %d stream packages", len(pkgs))
	}
	for _, p := range pkgs {
		for _, d := range p.Deps {
			for _, f := range forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s", p.ImportPath, d)
				}
			}
		}
	}
}

// Each package has a doc comment saying what it is for.
func TestEveryPackageHasDoc(t *testing.T) {
	for _, p := range list(t, "./...") {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}
