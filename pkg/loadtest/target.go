package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Call is one turn of one conversation, what a Target turns into a request.
type Call struct {
	// SessionID names the conversation; unique to the run.
	SessionID string
	// Turn is the 1-based index of this request in the conversation as the
	// generator sent it (failed requests included).
	Turn int
	// Message is the user's text, reproducible from the run's seed.
	Message string
	// Seq numbers the run's requests in the order they went out, from 1;
	// unique to the run (warm-up included), so a target can derive ids
	// from it.
	Seq int64
}

// Reply is what a Target read from a successful response.
type Reply struct {
	// SessionID is the conversation the server answered for; empty when the
	// target's responses do not say. A different non-empty id than the call's
	// is a continuity error.
	SessionID string
	// Turn is the server's 1-based number of this turn in the conversation; 0
	// when the target's responses carry none (continuity is then not checked).
	Turn int
}

// Target is one kind of endpoint under load: it builds the HTTP request of a
// call and judges the response. Implementations must be safe for concurrent
// use. Register new kinds in NewTarget.
type Target interface {
	// Name is the target's name in reports, e.g. "chat".
	Name() string
	// NewRequest builds the request of c. ctx carries the request's timeout
	// and must be attached to it.
	NewRequest(ctx context.Context, c Call) (*http.Request, error)
	// Check judges a complete response: a non-success status is a
	// *StatusError, any other error a response that could not be decoded.
	// body is only valid during the call.
	Check(status int, body []byte) (Reply, error)
}

// StatusError is a response whose status code is not a success; it is
// counted under cause "status_<code>".
type StatusError struct {
	// Code is the HTTP status code.
	Code int
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("status %d %s", e.Code, http.StatusText(e.Code))
}

// TargetConfig is what NewTargetConfig builds a target from.
type TargetConfig struct {
	// URL is the service's base URL.
	URL string
	// Token is the Bearer token; empty sends no Authorization header. The
	// telegram target sends it as the webhook's secret token instead.
	Token string
	// Model is the model an OpenAI-compatible target asks for (default
	// DefaultModel); other targets ignore it.
	Model string
}

// targets maps a target's name to its constructor.
var targets = map[string]func(TargetConfig) (Target, error){
	"chat": func(c TargetConfig) (Target, error) { return NewChatTarget(c.URL, c.Token) },
	"completions": func(c TargetConfig) (Target, error) {
		return NewCompletionsTarget(c.URL, c.Token, c.Model)
	},
	"completions-stream": func(c TargetConfig) (Target, error) {
		return NewStreamTarget(c.URL, c.Token, c.Model)
	},
	"telegram": func(c TargetConfig) (Target, error) { return NewTelegramTarget(c.URL, c.Token) },
}

// TargetNames lists the names NewTarget accepts, sorted.
func TargetNames() []string {
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// NewTarget returns the target called name for the service at baseURL,
// authenticating with token (none when empty), with the defaults of every
// other TargetConfig field.
func NewTarget(name, baseURL, token string) (Target, error) {
	return NewTargetConfig(name, TargetConfig{URL: baseURL, Token: token})
}

// NewTargetConfig returns the target called name configured by c.
func NewTargetConfig(name string, c TargetConfig) (Target, error) {
	mk, ok := targets[name]
	if !ok {
		return nil, fmt.Errorf("unknown target %q (known: %s)", name, strings.Join(TargetNames(), ", "))
	}
	return mk(c)
}

// serviceURL is baseURL (scheme, host and an optional path prefix) checked
// and without a trailing slash, for a target to add its endpoint to.
func serviceURL(baseURL string) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("url %q: want http://host[:port] or https://host[:port]", baseURL)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}
