package buildroot

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The image's callbox-boot-import takes the root password, SSH keys,
// Wi-Fi credentials and the config from the boot partition, and deletes
// them there. Run here on a directory tree (CALLBOX_BOOT_DIR,
// CALLBOX_SYSROOT) with busybox mkpasswd and wpa_passphrase stubbed: what
// it writes where, and with what modes.
func TestBootImport(t *testing.T) {
	script := filepath.Join(ext, "board/raspberrypi/rootfs_overlay/usr/libexec/callbox-boot-import")
	tmp := t.TempDir()
	boot, sys, bin := filepath.Join(tmp, "boot"), filepath.Join(tmp, "sys"), filepath.Join(tmp, "bin")
	for _, d := range []string{boot, filepath.Join(sys, "etc/callbox"), bin} {
		os.MkdirAll(d, 0o755)
	}
	write := func(path, text string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	// Stubs: mkpasswd reads the password from stdin (as busybox's does);
	// wpa_passphrase prints a network block with the passphrase in a
	// comment, as the real one does.
	write(filepath.Join(bin, "mkpasswd"), "#!/bin/sh\n[ \"$1 $2\" = \"-m sha512\" ] || exit 1\nread -r pw\necho '$6$salt$'\"$(printf %s \"$pw\" | od -An -tx1 | tr -d ' \\n')\"\n", 0o755)
	write(filepath.Join(bin, "wpa_passphrase"), "#!/bin/sh\nprintf 'network={\\n\\tssid=\"%s\"\\n\\t#psk=\"%s\"\\n\\tpsk=0123abcd\\n}\\n' \"$1\" \"$2\"\n", 0o755)
	write(filepath.Join(sys, "etc/shadow"), "root:*:19000:0:99999:7:::\ncallbox:!:19000::::::\n", 0o600)
	write(filepath.Join(sys, "etc/callbox/callbox.toml"), "# packaged\n", 0o644)
	write(filepath.Join(boot, "root-password.txt"), "door secret\r\n", 0o644)
	write(filepath.Join(boot, "authorized_keys"), "ssh-ed25519 AAAAC3Nz key1\r\nnot a key\nssh-rsa AAAAB3 key2\n", 0o644)
	write(filepath.Join(boot, "wifi.txt"), "ssid=Home Net\r\npsk=pass phrase\r\ncountry=DE\r\n", 0o644)
	write(filepath.Join(boot, "callbox.toml"), "name = \"door\"\r\n", 0o644)

	cmd := exec.Command("sh", script)
	cmd.Env = append(os.Environ(), "CALLBOX_BOOT_DIR="+boot, "CALLBOX_SYSROOT="+sys, "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%s", out)

	if left, _ := os.ReadDir(boot); len(left) != 0 {
		t.Errorf("files left on the boot partition: %v", left)
	}
	check := func(path string, mode os.FileMode, want ...string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(sys, path))
		if err != nil {
			t.Error(err)
			return
		}
		if fi, _ := os.Stat(filepath.Join(sys, path)); fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q:\n%s", path, w, b)
			}
		}
		if strings.Contains(string(b), "\r") {
			t.Errorf("%s keeps a CR", path)
		}
	}
	// "door secret" in hex: the whole line, without its CR.
	check("etc/shadow", 0o600, "root:$6$salt$646f6f7220736563726574:19000:", "callbox:!:")
	check("root/.ssh/authorized_keys", 0o600, "ssh-ed25519 AAAAC3Nz key1\nssh-rsa AAAAB3 key2\n")
	check("etc/wpa_supplicant/wpa_supplicant-wlan0.conf", 0o600, "country=DE\n", "ssid=\"Home Net\"", "psk=0123abcd")
	check("etc/callbox/callbox.toml", 0o644, "name = \"door\"\n")
	if b, _ := os.ReadFile(filepath.Join(sys, "etc/wpa_supplicant/wpa_supplicant-wlan0.conf")); strings.Contains(string(b), "pass phrase") {
		t.Errorf("the Wi-Fi passphrase is stored in clear:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(sys, "root/.ssh/authorized_keys")); strings.Contains(string(b), "not a key") {
		t.Errorf("a line that is no key was added:\n%s", b)
	}
}

// The image locks root when no password was configured, and keeps
// dropbear's host keys.
func TestPostBuildLocksRoot(t *testing.T) {
	target := t.TempDir()
	os.MkdirAll(filepath.Join(target, "etc"), 0o755)
	os.WriteFile(filepath.Join(target, "etc/shadow"), []byte("root::::::::\ndaemon:*:::::::\n"), 0o600)
	os.Symlink("/var/run/dropbear", filepath.Join(target, "etc/dropbear"))
	out, err := exec.Command("sh", filepath.Join(ext, "board/raspberrypi/post-build.sh"), target).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "etc/shadow")); !strings.HasPrefix(string(b), "root:*:") {
		t.Errorf("root is not locked:\n%s", b)
	}
	if fi, err := os.Lstat(filepath.Join(target, "etc/dropbear")); err != nil || !fi.IsDir() {
		t.Errorf("/etc/dropbear is not a directory: %v %v", fi, err)
	}
	// A configured password stays.
	os.WriteFile(filepath.Join(target, "etc/shadow"), []byte("root:$6$x$y:::::::\n"), 0o600)
	exec.Command("sh", filepath.Join(ext, "board/raspberrypi/post-build.sh"), target).Run()
	if b, _ := os.ReadFile(filepath.Join(target, "etc/shadow")); !strings.HasPrefix(string(b), "root:$6$x$y:") {
		t.Errorf("a configured root password was changed:\n%s", b)
	}
}
