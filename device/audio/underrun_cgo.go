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
//   - a wakeup the last stop left behind is cleared before the device
//     starts again. ma_device_stop marks the device stopping, then wakes
//     the device thread from poll() through an eventfd; the device thread,
//     stopping, empties that eventfd. A device thread that sees the mark
//     and has stopped before the wakeup is written (it was awake for its
//     next period, the machine is busy, or the stop waits for miniaudio's
//     log lock while the device thread logs its own stop) leaves the
//     wakeup in the eventfd, and the next start meets it at its first
//     write: the device stops at once, as if it had failed, and Run
//     returns ErrStopped. The snd_pcm_poll_descriptors wrapper learns the
//     eventfd, which miniaudio puts in the slot just before the PCM's
//     descriptors (checked: an eventfd, polled for input), and
//     malgoPCM.start empties it (clearWakeup). While the device is stopped
//     its thread neither polls nor reads it, and no stop is under way, so
//     whatever it holds then is stale.
//
// miniaudio has no setting for any of this (its avail_min is a period) and
// does not expose its snd_pcm_t, so playbackHook swaps the
// snd_pcm_sw_params, snd_pcm_start and snd_pcm_poll_descriptors pointers
// in the context's table of libasound functions for wrappers. The
// functions come from the libasound.so.2 miniaudio has already loaded
// (dlopen with RTLD_NOLOAD): nothing new is linked or loaded, and no ALSA
// headers are needed to build.

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// alsa-lib's types are opaque here.
typedef unsigned long cb_uframes;
typedef long cb_sframes;

enum { cb_stream_playback = 0 }; // SND_PCM_STREAM_PLAYBACK

static struct {
	void *lib; // our reference: libasound stays loaded once resolved
	int (*sw_params)(void *pcm, void *params);
	int (*start)(void *pcm);
	int (*poll_descriptors)(void *pcm, struct pollfd *pfds, unsigned int space);
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

// The eventfd miniaudio wakes the device thread of the last playback PCM
// opened on this thread with, or -1 if it was not found.
static __thread int cb_wakeup = -1;

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
	CB_SYM(poll_descriptors, "snd_pcm_poll_descriptors");
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

// cb_is_eventfd reports whether fd is an eventfd.
static int cb_is_eventfd(int fd) {
	char path[64], target[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, target, sizeof target - 1);
	if (n < 0) {
		return 0;
	}
	target[n] = 0;
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

// cb_poll_descriptors stands in for snd_pcm_poll_descriptors, which
// miniaudio calls once per PCM as it opens it, with pfds just past the
// descriptor of its wakeup eventfd (its array holds that first, then the
// PCM's). For playback it notes that eventfd, if the slot before pfds
// holds an eventfd polled for input, as miniaudio's does.
static int cb_poll_descriptors(void *pcm, struct pollfd *pfds, unsigned int space) {
	int n = cb_alsa.poll_descriptors(pcm, pfds, space);
	if (n > 0 && cb_alsa.stream(pcm) == cb_stream_playback) {
		const struct pollfd *w = pfds - 1;
		cb_wakeup = -1;
		if (w->fd >= 0 && w->events == POLLIN && cb_is_eventfd(w->fd)) {
			cb_wakeup = w->fd;
		}
	}
	return n;
}

// cb_clear_wakeup empties the eventfd fd without blocking. It returns 1 if
// it held a wakeup, 0 if not, or a negative errno.
static int cb_clear_wakeup(int fd) {
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int n = poll(&p, 1, 0);
	if (n < 0) {
		return -errno;
	}
	if (n == 0 || (p.revents & POLLIN) == 0) {
		return 0;
	}
	uint64_t count;
	ssize_t r = read(fd, &count, sizeof count);
	if (r != (ssize_t)sizeof count) {
		return r < 0 ? -errno : -EIO;
	}
	return 1;
}

// cb_find returns the index of the one slot of the n in slots that holds
// p, or -1 if p is not there exactly once.
static long cb_find(void **slots, size_t n, void *p) {
	long at = -1;
	for (size_t i = 0; i < n; i++) {
		if (slots[i] == p) {
			if (at >= 0) {
				return -1;
			}
			at = (long)i;
		}
	}
	return at;
}

// cb_hook swaps snd_pcm_sw_params, snd_pcm_start and
// snd_pcm_poll_descriptors for the wrappers in the miniaudio context ctx
// (malloc'd by malgo; its table filled by ma_context_init). It returns 0,
// or cb_resolve's error, or -3 if any of the pointers is not in ctx
// exactly once (then none is swapped).
static int cb_hook(void *ctx) {
	int err = cb_resolve();
	if (err != 0) {
		return err;
	}
	void **slots = (void **)ctx;
	size_t n = malloc_usable_size(ctx) / sizeof(void *);
	void *from[] = {(void *)cb_alsa.start, (void *)cb_alsa.sw_params, (void *)cb_alsa.poll_descriptors};
	void *to[] = {(void *)cb_start, (void *)cb_sw_params, (void *)cb_poll_descriptors};
	enum { k = sizeof from / sizeof from[0] };
	long at[k];
	for (size_t i = 0; i < k; i++) {
		if ((at[i] = cb_find(slots, n, from[i])) < 0) {
			return -3;
		}
	}
	for (size_t i = 0; i < k; i++) {
		slots[at[i]] = to[i];
	}
	return 0;
}

static void cb_begin(unsigned queue) {
	memset(&cb_last, 0, sizeof cb_last);
	cb_queue = queue;
	cb_wakeup = -1;
}
static int cb_get_wakeup(void) { return cb_wakeup; }
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
		return errors.New("snd_pcm_sw_params, snd_pcm_start or snd_pcm_poll_descriptors not found in miniaudio's context")
	}
}

// initPlayback runs malgo.InitDevice on one OS thread, the hook keeping at
// most queue periods queued for the card (0: as many as the ring holds),
// and reports what the hook did during it (the wrappers record it per
// thread): the software parameters, and the eventfd that wakes the device
// thread (-1 if not found).
func initPlayback(ctx malgo.Context, dc malgo.DeviceConfig, cb malgo.DeviceCallbacks, queue int) (*malgo.Device, playbackParams, int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.cb_begin(C.uint(queue))
	dev, err := malgo.InitDevice(ctx, dc, cb)
	wakeup := int(C.cb_get_wakeup())
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
	return dev, r, wakeup, err
}

// clearWakeup empties wakeup, the eventfd that wakes a stopped playback
// device's thread, of what the last stop left there (see the top of this
// file). It reports whether there was a wakeup to clear. The device must
// be stopped: its thread then neither polls nor reads the eventfd.
func clearWakeup(wakeup int) (bool, error) {
	rc := C.cb_clear_wakeup(C.int(wakeup))
	if rc < 0 {
		return false, syscall.Errno(-rc)
	}
	return rc == 1, nil
}

// deferredStarts counts playback starts the hook left to the start
// threshold because nothing was queued yet.
func deferredStarts() uint64 { return uint64(C.cb_get_deferred()) }
