package buildroot

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	root = "../.."           // the repository
	ext  = "../../buildroot" // the BR2_EXTERNAL tree
)

// facts is what testdata/buildroot.txt records about the named buildroot
// release (written by check-real.sh --record).
type facts struct {
	release   string
	goVersion string
	symbols   map[string]bool // BR2_ symbols our tree uses that buildroot defines
	files     map[string]bool // buildroot-relative paths our defconfigs name
}

func readFacts(t *testing.T) facts {
	t.Helper()
	f := facts{symbols: map[string]bool{}, files: map[string]bool{}}
	for _, line := range lines(t, "testdata/buildroot.txt") {
		kind, val, _ := strings.Cut(line, " ")
		switch kind {
		case "release":
			f.release = val
		case "go":
			f.goVersion = val
		case "symbol":
			f.symbols[val] = true
		case "file":
			f.files[val] = true
		default:
			t.Fatalf("testdata/buildroot.txt: unknown line %q", line)
		}
	}
	if f.release == "" || f.goVersion == "" || len(f.symbols) == 0 {
		t.Fatal("testdata/buildroot.txt lacks release, go or symbols: run test/buildroot/check-real.sh --record")
	}
	return f
}

// lines returns the file's lines without comments and blank lines.
func lines(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(read(t, path), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func abs(t *testing.T, path string) string {
	t.Helper()
	a, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := filepath.EvalSymlinks(a); err == nil {
		a = r
	}
	return a
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// externalName is the tree's name in external.desc; buildroot derives
// BR2_EXTERNAL_<name>_PATH from it.
func externalName(t *testing.T) string {
	t.Helper()
	for _, l := range lines(t, filepath.Join(ext, "external.desc")) {
		if v, ok := strings.CutPrefix(l, "name:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("external.desc has no name")
	return ""
}

func modulePath(t *testing.T) (module, goVersion string) {
	t.Helper()
	for _, l := range lines(t, filepath.Join(root, "go.mod")) {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "module" {
			module = f[1]
		}
		if len(f) == 2 && f[0] == "go" {
			goVersion = f[1]
		}
	}
	if module == "" || goVersion == "" {
		t.Fatal("go.mod: no module or go line")
	}
	return module, goVersion
}

func TestExternalTree(t *testing.T) {
	name := externalName(t)
	if name != "CALLBOX" {
		t.Errorf("external.desc name is %q, want CALLBOX", name)
	}
	cfg := read(t, filepath.Join(ext, "Config.in"))
	mk := read(t, filepath.Join(ext, "external.mk"))
	if !strings.Contains(mk, "$(BR2_EXTERNAL_CALLBOX_PATH)/package/*/*.mk") {
		t.Errorf("external.mk does not include the packages' .mk files")
	}
	pkgs := glob(t, filepath.Join(ext, "package", "*", "Config.in"))
	if len(pkgs) == 0 {
		t.Fatal("no package/*/Config.in")
	}
	for _, p := range pkgs {
		pkg := filepath.Base(filepath.Dir(p))
		want := fmt.Sprintf(`source "$BR2_EXTERNAL_CALLBOX_PATH/package/%s/Config.in"`, pkg)
		if !strings.Contains(cfg, want) {
			t.Errorf("Config.in lacks %s", want)
		}
		if !exists(filepath.Join(filepath.Dir(p), pkg+".mk")) {
			t.Errorf("package %s has no %s.mk", pkg, pkg)
		}
	}
}

var (
	symbolRE = regexp.MustCompile(`BR2_[A-Za-z0-9_]+`)
	defineRE = regexp.MustCompile(`(?m)^\s*(?:menu)?config\s+(BR2_[A-Za-z0-9_]+)\s*$`)
)

// Every BR2_ symbol we name is ours or buildroot's: a misspelt symbol in a
// defconfig is dropped by Kconfig without a word.
func TestSymbolsKnown(t *testing.T) {
	f := readFacts(t)
	name := externalName(t)
	ours := map[string]bool{}
	var files []string
	for _, p := range []string{"Config.in", "package/*/Config.in", "package/*/*.mk", "configs/*_defconfig"} {
		files = append(files, glob(t, filepath.Join(ext, p))...)
	}
	for _, p := range files {
		for _, m := range defineRE.FindAllStringSubmatch(read(t, p), -1) {
			ours[m[1]] = true
		}
	}
	for _, p := range files {
		for _, s := range symbolRE.FindAllString(read(t, p), -1) {
			switch {
			case s == "BR2_EXTERNAL":
			case strings.HasPrefix(s, "BR2_EXTERNAL_"):
				if s != "BR2_EXTERNAL_"+name+"_PATH" {
					t.Errorf("%s: %s, but this tree is %s (BR2_EXTERNAL_%s_PATH)", p, s, name, name)
				}
			case ours[s], f.symbols[s]:
			default:
				t.Errorf("%s: %s is neither defined here nor known in buildroot %s; if it is buildroot's, run test/buildroot/check-real.sh --record", p, s, f.release)
			}
		}
	}
}

// pathSymbolRE matches settings whose value is a list of paths.
var pathSymbolRE = regexp.MustCompile(`^BR2_[A-Z0-9_]+(_DIR|_SCRIPT|_FILE|_FILES|_OVERLAY|_TABLE|_TABLES)$`)

func TestDefconfigs(t *testing.T) {
	f := readFacts(t)
	defs := glob(t, filepath.Join(ext, "configs", "*_defconfig"))
	if !slices.Contains(defs, filepath.Join(ext, "configs", "callbox_raspberrypi4_64_defconfig")) {
		t.Error("no configs/callbox_raspberrypi4_64_defconfig")
	}
	extVar := "$(BR2_EXTERNAL_" + externalName(t) + "_PATH)/"
	for _, def := range defs {
		name := filepath.Base(def)
		if !strings.HasPrefix(name, "callbox_") {
			t.Errorf("%s: our defconfigs are named callbox_<board>_defconfig", name)
		}
		set := map[string]string{}
		for _, l := range strings.Split(read(t, def), "\n") {
			sym, val, ok := strings.Cut(l, "=")
			if !ok || !strings.HasPrefix(sym, "BR2_") {
				continue
			}
			if _, dup := set[sym]; dup {
				t.Errorf("%s: %s set twice", name, sym)
			}
			set[sym] = val
			if !pathSymbolRE.MatchString(sym) {
				continue
			}
			for _, p := range strings.Fields(strings.Trim(val, `"`)) {
				switch {
				case strings.HasPrefix(p, extVar):
					if !exists(filepath.Join(ext, strings.TrimPrefix(p, extVar))) {
						t.Errorf("%s: %s names %s, which this tree lacks", name, sym, p)
					}
				case strings.HasPrefix(p, "/") || strings.HasPrefix(p, "$"):
					t.Errorf("%s: %s names %s: use buildroot-relative paths or %s", name, sym, p, extVar)
				case !f.files[p]:
					t.Errorf("%s: %s names %s, not known in buildroot %s (check-real.sh --record)", name, sym, p, f.release)
				}
			}
		}
		for _, want := range []string{"BR2_PACKAGE_CALLBOX", "BR2_INIT_SYSTEMD"} {
			if set[want] != "y" {
				t.Errorf("%s: %s is not y", name, want)
			}
		}
	}
}

// The release named in README.md, in check-real.sh and in the testdata is
// one, and its Go is new enough for go.mod (buildroot builds with
// GOTOOLCHAIN=local).
func TestReleaseNamed(t *testing.T) {
	f := readFacts(t)
	m := regexp.MustCompile(`BR_TAG=\$\{BR_TAG:-([^}]+)\}`).FindStringSubmatch(read(t, "check-real.sh"))
	if m == nil || m[1] != f.release {
		t.Errorf("check-real.sh pins %v, testdata was recorded from %s", m, f.release)
	}
	if !strings.Contains(read(t, filepath.Join(ext, "README.md")), "--branch "+f.release+" ") {
		t.Errorf("buildroot/README.md does not clone buildroot %s", f.release)
	}
	_, need := modulePath(t)
	if !versionAtLeast(f.goVersion, need) {
		t.Errorf("buildroot %s has Go %s, go.mod needs go %s", f.release, f.goVersion, need)
	}
}

func versionAtLeast(have, want string) bool {
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := range max(len(h), len(w)) {
		hi, wi := 0, 0
		if i < len(h) {
			hi, _ = strconv.Atoi(h[i])
		}
		if i < len(w) {
			wi, _ = strconv.Atoi(w[i])
		}
		if hi != wi {
			return hi > wi
		}
	}
	return true
}

func TestVersionAtLeast(t *testing.T) {
	for _, c := range []struct {
		have, want string
		ok         bool
	}{
		{"1.26.3", "1.26", true},
		{"1.26", "1.26.0", true},
		{"1.25.7", "1.26", false},
		{"1.26.3", "1.26.4", false},
		{"1.30", "1.26.1", true},
	} {
		if got := versionAtLeast(c.have, c.want); got != c.ok {
			t.Errorf("versionAtLeast(%s, %s) = %v", c.have, c.want, got)
		}
	}
}

// recipeVars are the variables of callbox.mk the tests read.
var recipeVars = []string{
	"CALLBOX_SITE", "CALLBOX_SITE_METHOD", "CALLBOX_VERSION", "CALLBOX_GOMOD",
	"CALLBOX_BUILD_TARGETS", "CALLBOX_BUILD_OPTS", "CALLBOX_LDFLAGS", "CALLBOX_GO_ENV", "CALLBOX_USERS",
	"CALLBOX_PERMISSIONS", "CALLBOX_INSTALL_INIT_SYSTEMD",
	"CALLBOX_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS",
}

// evalRecipe evaluates package/callbox/callbox.mk with GNU make the way
// buildroot would, with stand-ins for buildroot's variables. $(@D), the
// package's build directory (an rsync copy of the repository), is the
// repository itself. Hooks come back as "hook NAME".
func evalRecipe(t *testing.T) map[string]string {
	t.Helper()
	extAbs, rootAbs := abs(t, ext), abs(t, root)
	mk := fmt.Sprintf(`BR2_EXTERNAL_CALLBOX_PATH := %[1]s
INSTALL := install
TARGET_DIR := /TARGET
HOST_DIR := /HOST
TARGET_CFLAGS := -O2
HOST_GO_COMMON_ENV := GOFLAGS=-mod=vendor GOPROXY=off
GO_BIN := /HOST/bin/go
BR2_PACKAGE_HAS_UDEV := y
golang-package :=
include %[1]s/package/callbox/callbox.mk
CALLBOX_PKGDIR := %[1]s/package/callbox/
CALLBOX_OVERRIDE_SRCDIR = $(CALLBOX_SITE)
HOOKS := $(CALLBOX_PRE_CONFIGURE_HOOKS) $(CALLBOX_POST_INSTALL_TARGET_HOOKS)
.PHONY: %[2]s/.harness
%[2]s/.harness:
	$(foreach v,%[3]s,$(info @@@ $(v))$(info $($(v))))
	$(foreach h,$(HOOKS),$(info @@@ hook $(h))$(info $($(h))))
	@:
`, extAbs, rootAbs, strings.Join(recipeVars, " "))
	path := filepath.Join(t.TempDir(), "harness.mk")
	if err := os.WriteFile(path, []byte(mk), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := command("make", "-s", "--no-print-directory", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("make -f harness.mk: %v\n%s", err, out)
	}
	vars := map[string]string{}
	var cur string
	for _, l := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(l, "@@@ "); ok {
			cur = name
			vars[cur] = ""
			continue
		}
		if cur != "" {
			vars[cur] += l + "\n"
		}
	}
	for k, v := range vars {
		vars[k] = strings.TrimSpace(v)
	}
	return vars
}

// command runs in the repository, without the make flags of a make that
// runs the tests.
func command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			cmd.Env = append(cmd.Env, e)
		}
	}
	return cmd
}

// repoVersion is what the repository's `make version` prints (or, before
// that target existed, git describe).
func repoVersion(t *testing.T) string {
	t.Helper()
	var cmd *exec.Cmd
	if regexp.MustCompile(`(?m)^version:`).MatchString(read(t, filepath.Join(root, "Makefile"))) {
		cmd = command("make", "-s", "--no-print-directory", "version")
	} else {
		cmd = command("git", "describe", "--tags", "--always", "--dirty")
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return strings.TrimSpace(string(out))
}

func TestRecipeMatchesRepository(t *testing.T) {
	before := repoVersion(t)
	v := evalRecipe(t)
	after := repoVersion(t) // a commit may land meanwhile

	if got, want := v["CALLBOX_SITE"], abs(t, root); got != want {
		t.Errorf("CALLBOX_SITE = %q, want the repository %q", got, want)
	}
	if v["CALLBOX_SITE_METHOD"] != "local" {
		t.Errorf("CALLBOX_SITE_METHOD = %q, want local", v["CALLBOX_SITE_METHOD"])
	}
	module, _ := modulePath(t)
	if v["CALLBOX_GOMOD"] != module {
		t.Errorf("CALLBOX_GOMOD = %q, go.mod says %q", v["CALLBOX_GOMOD"], module)
	}
	if ver := v["CALLBOX_VERSION"]; ver != before && ver != after {
		t.Errorf("CALLBOX_VERSION = %q, the repository's version is %q", ver, after)
	}

	// Every command is built, and nothing else.
	var mains []string
	for _, d := range glob(t, filepath.Join(root, "cmd", "*")) {
		if isMain(t, d) {
			mains = append(mains, "cmd/"+filepath.Base(d))
		}
	}
	targets := strings.Fields(v["CALLBOX_BUILD_TARGETS"])
	slices.Sort(mains)
	slices.Sort(targets)
	if !slices.Equal(mains, targets) {
		t.Errorf("CALLBOX_BUILD_TARGETS = %v, the main packages are %v", targets, mains)
	}

	// The same -X stamps as the Makefile's own builds.
	stamps := regexp.MustCompile(`-X main\.(\w+)=`)
	mkLine := regexp.MustCompile(`(?m)^LDFLAGS\s*:?=.*$`).FindString(read(t, filepath.Join(root, "Makefile")))
	want := []string{"version"}
	for _, m := range stamps.FindAllStringSubmatch(mkLine, -1) {
		want = append(want, m[1])
	}
	for _, w := range want {
		if !strings.Contains(v["CALLBOX_LDFLAGS"], "-X main."+w+"=") {
			t.Errorf("CALLBOX_LDFLAGS = %q lacks -X main.%s= (the Makefile stamps it)", v["CALLBOX_LDFLAGS"], w)
		}
	}
	if !strings.Contains(v["CALLBOX_LDFLAGS"], "-X main.version="+v["CALLBOX_VERSION"]) {
		t.Errorf("CALLBOX_LDFLAGS = %q does not stamp CALLBOX_VERSION", v["CALLBOX_LDFLAGS"])
	}

	// The same hardening as the Makefile's builds: its build mode (PIE)
	// and BIND_NOW.
	mkf := read(t, filepath.Join(root, "Makefile"))
	goBuild := regexp.MustCompile(`(?m)^GOBUILD\s*:?=.*$`).FindString(mkf)
	if mode := regexp.MustCompile(`-buildmode=\S+`).FindString(goBuild); mode != "" &&
		!slices.Contains(strings.Fields(v["CALLBOX_BUILD_OPTS"]), mode) {
		t.Errorf("CALLBOX_BUILD_OPTS = %q lacks %s (the Makefile builds with it)", v["CALLBOX_BUILD_OPTS"], mode)
	}
	if slices.Contains(strings.Fields(mkLine), "-bindnow") &&
		!slices.Contains(strings.Fields(v["CALLBOX_LDFLAGS"]), "-bindnow") {
		t.Errorf("CALLBOX_LDFLAGS = %q lacks -bindnow (the Makefile links with it)", v["CALLBOX_LDFLAGS"])
	}

	// cgo, with the go4vl header shim where the Makefile has it.
	goEnv := v["CALLBOX_GO_ENV"]
	shim := filepath.Join(abs(t, root), "device", "camera", "v4l2shim")
	if !strings.Contains(goEnv, "CGO_ENABLED=1") || !strings.Contains(goEnv, "-I"+shim) {
		t.Errorf("CALLBOX_GO_ENV = %q, want CGO_ENABLED=1 and -I%s", goEnv, shim)
	}
	if strings.Contains(mkf, "v4l2shim") &&
		!strings.Contains(mkf, "/device/camera/v4l2shim") {
		t.Error("the Makefile's v4l2shim is not device/camera/v4l2shim")
	}
	if usesGo4vl(t) && !exists(filepath.Join(shim, "linux", "videodev2.h")) {
		t.Errorf("go4vl is imported but %s/linux/videodev2.h is missing", shim)
	}

	// Go modules are vendored before the offline build.
	if !strings.Contains(v["hook CALLBOX_GO_VENDOR"], "/HOST/bin/go mod vendor") {
		t.Errorf("no pre-configure hook runs go mod vendor: %q", v["hook CALLBOX_GO_VENDOR"])
	}
}

func isMain(t *testing.T, dir string) bool {
	t.Helper()
	for _, f := range glob(t, filepath.Join(dir, "*.go")) {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if regexp.MustCompile(`(?m)^package main\b`).MatchString(read(t, f)) {
			return true
		}
	}
	return false
}

func usesGo4vl(t *testing.T) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "vendor" || d.Name() == "buildroot") {
			return filepath.SkipDir
		}
		if !found && strings.HasSuffix(p, ".go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			found = strings.Contains(string(b), `"github.com/vladimirvivien/`+`go4vl/`)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

type install struct{ src, dst string }

// installs returns the `install SRC DST` commands of the given recipe
// texts, with backslash-continued lines joined.
func installs(texts ...string) []install {
	var out []install
	for _, text := range texts {
		for _, cmd := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
			f := strings.Fields(cmd)
			if len(f) < 3 || f[0] != "install" {
				continue
			}
			out = append(out, install{src: f[len(f)-2], dst: f[len(f)-1]})
		}
	}
	return out
}

// Everything the recipe installs exists, is in the rsync copy, and lands
// where the brief (and the Debian package) put it.
func TestRecipeInstalls(t *testing.T) {
	v := evalRecipe(t)
	rootAbs, extAbs := abs(t, root), abs(t, ext)
	var excluded []string
	for _, e := range strings.Fields(v["CALLBOX_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS"]) {
		p, ok := strings.CutPrefix(e, "--exclude=/")
		if !ok {
			t.Errorf("rsync exclusion %q: want --exclude=/<path>", e)
			continue
		}
		excluded = append(excluded, p)
	}
	for _, must := range append([]string{"go.mod", "go.sum", "systemd", "device"}, strings.Fields(v["CALLBOX_BUILD_TARGETS"])...) {
		for _, e := range excluded {
			if must == e || strings.HasPrefix(must, e+"/") {
				t.Errorf("rsync excludes %s, which the build needs", must)
			}
		}
	}

	var texts []string
	texts = append(texts, v["CALLBOX_INSTALL_INIT_SYSTEMD"])
	for k, text := range v {
		if strings.HasPrefix(k, "hook ") {
			texts = append(texts, text)
		}
	}
	got := map[string]string{} // source relative to the repository -> destination
	for _, in := range installs(texts...) {
		if !exists(in.src) {
			t.Errorf("installs %s, which does not exist", in.src)
		}
		if !strings.HasPrefix(in.dst, "/TARGET/") {
			t.Errorf("installs %s outside TARGET_DIR: %s", in.src, in.dst)
		}
		rel, err := filepath.Rel(rootAbs, in.src)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("installs %s from outside the repository", in.src)
			continue
		}
		if !strings.HasPrefix(in.src, extAbs+"/") {
			for _, e := range excluded {
				if rel == e || strings.HasPrefix(rel, e+"/") {
					t.Errorf("installs %s from $(@D), but rsync excludes /%s", rel, e)
				}
			}
		}
		got[rel] = strings.TrimPrefix(in.dst, "/TARGET")
	}
	for src, dst := range map[string]string{
		"systemd/callbox.service":                         "/usr/lib/systemd/system/callbox.service",
		"systemd/callbox.sysusers":                        "/usr/lib/sysusers.d/callbox.conf",
		"systemd/callbox.tmpfiles":                        "/usr/lib/tmpfiles.d/callbox.conf",
		"systemd/callbox.toml":                            "/etc/callbox/callbox.toml",
		"buildroot/package/callbox/60-callbox-gpio.rules": "/lib/udev/rules.d/60-callbox-gpio.rules",
	} {
		if got[src] != dst {
			t.Errorf("%s is installed as %q, want %s", src, got[src], dst)
		}
	}

	// The golang infrastructure installs each target's binary in /usr/bin.
	unit := unitKeys(t)
	exe := strings.Fields(unit["ExecStart"][0])[0]
	var bins []string
	for _, tg := range strings.Fields(v["CALLBOX_BUILD_TARGETS"]) {
		bins = append(bins, "/usr/bin/"+filepath.Base(tg))
	}
	if !slices.Contains(bins, exe) {
		t.Errorf("the unit runs %s, the package installs %v", exe, bins)
	}
}

// unitKeys reads systemd/callbox.service's Key=value lines.
func unitKeys(t *testing.T) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	for _, l := range lines(t, filepath.Join(root, "systemd", "callbox.service")) {
		if k, val, ok := strings.Cut(l, "="); ok {
			keys[k] = append(keys[k], val)
		}
	}
	if len(keys["ExecStart"]) == 0 {
		t.Fatal("systemd/callbox.service has no ExecStart")
	}
	return keys
}

// fieldsQuoted splits like sysusers.d: spaces separate, double quotes group.
func fieldsQuoted(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		i := 0
		for i < len(data) && (data[i] == ' ' || data[i] == '\t') {
			i++
		}
		if i == len(data) {
			return i, nil, nil
		}
		if data[i] == '"' {
			for j := i + 1; j < len(data); j++ {
				if data[j] == '"' {
					return j + 1, data[i+1 : j], nil
				}
			}
			return len(data), data[i+1:], nil
		}
		j := i
		for j < len(data) && data[j] != ' ' && data[j] != '\t' {
			j++
		}
		return j, data[i:j], nil
	})
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func octal(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		t.Fatalf("mode %q: %v", s, err)
	}
	return n
}

// buildroot's users table, systemd/callbox.sysusers, the unit, the
// permissions table, tmpfiles.d and the udev rule describe one user.
func TestUserConsistent(t *testing.T) {
	v := evalRecipe(t)
	users := strings.Split(v["CALLBOX_USERS"], "\n")
	if len(users) != 1 {
		t.Fatalf("CALLBOX_USERS has %d lines, want 1", len(users))
	}
	// username uid group gid password home shell groups comment
	u := strings.Fields(users[0])
	if len(u) < 9 {
		t.Fatalf("CALLBOX_USERS %q: want 9 fields", users[0])
	}
	name, group, home, groups := u[0], u[2], u[5], strings.Split(u[7], ",")
	slices.Sort(groups)
	if u[4] != "*" && !strings.HasPrefix(u[4], "!") {
		t.Errorf("CALLBOX_USERS: password %q allows logins", u[4])
	}

	// sysusers.d
	var sysGroups []string
	var sysHome string
	for _, l := range lines(t, filepath.Join(root, "systemd", "callbox.sysusers")) {
		f := fieldsQuoted(l)
		switch {
		case len(f) >= 5 && f[0] == "u" && f[1] == name:
			sysHome = f[4]
		case len(f) == 3 && f[0] == "m" && f[1] == name:
			sysGroups = append(sysGroups, f[2])
		}
	}
	slices.Sort(sysGroups)
	if sysHome != home {
		t.Errorf("home: users table %s, sysusers %q", home, sysHome)
	}
	if !slices.Equal(sysGroups, groups) {
		t.Errorf("groups: users table %v, sysusers %v", groups, sysGroups)
	}

	// the unit
	unit := unitKeys(t)
	if got := unit["User"]; len(got) != 1 || got[0] != name {
		t.Errorf("unit User=%v, users table %s", got, name)
	}
	if got := unit["Group"]; len(got) != 1 || got[0] != group {
		t.Errorf("unit Group=%v, users table %s", got, group)
	}
	var sup []string
	for _, s := range unit["SupplementaryGroups"] {
		sup = append(sup, strings.Fields(s)...)
	}
	slices.Sort(sup)
	if !slices.Equal(sup, groups) {
		t.Errorf("unit SupplementaryGroups=%v, users table %v", sup, groups)
	}
	if got := unit["StateDirectory"]; len(got) != 1 || "/var/lib/"+got[0] != home {
		t.Errorf("unit StateDirectory=%v, users table home %s", got, home)
	}

	// permissions table: name type mode uid gid ...
	perm := strings.Fields(v["CALLBOX_PERMISSIONS"])
	if len(perm) < 5 || perm[0] != home || perm[1] != "d" || perm[3] != name || perm[4] != group {
		t.Fatalf("CALLBOX_PERMISSIONS %q: want %s d <mode> %s %s", v["CALLBOX_PERMISSIONS"], home, name, group)
	}
	// tmpfiles.d: the same directory, mode and owner
	found := false
	for _, l := range lines(t, filepath.Join(root, "systemd", "callbox.tmpfiles")) {
		f := strings.Fields(l)
		if len(f) >= 5 && f[0] == "d" && f[1] == home {
			found = true
			if octal(t, f[2]) != octal(t, perm[2]) || f[3] != name || f[4] != group {
				t.Errorf("tmpfiles %q, permissions table %q", l, v["CALLBOX_PERMISSIONS"])
			}
		}
	}
	if !found {
		t.Errorf("systemd/callbox.tmpfiles does not make %s", home)
	}

	// udev gives /dev/gpiochip* to a group the user is in
	rule := read(t, filepath.Join(ext, "package", "callbox", "60-callbox-gpio.rules"))
	m := regexp.MustCompile(`GROUP="([^"]+)"`).FindStringSubmatch(rule)
	if m == nil {
		t.Fatal("the udev rule sets no GROUP")
	}
	if !slices.Contains(groups, m[1]) {
		t.Errorf("the udev rule's group %s is not one of the user's %v", m[1], groups)
	}
}
