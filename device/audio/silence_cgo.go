//go:build linux && cgo

package audio

// Why this file exists: miniaudio opens an ALSA playback PCM with its stop
// threshold at the ring boundary (free-running: the card never stops on an
// underrun) and leaves the silence threshold and size at zero. When the
// device thread is late, the card's pointer runs past what was written and
// it plays its ring buffer again: up to periods × frame of stale audio,
// repeatedly while the thread stalls. ALSA's cure for free-running playback
// is silence_size = boundary (with silence_threshold 0): the driver zeroes
// every area as soon as it has been played, so a late writer leaves silence
// behind, never old audio. The same zeroing at start clears what a previous
// Run left in the ring.
//
// A late writer also leaves the application pointer behind the card's, and
// its next writes land where the card has already been: played a ring later,
// out of order. Skipping the pointer up to the card's first (snd_pcm_forward)
// makes them play at once.
//
// miniaudio offers no setting for either and does not expose its snd_pcm_t,
// so silenceHook wraps the snd_pcm_sw_params and snd_pcm_writei pointers in
// the context's table of libasound functions: miniaudio calls the first once
// per device, at the end of its open, with its own parameters (the wrapper
// adds the silence ones for playback PCMs and passes everything on), and the
// second for each playback period. The functions come from the
// libasound.so.2 miniaudio has already loaded (dlopen with RTLD_NOLOAD), so
// nothing new is linked or loaded.

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

// alsa-lib's types are opaque here: no ALSA headers needed to build.
typedef unsigned long cb_uframes;
typedef int (*cb_sw_params_fn)(void *pcm, void *params);
typedef int (*cb_stream_fn)(void *pcm);
typedef size_t (*cb_sizeof_fn)(void);
typedef int (*cb_current_fn)(void *pcm, void *params);
typedef int (*cb_get_fn)(const void *params, cb_uframes *val);
typedef int (*cb_set_fn)(void *pcm, void *params, cb_uframes val);
typedef long (*cb_writei_fn)(void *pcm, const void *buf, cb_uframes n);
typedef long (*cb_avail_fn)(void *pcm);
typedef long (*cb_forward_fn)(void *pcm, cb_uframes n);
typedef int (*cb_get_params_fn)(void *pcm, cb_uframes *buffer, cb_uframes *period);

enum { cb_stream_playback = 0 }; // SND_PCM_STREAM_PLAYBACK

static struct {
	void *lib; // our reference: libasound stays loaded once resolved
	cb_sw_params_fn sw_params;
	cb_stream_fn stream;
	cb_sizeof_fn params_sizeof;
	cb_current_fn current;
	cb_get_fn get_boundary, get_silence_threshold, get_silence_size;
	cb_set_fn set_silence_threshold, set_silence_size;
	cb_writei_fn writei;
	cb_avail_fn avail;
	cb_forward_fn forward;
	cb_get_params_fn get_params;
} cb_alsa;

// What the wrapper did for the last playback PCM it saw on this thread:
// miniaudio opens the device on the thread that calls ma_device_init.
typedef struct {
	int seen;       // the wrapper ran for a playback PCM
	int err;        // first error setting or reading back (negative errno), 0
	cb_uframes boundary, threshold, size; // as read back after snd_pcm_sw_params
} cb_silence;

static __thread cb_silence cb_last;

// cb_resolve loads the functions once; the caller holds a Go mutex.
// It returns 0, or -1 if libasound is not loaded, -2 if a symbol is missing.
static int cb_resolve(void) {
	if (cb_alsa.lib != NULL) {
		return 0;
	}
	void *lib = dlopen("libasound.so.2", RTLD_NOW | RTLD_NOLOAD);
	if (lib == NULL) {
		lib = dlopen("libasound.so", RTLD_NOW | RTLD_NOLOAD);
	}
	if (lib == NULL) {
		return -1;
	}
	cb_alsa.sw_params = (cb_sw_params_fn)dlsym(lib, "snd_pcm_sw_params");
	cb_alsa.stream = (cb_stream_fn)dlsym(lib, "snd_pcm_stream");
	cb_alsa.params_sizeof = (cb_sizeof_fn)dlsym(lib, "snd_pcm_sw_params_sizeof");
	cb_alsa.current = (cb_current_fn)dlsym(lib, "snd_pcm_sw_params_current");
	cb_alsa.get_boundary = (cb_get_fn)dlsym(lib, "snd_pcm_sw_params_get_boundary");
	cb_alsa.get_silence_threshold = (cb_get_fn)dlsym(lib, "snd_pcm_sw_params_get_silence_threshold");
	cb_alsa.get_silence_size = (cb_get_fn)dlsym(lib, "snd_pcm_sw_params_get_silence_size");
	cb_alsa.set_silence_threshold = (cb_set_fn)dlsym(lib, "snd_pcm_sw_params_set_silence_threshold");
	cb_alsa.set_silence_size = (cb_set_fn)dlsym(lib, "snd_pcm_sw_params_set_silence_size");
	cb_alsa.writei = (cb_writei_fn)dlsym(lib, "snd_pcm_writei");
	cb_alsa.avail = (cb_avail_fn)dlsym(lib, "snd_pcm_avail");
	cb_alsa.forward = (cb_forward_fn)dlsym(lib, "snd_pcm_forward");
	cb_alsa.get_params = (cb_get_params_fn)dlsym(lib, "snd_pcm_get_params");
	if (!cb_alsa.sw_params || !cb_alsa.stream || !cb_alsa.params_sizeof || !cb_alsa.current ||
	    !cb_alsa.get_boundary || !cb_alsa.get_silence_threshold || !cb_alsa.get_silence_size ||
	    !cb_alsa.set_silence_threshold || !cb_alsa.set_silence_size ||
	    !cb_alsa.writei || !cb_alsa.avail || !cb_alsa.forward || !cb_alsa.get_params) {
		dlclose(lib);
		memset(&cb_alsa, 0, sizeof cb_alsa);
		return -2;
	}
	cb_alsa.lib = lib;
	return 0;
}

// cb_sw_params stands in for snd_pcm_sw_params in miniaudio's table.
static int cb_sw_params(void *pcm, void *params) {
	if (cb_alsa.stream(pcm) != cb_stream_playback) {
		return cb_alsa.sw_params(pcm, params);
	}
	cb_silence s = {.seen = 1};
	cb_uframes boundary = 0;
	int err = cb_alsa.get_boundary(params, &boundary);
	if (err == 0) {
		err = cb_alsa.set_silence_threshold(pcm, params, 0);
	}
	if (err == 0) {
		err = cb_alsa.set_silence_size(pcm, params, boundary);
	}
	int ret = cb_alsa.sw_params(pcm, params);
	if (ret < 0 && err == 0) {
		// Refused with our additions: fall back to miniaudio's own
		// parameters rather than fail the open.
		err = ret;
		cb_alsa.set_silence_size(pcm, params, 0);
		ret = cb_alsa.sw_params(pcm, params);
	}
	if (ret == 0) {
		void *cur = calloc(1, cb_alsa.params_sizeof());
		if (cur == NULL) {
			if (err == 0) err = -12; // ENOMEM
		} else {
			int e = cb_alsa.current(pcm, cur);
			if (e == 0) e = cb_alsa.get_boundary(cur, &s.boundary);
			if (e == 0) e = cb_alsa.get_silence_threshold(cur, &s.threshold);
			if (e == 0) e = cb_alsa.get_silence_size(cur, &s.size);
			if (err == 0) err = e;
			free(cur);
		}
	}
	s.err = err;
	cb_last = s;
	return ret;
}

// cb_writei stands in for snd_pcm_writei (miniaudio writes playback only
// through it). A free-running PCM whose writer was late has its application
// pointer behind the card's: what is written there lands in the ring where
// the card has already been (and the driver has already zeroed), so the
// card plays it a whole ring later, out of order. Skip the pointer to the
// card's first, so the write is played now.
static long cb_writei(void *pcm, const void *buf, cb_uframes n) {
	long avail = cb_alsa.avail(pcm);
	cb_uframes buffer, period;
	if (avail > 0 && cb_alsa.get_params(pcm, &buffer, &period) == 0 && (cb_uframes)avail > buffer) {
		cb_alsa.forward(pcm, (cb_uframes)avail - buffer);
	}
	return cb_alsa.writei(pcm, buf, n);
}

// cb_swap replaces the one slot of the n in slots that holds from with to;
// it returns 0, or -3 if from is not there exactly once.
static int cb_swap(void **slots, size_t n, void *from, void *to) {
	size_t found = 0, at = 0;
	for (size_t i = 0; i < n; i++) {
		if (slots[i] == from) {
			found++;
			at = i;
		}
	}
	if (found != 1) {
		return -3;
	}
	slots[at] = to;
	return 0;
}

// cb_hook swaps snd_pcm_sw_params and snd_pcm_writei for the wrappers in
// the miniaudio context ctx (malloc'd by malgo; its table filled by
// ma_context_init). It returns 0, or cb_resolve's error, or -3 if either
// pointer is not in ctx exactly once (then neither is swapped).
static int cb_hook(void *ctx) {
	int err = cb_resolve();
	if (err != 0) {
		return err;
	}
	void **slots = (void **)ctx;
	size_t n = malloc_usable_size(ctx) / sizeof(void *);
	if (cb_swap(slots, n, (void *)cb_alsa.writei, (void *)cb_writei) != 0) {
		return -3;
	}
	if (cb_swap(slots, n, (void *)cb_alsa.sw_params, (void *)cb_sw_params) != 0) {
		cb_swap(slots, n, (void *)cb_writei, (void *)cb_alsa.writei);
		return -3;
	}
	return 0;
}

static void cb_reset_last(void) { memset(&cb_last, 0, sizeof cb_last); }
static cb_silence cb_get_last(void) { return cb_last; }
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/gen2brain/malgo"
)

// hookMu serialises the one-time resolution of libasound's functions.
var hookMu sync.Mutex

// silenceResult is what the wrapper found after miniaudio set its
// parameters: the boundary, silence threshold and size the PCM now has.
type silenceResult struct {
	seen                      bool
	err                       error
	boundary, threshold, size uint64
}

// zeroes reports whether the driver now zeroes all it has played.
func (r silenceResult) zeroes() bool {
	return r.seen && r.err == nil && r.threshold == 0 && r.boundary > 0 && r.size >= r.boundary
}

// contextPointer is the ma_context* behind c: malgo keeps it in its one
// unexported field and has no accessor. nil if malgo's layout changed.
func contextPointer(c malgo.Context) unsafe.Pointer {
	t := reflect.TypeOf(c)
	if t.NumField() != 1 || t.Field(0).Type != reflect.TypeFor[*unsafe.Pointer]() {
		return nil
	}
	pp := *(**unsafe.Pointer)(unsafe.Pointer(&c))
	if pp == nil {
		return nil
	}
	return *pp
}

// silenceHook installs the wrapper in ctx, an ALSA context not yet used to
// open a device.
func silenceHook(ctx *malgo.AllocatedContext) error {
	p := contextPointer(ctx.Context)
	if p == nil {
		return errors.New("cannot find malgo's miniaudio context")
	}
	hookMu.Lock()
	rc := C.cb_hook(p)
	hookMu.Unlock()
	switch rc {
	case 0:
		return nil
	case -1:
		return errors.New("libasound is not loaded")
	case -2:
		return errors.New("libasound lacks the sw_params silence functions")
	default:
		return errors.New("snd_pcm_sw_params or snd_pcm_writei not found in miniaudio's context")
	}
}

// initPlayback runs malgo.InitDevice on a thread of its own choosing and
// reports what the hook did during it (the wrapper records it per thread).
func initPlayback(ctx malgo.Context, dc malgo.DeviceConfig, cb malgo.DeviceCallbacks) (*malgo.Device, silenceResult, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.cb_reset_last()
	dev, err := malgo.InitDevice(ctx, dc, cb)
	last := C.cb_get_last()
	r := silenceResult{
		seen:      last.seen != 0,
		boundary:  uint64(last.boundary),
		threshold: uint64(last.threshold),
		size:      uint64(last.size),
	}
	if last.err != 0 {
		r.err = fmt.Errorf("snd_pcm_sw_params: %w", syscall.Errno(-last.err))
	}
	return dev, r, err
}
