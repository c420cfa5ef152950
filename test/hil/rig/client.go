package rig

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/callbox/callbox/internal/control"
	"github.com/callbox/callbox/test/hil/guest"
)

// Client talks to the agent in a guest (package guest's API) through the
// forwarded port. Safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the agent at base ("http://127.0.0.1:N").
func NewClient(base string) *Client {
	return &Client{base: base, hc: &http.Client{Timeout: 2 * time.Minute}}
}

// Get fetches path and decodes its JSON answer into out (if not nil).
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, "GET", path, nil, out)
}

// Post sends in (JSON, if not nil) to path and decodes the answer into out:
// JSON, or the raw body when out is a *[]byte.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.do(ctx, "POST", path, in, out)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("agent %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 128<<20))
	if err != nil {
		return fmt.Errorf("agent %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e guest.Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("agent %s %s: %s", method, path, e.Error)
		}
		return fmt.Errorf("agent %s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}

// Status is the guest daemon's status (its control API, through the agent).
func (c *Client) Status(ctx context.Context) (control.Status, error) {
	var st control.Status
	err := c.Get(ctx, "/v1/control/status", &st)
	return st, err
}

// WaitStatus polls the guest daemon's status until ok accepts it or
// timeout passes; it returns the last status seen.
func (c *Client) WaitStatus(ctx context.Context, timeout time.Duration, what string, ok func(control.Status) bool) (control.Status, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		st, err := c.Status(ctx)
		if err == nil && ok(st) {
			return st, nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil && err != nil {
				return st, fmt.Errorf("guest: %s: not within %v: %w", what, timeout, last)
			}
			return st, fmt.Errorf("guest: %s: not within %v (state %q, camera %q, microphone %q, speaker %q, gpio %q, led %q)",
				what, timeout, st.Phone.State, st.Camera, st.Microphone, st.Speaker, st.GPIO, st.LED)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Exec runs argv in the guest.
func (c *Client) Exec(ctx context.Context, argv ...string) (guest.ExecResult, error) {
	var r guest.ExecResult
	err := c.Post(ctx, "/v1/exec", guest.Exec{Argv: argv}, &r)
	return r, err
}
