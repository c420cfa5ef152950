package identity

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
)

// seedKey is a fixed key for golden values: seed bytes 0x00..0x1f.
func seedKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// Computed independently: openssl pkey -pubout on the seed's PKCS#8 form,
// sha256, Python base64.b32encode.
const goldenFingerprint = "kzdv-vj2u-mndu-yauf-35o3-6k6k-w462-mujv-ra46-tn3u-qgzo-vmih-ocga"

func TestFingerprintGolden(t *testing.T) {
	f := FingerprintOf(seedKey().Public().(ed25519.PublicKey))
	if got := f.String(); got != goldenFingerprint {
		t.Fatalf("String() = %s, want %s", got, goldenFingerprint)
	}
	if got, want := f.Short(), "kzdv-vj2u"; got != want {
		t.Errorf("Short() = %s, want %s", got, want)
	}
	if f.IsZero() {
		t.Error("IsZero() = true for a real key")
	}
	if !(Fingerprint{}).IsZero() {
		t.Error("IsZero() = false for the zero value")
	}
}

func TestParseFingerprint(t *testing.T) {
	want := FingerprintOf(seedKey().Public().(ed25519.PublicKey))
	bare := strings.ReplaceAll(goldenFingerprint, "-", "")
	good := []string{
		goldenFingerprint,
		strings.ToUpper(goldenFingerprint),
		bare,
		strings.ReplaceAll(goldenFingerprint, "-", " "),
		"  " + goldenFingerprint + "\n",
		"KzDv" + bare[4:],
	}
	for _, s := range good {
		got, err := ParseFingerprint(s)
		if err != nil {
			t.Errorf("ParseFingerprint(%q): %v", s, err)
			continue
		}
		if got != want {
			t.Errorf("ParseFingerprint(%q) = %s, want %s", s, got, want)
		}
	}

	bad := []struct{ in, msg string }{
		{"", "want 52"},
		{bare[:51], "want 52"},
		{bare + "a", "want 52"},
		{bare[:51] + "1", "invalid character"}, // 0, 1, 8, 9 are not base32
		{bare[:51] + "=", "invalid character"},
		{bare[:50] + "é", "invalid character"},
		{strings.ReplaceAll(goldenFingerprint, "-", ":"), "invalid character"},
		// Same data bit as the real last char 'a', but a padding bit set.
		{bare[:51] + "b", "not a valid ending"},
		{"aaaa-bbbb", "want 52"},
	}
	for _, tc := range bad {
		_, err := ParseFingerprint(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseFingerprint(%q) error = %v, want one containing %q", tc.in, err, tc.msg)
		}
	}
}

func TestFingerprintRoundTrip(t *testing.T) {
	for i := range 50 {
		var f Fingerprint
		for j := range f {
			f[j] = byte(i*31 + j*7)
		}
		s := f.String()
		if len(s) != 64 || strings.Count(s, "-") != 12 {
			t.Fatalf("String() = %q: want 13 groups of 4", s)
		}
		got, err := ParseFingerprint(s)
		if err != nil || got != f {
			t.Fatalf("ParseFingerprint(%q) = %v, %v; want %v", s, got, err, f)
		}
	}
}

func TestFingerprintJSON(t *testing.T) {
	f := FingerprintOf(seedKey().Public().(ed25519.PublicKey))
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), `"`+goldenFingerprint+`"`; got != want {
		t.Fatalf("json = %s, want %s", got, want)
	}
	var back Fingerprint
	if err := json.Unmarshal(data, &back); err != nil || back != f {
		t.Fatalf("unmarshal = %v, %v; want %v", back, err, f)
	}
	if err := json.Unmarshal([]byte(`"nope"`), &back); err == nil {
		t.Fatal("unmarshal of a bad fingerprint succeeded")
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add(goldenFingerprint)
	f.Add(strings.ToUpper(goldenFingerprint))
	f.Add("")
	f.Add("aaaa")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		// Anything accepted has exactly one canonical spelling.
		back, err := ParseFingerprint(fp.String())
		if err != nil || back != fp {
			t.Fatalf("round trip of %q: %v, %v", s, back, err)
		}
	})
}
