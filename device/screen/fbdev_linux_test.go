package screen

import (
	"os"
	"testing"
	"unsafe"
)

// The ioctl structures must have the kernel's sizes on every arch.
func TestFBStructSizes(t *testing.T) {
	if n := unsafe.Sizeof(fbVarScreeninfo{}); n != 160 {
		t.Errorf("fb_var_screeninfo: %d bytes, want 160", n)
	}
	want := uintptr(80) // 64-bit: unsigned long is 8 bytes
	if unsafe.Sizeof(uintptr(0)) == 4 {
		want = 68
	}
	if n := unsafe.Sizeof(fbFixScreeninfo{}); n != want {
		t.Errorf("fb_fix_screeninfo: %d bytes, want %d", n, want)
	}
	if o := unsafe.Offsetof(fbFixScreeninfo{}.LineLength); o != 48 && want == 80 {
		t.Errorf("line_length at %d, want 48", o)
	}
}

func TestOpenFBErrors(t *testing.T) {
	if _, err := OpenFB("/nonexistent/fb9"); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing device: %v, want a not-exist error", err)
	}
	f, err := os.CreateTemp(t.TempDir(), "fb")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := OpenFB(f.Name()); err == nil {
		t.Error("a plain file opened as a framebuffer")
	} else {
		t.Log(err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}
