//go:build linux && cgo

package audio

// Why this file exists: miniaudio opens an ALSA playback PCM free-running
// (stop threshold at the ring boundary: "loop instead of stop in the event
// of an xrun") with no silence threshold or size. When the device thread is
// late, the card's pointer runs past what was written and it plays its ring
// again: up to periods × frame of stale audio, repeatedly while the thread
// stalls, and what the late thread then writes lands behind the card's
// pointer, to be played a ring later, out of order.
//
// The hook gives the PCM ALSA's ordinary underrun behaviour instead, zeroes
// what has been played, and keeps the queue shorter than the ring:
//
//   - stop threshold = buffer size: once the ring has run dry the card
//     stops (an xrun). miniaudio's next write then fails with EPIPE, and its
//     recovery prepares the PCM and starts it again, so the late audio plays
//     from a fresh start, in order.
//   - silence_threshold 0, silence_size = boundary: the driver zeroes every
//     area of the ring as soon as it has been played, and the whole ring when
//     the PCM is prepared or started. Between running dry and the driver
//     noticing (its next pointer update) the card plays on past the last
//     period written: zeros, never audio from a ring earlier; and a new Run
//     never plays the end of the last one.
//   - avail_min = buffer - (queue-1) periods: the ring is larger than
//     what is queued (see playbackRing), and miniaudio's writer waits until
//     at most queue-1 periods are queued before writing the next. Past the
//     queue the ring stays zeroed, so a card whose driver is held off (no
//     pointer update, so no zeroing and no stop) for up to the ring's
//     length still meets silence, where a ring as long as the queue would
//     have it go round and play the queue again.
//   - snd_pcm_start on a playback PCM with nothing queued is left to the
//     start threshold (miniaudio's: two periods). miniaudio starts playback
//     explicitly, on an empty ring, when the device starts and after each
//     underrun; free-running that was harmless, but a PCM that stops when it
//     runs dry refuses to start empty (EPIPE), and would fail the device.
//
// miniaudio has no setting for any of this (its avail_min is a period) and
// does not expose its snd_pcm_t, so playbackHook swaps the
// snd_pcm_sw_params and snd_pcm_start pointers in the context's table of
// libasound functions for wrappers. The functions come from the
// libasound.so.2 miniaudio has already loaded (dlopen with RTLD_NOLOAD):
// nothing new is linked or loaded, and no ALSA headers are needed to
// build.

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

// alsa-lib's types are opaque here.
typedef unsigned long cb_uframes;
typedef long cb_sframes;

enum { cb_stream_playback = 0 }; // SND_PCM_STREAM_PLAYBACK

static struct {
	void *lib; // our reference: libasound stays loaded once resolved
	int (*sw_params)(void *pcm, void *params);
	int (*start)(void *pcm);
	int (*stream)(void *pcm);
	int (*get_params)(void *pcm, cb_uframes *buffer, cb_uframes *period);
	cb_sframes (*avail_update)(void *pcm);
	size_t (*sw_params_sizeof)(void);
	int (*sw_params_current)(void *pcm, void *params);
	int (*get_boundary)(const void *params, cb_uframes *val);
	int (*get_avail_min)(const void *params, cb_uframes *val);
	int (*get_stop_threshold)(const void *params, cb_uframes *val);
	int (*get_silence_threshold)(const void *params, cb_uframes *val);
	int (*get_silence_size)(const void *params, cb_uframes *val);
	int (*set_avail_min)(void *pcm, void *params, cb_uframes val);
	int (*set_stop_threshold)(void *pcm, void *params, cb_uframes val);
	int (*set_silence_threshold)(void *pcm, void *params, cb_uframes val);
	int (*set_silence_size)(void *pcm, void *params, cb_uframes val);
} cb_alsa;

// What the sw_params wrapper did for the last playback PCM it saw on this
// thread: miniaudio opens the device on the thread that calls
// ma_device_init.
typedef struct {
	int seen;  // the wrapper ran for a playback PCM
	int err;   // first error applying ours (negative errno), 0
	int level; // what the PCM took: 2 all of ours, 1 the queue limit only, 0 miniaudio's
	cb_uframes buffer, period, boundary, avail_min, stop, silence_threshold, silence_size; // as read back
} cb_params;

static __thread cb_params cb_last;

// How many periods the opener on this thread wants queued for the card at
// most; 0: as many as the ring holds.
static __thread unsigned cb_queue;

// Playback starts left to the start threshold, for the tests.
static unsigned long cb_deferred;

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
	int missing = 0;
#define CB_SYM(field, name) \
	if ((*(void **)&cb_alsa.field = dlsym(lib, name)) == NULL) missing = 1
	CB_SYM(sw_params, "snd_pcm_sw_params");
	CB_SYM(start, "snd_pcm_start");
	CB_SYM(stream, "snd_pcm_stream");
	CB_SYM(get_params, "snd_pcm_get_params");
	CB_SYM(avail_update, "snd_pcm_avail_update");
	CB_SYM(sw_params_sizeof, "snd_pcm_sw_params_sizeof");
	CB_SYM(sw_params_current, "snd_pcm_sw_params_current");
	CB_SYM(get_boundary, "snd_pcm_sw_params_get_boundary");
	CB_SYM(get_avail_min, "snd_pcm_sw_params_get_avail_min");
	CB_SYM(get_stop_threshold, "snd_pcm_sw_params_get_stop_threshold");
	CB_SYM(get_silence_threshold, "snd_pcm_sw_params_get_silence_threshold");
	CB_SYM(get_silence_size, "snd_pcm_sw_params_get_silence_size");
	CB_SYM(set_avail_min, "snd_pcm_sw_params_set_avail_min");
	CB_SYM(set_stop_threshold, "snd_pcm_sw_params_set_stop_threshold");
	CB_SYM(set_silence_threshold, "snd_pcm_sw_params_set_silence_threshold");
	CB_SYM(set_silence_size, "snd_pcm_sw_params_set_silence_size");
#undef CB_SYM
	if (missing) {
		dlclose(lib);
		memset(&cb_alsa, 0, sizeof cb_alsa);
		return -2;
	}
	cb_alsa.lib = lib;
	return 0;
}

// cb_read_back fills r with the software parameters pcm now has.
static int cb_read_back(void *pcm, cb_params *r) {
	void *cur = calloc(1, cb_alsa.sw_params_sizeof());
	if (cur == NULL) {
		return -12; // ENOMEM
	}
	int err = cb_alsa.sw_params_current(pcm, cur);
	if (err == 0) err = cb_alsa.get_params(pcm, &r->buffer, &r->period);
	if (err == 0) err = cb_alsa.get_boundary(cur, &r->boundary);
	if (err == 0) err = cb_alsa.get_avail_min(cur, &r->avail_min);
	if (err == 0) err = cb_alsa.get_stop_threshold(cur, &r->stop);
	if (err == 0) err = cb_alsa.get_silence_threshold(cur, &r->silence_threshold);
	if (err == 0) err = cb_alsa.get_silence_size(cur, &r->silence_size);
	free(cur);
	return err;
}

// cb_apply sets these parameters in params and returns 0 or the first
// error. The silence threshold is 0 throughout (miniaudio's too).
static int cb_apply(void *pcm, void *params, cb_uframes avail_min, cb_uframes stop, cb_uframes silence_size) {
	int err = cb_alsa.set_avail_min(pcm, params, avail_min);
	if (err == 0) err = cb_alsa.set_stop_threshold(pcm, params, stop);
	if (err == 0) err = cb_alsa.set_silence_threshold(pcm, params, 0);
	if (err == 0) err = cb_alsa.set_silence_size(pcm, params, silence_size);
	return err;
}

// cb_sw_params stands in for snd_pcm_sw_params, which miniaudio calls once
// per PCM at the end of its open with its own parameters. For playback it
// adds ours: at most cb_queue periods queued (avail_min), stop when dry
// (stop threshold = buffer size), zero what was played (silence size =
// boundary). If the PCM refuses them it tries the queue limit alone, then
// miniaudio's parameters, rather than fail the open.
static int cb_sw_params(void *pcm, void *params) {
	if (cb_alsa.stream(pcm) != cb_stream_playback) {
		return cb_alsa.sw_params(pcm, params);
	}
	cb_params r = {.seen = 1};
	cb_uframes buffer = 0, period = 0, boundary = 0, avail_min = 0, stop = 0, silence_size = 0;
	int err = cb_alsa.get_params(pcm, &buffer, &period);
	if (err == 0) err = cb_alsa.get_boundary(params, &boundary);
	if (err == 0) err = cb_alsa.get_avail_min(params, &avail_min);
	if (err == 0) err = cb_alsa.get_stop_threshold(params, &stop);
	if (err == 0) err = cb_alsa.get_silence_size(params, &silence_size);
	int ret = -1;
	if (err == 0) {
		// The writer waits until avail >= avail_min, that is until at most
		// queue-1 periods are queued, then writes one.
		cb_uframes ours = avail_min;
		if (cb_queue > 0 && buffer > (cb_uframes)cb_queue * period) {
			ours = buffer - (cb_uframes)(cb_queue - 1) * period;
		}
		for (int level = 2; level >= 0; level--) {
			int e = 0;
			switch (level) {
			case 2: e = cb_apply(pcm, params, ours, buffer, boundary); break;
			case 1: e = cb_apply(pcm, params, ours, stop, silence_size); break;
			default: e = cb_apply(pcm, params, avail_min, stop, silence_size); break;
			}
			if (e == 0) {
				e = cb_alsa.sw_params(pcm, params);
				ret = e;
			}
			if (e == 0) {
				r.level = level;
				break;
			}
			if (err == 0) err = e;
		}
	} else {
		ret = cb_alsa.sw_params(pcm, params);
	}
	if (ret == 0) {
		int e = cb_read_back(pcm, &r);
		if (err == 0) err = e;
	}
	r.err = err;
	cb_last = r;
	return ret;
}

// cb_start stands in for snd_pcm_start. A playback PCM with nothing queued
// is left prepared: the writes that follow start it once the start
// threshold is queued. Anything else is started as asked.
static int cb_start(void *pcm) {
	if (cb_alsa.stream(pcm) == cb_stream_playback) {
		cb_uframes buffer, period;
		cb_sframes avail = cb_alsa.avail_update(pcm);
		if (avail >= 0 && cb_alsa.get_params(pcm, &buffer, &period) == 0 && (cb_uframes)avail >= buffer) {
			__atomic_add_fetch(&cb_deferred, 1, __ATOMIC_RELAXED);
			return 0;
		}
	}
	return cb_alsa.start(pcm);
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

// cb_hook swaps snd_pcm_sw_params and snd_pcm_start for the wrappers in the
// miniaudio context ctx (malloc'd by malgo; its table filled by
// ma_context_init). It returns 0, or cb_resolve's error, or -3 if either
// pointer is not in ctx exactly once (then neither is swapped).
static int cb_hook(void *ctx) {
	int err = cb_resolve();
	if (err != 0) {
		return err;
	}
	void **slots = (void **)ctx;
	size_t n = malloc_usable_size(ctx) / sizeof(void *);
	if (cb_swap(slots, n, (void *)cb_alsa.start, (void *)cb_start) != 0) {
		return -3;
	}
	if (cb_swap(slots, n, (void *)cb_alsa.sw_params, (void *)cb_sw_params) != 0) {
		cb_swap(slots, n, (void *)cb_start, (void *)cb_alsa.start);
		return -3;
	}
	return 0;
}

static void cb_begin(unsigned queue) {
	memset(&cb_last, 0, sizeof cb_last);
	cb_queue = queue;
}
static cb_params cb_get_last(void) { return cb_last; }
static unsigned long cb_get_deferred(void) { return __atomic_load_n(&cb_deferred, __ATOMIC_RELAXED); }
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

// playbackRing is how many periods an ALSA playback ring holds at least;
// ALSAConfig.Periods of them at most are queued for the card. The rest
// stays zeroed, so a system that stalls the sound card's driver (its
// pointer updates) for up to the ring's length has the card play silence
// once the queue has run dry, not go round the ring again: 160 ms at 10 ms
// frames.
const playbackRing = 16

// hookMu serialises the one-time resolution of libasound's functions.
var hookMu sync.Mutex

// playbackParams is what a playback PCM's software parameters became once
// miniaudio had set them through the hook.
type playbackParams struct {
	seen bool  // the hook saw miniaudio set them
	err  error // why not all of ours were applied, or nil
	// level is what the PCM took: levelAll, levelQueue (the queue limit
	// only: it runs free and keeps what it played) or levelMiniaudio.
	level int
	// As read back from the PCM, in frames.
	buffer, period, boundary, availMin, stop, silenceThreshold, silenceSize uint64
}

// What a playback PCM took of the hook's parameters.
const (
	levelMiniaudio = 0
	levelQueue     = 1
	levelAll       = 2
)

// stopsAndZeroes reports whether the PCM stops once its ring has run dry
// and zeroes everything it has played.
func (r playbackParams) stopsAndZeroes() bool {
	return r.seen && r.level == levelAll && r.buffer > 0 && r.stop == r.buffer &&
		r.silenceThreshold == 0 && r.boundary > 0 && r.silenceSize >= r.boundary
}

// queued is how many frames the writer keeps queued for the card at most:
// it waits until avail_min frames are free, then writes a period.
func (r playbackParams) queued() uint64 {
	if r.availMin >= r.buffer {
		return r.period
	}
	return r.buffer - r.availMin + r.period
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

// playbackHook installs the wrappers in ctx, an ALSA context not yet used
// to open a device.
func playbackHook(ctx *malgo.AllocatedContext) error {
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
		return errors.New("libasound lacks a software-parameter function")
	default:
		return errors.New("snd_pcm_sw_params or snd_pcm_start not found in miniaudio's context")
	}
}

// initPlayback runs malgo.InitDevice on one OS thread, the hook keeping at
// most queue periods queued for the card (0: as many as the ring holds),
// and reports what the hook did during it (the wrapper records it per
// thread).
func initPlayback(ctx malgo.Context, dc malgo.DeviceConfig, cb malgo.DeviceCallbacks, queue int) (*malgo.Device, playbackParams, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.cb_begin(C.uint(queue))
	dev, err := malgo.InitDevice(ctx, dc, cb)
	last := C.cb_get_last()
	r := playbackParams{
		seen:             last.seen != 0,
		level:            int(last.level),
		buffer:           uint64(last.buffer),
		period:           uint64(last.period),
		boundary:         uint64(last.boundary),
		availMin:         uint64(last.avail_min),
		stop:             uint64(last.stop),
		silenceThreshold: uint64(last.silence_threshold),
		silenceSize:      uint64(last.silence_size),
	}
	if last.err != 0 {
		r.err = fmt.Errorf("snd_pcm_sw_params: %w", syscall.Errno(-last.err))
	}
	return dev, r, err
}

// deferredStarts counts playback starts the hook left to the start
// threshold because nothing was queued yet.
func deferredStarts() uint64 { return uint64(C.cb_get_deferred()) }
