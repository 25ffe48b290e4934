// Package llm provides the language-model backends of a botfleet bot: an
// OpenAI-compatible HTTP backend ([OpenAI]), an offline rule-based backend
// ([Builtin]), a circuit breaker around any backend ([Breaker]) and a fallback
// combinator ([WithFallback]).
//
// Every backend implements [Backend]. Errors follow one convention so callers
// can react without knowing which backend produced them:
//
//   - errors.Is(err, [ErrUnavailable]) (an [*UnavailableError]): the backend
//     cannot answer now (overloaded, down, timing out, circuit open); try again
//     after UnavailableError.RetryAfter or answer from another backend.
//   - errors.Is(err, [ErrRejected]): the request itself was refused (an HTTP 4xx
//     such as 400 or 401, or a malformed [Request]); retrying the same request
//     will not help, but the backend is healthy.
//   - errors.Is(err, context.Canceled) or context.DeadlineExceeded: the
//     caller's context ended.
//
// Both kinds are classified for pkg/fault: unavailable is a temporary 503
// (backend_unavailable), rejected a permanent 502 (backend_error).
package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
)

// Message roles understood by every backend.
const (
	// RoleSystem marks the system prompt.
	RoleSystem = "system"
	// RoleUser marks a message from the user.
	RoleUser = "user"
	// RoleAssistant marks a reply of the bot.
	RoleAssistant = "assistant"
)

// Message is one entry of a conversation.
type Message struct {
	// Role is "system", "user" or "assistant" (see RoleSystem, RoleUser,
	// RoleAssistant).
	Role string
	// Content is the message text.
	Content string
	// Images are pictures sent with a user message. A model that takes
	// image input (ModelOptions.Images) gets them after the text; any
	// other gets the text alone.
	Images []Image
}

// Image is a picture sent with a message.
type Image struct {
	// MIME is its content type, e.g. "image/png".
	MIME string
	// Data are its bytes.
	Data []byte
}

// Request is one completion request: the whole prompt, that is the system
// prompt (if any), the conversation history in order, and the new user message
// last.
type Request struct {
	// Messages is the prompt in conversation order.
	Messages []Message
	// Model names the model to ask; a Router picks it, "" is its default.
	// Other backends ignore it.
	Model string
	// Params are the caller's sampling parameters; each unset one takes
	// the backend's configured value.
	Params Params
	// Stream, when set, receives the reply as the backend produces it: its
	// pieces in order, together the whole Content. A backend that cannot
	// stream sends the reply in one piece. An error from Stream ends the
	// call with that error.
	Stream func(delta string) error
}

// Params are sampling parameters. A nil pointer (or 0 MaxTokens, empty
// Stop) is unset, so that a temperature of 0 can be asked for.
type Params struct {
	Temperature *float64
	TopP        *float64
	// MaxTokens caps the reply's length in tokens.
	MaxTokens int
	// Stop are up to four sequences that end the reply.
	Stop []string
}

// Reply is a backend's answer to a Request.
type Reply struct {
	// Content is the reply text.
	Content string
	// Confidence is the backend's confidence in the reply, in [0, 1].
	Confidence float64
	// Backend names the backend that produced the reply (its Name()).
	Backend string
	// Model is the model that produced the reply ("builtin" for Builtin).
	Model string
	// FinishReason is why the reply ended: "stop", "length", ...
	FinishReason string
	// Usage counts the tokens, as the backend reported them (zero when it
	// did not).
	Usage Usage
	// Fallback is true when a Router answered from a fallback model, not
	// the one asked for.
	Fallback bool
}

// Usage is a reply's token count.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Backend produces replies to chat requests. Implementations are safe for
// concurrent use.
type Backend interface {
	// Name identifies the backend in logs, metrics and Reply.Backend.
	Name() string
	// Complete answers req. It returns the context's error when ctx ends first.
	Complete(ctx context.Context, req Request) (Reply, error)
}

// ErrUnavailable reports that a backend cannot answer now. It is matched by
// errors.Is for every [*UnavailableError].
var ErrUnavailable = errors.New("llm: backend unavailable")

// ErrRejected reports that a request was refused as such (an HTTP 4xx other
// than 408, 409 and 429, or a request that cannot be sent at all). The backend
// is healthy; sending the same request again will fail again.
var ErrRejected = fault.New(http.StatusBadGateway, "backend_error", "the language model backend rejected the request")

// ErrEmptyResponse reports a response without any choice to take the reply
// from.
var ErrEmptyResponse = fault.New(http.StatusBadGateway, "backend_error", "the language model backend returned no choices", fault.Retry(time.Second))

// ErrBreakerOpen is wrapped by the [*UnavailableError] a [Breaker] returns
// when it refuses a call because its circuit is open (or half-open and already
// probing).
var ErrBreakerOpen = errors.New("llm: circuit breaker open")

// UnavailableError says a backend cannot answer now and when to try again;
// errors.Is(err, ErrUnavailable) is true for it.
type UnavailableError struct {
	// Backend is the name of the backend that is unavailable.
	Backend string
	// RetryAfter is how long to wait before trying this backend again.
	RetryAfter time.Duration
	// Err is the underlying cause.
	Err error
}

// Error describes the unavailable backend, the retry delay and the cause.
func (e *UnavailableError) Error() string {
	msg := fmt.Sprintf("llm: backend %s unavailable (retry after %s)", e.Backend, e.RetryAfter)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is reports whether target is ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Fault classifies the error: 503, to be retried after RetryAfter.
func (e *UnavailableError) Fault() fault.Error {
	return fault.Error{Status: http.StatusServiceUnavailable, Code: "backend_unavailable",
		Message: "the language model backend is unavailable", Temporary: true, RetryAfter: e.RetryAfter}
}

// lastUser returns the index of the last user message in msgs, or -1.
func lastUser(msgs []Message) int {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == RoleUser {
			return i
		}
	}
	return -1
}
