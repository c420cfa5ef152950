package web

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// boundary separates the parts of an MJPEG stream.
const boundary = "callboxframe"

// partEnd ends every part: the image's line end and the next boundary.
var partEnd = []byte("\r\n--" + boundary + "\r\n")

func streamIndex(which Stream) int {
	if which == Peer {
		return 1
	}
	return 0
}

// stream serves one video as multipart/x-mixed-replace: one JPEG per part.
// Each client gets the newest frame whenever it has taken the previous
// one: nothing is queued per client, so a slow client skips frames (and
// they are counted) and holds at most the one frame being written. A
// client that takes no part within writeTimeout is dropped. At most
// MaxStreams clients at once; more get 503.
func (s *Server) stream(which Stream) http.HandlerFunc {
	idx := streamIndex(which)
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.streams <- struct{}{}:
		default:
			s.refused.Add(1)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "callbox: too many video clients", http.StatusServiceUnavailable)
			return
		}
		defer func() { <-s.streams }()
		s.log.Debug("stream client", "stream", string(which), "remote", r.RemoteAddr)
		if wb, ok := s.b.(Watcher); ok {
			defer wb.Watch(which)()
		}

		rc := http.NewResponseController(w)
		h := w.Header()
		h.Set("Content-Type", "multipart/x-mixed-replace; boundary="+boundary)
		h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		h.Set("Pragma", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		w.WriteHeader(http.StatusOK)
		if rc.Flush() != nil { // the client sees the answer before the first frame
			return
		}
		var sent uint64 // version of the last frame written; 0: none yet
		head := make([]byte, 0, 128)
		for {
			jpeg, version, changed := s.b.Latest(which)
			if version == sent || len(jpeg) == 0 {
				select {
				case <-changed:
					continue
				case <-r.Context().Done():
					return
				case <-s.quit:
					return
				}
			}
			if sent != 0 && version > sent+1 {
				s.skip[idx].Add(version - sent - 1)
			}
			head = head[:0]
			if sent == 0 {
				head = append(head, "--"+boundary+"\r\n"...)
			}
			head = append(head, "Content-Type: image/jpeg\r\nContent-Length: "...)
			head = strconv.AppendInt(head, int64(len(jpeg)), 10)
			head = append(head, "\r\n\r\n"...)
			rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := w.Write(head); err != nil {
				return
			}
			if _, err := w.Write(jpeg); err != nil {
				return
			}
			// The boundary goes right after the image: a browser shows a
			// part only once it sees the next boundary.
			if _, err := w.Write(partEnd); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			s.sent[idx].Add(1)
			sent = version
		}
	}
}

// snapshot answers the newest frame as one JPEG, or 503 when there is none
// yet. A self snapshot from a Watcher waits up to snapshotWait for the
// camera it has opened.
func (s *Server) snapshot(which Stream) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jpeg, _, _ := s.b.Latest(which)
		if wb, ok := s.b.(Watcher); ok && which == Self && len(jpeg) == 0 {
			done := wb.Watch(which)
			jpeg = s.waitFrame(r.Context(), which)
			done()
		}
		if len(jpeg) == 0 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "callbox: no "+string(which)+" frame yet", http.StatusServiceUnavailable)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "image/jpeg")
		h.Set("Content-Length", strconv.Itoa(len(jpeg)))
		h.Set("Cache-Control", "no-store")
		w.Write(jpeg)
	})
}

// waitFrame waits up to snapshotWait (or until ctx ends) for a frame of
// which and returns it, or nil.
func (s *Server) waitFrame(ctx context.Context, which Stream) []byte {
	ctx, cancel := context.WithTimeout(ctx, snapshotWait)
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return WaitFrame(ctx, func() ([]byte, uint64, <-chan struct{}) { return s.b.Latest(which) }, AnyFrame)
}
