package llm

import (
	"bytes"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/botfleet/botfleet/pkg/pause"
	"github.com/openai/openai-go/v3"
	"github.com/tidwall/gjson"
)

// Retry delays, as openai-go's (requestconfig in v3.96).
const (
	// maxServerDelay bounds the Retry-After a server may ask for: a longer
	// one ends the retries and returns that answer's error.
	maxServerDelay = 2 * time.Minute
	// maxBackoff caps the backoff when the server names no delay.
	maxBackoff = 8 * time.Second
)

// post sends body to chat/completions, retrying as openai-go's client
// does (see OpenAI), and returns a 2xx response whose body the caller
// reads and closes. A final error status is an *openai.Error, as the
// client's, so that classify and callers see one error type.
//
// It replaces openai-go's client.Post on the turn path: the client's
// request config, middleware chain and response handling cost more than
// the call itself. Measured on 2 shared cores, alternating the two builds:
// BenchmarkOpenAIComplete (history 100, in-process mockllm) 430 → 326 µs
// (medians of 3), 209 → 134 allocations per call; BenchmarkTurn's
// instance CPU per turn (its profile, mockllm and client excluded)
// 447 → 391 µs (medians of 5).
func (o *OpenAI) post(ctx context.Context, body []byte) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		h := req.Header
		h["Content-Type"] = jsonContentType
		h["Accept"] = jsonContentType
		h["X-Stainless-Retry-Count"] = []string{strconv.Itoa(attempt)}
		if o.auth != nil {
			h["Authorization"] = o.auth
		}
		res, err := o.hc.Do(req)
		if ctx.Err() != nil {
			if res != nil {
				res.Body.Close()
			}
			return nil, ctx.Err()
		}
		if err == nil && res.StatusCode < 400 {
			return res, nil
		}
		delay, again := time.Duration(0), attempt < o.retries && retryable(res)
		if again {
			delay, again = retryDelay(res, attempt)
		}
		if !again {
			if err != nil {
				return nil, err
			}
			return nil, apiError(req, res)
		}
		if res != nil {
			_, _ = io.Copy(io.Discard, res.Body) // keeps the connection
			res.Body.Close()
		}
		if !pause.For(ctx, delay) {
			return nil, ctx.Err()
		}
	}
}

var jsonContentType = []string{"application/json"}

// retryable tells whether an attempt's outcome is retried: no response at
// all (a network error or timeout), x-should-retry: true, or 408, 409,
// 429 or 5xx unless x-should-retry: false.
func retryable(res *http.Response) bool {
	if res == nil {
		return true
	}
	switch res.Header.Get("X-Should-Retry") {
	case "true":
		return true
	case "false":
		return false
	}
	return transientStatus(res.StatusCode)
}

// retryDelay is the wait before the next attempt: the server's
// Retry-After-Ms or Retry-After, else 0.5 s × 2^attempt capped at 8 s less
// up to a quarter of random jitter; false when the server asks for more
// than maxServerDelay.
func retryDelay(res *http.Response, attempt int) (time.Duration, bool) {
	if res != nil {
		if d, ok := serverDelay(res.Header); ok {
			return d, d <= maxServerDelay
		}
	}
	d := time.Duration(min(0.5*float64(time.Second)*math.Pow(2, float64(attempt)), float64(maxBackoff)))
	return d - rand.N(d/4+1), true
}

// apiError reads an error answer into an *openai.Error, as openai-go's
// client does: its "error" object, the status, the request and the
// response (whose body stays readable).
func apiError(req *http.Request, res *http.Response) error {
	contents, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	res.Body = io.NopCloser(bytes.NewReader(contents))
	e := &openai.Error{Request: req, Response: res, StatusCode: res.StatusCode}
	if raw := gjson.GetBytes(contents, "error").Raw; raw != "" {
		// An undecodable error object still leaves the status, which is
		// what classify goes by.
		_ = e.UnmarshalJSON([]byte(raw))
	}
	return e
}
