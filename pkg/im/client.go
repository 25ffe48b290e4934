package im

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// DefaultSendTimeout bounds one platform API call.
const DefaultSendTimeout = 10 * time.Second

// NewHTTPClient returns the client adapters call platform APIs with.
func NewHTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultSendTimeout
	}
	return &http.Client{Timeout: timeout}
}

// PostJSON posts in as JSON to url with the headers (name, value pairs) and
// decodes the answer into out (when not nil). It returns the HTTP status;
// err is set for transport failures and undecodable answers only, so the
// caller judges the status and the platform's own error code.
func PostJSON(ctx context.Context, c *http.Client, url string, in, out any, headers ...string) (int, error) {
	method := http.MethodPost
	if in == nil {
		method = http.MethodGet
	}
	return CallJSON(ctx, c, method, url, in, out, headers...)
}

// CallJSON is PostJSON with another method (PATCH, PUT).
func CallJSON(ctx context.Context, c *http.Client, method, url string, in, out any, headers ...string) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, Permanent(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil && resp.StatusCode < 300 {
			return resp.StatusCode, fmt.Errorf("undecodable answer %.200q: %w", raw, err)
		}
	}
	return resp.StatusCode, nil
}
