package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/stream/call"
)

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.b.Status())
}

// action answers a button's POST: 200 {} when the backend took it, 409
// when the call state does not allow it, 400 for other refusals.
func (s *Server) action(do func(r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, do(r))
	})
}

func (s *Server) press(w http.ResponseWriter, r *http.Request) {
	var req control.PressRequest
	if !readBody(w, r, &req) {
		return
	}
	s.reply(w, s.b.Press(r.Context(), req.Long))
}

// call calls the peer or group the body names, or the default one.
func (s *Server) call(w http.ResponseWriter, r *http.Request) {
	var req control.CallRequest
	if !readBody(w, r, &req) {
		return
	}
	s.reply(w, s.b.Call(r.Context(), req.Peer))
}

// readBody reads an optional small JSON body into v; on a bad one it
// answers 400 and returns false.
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, control.Error{Error: err.Error()})
		return false
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, v); err != nil {
			writeJSON(w, http.StatusBadRequest, control.Error{Error: fmt.Sprintf("bad request body: %v", err)})
			return false
		}
	}
	return true
}

func (s *Server) reply(w http.ResponseWriter, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, struct{}{})
	case errors.Is(err, call.ErrBusy), errors.Is(err, call.ErrNotInCall):
		writeJSON(w, http.StatusConflict, control.Error{Error: err.Error()})
	default:
		writeJSON(w, http.StatusBadRequest, control.Error{Error: err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
