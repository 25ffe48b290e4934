package llm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// Defaults of OpenAIOptions.
const (
	// DefaultOpenAITimeout is the per-attempt timeout when Timeout is 0.
	DefaultOpenAITimeout = 30 * time.Second
	// DefaultRetries is the number of retries when Retries is 0.
	DefaultRetries = 3
	// DefaultRetryAfter is UnavailableError.RetryAfter when the server did
	// not say (no Retry-After / Retry-After-Ms header, or a network error).
	DefaultRetryAfter = time.Second
)

// OpenAIOptions configures an OpenAI backend.
type OpenAIOptions struct {
	// BaseURL is the API root, e.g. "https://api.openai.com/v1",
	// "https://api.deepseek.com/v1" or "http://127.0.0.1:11434/v1" (Ollama).
	// Required; must be an absolute http or https URL.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>". Empty sends no
	// Authorization header at all (local servers such as Ollama or vLLM).
	// The OPENAI_API_KEY environment variable is never used.
	APIKey string
	// Model is the model name sent with every request. Required.
	Model string
	// Temperature is the sampling temperature; nil leaves it to the server.
	// A request's own temperature wins.
	Temperature *float64
	// MaxTokens caps the reply length (sent as max_tokens, which every
	// OpenAI-compatible server understands). 0 leaves it unset. A
	// request's own max tokens win.
	MaxTokens int
	// Timeout bounds one HTTP attempt, reading the response body included.
	// Default (0): 30s. A timed-out attempt counts as a network error and is
	// retried like one.
	Timeout time.Duration
	// Retries is how many times a failed attempt is retried (so at most
	// Retries+1 attempts). Default (0): 3. A negative value means no retries.
	Retries int
	// Logprobs asks the server for token log probabilities, from which
	// Reply.Confidence is computed.
	Logprobs bool
	// HTTPClient is the client used for the requests. Default (nil): a
	// client whose Transport keeps up to 256 idle keep-alive connections per
	// host, for high request rates. A given client is copied and its Timeout
	// replaced by the Timeout option.
	HTTPClient *http.Client
	// Trace makes a client span of every HTTP attempt and sends the W3C
	// trace context (traceparent) to the API (otelhttp). Off by default:
	// it costs a span per attempt even when no trace is recorded.
	Trace bool
}

// OpenAI is a Backend for any OpenAI-compatible chat completions endpoint
// (OpenAI, DeepSeek, Qwen/DashScope, Ollama, vLLM, ...). It posts with its
// own loop over net/http (post.go: openai-go's client cost more CPU than
// the call on the turn path) and speaks as the official client
// github.com/openai/openai-go/v3 does: its retry rules, its error type
// (*openai.Error), its Server-Sent Events decoder. It is safe for
// concurrent use.
//
// Retries follow openai-go's (requestconfig.Execute in v3.96):
//
//   - Retried: connection/network errors (no response at all, including an
//     attempt cut off by Timeout) and responses with status 408, 409, 429 or
//     >= 500. A response header "x-should-retry: true|false" overrides the
//     status rule. Other statuses (400, 401, 403, 404, 422, ...) are returned
//     at once.
//   - Delay: the server's "Retry-After-Ms" (milliseconds) or else
//     "Retry-After" (seconds or an HTTP date) when present; a server delay
//     above 2 minutes stops retrying and returns that response's error.
//     Without a header: exponential backoff 0.5s * 2^n (0.5s, 1s, 2s, 4s,
//     capped at 8s) minus up to 25% random jitter.
//   - Every attempt carries "X-Stainless-Retry-Count: n". The wait between
//     attempts ends early when the request's context ends, and the context
//     error is returned.
//
// After the last attempt a 408/409/429/5xx status or a network error becomes
// an *UnavailableError (RetryAfter from the response's Retry-After-Ms /
// Retry-After header, else DefaultRetryAfter); any other HTTP error becomes an
// error wrapping ErrRejected and the *openai.Error (errors.As gives the
// StatusCode). The end of the caller's context is returned as the context's
// error.
type OpenAI struct {
	hc       *http.Client
	url      string   // BaseURL + "/chat/completions"
	auth     []string // the Authorization header; nil: none
	retries  int
	model    string
	params   wireParams // template; Messages filled per call
	logprobs bool
}

// NewOpenAI validates opts and returns an OpenAI backend. It does not contact
// the server.
func NewOpenAI(opts OpenAIOptions) (*OpenAI, error) {
	if opts.BaseURL == "" {
		return nil, errors.New("llm.openai.base_url: required")
	}
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("llm.openai.base_url: %q is not an absolute http(s) URL", opts.BaseURL)
	}
	if opts.Model == "" {
		return nil, errors.New("llm.openai.model: required")
	}
	if opts.MaxTokens < 0 {
		return nil, fmt.Errorf("llm.openai.max_tokens: must not be negative, got %d", opts.MaxTokens)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("llm.openai.timeout: must not be negative, got %s", opts.Timeout)
	}
	if t := opts.Temperature; t != nil && (*t < 0 || *t > 2) {
		return nil, fmt.Errorf("llm.openai.temperature: must be between 0 and 2, got %g", *t)
	}

	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultOpenAITimeout
	}
	retries := opts.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}
	var hc http.Client
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient
	} else {
		hc.Transport = newTransport()
	}
	// The per-attempt timeout is the http.Client's rather than the SDK's
	// option.WithRequestTimeout: the SDK returns at once, without retrying,
	// when its per-attempt context expires, whereas a client timeout is an
	// ordinary transport error that the SDK retries.
	hc.Timeout = timeout
	if opts.Trace {
		rt := hc.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		hc.Transport = otelhttp.NewTransport(rt)
	}

	o := &OpenAI{
		hc: &hc, url: strings.TrimRight(opts.BaseURL, "/") + "/chat/completions", retries: retries, model: opts.Model,
		params:   wireParams{Model: opts.Model, MaxTokens: opts.MaxTokens, Logprobs: opts.Logprobs, Temperature: opts.Temperature},
		logprobs: opts.Logprobs,
	}
	if opts.APIKey != "" {
		o.auth = []string{"Bearer " + opts.APIKey}
	}
	return o, nil
}

// wireParams is the chat completion request as sent: the subset of
// OpenAI's request body every compatible server understands.
type wireParams struct {
	Model string `json:"model"`
	// Messages are []wireMessage, or []wirePartsMessage when a message has
	// images (one boxing per request, not a per-message interface).
	Messages      any                `json:"messages"`
	Temperature   *float64           `json:"temperature,omitempty"`
	TopP          *float64           `json:"top_p,omitempty"`
	MaxTokens     int                `json:"max_tokens,omitempty"`
	Stop          []string           `json:"stop,omitempty"`
	Logprobs      bool               `json:"logprobs,omitempty"`
	Stream        bool               `json:"stream,omitempty"`
	StreamOptions *wireStreamOptions `json:"stream_options,omitempty"`
}

type wireStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type wireMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// wirePartsMessage is a message whose content is parts: its text, then its
// images as data URLs.
type wirePartsMessage struct {
	Role    string     `json:"role"`
	Content []wirePart `json:"content"`
}

type wirePart struct {
	Type     string        `json:"type"`
	Text     string        `json:"text,omitempty"`
	ImageURL *wireImageURL `json:"image_url,omitempty"`
}

type wireImageURL struct {
	URL string `json:"url"`
}

// wireMessages is msgs as sent: plain text messages, or content parts for
// all when one has images.
func wireMessages(msgs []Message) (any, error) {
	images := false
	for i, m := range msgs {
		if m.Role != RoleSystem && m.Role != RoleUser && m.Role != RoleAssistant {
			return nil, fmt.Errorf("llm.openai: %w: message %d has unknown role %q", ErrRejected, i, m.Role)
		}
		images = images || len(m.Images) > 0
	}
	if !images {
		out := make([]wireMessage, len(msgs))
		for i, m := range msgs {
			out[i] = wireMessage{Role: m.Role, Content: m.Content}
		}
		return out, nil
	}
	out := make([]wirePartsMessage, len(msgs))
	for i, m := range msgs {
		parts := []wirePart{{Type: "text", Text: m.Content}}
		for _, img := range m.Images {
			url := "data:" + img.MIME + ";base64," + base64.StdEncoding.EncodeToString(img.Data)
			parts = append(parts, wirePart{Type: "image_url", ImageURL: &wireImageURL{URL: url}})
		}
		out[i] = wirePartsMessage{Role: m.Role, Content: parts}
	}
	return out, nil
}

// wireCompletion is the part of a chat completion response, or of one
// chunk of a streamed one, that we read.
type wireCompletion struct {
	Model   string       `json:"model"`
	Choices []wireChoice `json:"choices"`
	Usage   *wireUsage   `json:"usage"`
	// Error is a streamed failure: {"error": {...}} as an event.
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    any    `json:"code"`
	} `json:"error"`
}

type wireUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

type wireChoice struct {
	Message struct {
		Content string `json:"content"`
	} `json:"message"`
	Delta struct {
		Content string `json:"content"`
	} `json:"delta"`
	FinishReason string       `json:"finish_reason"`
	Logprobs     wireLogprobs `json:"logprobs"`
}

type wireLogprobs struct {
	Content []wireLogprob `json:"content"`
}

type wireLogprob struct {
	Logprob float64 `json:"logprob"`
}

// newTransport returns the default Transport: http.DefaultTransport's
// settings with a larger keep-alive pool, so thousands of requests per second
// to one endpoint reuse connections instead of dialing.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Name returns "openai".
func (o *OpenAI) Name() string { return "openai" }

// Complete sends req as one chat completion and returns the first choice;
// with req.Stream set it asks for a stream and passes each content delta on
// as it arrives.
func (o *OpenAI) Complete(ctx context.Context, req Request) (Reply, error) {
	if len(req.Messages) == 0 {
		return Reply{}, fmt.Errorf("llm.openai: %w: no messages", ErrRejected)
	}
	params := o.params
	msgs, err := wireMessages(req.Messages)
	if err != nil {
		return Reply{}, err
	}
	params.Messages = msgs
	p := req.Params
	if p.Temperature != nil {
		params.Temperature = p.Temperature
	}
	if p.MaxTokens > 0 {
		params.MaxTokens = p.MaxTokens
	}
	params.TopP, params.Stop = p.TopP, p.Stop
	if req.Stream != nil {
		params.Stream, params.StreamOptions = true, &wireStreamOptions{IncludeUsage: true}
	}
	body, err := params.encode()
	if err != nil {
		return Reply{}, fmt.Errorf("llm.openai: %w: %w", ErrRejected, err)
	}
	if req.Stream != nil {
		return o.stream(ctx, body, req.Stream)
	}

	// The body is encoded here, and the response decoded into wireCompletion,
	// rather than through openai.ChatCompletionNewParams and
	// openai.ChatCompletion: the client's reflective encoder of message
	// unions and its response decoder cost most of a turn's CPU under load
	// (see BenchmarkOpenAIComplete).
	res, err := o.post(ctx, body)
	if err != nil {
		return Reply{}, o.classify(ctx, err)
	}
	var resp wireCompletion
	err = json.NewDecoder(res.Body).Decode(&resp)
	res.Body.Close()
	if err != nil {
		return Reply{}, o.classify(ctx, fmt.Errorf("error parsing response json: %w", err))
	}
	if len(resp.Choices) == 0 {
		return Reply{}, fmt.Errorf("llm.openai: %w", ErrEmptyResponse)
	}
	choice := resp.Choices[0]
	reply := o.reply(resp.Model, choice.Message.Content, choice.FinishReason, resp.Usage)
	reply.Confidence = confidence(choice)
	return reply, nil
}

// stream sends a streaming request and reads its Server-Sent Events with
// the official client's decoder (openai-go's ssestream), each chunk into
// wireCompletion. It is sent and retried as a plain one; once the answer
// has begun, a broken stream is an UnavailableError.
func (o *OpenAI) stream(ctx context.Context, body []byte, sink func(string) error) (Reply, error) {
	res, err := o.post(ctx, body)
	if err != nil {
		return Reply{}, o.classify(ctx, err)
	}
	dec := ssestream.NewDecoder(res)
	defer dec.Close()
	var content strings.Builder
	var model, finish string
	var usage *wireUsage
	var logprobs []wireLogprob
	for dec.Next() {
		data := bytes.TrimSpace(dec.Event().Data)
		if bytes.Equal(data, []byte("[DONE]")) {
			break
		}
		var chunk wireCompletion
		if err := json.Unmarshal(data, &chunk); err != nil {
			return Reply{}, &UnavailableError{Backend: o.Name(), RetryAfter: DefaultRetryAfter, Err: fmt.Errorf("llm.openai: undecodable stream event %.100q: %w", data, err)}
		}
		if chunk.Error != nil {
			return Reply{}, &UnavailableError{Backend: o.Name(), RetryAfter: DefaultRetryAfter, Err: fmt.Errorf("llm.openai: the stream failed: %s", chunk.Error.Message)}
		}
		if chunk.Model != "" {
			model = chunk.Model
		}
		if chunk.Usage != nil {
			usage = chunk.Usage
		}
		if len(chunk.Choices) == 0 {
			continue
		}
		c := chunk.Choices[0]
		if c.FinishReason != "" {
			finish = c.FinishReason
		}
		logprobs = append(logprobs, c.Logprobs.Content...)
		if d := c.Delta.Content; d != "" {
			content.WriteString(d)
			if err := sink(d); err != nil {
				return Reply{}, err
			}
		}
	}
	if err := dec.Err(); err != nil {
		return Reply{}, o.classify(ctx, err)
	}
	if err := ctx.Err(); err != nil {
		return Reply{}, fmt.Errorf("llm.openai: %w", err)
	}
	if finish == "" {
		return Reply{}, &UnavailableError{Backend: o.Name(), RetryAfter: DefaultRetryAfter, Err: errors.New("llm.openai: the stream ended without a finish reason")}
	}
	reply := o.reply(model, content.String(), finish, usage)
	reply.Confidence = confidence(wireChoice{FinishReason: finish, Logprobs: wireLogprobs{logprobs}})
	return reply, nil
}

func (o *OpenAI) reply(model, content, finish string, usage *wireUsage) Reply {
	if model == "" {
		model = o.model
	}
	r := Reply{Content: content, Backend: o.Name(), Model: model, FinishReason: finish}
	if usage != nil {
		r.Usage = Usage{PromptTokens: usage.PromptTokens, CompletionTokens: usage.CompletionTokens}
	}
	return r
}

// classify turns a client error into this package's error conventions.
func (o *OpenAI) classify(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("llm.openai: %w", ctxErr)
	}
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		if transientStatus(apiErr.StatusCode) {
			return &UnavailableError{
				Backend:    o.Name(),
				RetryAfter: retryAfter(apiErr.Response),
				Err:        fmt.Errorf("llm.openai: %w", err),
			}
		}
		return fmt.Errorf("llm.openai: %w: %w", ErrRejected, err)
	}
	// Network errors, attempt timeouts, unreadable or malformed responses.
	return &UnavailableError{Backend: o.Name(), RetryAfter: DefaultRetryAfter, Err: fmt.Errorf("llm.openai: %w", err)}
}

// transientStatus reports whether an HTTP status means "try again later":
// the statuses the client retries.
func transientStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusConflict ||
		code == http.StatusTooManyRequests || code >= http.StatusInternalServerError
}

// retryAfter reads Retry-After-Ms or Retry-After (seconds or HTTP date) from
// resp, falling back to DefaultRetryAfter.
func retryAfter(resp *http.Response) time.Duration {
	if resp != nil {
		if d, ok := serverDelay(resp.Header); ok {
			return d
		}
	}
	return DefaultRetryAfter
}

// serverDelay is the positive wait a response asks for in Retry-After-Ms
// (milliseconds) or else Retry-After (seconds or an HTTP date).
func serverDelay(h http.Header) (time.Duration, bool) {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < math.MaxInt64/1e6 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil {
			if s > 0 && s < math.MaxInt64/1e9 {
				return time.Duration(s * float64(time.Second)), true
			}
		} else if t, err := http.ParseTime(v); err == nil {
			if d := time.Until(t); d > 0 {
				return d, true
			}
		}
	}
	return 0, false
}

// confidence is exp(mean token logprob) when the choice carries logprobs,
// else a guess from the finish reason.
func confidence(c wireChoice) float64 {
	if toks := c.Logprobs.Content; len(toks) > 0 {
		var sum float64
		for _, t := range toks {
			sum += t.Logprob
		}
		p := math.Exp(sum / float64(len(toks)))
		if math.IsNaN(p) {
			return 0
		}
		return min(max(p, 0), 1)
	}
	switch c.FinishReason {
	case "stop":
		return 0.9
	case "length":
		return 0.6
	case "content_filter":
		return 0.2
	default:
		return 0.5
	}
}
