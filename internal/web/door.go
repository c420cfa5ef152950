package web

import (
	"context"
	"io"
	"net/http"

	"github.com/callbox/callbox/internal/control"
)

// DoorOpener is a Backend that opens doors: the page's "Open door"
// buttons POST to /api/door/open, which 404s for a backend without it.
// OpenDoor opens this box's door, or (remote) asks the peer of the call
// in progress to open its own and waits for the answer; from is the
// client's address, for the log of who opened. It returns nil once the
// door opens, else why not.
type DoorOpener interface {
	OpenDoor(ctx context.Context, remote bool, from string) error
}

// openDoor answers POST /api/door/open: 200 {} when the door opens, 409
// with the reason when it was refused.
func (s *Server) openDoor(w http.ResponseWriter, r *http.Request) {
	d, ok := s.b.(DoorOpener)
	if !ok {
		writeJSON(w, http.StatusNotFound, control.Error{Error: "no door opener"})
		return
	}
	var req control.DoorRequest
	if !readBody(w, r, &req) {
		return
	}
	if err := d.OpenDoor(r.Context(), req.Remote, r.RemoteAddr); err != nil {
		writeJSON(w, http.StatusConflict, control.Error{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// writeDoorMetrics writes the door opener's figures, if it has one.
func writeDoorMetrics(w io.Writer, d *control.Door) {
	if d == nil {
		return
	}
	p := prom{w: w}
	p.family("callbox_door_active", "gauge", "1 while the door opener's relay is energised.")
	p.sample("callbox_door_active", "", b2f(d.Active))
	p.family("callbox_door_openings_total", "counter", "Times the door was opened, since the start.")
	p.count("callbox_door_openings_total", "", d.Openings)
	p.family("callbox_door_refusals_total", "counter", "Requests to open the door refused (a pulse under way, inside the minimum gap, not allowed, a line fault), since the start.")
	p.count("callbox_door_refusals_total", "", d.Refusals)
	if d.Last != nil {
		p.family("callbox_door_last_opening_timestamp_seconds", "gauge", "When the door last opened, in seconds since the Unix epoch.")
		p.sample("callbox_door_last_opening_timestamp_seconds", "", float64(d.Last.At.UnixMilli())/1000)
	}
}
