package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// auth lets a request through when it comes from loopback (and names a
// loopback host, so that a web page whose DNS name was re-pointed at
// 127.0.0.1 gets nothing), or when it carries the token. Others get 401
// and a Basic-auth challenge, which makes a browser ask for the password.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fromLoopback(r) || s.tokenOK(r) {
			next.ServeHTTP(w, r)
			return
		}
		s.unauthorized.Add(1)
		s.log.Debug("request refused: no valid token", "remote", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Basic realm="callbox", charset="UTF-8"`)
		http.Error(w, "callbox: this address needs the token (web.token)", http.StatusUnauthorized)
	})
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return false
	}
	h := r.Host
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return loopbackHost(strings.Trim(h, "[]"))
}

// tokenOK compares whatever token the request carries with the
// configured one in constant time (hashes first, so the length does not
// leak either). No token configured: nothing matches.
func (s *Server) tokenOK(r *http.Request) bool {
	if len(s.token) == 0 {
		return false
	}
	var got string
	if _, pw, ok := r.BasicAuth(); ok {
		got = pw
	} else if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		got = strings.TrimSpace(a[7:])
	} else if q := r.URL.Query().Get("token"); q != "" {
		got = q
	} else {
		return false
	}
	want := sha256.Sum256(s.token)
	have := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(want[:], have[:]) == 1
}
